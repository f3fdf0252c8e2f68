#!/usr/bin/env bash
# `make run`: the whole stack on 127.0.0.1, in the foreground until Ctrl-C.
#   moto (DynamoDB, SQS) on IDLCM_MOTO_PORT (5055), with template.yaml's table and queues
#   cargo lambda watch on IDLCM_API_PORT (9000): the API at
#     http://127.0.0.1:$IDLCM_API_PORT/lambda-url/scim-api
#   the worker and sweeper under the same watch server, fed by tests/bin/local_event_source.rs
#     (the SQS event source mapping and the sweeper's schedule, as Lambda runs them)
#   the demo target app (tests/bin/demo_app.rs) on IDLCM_DEMO_PORT (8090): http://127.0.0.1:8090/
#   a demo integration (infra/demo-integration.json: the http connector, driving the demo app),
#     created through the admin API
# Once the API answers, $IDLCM_STATE_DIR/local.json (state dir default .idlcm) holds
#   { "api_url", "admin_token", "aws_endpoint_url",
#     "demo": { "id", "scim_base_url", "scim_token" }, "demo_app": { "url", "api_key" } }
#   (docs/contract.md "Local run file and demo app")
# Ctrl-C, SIGTERM or any exit stops everything this script started.
# IDLCM_DETACH=1: for a parent script (infra/test.sh), which starts it in the
# background and stops it with SIGTERM: no log tail on stdout, and it stops by
# itself if that parent goes away.
# IDLCM_NO_RELOAD=1: cargo lambda watch does not rebuild when the sources change.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MOTO_PORT="${IDLCM_MOTO_PORT:-5055}"
API_PORT="${IDLCM_API_PORT:-9000}"
DEMO_PORT="${IDLCM_DEMO_PORT:-8090}"
STATE_DIR="${IDLCM_STATE_DIR:-.idlcm}"
[[ "$STATE_DIR" == /* ]] || STATE_DIR="$ROOT/$STATE_DIR"
DETACH="${IDLCM_DETACH:-0}"
NO_RELOAD="${IDLCM_NO_RELOAD:-0}"
READY_TIMEOUT=600
PARENT_PID=$PPID

SAY_PREFIX=run
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- cleanup -----------------------------------------------------------------

watch_sid="" build_sid="" tail_pid="" child_pid="" demo_sid="" source_sid="" moto_started=0

# Stop every process of a session started with setsid (a command and all its
# children, whatever process groups they make): TERM, then KILL after 10 s.
session_pids() {
  # Zombies excluded: they are gone, only not yet reaped.
  ps -e -o pid=,sid=,stat= | awk -v sid="$1" '$2 == sid && $3 !~ /^Z/ { print $1 }'
}
kill_session() {
  local sid="$1" pids
  pids="$(session_pids "$sid")"
  [[ -n "$pids" ]] || return 0
  # shellcheck disable=SC2086 # a list of pids
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 100); do
    pids="$(session_pids "$sid")"
    [[ -n "$pids" ]] || return 0
    sleep 0.1
  done
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  [[ -n "$tail_pid" ]] && kill "$tail_pid" 2>/dev/null
  [[ -n "$child_pid" ]] && kill "$child_pid" 2>/dev/null
  if [[ -n "$build_sid" ]]; then
    kill_session "$build_sid"
  fi
  if [[ -n "$source_sid" ]]; then
    kill_session "$source_sid"
    say "stopped the event source"
  fi
  if [[ -n "$watch_sid" ]]; then
    kill_session "$watch_sid"
    say "stopped cargo lambda watch"
  fi
  if [[ -n "$demo_sid" ]]; then
    kill_session "$demo_sid"
    say "stopped the demo app"
  fi
  # local.json describes a running stack: not any more.
  rm -f "$STATE_DIR/watch.pid" "$STATE_DIR/local.json" "$STATE_DIR/demo.json"
  if [[ $moto_started -eq 1 ]]; then
    infra/moto.sh stop "$MOTO_PORT" "$STATE_DIR"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'echo; say "stopping"; exit 0' INT TERM

# Run a command in the background and wait for it, so that SIGTERM and Ctrl-C
# are handled at once rather than when a long foreground command ends.
run_waited() {
  "$@" <&0 &
  child_pid=$!
  wait "$child_pid"
  child_pid=""
}

# --- preflight ---------------------------------------------------------------

mkdir -p "$STATE_DIR"
rm -f "$STATE_DIR/local.json"
if [[ -f "$STATE_DIR/watch.pid" ]] && kill -0 "$(cat "$STATE_DIR/watch.pid")" 2>/dev/null; then
  die "another infra/run.sh uses $STATE_DIR (cargo lambda watch pid $(cat "$STATE_DIR/watch.pid")); stop it first"
fi
port_free() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(1 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 0)
EOF
}
port_free "$API_PORT" || die "port $API_PORT on 127.0.0.1 is in use: set IDLCM_API_PORT"
port_free "$DEMO_PORT" || die "port $DEMO_PORT on 127.0.0.1 is in use: set IDLCM_DEMO_PORT"

say "bootstrap"
run_waited infra/bootstrap.sh

# --- AWS emulator --------------------------------------------------------------

# A moto left over from an interrupted run with this state dir: start afresh.
infra/moto.sh stop "$MOTO_PORT" "$STATE_DIR"
moto_started=1
infra/moto.sh start "$MOTO_PORT" "$STATE_DIR"

export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=local
export AWS_SECRET_ACCESS_KEY=local
export AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
unset AWS_PROFILE AWS_SESSION_TOKEN
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

.venv/moto/bin/python infra/local_resources.py --env-file "$STATE_DIR/resources.env"
set -a
# shellcheck disable=SC1091 # written just above
. "$STATE_DIR/resources.env"
set +a

# --- API -----------------------------------------------------------------------

admin_token="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
api_url="http://127.0.0.1:$API_PORT/lambda-url/scim-api"
# As deployed (template.yaml): the admin token's hash lives in SSM Parameter Store and the API
# reads it through IDLCM_ADMIN_TOKEN_SHA256_REF.
admin_hash_parameter=/idlcm/local/admin-token-sha256
printf '%s' "$admin_token" | sha256sum | cut -d' ' -f1 |
  .venv/moto/bin/python -c '
import sys, boto3
boto3.client("ssm").put_parameter(Name=sys.argv[1], Value=sys.stdin.read().strip(), Type="SecureString", Overwrite=True)
' "$admin_hash_parameter"
export IDLCM_ADMIN_TOKEN_SHA256_REF="ssm:$admin_hash_parameter"
unset IDLCM_ADMIN_TOKEN_SHA256
export IDLCM_PUBLIC_URL="$api_url"
# The demo app listens on 127.0.0.1: connectors may call loopback here (never in template.yaml).
export IDLCM_ALLOW_LOOPBACK_CONNECTORS=true
export RUST_LOG="${RUST_LOG:-info}"

bins=(--bin scim-api --bin worker --bin sweeper --bin demo_app --bin local_event_source)
say "cargo build ${bins[*]}"
setsid cargo build "${bins[@]}" </dev/null &
build_sid=$!
wait "$build_sid" || die "cargo build failed"
build_sid=""

# --- demo target app ----------------------------------------------------------------

demo_key="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
demo_url="http://127.0.0.1:$DEMO_PORT"
DEMO_APP_API_KEY="$demo_key" DEMO_APP_ADDR="127.0.0.1:$DEMO_PORT" \
  setsid target/debug/demo_app >"$STATE_DIR/demo-app.log" 2>&1 </dev/null &
demo_sid=$!
say "demo app on $demo_url (log $STATE_DIR/demo-app.log)"

watch_args=(lambda watch -A 127.0.0.1 -P "$API_PORT")
[[ "$NO_RELOAD" == 1 ]] && watch_args+=(--ignore-changes)
setsid .venv/tools/bin/cargo-lambda "${watch_args[@]}" \
  >"$STATE_DIR/watch.log" 2>&1 </dev/null &
watch_sid=$!
echo "$watch_sid" >"$STATE_DIR/watch.pid"
say "cargo lambda watch on 127.0.0.1:$API_PORT (pid $watch_sid, log $STATE_DIR/watch.log)"

# --- demo integration ----------------------------------------------------------

say "creating the demo integration through $api_url/admin/integrations (up to $((READY_TIMEOUT / 60)) min)"
demo_json="$STATE_DIR/demo.json"
rm -f "$demo_json"
# The admin token goes to Python through the environment (not argv), and only now
# that cargo lambda watch, whose environment the function gets, is started.
export IDLCM_RUN_ADMIN_TOKEN="$admin_token"
export IDLCM_RUN_DEMO_KEY="$demo_key"
if ! run_waited python3 - "$api_url" "$demo_json" "$watch_sid" "$READY_TIMEOUT" "$demo_url" <<'EOF'; then
import json, os, sys, time, urllib.error, urllib.request

api_url, out_path, watch_pid, timeout, demo_url = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
token = os.environ["IDLCM_RUN_ADMIN_TOKEN"]
with open("infra/demo-integration.json") as f:
    template = f.read()
config = json.loads(template.replace("@DEMO_URL@", demo_url).replace("@DEMO_KEY@", os.environ["IDLCM_RUN_DEMO_KEY"]))
# Conformance tools run ~50 requests a second here, the default limit's edge
# (docs/local-stack.md); integrations created by hand keep the default.
config.setdefault("limits", {"requests_per_second": 200, "burst": 2000})
body = json.dumps(config).encode()
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
start = time.monotonic()
deadline = start + timeout
last_error, http_errors, last_report = "no answer yet", 0, start

def fail(message):
    print(f"run: ERROR: {message}", file=sys.stderr)
    sys.exit(1)

while True:
    try:
        os.kill(watch_pid, 0)
    except ProcessLookupError:
        fail("cargo lambda watch exited")
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        fail(f"the API did not create the demo integration in {timeout} s; last: {last_error}")
    request = urllib.request.Request(
        f"{api_url}/admin/integrations", data=body, method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with opener.open(request, timeout=max(1.0, remaining)) as response:
            payload = json.loads(response.read())
        missing = {"id", "scim_base_url", "token"} - set(payload)
        if missing:
            fail(f"POST /admin/integrations answered without {sorted(missing)}: {payload}")
        with open(out_path, "w") as f:
            json.dump(payload, f)
        sys.exit(0)
    except urllib.error.HTTPError as err:
        text = err.read()[:500].decode(errors="replace")
        last_error = f"HTTP {err.code}: {text}"
        # 404/5xx while the function (re)starts; anything else is a real answer.
        if err.code != 404 and err.code < 500:
            fail(f"POST /admin/integrations answered {last_error}")
        http_errors += 1
        if http_errors >= 30:
            fail(f"POST /admin/integrations keeps failing; last: {last_error}")
    except (OSError, ValueError) as err:  # refused, reset, timeout, bad JSON
        last_error = str(err)
    if time.monotonic() - last_report >= 30:
        last_report = time.monotonic()
        print(f"run: still waiting for the API ({int(last_report - start)} s; last: {last_error})", flush=True)
    time.sleep(1)
EOF
  say "last lines of $STATE_DIR/watch.log:" >&2
  tail -n 30 "$STATE_DIR/watch.log" >&2 || true
  die "the API did not come up"
fi

python3 - "$demo_json" "$STATE_DIR/local.json" "$api_url" "$AWS_ENDPOINT_URL" "$demo_url" <<'EOF'
import json, os, sys
demo_path, out_path, api_url, aws_endpoint_url, demo_url = sys.argv[1:6]
with open(demo_path) as f:
    demo = json.load(f)
local = {
    "api_url": api_url,
    "admin_token": os.environ["IDLCM_RUN_ADMIN_TOKEN"],
    "aws_endpoint_url": aws_endpoint_url,
    "demo": {"id": demo["id"], "scim_base_url": demo["scim_base_url"], "scim_token": demo["token"]},
    "demo_app": {"url": demo_url, "api_key": os.environ["IDLCM_RUN_DEMO_KEY"]},
}
tmp = out_path + ".tmp"
with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    json.dump(local, f, indent=2)
    f.write("\n")
os.replace(tmp, out_path)
EOF
rm -f "$demo_json"

# --- event source: the worker and the sweeper, fed as Lambda would ----------------------

IDLCM_LAMBDA_ENDPOINT="http://127.0.0.1:$API_PORT" IDLCM_SWEEP_EVERY_SECONDS="${IDLCM_SWEEP_EVERY_SECONDS:-60}" \
  setsid target/debug/local_event_source >"$STATE_DIR/event-source.log" 2>&1 </dev/null &
source_sid=$!
say "event source feeding the worker (log $STATE_DIR/event-source.log)"

scim_base_url="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["demo"]["scim_base_url"])' "$STATE_DIR/local.json")"
scim_token="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["demo"]["scim_token"])' "$STATE_DIR/local.json")"

cat <<EOF

idlcm is running on 127.0.0.1
  API:             $api_url
  admin token:     $admin_token
  SCIM base URL:   $scim_base_url   (integration "Demo app")
  SCIM token:      $scim_token
  all of it in:    $STATE_DIR/local.json
  demo app:        $demo_url   (open it in a browser: the users idlcm provisioned)
  Activity page:   http://127.0.0.1:$API_PORT/lambda-url/scim-api/activity   (admin token above)
  logs:            $STATE_DIR/watch.log (API, worker, sweeper), $STATE_DIR/event-source.log,
                   $STATE_DIR/demo-app.log, $STATE_DIR/moto.log (AWS emulator)

Create a user:
  curl -sS -X POST '$scim_base_url/Users' \\
    -H 'Authorization: Bearer $scim_token' \\
    -H 'Content-Type: application/scim+json' \\
    -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com","name":{"givenName":"Alice","familyName":"Example"},"emails":[{"value":"alice@example.com","primary":true}],"active":true}'

then see her in the demo app:
  curl -sS -H 'Authorization: Bearer $demo_key' $demo_url/api/users

EOF

# --- foreground ------------------------------------------------------------------

if [[ "$DETACH" == 1 ]]; then
  say "ready (detached mode: stop with SIGTERM)"
else
  say "ready. Each provisioning request is printed here when it completes; Ctrl-C stops everything."
  tail -n +1 -F "$STATE_DIR/event-source.log" &
  tail_pid=$!
fi
while true; do
  kill -0 "$watch_sid" 2>/dev/null || die "cargo lambda watch exited; see $STATE_DIR/watch.log"
  kill -0 "$demo_sid" 2>/dev/null || die "the demo app exited; see $STATE_DIR/demo-app.log"
  kill -0 "$source_sid" 2>/dev/null || die "the event source exited; see $STATE_DIR/event-source.log"
  if [[ "$DETACH" == 1 ]] && ! kill -0 "$PARENT_PID" 2>/dev/null; then
    say "parent process $PARENT_PID is gone: stopping"
    exit 0
  fi
  sleep 1 &
  wait $! || true
done
