# Helpers shared by the local stack scripts: detached processes with pid files, and
# readiness waits that fail with the component's name and log file instead of hanging.
# shellcheck shell=bash
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

say() { printf '\033[1m%s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

pidfile() { echo "$GANSHOU_RUN/pids/$1.pid"; }
logfile() { echo "$GANSHOU_RUN/logs/$1.log"; }

# is_running NAME: the pid in NAME's pid file is alive.
is_running() {
  local f pid
  f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# start_proc NAME CMD...: run CMD detached in its own session, log to .run/logs/NAME.log.
start_proc() {
  local name=$1; shift
  mkdir -p "$GANSHOU_RUN/pids" "$GANSHOU_RUN/logs"
  setsid "$@" >>"$(logfile "$name")" 2>&1 < /dev/null &
  echo $! >"$(pidfile "$name")"
}

# stop_proc NAME [GRACE_S]: SIGTERM the process group, SIGKILL after the grace.
stop_proc() {
  local name=$1 grace=${2:-20} f pid i
  f=$(pidfile "$name")
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# wait_until NAME TIMEOUT_S CMD...: retry CMD until it succeeds; on time-out, fail naming
# the component and the tail of its log.
wait_until() {
  local name=$1 timeout=$2 i; shift 2
  for ((i = 0; i < timeout * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [ -f "$(pidfile "$name")" ] && ! is_running "$name"; then
      tail -n 30 "$(logfile "$name")" >&2 2>/dev/null
      die "$name exited during start-up; see $(logfile "$name")"
    fi
    sleep 0.25
  done
  tail -n 30 "$(logfile "$name")" >&2 2>/dev/null
  die "$name was not ready after ${timeout}s; see $(logfile "$name")"
}

# Postgres refuses to run as root: run its tools as the postgres user then.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && { echo "$d"; return; }; done
  command -v pg_ctl >/dev/null && dirname "$(command -v pg_ctl)"
}

http_ok() { python3 -c "import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1"; }

# The Python services' interpreter: the workspace venv.
PY="$GANSHOU_ROOT/.venv/bin/python"
