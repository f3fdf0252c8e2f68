#!/usr/bin/env bash
# The console in headless Chromium against a running local stack: the Activity page
# (tests/browser/activity.mjs), then integrations, owners and the audit trail
# (tests/browser/console.mjs, screenshots console-*.png beside SCREENSHOT).
#   infra/browser_test.sh STATE_DIR SCREENSHOT
# Installs what it needs: Debian's chromium (as root, when missing) and playwright-core
# (npm, pinned by tests/browser/package-lock.json; it downloads no browser).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="$1" screenshot="$2"
SAY_PREFIX=browser
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ! -x /usr/bin/chromium ]]; then
  say "installing Debian's chromium"
  if [[ $(id -u) -ne 0 ]]; then
    say "ERROR: /usr/bin/chromium is missing and this is not root: apt-get install chromium" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [[ ! -d "$ROOT/tests/browser/node_modules/playwright-core" ]]; then
  say "installing playwright-core"
  (cd "$ROOT/tests/browser" && npm ci --no-audit --no-fund --silent)
fi
mkdir -p "$(dirname "$screenshot")"
cd "$ROOT/tests/browser"
node activity.mjs "$state_dir" "$screenshot"
exec node console.mjs "$state_dir" "$(cd "$(dirname "$screenshot")" && pwd)"
