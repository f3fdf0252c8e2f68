#!/usr/bin/env bash
# Installs what the local stack and the tests need, idempotently:
#   .venv/moto   moto server (+ boto3, PyYAML)       infra/requirements-moto.txt
#   .venv/tools  cargo-lambda, aws-sam-cli, cfn-lint(-serverless) infra/requirements-tools.txt
#   .venv/scim   scim2-cli, scim2-tester, scim2-server infra/requirements-scim.txt
# and the rustfmt and clippy components. The Python tools pin conflicting
# versions of their dependencies (docs/local-stack.md "Python venvs"): one venv each.
# A venv is left alone while the hash of its requirements file (stored in the
# venv after a successful install) is unchanged, so a second run is a no-op.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENVS=(moto tools scim)

SAY_PREFIX=bootstrap
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

req_hash() {
  # The requirements and the interpreter's version: a new Python means a new venv.
  {
    cat "$ROOT/infra/requirements-$1.txt"
    "$PYTHON" -c 'import sys; print(sys.version)'
  } | sha256sum | cut -d' ' -f1
}

venv_up_to_date() {
  local dir="$ROOT/.venv/$1"
  [[ -x "$dir/bin/python" && -f "$dir/.requirements.sha256" ]] &&
    [[ "$(cat "$dir/.requirements.sha256")" == "$(req_hash "$1")" ]] &&
    "$dir/bin/python" -c '' 2>/dev/null
}

install_venv() {
  local name="$1" dir="$ROOT/.venv/$1"
  rm -f "$dir/.requirements.sha256"
  if ! "$dir/bin/python" -c '' 2>/dev/null; then
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
  fi
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$ROOT/infra/requirements-$name.txt"
  req_hash "$name" >"$dir/.requirements.sha256"
}

mkdir -p "$ROOT/.venv"

# Install the stale venvs in parallel: mostly download and unpack time.
declare -A pids=()
for name in "${VENVS[@]}"; do
  if venv_up_to_date "$name"; then
    say ".venv/$name up to date"
  else
    (
      start=$SECONDS
      install_venv "$name"
      echo $((SECONDS - start)) >"$ROOT/.venv/$name.took"
    ) >"$ROOT/.venv/$name.log" 2>&1 &
    pids[$name]=$!
  fi
done

failed=0
for name in "${VENVS[@]}"; do
  [[ -n "${pids[$name]:-}" ]] || continue
  if wait "${pids[$name]}"; then
    say ".venv/$name installed from infra/requirements-$name.txt ($(cat "$ROOT/.venv/$name.took") s)"
    rm -f "$ROOT/.venv/$name.log" "$ROOT/.venv/$name.took"
  else
    say ".venv/$name FAILED to install; last lines of .venv/$name.log:"
    tail -n 20 "$ROOT/.venv/$name.log" >&2
    failed=1
  fi
done
[[ $failed -eq 0 ]] || exit 1

# Rust components used by `make lint` and `make test`.
if command -v rustup >/dev/null 2>&1; then
  installed="$(rustup component list --installed 2>/dev/null || true)"
  missing=()
  for component in rustfmt clippy; do
    grep -q "^$component" <<<"$installed" || missing+=("$component")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    say "rustup components rustfmt, clippy present"
  else
    rustup component add "${missing[@]}" >/dev/null
    say "rustup components added: ${missing[*]}"
  fi
elif command -v rustfmt >/dev/null 2>&1 && command -v cargo-clippy >/dev/null 2>&1; then
  say "rustfmt and clippy present (no rustup)"
else
  say "neither rustup nor rustfmt/clippy found: install the Rust toolchain" >&2
  exit 1
fi
