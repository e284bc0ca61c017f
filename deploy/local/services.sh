#!/usr/bin/env bash
# The Ganshou processes of the local system, each a detached process with a pid file and a
# log under .run/, registered with the local Prometheus by a target file.
#   services.sh up | down | status | info
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# name | gRPC port (or -) | metrics port | command (run with the workspace's Python)
# Each service's issue adds its processes here.
SERVICES=(
)

field() { echo "$1" | awk -F'|' -v n="$2" '{gsub(/^ +| +$/, "", $n); print $n}'; }

target_file() { echo "$GANSHOU_RUN/prometheus/targets/$1.json"; }

up() {
  local line name grpc metrics cmd
  for line in "${SERVICES[@]}"; do
    name=$(field "$line" 1); grpc=$(field "$line" 2); metrics=$(field "$line" 3); cmd=$(field "$line" 4)
    if is_running "$name"; then echo "$name: already running"; continue; fi
    # shellcheck disable=SC2086
    start_proc "$name" env GRPC_PORT="$grpc" METRICS_PORT="$metrics" "$PY" -m $cmd
    mkdir -p "$(dirname "$(target_file "$name")")"
    printf '[{"targets":["127.0.0.1:%s"],"labels":{"service":"%s"}}]\n' "$metrics" "$name" >"$(target_file "$name")"
    wait_until "$name" 60 http_ok "http://127.0.0.1:$metrics/metrics"
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
  local line name
  for line in "${SERVICES[@]}"; do
    name=$(field "$line" 1)
    is_running "$name" && echo "$name: running (gRPC $(field "$line" 2))" || echo "$name: stopped"
  done
}

info() {
  echo
  say "Ganshou is running locally"
  echo "  Kafka:       $KAFKA_BOOTSTRAP"
  echo "  PostgreSQL:  127.0.0.1:$PG_PORT (databases ganshou_<service>)"
  echo "  Prometheus:  http://127.0.0.1:$PROMETHEUS_PORT"
  local line
  for line in "${SERVICES[@]}"; do
    echo "  $(field "$line" 1): gRPC 127.0.0.1:$(field "$line" 2), metrics http://127.0.0.1:$(field "$line" 3)/metrics"
  done
  echo "  Logs:        $GANSHOU_RUN/logs/"
  echo "  Stop with:   make down"
}

case ${1:-status} in
  up) up ;; down) down ;; status) status ;; info) info ;;
  *) die "usage: services.sh up|down|status|info" ;;
esac
