#!/usr/bin/env bash
# make soak: the reliability suite at full size (≥ 30 min of load at ≥ 200 commands/s with a
# fault a minute, ≥ 10,000 fuzz cases per service); writes docs/reliability.md.
# Extra arguments go to pytest (e.g. -k fuzz to run one scenario; sections add up).
# GANSHOU_SOAK_LOAD_S=600 shortens the load under faults (to check a fix; not a full-size run).
# GANSHOU_KEEP_STACK_DATA=1 keeps the private broker's and database's data (to read a failed run's topics).
set -euo pipefail
source "$(dirname "$0")/../deploy/local/lib.sh"
source "$(dirname "$0")/own_stack.sh"
cd "$GANSHOU_ROOT"
# The suite runs its own broker and database; the shared stack only for the fixtures' checks.
own_stack soak postgres kafka
GANSHOU_SCALE=soak uv run pytest tests/integration/reliability -p no:randomly -s -q "$@"
