# Local stack settings: every value can be overridden from the environment.
# Sourced by the stack scripts and the Makefile's recipes; ports avoid the usual defaults
# so a developer's own Kafka/PostgreSQL/Prometheus can keep running beside ours.
: "${GANSHOU_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${GANSHOU_RUN:=$GANSHOU_ROOT/.run}"
: "${KAFKA_VERSION:=3.9.2}"
: "${KAFKA_PORT:=29092}"
: "${KAFKA_CONTROLLER_PORT:=29093}"
: "${KAFKA_HEAP:=-Xms256m -Xmx768m}"
: "${PG_PORT:=25432}"
: "${PROMETHEUS_PORT:=29090}"
: "${GANSHOU_TOPIC_PARTITIONS:=6}"
: "${GRPCURL_VERSION:=v1.9.4}"
: "${HELM_VERSION:=v3.22.0}"
: "${GHZ_VERSION:=v0.120.0}"
export GANSHOU_ROOT GANSHOU_RUN KAFKA_VERSION KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_HEAP \
  PG_PORT PROMETHEUS_PORT GANSHOU_TOPIC_PARTITIONS GRPCURL_VERSION HELM_VERSION GHZ_VERSION
export KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
export PG_ADMIN_DSN="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
export PATH="$GANSHOU_RUN/bin:$HOME/.local/bin:$PATH"
