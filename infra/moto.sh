#!/usr/bin/env bash
# moto server (DynamoDB and SQS emulator) on 127.0.0.1.
#   infra/moto.sh start PORT STATEDIR   start in the background, wait until it answers
#   infra/moto.sh wait  PORT STATEDIR   wait until it answers (up to 20 s)
#   infra/moto.sh stop  PORT STATEDIR   stop the server started with this STATEDIR
# IDLCM_MOTO_PLAIN=1 starts moto as published instead of infra/moto_server.py.
# Log: STATEDIR/moto.log; pid: STATEDIR/moto.pid.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() {
  echo "usage: $0 start|stop|wait PORT STATEDIR" >&2
  exit 2
}
[[ $# -eq 3 ]] || usage
cmd="$1" port="$2" state_dir="$3"
[[ "$port" =~ ^[0-9]+$ ]] || usage
pid_file="$state_dir/moto.pid"
log_file="$state_dir/moto.log"
url="http://127.0.0.1:$port"

SAY_PREFIX=moto
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Running, not a zombie waiting for its reaper.
alive() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z* ]]
}

# moto answers its own dashboard API without signed requests.
answers() {
  "$ROOT/.venv/moto/bin/python" - "$url/moto-api/data.json" <<'EOF' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
}

# The pid of our server, if the pid file names a live moto_server.
our_pid() {
  [[ -f "$pid_file" ]] || return 1
  local pid
  pid="$(cat "$pid_file")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  grep -q moto_server "/proc/$pid/cmdline" 2>/dev/null || return 1  # moto_server.py
  echo "$pid"
}

wait_ready() {
  local deadline=$((SECONDS + 20)) pid
  while ! answers; do
    if [[ -f "$pid_file" ]] && ! pid="$(our_pid)"; then
      say "the server exited; last lines of $log_file:" >&2
      tail -n 20 "$log_file" >&2 || true
      return 1
    fi
    if ((SECONDS >= deadline)); then
      say "no answer on $url after 20 s; see $log_file" >&2
      return 1
    fi
    sleep 0.1
  done
}

case "$cmd" in
  start)
    [[ -x "$ROOT/.venv/moto/bin/moto_server" ]] || {
      say "missing .venv/moto: run infra/bootstrap.sh" >&2
      exit 1
    }
    mkdir -p "$state_dir"
    if pid="$(our_pid)"; then
      wait_ready
      say "already running on $url (pid $pid)"
      exit 0
    fi
    if answers; then
      say "port $port already serves another moto (not started from $state_dir): refusing" >&2
      exit 1
    fi
    # Not a child of the caller's job control: it survives the caller's
    # Ctrl-C until the caller's cleanup stops it.
    # infra/moto_server.py: moto_server with the fixes its docstring lists;
    # IDLCM_MOTO_PLAIN=1: moto as published (infra/moto_patch_check.py compares the two).
    server=("$ROOT/.venv/moto/bin/python" "$ROOT/infra/moto_server.py")
    [[ "${IDLCM_MOTO_PLAIN:-}" == 1 ]] && server=("$ROOT/.venv/moto/bin/moto_server")
    nohup "${server[@]}" -H 127.0.0.1 -p "$port" >"$log_file" 2>&1 </dev/null &
    echo $! >"$pid_file"
    started=$SECONDS
    wait_ready
    say "started on $url (pid $(cat "$pid_file"), $((SECONDS - started)) s, log $log_file)"
    ;;
  wait)
    wait_ready
    ;;
  stop)
    if pid="$(our_pid)"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do
        alive "$pid" || break
        sleep 0.1
      done
      alive "$pid" && kill -KILL "$pid" 2>/dev/null
      say "stopped (pid $pid, $url)"
    fi
    rm -f "$pid_file"
    ;;
  *) usage ;;
esac
