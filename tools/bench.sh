#!/usr/bin/env bash
# make bench: bring up the stack, run every benchmark at full size, stop what it started.
# Results: bench/results/*.json (with the machine's description); summary: docs/benchmarks.md.
set -euo pipefail
source "$(dirname "$0")/../deploy/local/lib.sh"
source "$(dirname "$0")/own_stack.sh"
cd "$GANSHOU_ROOT"
own_stack bench  # its topics (a million events among them) deleted after, when it started the broker
benches=(bench/eventstore.py bench/import_households.py bench/system.py)
[ -z "${BENCH_ONLY:-}" ] || benches=("bench/$BENCH_ONLY")  # e.g. BENCH_ONLY=system.py
for b in "${benches[@]}"; do
  say "$b"
  uv run python "$b" "$@"
done
