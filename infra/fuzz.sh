#!/usr/bin/env bash
# `make fuzz`: coverage-guided fuzzing of the SCIM filter, PATCH, resource and request-body
# code (docs/testing.md "Fuzzing"), with cargo fuzz (libFuzzer, AddressSanitizer) on the
# machine's stable toolchain (RUSTC_BOOTSTRAP=1 lets cargo fuzz pass its -Z flags).
#   IDLCM_FUZZ_SECONDS  per target (default 600)
#   IDLCM_FUZZ_TARGETS  which (default: filter patch resource request)
# Each run grows fuzz/corpus/<target> (minimised at the end with cargo fuzz cmin); a crash
# leaves its input in fuzz/artifacts/<target>/: copy it to fuzz/regressions/<target>/, where
# `make test` replays it for good. Stops by itself; listens on nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_PER_TARGET="${IDLCM_FUZZ_SECONDS:-600}"
read -r -a TARGETS <<<"${IDLCM_FUZZ_TARGETS:-filter patch resource request}"
SAY_PREFIX=fuzz
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  say "installing cargo-fuzz 0.13 (about a minute)"
  cargo install cargo-fuzz --version '^0.13' --locked
fi
export RUSTC_BOOTSTRAP=1
say "building the targets (instrumented; the first build takes several minutes)"
cargo fuzz build -O
LOG_DIR="$ROOT/target/idlcm-fuzz"
mkdir -p "$LOG_DIR"
status=0
for target in "${TARGETS[@]}"; do
  say "$target: ${SECONDS_PER_TARGET} s"
  log="$LOG_DIR/$target.log"
  # -rss_limit_mb: a leak or a blow-up is a finding too. The regressions seed the run.
  if cargo fuzz run -O "$target" "fuzz/corpus/$target" "fuzz/regressions/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      >"$log" 2>&1; then
    result="no crash"
  else
    result="CRASH: see $log and fuzz/artifacts/$target/"
    status=1
  fi
  runs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)"
  # The last status line's coverage (edges): "#<n>	DONE   cov: <edges> ft: …".
  cov="$(grep -E 'cov: [0-9]+' "$log" | tail -n 1 | sed -E 's/.*cov: ([0-9]+).*/\1/' || true)"
  corpus="$(find "fuzz/corpus/$target" -type f | wc -l)"
  say "$target: ${runs:-?} executions, coverage ${cov:-?} edges, corpus $corpus inputs: $result"
  cargo fuzz cmin -O "$target" "fuzz/corpus/$target" >"$LOG_DIR/$target.cmin.log" 2>&1 || true
  say "$target: corpus minimised to $(find "fuzz/corpus/$target" -type f | wc -l) inputs"
done
exit "$status"
