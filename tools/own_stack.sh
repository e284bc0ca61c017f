# shellcheck shell=bash
# own_stack NAME [COMPONENTS...]: bring up what is missing of the local stack for a run
# (make test, bench, soak); when the run exits, delete the topics it made if it started the
# broker itself (tools/kafka_topics.py: a broker `make run` was using keeps every topic),
# then stop exactly what it started. Sourced after deploy/local/lib.sh, from the root.
own_stack() {
  local name=$1; shift
  OWN_RECORD="$GANSHOU_RUN/$name-started" OWN_TOPICS="$GANSHOU_RUN/$name-topics"
  mkdir -p "$GANSHOU_RUN"; : >"$OWN_RECORD"; rm -f "$OWN_TOPICS"  # never a killed run's list
  trap _own_stack_down EXIT
  STACK_RECORD="$OWN_RECORD" bash deploy/local/stack.sh up "$@"
  ! grep -qx kafka "$OWN_RECORD" || uv run python tools/kafka_topics.py snapshot "$OWN_TOPICS"
}

_own_stack_down() {
  [ ! -f "$OWN_TOPICS" ] || uv run python tools/kafka_topics.py sweep "$OWN_TOPICS" || true
  # shellcheck disable=SC2046
  [ -s "$OWN_RECORD" ] && STACK_RECORD= bash deploy/local/stack.sh down $(cat "$OWN_RECORD")
  rm -f "$OWN_RECORD" "$OWN_TOPICS"
}
