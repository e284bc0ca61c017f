#!/usr/bin/env bash
# make test: lint the protos, bring up what the tests need with the stack scripts, run
# every test, then stop exactly what this run started (and delete the topics it made on a
# broker it started: tools/own_stack.sh).
set -euo pipefail
source "$(dirname "$0")/../deploy/local/lib.sh"
source "$(dirname "$0")/own_stack.sh"
cd "$GANSHOU_ROOT"

say "buf lint / breaking"
uv run buf lint
bash tools/buf_breaking.sh

say "local stack"
own_stack test

say "pytest"
# Exit 5 (no tests collected) is a failure for us, as pytest reports it.
uv run pytest "$@"
