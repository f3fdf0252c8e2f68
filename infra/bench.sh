#!/usr/bin/env bash
# `make bench`: benchmarks against the emulator (not part of `make test`: they measure, they
# do not pass or fail). Starts its own moto on 127.0.0.1:5059 and stops it on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT=5059
STATE_DIR="$ROOT/target/idlcm-bench"
mkdir -p "$STATE_DIR"
infra/bootstrap.sh
trap 'infra/moto.sh stop "$PORT" "$STATE_DIR"' EXIT
infra/moto.sh stop "$PORT" "$STATE_DIR"
infra/moto.sh start "$PORT" "$STATE_DIR"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
.venv/moto/bin/python infra/local_resources.py --env-file "$STATE_DIR/resources.env"
set -a
# shellcheck disable=SC1091 # written just above
. "$STATE_DIR/resources.env"
set +a
# Init time of each function against two reference functions built in the same run (release
# builds for this machine; hello-world lambda_http and a minimal function building the DynamoDB
# and SQS clients), and the binaries' sizes: the BENCH init lines. First, while nothing else runs.
cargo build --release -p scim-api -p worker -p sweeper -p idlcm-reference-functions --bins
cargo build --workspace --bin init_time
# Each binary is timed from a copy: a file just written by the linker sits in the page cache
# in small pieces, and mapping it cost a freshly linked function 0.5 ms more per start than the
# same bytes copied (BENCHMARKS.md "Init time and binary size"). Lambda starts a function from
# its extracted package, written in one go, as a copy is.
R="$(mktemp -d "$ROOT/target/init-time.XXXXXX")"
trap 'rm -rf "$R"; infra/moto.sh stop "$PORT" "$STATE_DIR"' EXIT
cp "$ROOT/target/release/"{ref-hello,ref-sdk,scim-api,worker,sweeper} "$R/"
target/debug/init_time 300 ref-sdk ref-hello="$R/ref-hello" ref-sdk="$R/ref-sdk" \
  scim-api="$R/scim-api" worker="$R/worker" sweeper="$R/sweeper"
rm -rf "$R"
cargo bench --workspace --bench activity_list "$@"
# The figures are kept from their marker on (grep -o): with --nocapture the test harness prints
# a test's first line after its own "test <name> ... ", on the same line.
# Role-group fan-out: the rename's SCIM answer time at 10, 1,000 and 10,000 members, and the
# time until every member is applied (the BENCH lines).
cargo test --workspace --test fanout bench_role_group_rename_answer_time_by_size -- --ignored --nocapture 2>&1 |
  grep -oE '(BENCH|test result|panicked).*'
# Fairness: another integration's single change while a 10,000-job push drains (the BENCH line;
# IDLCM_FAIRNESS_MEMBERS=2000 for a shorter run).
cargo test --workspace --test fanout bench_another_integrations_change_while_a_push_drains -- --ignored --nocapture 2>&1 |
  grep -oE '(BENCH|test result|panicked).*'
# Resync of 1,000 provisioned users, 10 changed in the app: the time of a report and of a
# correction, and the app calls each made (the BENCH lines).
cargo test --workspace --test resync bench_resync_of_1000_users -- --ignored --nocapture 2>&1 |
  grep -oE '(BENCH|test result|panicked).*'
# Listing at 20,000 users: sorted windows far down the list, a 20,000-member group's pages, and
# the peak heap of each listing (the "listing:" lines).
cargo test --workspace --test hostile listing_at_20000_users -- --ignored --nocapture 2>&1 |
  grep -oE '(listing:|test result|panicked).*'
# The AWS calls, capacity units, log bytes and list price of one single-user change (the
# BUDGET lines; the test fails when a change exceeds its budget), the per-integration limit
# under load (the LIMITS line), and jobs per second through the
# worker one job at a time and concurrent, against an app taking 100 ms per call (the BENCH
# lines). BENCHMARKS.md records the figures.
cargo test --workspace --test budgets -- --include-ignored --nocapture --test-threads 1 2>&1 |
  grep -oE '(BUDGET|BENCH|test result|panicked).*'
cargo test --workspace --test limits -- --nocapture 2>&1 | grep -oE '(LIMITS|test result|panicked).*'
