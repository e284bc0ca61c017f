#!/usr/bin/env bash
# The local real stack, no Docker: Apache Kafka (KRaft), PostgreSQL, Prometheus.
#   stack.sh up [COMPONENT...]     start what is not running (all by default); idempotent
#   stack.sh down [COMPONENT...]   stop what up started (all by default); idempotent
#   stack.sh status
# With STACK_RECORD=FILE, up appends the components it started to FILE, so a caller
# (make test) can stop exactly those and leave a developer's running stack alone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE="$GANSHOU_ROOT/deploy/local"
COMPONENTS=(postgres kafka prometheus)

PG_DIR="$GANSHOU_RUN/postgres"
# As root, PostgreSQL runs as the postgres user, which may not be able to reach a checkout
# in a private folder (a CI clone in a mode-700 directory): then its data lives in
# /var/tmp under a name derived from the checkout, and .run/postgres points there.
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$GANSHOU_RUN" 2>/dev/null \
    && [ ! -d "$PG_DIR/data" ]; then
  mkdir -p "$GANSHOU_RUN"
  if ! runuser -u postgres -- test -x "$GANSHOU_RUN" 2>/dev/null; then
    # Named after the checkout, or after GANSHOU_RUN when a test runs a stack of its own.
    key=$GANSHOU_ROOT; [ "$GANSHOU_RUN" = "$GANSHOU_ROOT/.run" ] || key=$GANSHOU_RUN
    alt="/var/tmp/ganshou-$(echo "$key" | cksum | cut -d' ' -f1)/postgres"
    mkdir -p "$alt"
    [ -L "$PG_DIR" ] || { rm -rf "$PG_DIR"; ln -s "$alt" "$PG_DIR"; }
    PG_DIR="$alt"
  fi
fi
[ -L "$PG_DIR" ] && PG_DIR=$(readlink -f "$PG_DIR")
PG_SOCK="$PG_DIR/sock"
# One role and database per service; ganshou_test may create databases for tests.
PG_SERVICES=(intake casework partner_resource metrics)

record() { [ -n "${STACK_RECORD:-}" ] && echo "$1" >>"$STACK_RECORD" || true; }

