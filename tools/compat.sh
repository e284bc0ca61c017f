#!/usr/bin/env bash
# Runs the whole `make test` suite against another Kafka version, beside (not instead of)
# the default stack: its own .run directory and ports, so nothing collides.
#   tools/compat.sh 4.4.0
set -euo pipefail
version=${1:?usage: tools/compat.sh KAFKA_VERSION}
cd "$(dirname "$0")/.."
GANSHOU_RUN=${GANSHOU_RUN:-/tmp/ganshou-compat-$version} KAFKA_VERSION=$version \
  KAFKA_PORT=39092 KAFKA_CONTROLLER_PORT=39093 PG_PORT=35432 PROMETHEUS_PORT=39090 make test
