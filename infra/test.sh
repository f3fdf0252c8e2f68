#!/usr/bin/env bash
# `make test` (and CI): every check, in order, stopping at the first failure.
#   bootstrap     infra/bootstrap.sh (venvs, rustfmt, clippy)
#   fmt           cargo fmt --all -- --check
#   clippy        cargo clippy --workspace --all-targets -- -D warnings
#   template      cfn-lint with the serverless rules (cfn-lint-serverless), sam validate --lint
#   moto          moto on 127.0.0.1:5056 (state in target/idlcm-test), template.yaml's resources;
#                 infra/moto_patch_check.py against a plain moto on :5058
#   cargo-test    cargo test --workspace $TEST_ARGS, against that moto
#   conformance   infra/run.sh (moto :5057, API :9001, state target/idlcm-conformance),
#                 then infra/conformance.sh on its demo integration
#   lambda-event  infra/lambda_event_test.py: API Gateway v2 event fixtures through
#                 `cargo lambda invoke` into the same stack's scim-api
#   browser       infra/browser_test.sh: the Activity page in headless Chromium, same stack
#   package       infra/package.sh: `sam build` (release, arm64) and the artifacts' checks
# Everything it starts is stopped on exit, whatever the outcome.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TEST_MOTO_PORT=5056
TEST_STATE_DIR="$ROOT/target/idlcm-test"
PLAIN_MOTO_PORT=5058
PLAIN_STATE_DIR="$ROOT/target/idlcm-plain-moto"
CONF_MOTO_PORT=5057
CONF_API_PORT=9001
CONF_DEMO_PORT=8091
CONF_STATE_DIR="$ROOT/target/idlcm-conformance"
READY_TIMEOUT=600
STAGES=(bootstrap fmt clippy template moto cargo-test conformance lambda-event browser package)

declare -A stage_result=() stage_time=()
current_stage=""
failed_stage=""
run_pid=""

SAY_PREFIX=test
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

summary() {
  echo
  say "summary"
  local stage
  for stage in "${STAGES[@]}"; do
    printf '  %-12s %s\n' "$stage" "${stage_result[$stage]:-not run}${stage_time[$stage]:+ (${stage_time[$stage]} s)}"
  done
}

# Running, not a zombie waiting for its reaper.
alive() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z* ]]
}

