#!/usr/bin/env bash
# The Ganshou processes of the local system, each a detached process with a pid file and a
# log under .run/, registered with the local Prometheus by a target file.
#   services.sh up | down | status | info
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# name | gRPC port (or -) | metrics port | python -m … | database (ganshou_<db>)
SERVICES=(
  "intake       | 50051 | 29101 | ganshou_intake serve | intake"
  "intake-relay | -     | 29111 | ganshou_intake relay | intake"
  "casework        | 50052 | 29102 | ganshou_casework serve  | casework"
  "casework-worker | -     | 29112 | ganshou_casework worker | casework"
  "casework-relay  | -     | 29122 | ganshou_casework relay  | casework"
  "partner-resource        | 50053 | 29103 | ganshou_partner_resource serve  | partner_resource"
  "partner-resource-worker | -     | 29113 | ganshou_partner_resource worker | partner_resource"
  "partner-resource-relay  | -     | 29123 | ganshou_partner_resource relay  | partner_resource"
  "metrics                 | 50054 | 29104 | ganshou_metrics worker          | metrics"
)

# Local secrets, made once: the token signing secret (for `ganshou token` / grpcurl) and
# each service's personal-data master key. Never used outside this machine.
SECRETS="$GANSHOU_RUN/secrets.env"
if [ ! -f "$SECRETS" ]; then
  mkdir -p "$GANSHOU_RUN"
  {
    echo "GANSHOU_TOKEN_SECRET=$(python3 -c 'import secrets;print(secrets.token_urlsafe(32))')"
    echo "GANSHOU_PII_MASTER_KEY=$(python3 -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())')"
  } >"$SECRETS"
  chmod 600 "$SECRETS"
fi
set -a; source "$SECRETS"; set +a

field() { echo "$1" | awk -F'|' -v n="$2" '{gsub(/^ +| +$/, "", $n); print $n}'; }

target_file() { echo "$GANSHOU_RUN/prometheus/targets/$1.json"; }

up() {
  local line name grpc metrics cmd db dsn migrated=" "
  for line in "${SERVICES[@]}"; do
    name=$(field "$line" 1); grpc=$(field "$line" 2); metrics=$(field "$line" 3); cmd=$(field "$line" 4)
    db=$(field "$line" 5)
    dsn="postgresql://ganshou_$db:ganshou_$db@127.0.0.1:$PG_PORT/ganshou_$db"
    if is_running "$name"; then echo "$name: already running"; continue; fi
    if [[ $migrated != *" ${cmd%% *} "* ]]; then
      DATABASE_URL="$dsn" "$PY" -m "${cmd%% *}" migrate >>"$(logfile "$name")" 2>&1 \
        || { tail -5 "$(logfile "$name")" >&2; die "$name: migrations failed; see $(logfile "$name")"; }
      migrated+="${cmd%% *} "
    fi
    # shellcheck disable=SC2086
    start_proc "$name" env GRPC_PORT="$grpc" GRPC_HOST=127.0.0.1 METRICS_PORT="$metrics" DATABASE_URL="$dsn" \
      KAFKA_BOOTSTRAP="$KAFKA_BOOTSTRAP" METRICS_GENERATION="$(generation)" "$PY" -m $cmd
    mkdir -p "$(dirname "$(target_file "$name")")"
    printf '[{"targets":["127.0.0.1:%s"],"labels":{"service":"%s"}}]\n' "$metrics" "$name" >"$(target_file "$name")"
    if [ "$grpc" != "-" ]; then
      wait_until "$name" 60 grpcurl -plaintext "127.0.0.1:$grpc" grpc.health.v1.Health/Check
    else
      wait_until "$name" 60 http_ok "http://127.0.0.1:$metrics/metrics"
    fi
    echo "$name: started (gRPC ${grpc}, metrics :$metrics, log $(logfile "$name"))"
  done
}

down() {
  local i name
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    name=$(field "${SERVICES[$i]}" 1)
    if is_running "$name"; then stop_proc "$name" 20; echo "$name: stopped"; fi
    rm -f "$(target_file "$name")"
  done
}

status() {
  local line name port
  for line in "${SERVICES[@]}"; do
    name=$(field "$line" 1)
    port=$(field "$line" 2); [ "$port" = - ] && port="background" || port="gRPC $port"
    is_running "$name" && echo "$name: running ($port)" || echo "$name: stopped"
  done
}

info() {
  echo
  say "Ganshou is running locally"
  echo "  Kafka:       $KAFKA_BOOTSTRAP"
  echo "  PostgreSQL:  127.0.0.1:$PG_PORT (databases ganshou_<service>)"
  echo "  Prometheus:  http://127.0.0.1:$PROMETHEUS_PORT"
  echo "  Dashboards:  http://127.0.0.1:$PROMETHEUS_PORT/consoles/index.html (the live figures; ?community=ID for one)"
  local line
  for line in "${SERVICES[@]}"; do
    local grpc="gRPC 127.0.0.1:$(field "$line" 2)"
    [ "$(field "$line" 2)" = - ] && grpc="no API (background)"
    printf '  %-25s %-20s metrics http://127.0.0.1:%s/metrics\n' "$(field "$line" 1):" "$grpc," "$(field "$line" 3)"
  done
  echo "  Logs:        $GANSHOU_RUN/logs/"
  echo "  A token:     export GANSHOU_TOKEN_SECRET=\$(grep TOKEN $SECRETS | cut -d= -f2-)"
  echo "               uv run python -m ganshou_common.grpc_scaffold.tokens --role town_admin"
  echo "  Try:         .run/bin/grpcurl -plaintext 127.0.0.1:50051 list"
  echo "  Stop with:   make down"
}

generation() { cat "$GANSHOU_RUN/metrics-generation" 2>/dev/null || echo 1; }

# Rebuild the projections: a new generation projects every topic from the beginning beside
# the live worker (which keeps serving); once its figures equal the live ones, it becomes
# the live generation and the metrics service restarts on it (recovering from its changelogs).
rebuild() {
  local old new
  old=$(generation); new=$((old + 1))
  say "rebuilding the projections: generation $old → $new"
  start_proc metrics-rebuild env GRPC_PORT=50064 GRPC_HOST=127.0.0.1 METRICS_PORT=29124 \
    KAFKA_BOOTSTRAP="$KAFKA_BOOTSTRAP" METRICS_GENERATION="$new" "$PY" -m ganshou_metrics worker
  if ! "$PY" -m ganshou_cli.main rebuild-wait --live 127.0.0.1:50054 --rebuilt 127.0.0.1:50064; then
    stop_proc metrics-rebuild 20
    die "the rebuilt generation $new did not match the live one; generation $old stays live (log $(logfile metrics-rebuild))"
  fi
  stop_proc metrics-rebuild 20
  echo "$new" >"$GANSHOU_RUN/metrics-generation"
  stop_proc metrics 20
  up >/dev/null
  echo "metrics: generation $new is live"
}

demo() {
  say "loading the demonstration town through the gRPC APIs"
  (cd "$GANSHOU_ROOT" && "$PY" -m ganshou_cli.main demo "$@")
}

case ${1:-status} in
  up) up ;; down) down ;; status) status ;; info) info ;; demo) shift; demo "$@" ;; rebuild) rebuild ;;
  *) die "usage: services.sh up|down|status|info|demo|rebuild" ;;
esac
