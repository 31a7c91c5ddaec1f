# Shared by the tool's shell tests (sourced, not run): a scratch directory
# removed on exit, a failure count, and the checks that report into it.

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0

pass() { echo "ok: $1"; }
fail() { echo "FAIL: $1"; fails=$((fails + 1)); }

# expect_error NAME EXPECTED_TEXT COMMAND...: a non-zero exit status and the
# text on stderr.
expect_error() {
  local name=$1 text=$2
  shift 2
  local rc=0
  "$@" >"$work/out.txt" 2>"$work/err.txt" || rc=$?
  if [ "$rc" -ne 0 ] && grep -qF -- "$text" "$work/err.txt"; then
    pass "$name"
  else
    fail "$name (exit $rc; stderr: $(cat "$work/err.txt"))"
  fi
}