stop_run_sh() {
  [[ -n "$run_pid" ]] || return 0
  if alive "$run_pid"; then
    kill -TERM "$run_pid" 2>/dev/null || true
    for _ in $(seq 300); do
      alive "$run_pid" || break
      sleep 0.1
    done
    if alive "$run_pid"; then
      say "infra/run.sh did not stop in 30 s: killing it" >&2
      kill -KILL "$run_pid" 2>/dev/null || true
    fi
  fi
  wait "$run_pid" 2>/dev/null || true
  run_pid=""
  # If run.sh could not clean up (killed), stop what it left: its pid files say what.
  if [[ -f "$CONF_STATE_DIR/watch.pid" ]]; then
    local sid
    sid="$(cat "$CONF_STATE_DIR/watch.pid")"
    if [[ "$sid" =~ ^[0-9]+$ ]]; then
      # shellcheck disable=SC2046 # a list of pids
      kill -KILL $(ps -e -o pid=,sid=,stat= | awk -v sid="$sid" '$2 == sid && $3 !~ /^Z/ { print $1 }') 2>/dev/null || true
    fi
    rm -f "$CONF_STATE_DIR/watch.pid"
  fi
  infra/moto.sh stop "$CONF_MOTO_PORT" "$CONF_STATE_DIR" >/dev/null 2>&1 || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  stop_run_sh
  infra/moto.sh stop "$TEST_MOTO_PORT" "$TEST_STATE_DIR" >/dev/null 2>&1
  infra/moto.sh stop "$PLAIN_MOTO_PORT" "$PLAIN_STATE_DIR" >/dev/null 2>&1
  if [[ -n "$current_stage" ]]; then
    stage_result[$current_stage]="FAILED"
    [[ $status -ne 0 ]] || status=1
  fi
  summary
  if [[ $status -eq 0 ]]; then
    say "all stages passed"
  else
    say "FAILED at stage: ${failed_stage:-$current_stage} (exit status $status)"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'echo; say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# run_stage NAME COMMAND...: runs a stage, records its result and time, and
# stops the whole run at the first failure. A stage function runs in a `||`
# context, where `set -e` does not apply: it checks each command itself.
run_stage() {
  local name="$1" start=$SECONDS status=0
  shift
  current_stage="$name"
  echo
  say "=== $name ==="
  "$@" || status=$?
  stage_time[$name]=$((SECONDS - start))
  if [[ $status -ne 0 ]]; then
    stage_result[$name]="FAILED"
    failed_stage="$name"
    current_stage=""
    say "stage '$name' FAILED (exit status $status)" >&2
    exit "$status"
  fi
  stage_result[$name]="ok"
  current_stage=""
}

export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

# --- stages ----------------------------------------------------------------------

stage_moto() {
  infra/moto.sh stop "$TEST_MOTO_PORT" "$TEST_STATE_DIR" || return
  # Our moto fixes answer as moto does: the patched server against a plain one. The patched
  # one counts what its fast paths answered, so the check knows it compared them and not moto
  # with itself; it is started again, without counting, for the tests.
  local status=0 counts="$TEST_STATE_DIR/fast-path-counts.json"
  rm -f "$counts"
  IDLCM_MOTO_FAST_PATH_COUNTS="$counts" infra/moto.sh start "$TEST_MOTO_PORT" "$TEST_STATE_DIR" || return
  IDLCM_MOTO_PLAIN=1 infra/moto.sh start "$PLAIN_MOTO_PORT" "$PLAIN_STATE_DIR" || return
  .venv/moto/bin/python infra/moto_patch_check.py "http://127.0.0.1:$TEST_MOTO_PORT" \
    "http://127.0.0.1:$PLAIN_MOTO_PORT" 3 "$counts" || status=$?
  infra/moto.sh stop "$PLAIN_MOTO_PORT" "$PLAIN_STATE_DIR" || true
  infra/moto.sh stop "$TEST_MOTO_PORT" "$TEST_STATE_DIR" || true
  [[ $status -eq 0 ]] || return "$status"
  infra/moto.sh start "$TEST_MOTO_PORT" "$TEST_STATE_DIR" || return
  AWS_ENDPOINT_URL="http://127.0.0.1:$TEST_MOTO_PORT" \
    .venv/moto/bin/python infra/local_resources.py --reset --env-file "$TEST_STATE_DIR/resources.env"
}

stage_cargo_test() {
  local extra=()
  read -r -a extra <<<"${TEST_ARGS:-}"
  (
    export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
    export AWS_EC2_METADATA_DISABLED=true
    export AWS_ENDPOINT_URL="http://127.0.0.1:$TEST_MOTO_PORT"
    unset AWS_PROFILE AWS_SESSION_TOKEN
    set -a
    # shellcheck disable=SC1091 # written by the moto stage
    . "$TEST_STATE_DIR/resources.env" || exit
    set +a
    [[ -n "${IDLCM_TABLE:-}" ]] || {
      say "IDLCM_TABLE missing from $TEST_STATE_DIR/resources.env" >&2
      exit 1
    }
    # To rerun a test by hand against a moto on that port, export the same:
    say "export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL IDLCM_TABLE=$IDLCM_TABLE AWS_REGION=$AWS_REGION" \
      "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true"
    exec cargo test --workspace "${extra[@]}"
  )
}

# After a failing stage on the running stack: stop it, then show the end of the API's log.
stop_and_show_api_log() {
  stop_run_sh
  say "API log: $CONF_STATE_DIR/watch.log; last lines:" >&2
  tail -n 20 "$CONF_STATE_DIR/watch.log" | cut -c1-300 >&2 || true
}

stage_conformance() {
  mkdir -p "$CONF_STATE_DIR" || return
  rm -f "$CONF_STATE_DIR/local.json" || return
  say "starting infra/run.sh (moto :$CONF_MOTO_PORT, API :$CONF_API_PORT, log $CONF_STATE_DIR/run.log)"
  IDLCM_MOTO_PORT=$CONF_MOTO_PORT IDLCM_API_PORT=$CONF_API_PORT IDLCM_DEMO_PORT=$CONF_DEMO_PORT \
    IDLCM_STATE_DIR="$CONF_STATE_DIR" IDLCM_DETACH=1 IDLCM_NO_RELOAD=1 \
    infra/run.sh >"$CONF_STATE_DIR/run.log" 2>&1 </dev/null &
  run_pid=$!

  local deadline=$((SECONDS + READY_TIMEOUT)) next_report=$((SECONDS + 60))
  until [[ -f "$CONF_STATE_DIR/local.json" ]]; do
    if ! alive "$run_pid"; then
      say "infra/run.sh exited before the API was ready; last lines of run.log:" >&2
      tail -n 40 "$CONF_STATE_DIR/run.log" >&2 || true
      return 1
    fi
    if ((SECONDS >= deadline)); then
      say "no $CONF_STATE_DIR/local.json after $READY_TIMEOUT s; last lines of run.log:" >&2
      tail -n 40 "$CONF_STATE_DIR/run.log" >&2 || true
      return 1
    fi
    if ((SECONDS >= next_report)); then
      say "waiting for the API ($((READY_TIMEOUT - (deadline - SECONDS))) s): $(tail -n 1 "$CONF_STATE_DIR/run.log")"
      next_report=$((SECONDS + 60))
    fi
    sleep 1
  done

  local url token status=0
  url="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["demo"]["scim_base_url"])' "$CONF_STATE_DIR/local.json")" || return
  token="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["demo"]["scim_token"])' "$CONF_STATE_DIR/local.json")" || return
  IDLCM_SCIM_TOKEN="$token" infra/conformance.sh "$url" || status=$?
  [[ $status -eq 0 ]] || stop_and_show_api_log
  return "$status"
}

stage_template() {
  local env=(env SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1)
  "${env[@]}" .venv/tools/bin/cfn-lint --append-rules cfn_lint_serverless.rules -t template.yaml || return
  say "cfn-lint (with cfn-lint-serverless rules): clean"
  "${env[@]}" .venv/tools/bin/sam validate --lint --region us-east-1 || return
}

# API Gateway v2 events into the running stack's scim-api, through the runtime emulator.
stage_lambda_event() {
  local status=0
  .venv/tools/bin/python infra/lambda_event_test.py "$CONF_STATE_DIR" "$CONF_API_PORT" || status=$?
  [[ $status -eq 0 ]] || stop_and_show_api_log
  return "$status"
}

# The Activity page in headless Chromium, against the same running stack; then stop it.
stage_browser() {
  local status=0
  infra/browser_test.sh "$CONF_STATE_DIR" "$ROOT/target/activity.png" || status=$?
  # The last stage on the running stack: stop it either way.
  if [[ $status -eq 0 ]]; then stop_run_sh; else stop_and_show_api_log; fi
  return "$status"
}

run_stage bootstrap infra/bootstrap.sh
run_stage fmt cargo fmt --all -- --check
run_stage clippy cargo clippy --workspace --all-targets -- -D warnings
run_stage template stage_template
run_stage moto stage_moto
run_stage cargo-test stage_cargo_test
run_stage conformance stage_conformance
run_stage lambda-event stage_lambda_event
run_stage browser stage_browser
run_stage package infra/package.sh
