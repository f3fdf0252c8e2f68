#!/usr/bin/env bash
# `make package` (and the last stage of `make test`): `sam build` as a deployment runs it,
# offline: every function is built by cargo-lambda (release, arm64, zig as the linker) into
# .aws-sam/build/<Function>/bootstrap. Then checks that each artifact is an aarch64 Linux
# executable and prints its size (docs/deploy.md lists them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SAY_PREFIX=package
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

infra/bootstrap.sh >/dev/null
if command -v rustup >/dev/null 2>&1; then
  if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    say "rustup target add aarch64-unknown-linux-gnu"
    rustup target add aarch64-unknown-linux-gnu >/dev/null
  fi
fi

# cargo-lambda (and the zig it drives) come from the tools venv; SAM calls `cargo lambda`.
export PATH="$ROOT/.venv/tools/bin:$PATH"
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

start=$SECONDS
sam build --no-cached
say "sam build took $((SECONDS - start)) s"

status=0
for function in ScimApiFunction WorkerFunction SweeperFunction; do
  artifact=".aws-sam/build/$function/bootstrap"
  python3 - "$artifact" <<'EOF' || status=1
import os, struct, sys
path = sys.argv[1]
try:
    with open(path, "rb") as f:
        header = f.read(20)
except FileNotFoundError:
    print(f"package: MISSING {path}", file=sys.stderr)
    sys.exit(1)
# ELF magic, 64-bit, little-endian, e_machine 183 = EM_AARCH64.
if header[:4] != b"\x7fELF" or header[4] != 2 or struct.unpack_from("<H", header, 18)[0] != 183:
    print(f"package: {path} is not an aarch64 ELF executable", file=sys.stderr)
    sys.exit(1)
if not os.access(path, os.X_OK):
    print(f"package: {path} is not executable", file=sys.stderr)
    sys.exit(1)
print(f"package: {path}: aarch64 ELF, {os.path.getsize(path) / 1e6:.1f} MB")
EOF
done
exit "$status"
