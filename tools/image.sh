#!/usr/bin/env bash
# Builds the Ganshou image with Debian's tools, no Docker engine: a minbase bookworm made
# by debootstrap (cached under .run/image), imported with podman, the image built by
# buildah (chroot isolation). Storage is vfs, runtime runc, cgroups via cgroupfs, and a
# containers.conf without default ulimits (crun/runc fail on setrlimit here otherwise).
#   tools/image.sh [TAG]        → localhost/ganshou:TAG (default: test)
set -euo pipefail
source "$(dirname "$0")/../deploy/local/lib.sh"
cd "$GANSHOU_ROOT"
tag=${1:-test}
dir="$GANSHOU_RUN/image"
mkdir -p "$dir"
export CONTAINERS_STORAGE_CONF="$dir/storage.conf" CONTAINERS_CONF="$dir/containers.conf"
cat >"$CONTAINERS_STORAGE_CONF" <<CONF
[storage]
driver = "vfs"
graphroot = "$dir/storage"
runroot = "$dir/run"
CONF
cat >"$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
if ! podman image exists localhost/ganshou-base:bookworm; then
  if [ ! -f "$dir/rootfs/etc/debian_version" ]; then
    say "debootstrap --variant=minbase bookworm"
    rm -rf "$dir/rootfs"
    debootstrap --variant=minbase bookworm "$dir/rootfs" http://deb.debian.org/debian >"$dir/debootstrap.log" 2>&1 \
      || { tail -20 "$dir/debootstrap.log"; die "debootstrap failed; see $dir/debootstrap.log"; }
  fi
  say "podman import the base"
  # Leave out the downloaded .debs, docs and locales: the base stays small.
  tar -C "$dir/rootfs" --exclude=./var/cache/apt/archives/*.deb --exclude=./usr/share/doc/* \
    --exclude=./usr/share/locale/* --exclude=./usr/share/man/* -c . | podman import - localhost/ganshou-base:bookworm >/dev/null
fi
# Rebuild only when what goes into the image changed.
inputs=$( (cat deploy/image/Containerfile pyproject.toml uv.lock; find libs services -type f \( -name '*.py' -o -name '*.sql' \
  -o -name '*.toml' -o -name '*.pyi' -o -name py.typed \) -not -path '*/__pycache__/*' | sort | xargs cat) | sha1sum | cut -c1-16)
if podman image exists "localhost/ganshou:$tag" && [ "$(cat "$dir/built-$tag" 2>/dev/null)" = "$inputs" ]; then
  echo "localhost/ganshou:$tag is current"
  exit 0
fi
say "buildah bud localhost/ganshou:$tag"
buildah bud --isolation chroot --network host --layers=false -f deploy/image/Containerfile \
  -v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro \
  -t "localhost/ganshou:$tag" . >"$dir/build.log" 2>&1 || { tail -30 "$dir/build.log"; die "image build failed; see $dir/build.log"; }
echo "$inputs" >"$dir/built-$tag"
echo "built localhost/ganshou:$tag ($(podman image inspect --format '{{.Size}}' "localhost/ganshou:$tag") bytes)"