pg_running() { [ -f "$PG_DIR/data/postmaster.pid" ] && as_pg "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; }

up_postgres() {
  local bin; bin=$(pg_bin) || true
  [ -n "$bin" ] || die "PostgreSQL is not installed (run: make install)"
  if pg_running; then echo "postgres: already running on 127.0.0.1:$PG_PORT"; return; fi
  mkdir -p "$PG_SOCK" "$GANSHOU_RUN/logs"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$PG_DIR"
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    local pw; pw=$(mktemp); echo postgres >"$pw"; chmod 644 "$pw"
    as_pg "$bin/initdb" -D "$PG_DIR/data" -U postgres --pwfile="$pw" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
      || { rm -f "$pw"; cat "$PG_DIR/initdb.log" >&2; die "postgres: initdb failed; see $PG_DIR/initdb.log"; }
    rm -f "$pw"
  fi
  as_pg "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_SOCK -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null \
    || { tail -n 30 "$PG_DIR/postgres.log" >&2; die "postgres did not start; see $PG_DIR/postgres.log"; }
  ln -sf "$PG_DIR/postgres.log" "$(logfile postgres)"
  local s sql=""
  for s in "${PG_SERVICES[@]}" test; do
    sql+="DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='ganshou_$s') THEN CREATE ROLE ganshou_$s LOGIN PASSWORD 'ganshou_$s'; END IF; END\$\$;"
  done
  # pg_signal_backend: a test database is dropped WITH (FORCE), which must also end an
  # autovacuum worker that happens to be in it.
  sql+="SET client_min_messages = warning; ALTER ROLE ganshou_test CREATEDB; GRANT pg_signal_backend TO ganshou_test;"
  as_pg psql -q -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -c "$sql" >/dev/null
  for s in "${PG_SERVICES[@]}" test; do
    as_pg psql -q -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='ganshou_$s'" | grep -q 1 \
      || as_pg psql -q -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres -c "CREATE DATABASE ganshou_$s OWNER ganshou_$s" >/dev/null
  done
  echo "postgres: started on 127.0.0.1:$PG_PORT (log $PG_DIR/postgres.log)"
  record postgres
}

down_postgres() {
  if pg_running; then as_pg "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null; echo "postgres: stopped"; fi
}

kafka_libs() { echo "$GANSHOU_RUN/kafka/libs-$KAFKA_VERSION"; }

up_kafka() {
  if is_running kafka; then echo "kafka: already running on $KAFKA_BOOTSTRAP"; return; fi
  local libs data cfg id log4j
  libs=$(kafka_libs)
  [ -f "$libs/.complete" ] || die "Kafka $KAFKA_VERSION jars are missing (run: make install)"
  data="$GANSHOU_RUN/kafka/data-$KAFKA_VERSION"
  cfg="$GANSHOU_RUN/kafka/server-$KAFKA_VERSION.properties"
  mkdir -p "$data"
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
      -e "s|@DATA_DIR@|$data|g" -e "s|@PARTITIONS@|$GANSHOU_TOPIC_PARTITIONS|g" \
      "$HERE/kafka/server.properties.in" >"$cfg"
  if [[ $KAFKA_VERSION == 3.* ]]; then
    log4j="-Dlog4j.configuration=file:$HERE/kafka/log4j.properties"
  else
    log4j="-Dlog4j2.configurationFile=$HERE/kafka/log4j2.properties"
  fi
  if [ ! -f "$data/meta.properties" ]; then
    # A cluster id that starts with "-" would be read as an option: draw another.
    id=$(python3 -c 'import base64,uuid
while (i := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"): pass
print(i)')
    # shellcheck disable=SC2086
    java $log4j -cp "$libs/*" kafka.tools.StorageTool format -t "$id" -c "$cfg" \
      >"$GANSHOU_RUN/kafka/format.log" 2>&1 || { cat "$GANSHOU_RUN/kafka/format.log" >&2; die "kafka: storage format failed"; }
  fi
  # shellcheck disable=SC2086
  start_proc kafka java $KAFKA_HEAP -XX:+UseG1GC -Djava.awt.headless=true $log4j \
    -cp "$libs/*" kafka.Kafka "$cfg"
  wait_until kafka 90 "$PY" -m ganshou_common.topics --bootstrap "$KAFKA_BOOTSTRAP" \
    --partitions "$GANSHOU_TOPIC_PARTITIONS" --timeout 3
  echo "kafka: $KAFKA_VERSION started on $KAFKA_BOOTSTRAP, topics created (log $(logfile kafka))"
  record kafka
}

down_kafka() { if is_running kafka; then stop_proc kafka 30; echo "kafka: stopped"; fi; rm -f "$(pidfile kafka)"; }

up_prometheus() {
  if is_running prometheus; then echo "prometheus: already running on http://127.0.0.1:$PROMETHEUS_PORT"; return; fi
  command -v prometheus >/dev/null || die "prometheus is not installed (run: make install)"
  local dir="$GANSHOU_RUN/prometheus"
  mkdir -p "$dir/data" "$dir/targets"
  sed -e "s|@TARGETS_DIR@|$dir/targets|g" -e "s|@ROOT@|$GANSHOU_ROOT|g" -e "s|@PROMETHEUS_PORT@|$PROMETHEUS_PORT|g" \
    "$HERE/prometheus/prometheus.yml.in" >"$dir/prometheus.yml"
  start_proc prometheus prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --web.enable-lifecycle --log.level=warn \
    --web.console.templates="$GANSHOU_ROOT/deploy/prometheus/consoles" \
    --web.console.libraries="$GANSHOU_ROOT/deploy/prometheus/console_libraries"
  wait_until prometheus 60 http_ok "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
  echo "prometheus: started on http://127.0.0.1:$PROMETHEUS_PORT (log $(logfile prometheus))"
  record prometheus
}

down_prometheus() { if is_running prometheus; then stop_proc prometheus 10; echo "prometheus: stopped"; fi; rm -f "$(pidfile prometheus)"; }

status() {
  pg_running && echo "postgres:   running  127.0.0.1:$PG_PORT" || echo "postgres:   stopped"
  is_running kafka && echo "kafka:      running  $KAFKA_BOOTSTRAP ($KAFKA_VERSION)" || echo "kafka:      stopped"
  is_running prometheus && echo "prometheus: running  http://127.0.0.1:$PROMETHEUS_PORT" || echo "prometheus: stopped"
}

cmd=${1:-status}; shift || true
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=("${COMPONENTS[@]}")
case $cmd in
  up) for c in "${targets[@]}"; do "up_$c"; done ;;
  down) for ((i = ${#targets[@]} - 1; i >= 0; i--)); do "down_${targets[$i]}"; done ;;
  status) status ;;
  *) die "usage: stack.sh up|down|status [postgres|kafka|prometheus...]" ;;
esac
