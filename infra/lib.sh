# Shared by the infra scripts (sourced, not run): messages prefixed with the script's name.
# A script sets SAY_PREFIX before sourcing this file.

say() { printf '%s: %s\n' "${SAY_PREFIX:-infra}" "$*"; }

die() {
  say "ERROR: $*" >&2
  exit 1
}
