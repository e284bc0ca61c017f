#!/usr/bin/env bash
# make bench: bring up the stack, run every benchmark at full size, stop what it started.
# Results: bench/results/*.json (with the machine's description); summary: docs/benchmarks.md.
set -euo pipefail
source "$(dirname "$0")/../deploy/local/lib.sh"
cd "$GANSHOU_ROOT"
record="$GANSHOU_RUN/bench-started"; mkdir -p "$GANSHOU_RUN"; : >"$record"
trap '[ -s "$record" ] && STACK_RECORD= bash deploy/local/stack.sh down $(cat "$record"); rm -f "$record"' EXIT
STACK_RECORD="$record" bash deploy/local/stack.sh up
benches=(bench/eventstore.py bench/import_households.py bench/system.py)
[ -z "${BENCH_ONLY:-}" ] || benches=("bench/$BENCH_ONLY")  # e.g. BENCH_ONLY=system.py
for b in "${benches[@]}"; do
  say "$b"
  uv run python "$b" "$@"
done
