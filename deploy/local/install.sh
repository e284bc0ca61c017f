#!/usr/bin/env bash
# Installs whatever is missing for the local stack and the tests, from the package
# registries only: Debian (apt-get), PyPI (uv), Maven Central (Kafka jars), the Go module
# proxy (grpcurl). Idempotent and quick when everything is there.
#   install.sh [--kafka-version X]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE="$GANSHOU_ROOT/deploy/local"
mkdir -p "$GANSHOU_RUN/bin" "$GANSHOU_RUN/logs"

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Debian packages -------------------------------------------------------------------
need_apt=()
[ -n "$(pg_bin)" ] || need_apt+=(postgresql)
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v java >/dev/null || need_apt+=(default-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v go >/dev/null || need_apt+=(golang-go)
# The leaders' report: Chinese fonts for its charts, and pdftoppm for its test.
fc-list 2>/dev/null | grep "Noto Sans CJK SC" >/dev/null || need_apt+=(fonts-noto-cjk fontconfig)
command -v pdftoppm >/dev/null || need_apt+=(poppler-utils)
# The container image, without Docker: debootstrap, buildah and podman with runc.
for tool in debootstrap buildah podman runc; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || need_apt+=("$tool")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  say "apt-get install ${need_apt[*]}"
  sudo_ apt-get update -q >"$GANSHOU_RUN/logs/apt.log" 2>&1
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}" \
    >>"$GANSHOU_RUN/logs/apt.log" 2>&1 || { tail -20 "$GANSHOU_RUN/logs/apt.log"; die "apt-get failed; see $GANSHOU_RUN/logs/apt.log"; }
  # Debian's packages may start their own daemons; ours run from .run/ on other ports.
  for svc in postgresql prometheus; do sudo_ service "$svc" stop >/dev/null 2>&1 || true; done
fi

# --- Python: uv and the workspace ----------------------------------------------------------
if ! command -v uv >/dev/null; then
  say "pip install uv"
  python3 -m pip install -q --user uv || python3 -m pip install -q --break-system-packages --user uv
fi
(cd "$GANSHOU_ROOT" && uv sync --locked --all-packages --all-groups -q)

# --- Kafka jars from Maven Central -------------------------------------------------------
libs="$GANSHOU_RUN/kafka/libs-$KAFKA_VERSION"
if [ ! -f "$libs/.complete" ]; then
  say "resolving Apache Kafka $KAFKA_VERSION from Maven Central"
  profile=(); [[ $KAFKA_VERSION == 3.* ]] || profile=(-Dkafka4)
  mvn -q -B -f "$HERE/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" "${profile[@]}" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs" \
    >"$GANSHOU_RUN/logs/maven.log" 2>&1 || { tail -20 "$GANSHOU_RUN/logs/maven.log"; die "maven failed; see $GANSHOU_RUN/logs/maven.log"; }
  touch "$libs/.complete"
fi

# --- Go tools from the Go module proxy -----------------------------------------------------
# go_tool NAME MODULE VERSION: `go install MODULE@VERSION` into .run/bin unless that version is there.
go_tool() {
  local name=$1 module=$2 version=$3
  if [ ! -x "$GANSHOU_RUN/bin/$name" ] || [ "$(cat "$GANSHOU_RUN/bin/.$name-version" 2>/dev/null)" != "$version" ]; then
    say "go install $name@$version"
    GOBIN="$GANSHOU_RUN/bin" GOFLAGS=-mod=mod go install "$module@$version" >"$GANSHOU_RUN/logs/go-install-$name.log" 2>&1 \
      || { tail -20 "$GANSHOU_RUN/logs/go-install-$name.log"; die "go install $name failed"; }
    echo "$version" >"$GANSHOU_RUN/bin/.$name-version"
  fi
}
go_tool grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl "$GRPCURL_VERSION"
go_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
go_tool ghz github.com/bojand/ghz/cmd/ghz "$GHZ_VERSION"   # gRPC load for make bench
