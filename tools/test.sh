#!/usr/bin/env bash
# make test: lint the protos, bring up what the tests need with the stack scripts, run
# every test, then stop exactly what this run started.
set -euo pipefail
source "$(dirname "$0")/../deploy/local/lib.sh"
cd "$GANSHOU_ROOT"

say "buf lint / breaking"
uv run buf lint
bash tools/buf_breaking.sh

record="$GANSHOU_RUN/test-started"
mkdir -p "$GANSHOU_RUN"; : >"$record"
cleanup() {
  # shellcheck disable=SC2046
  [ -s "$record" ] && STACK_RECORD= bash deploy/local/stack.sh down $(cat "$record")
  rm -f "$record"
}
trap cleanup EXIT
say "local stack"
STACK_RECORD="$record" bash deploy/local/stack.sh up

say "pytest"
# Exit 5 (no tests collected) is a failure for us, as pytest reports it.
uv run pytest "$@"
