#!/bin/sh
# Drift check for the generated low-level bindings.
#
#   bindings/check_generated.sh           regenerate into a temporary directory and
#                                         compare with the files in bindings/; exit 1
#                                         and print a unified diff if any differ
#   bindings/check_generated.sh --write   regenerate in place (same as generate.py)
#
# The generator needs Debian's python3-clang, so it runs under /usr/bin/python3
# (override with GPTQ_GEN_PYTHON), libclang, and a C compiler (cc or $CC).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
py=${GPTQ_GEN_PYTHON:-/usr/bin/python3}

case "${1:-}" in
  --write) exec "$py" "$here/generate.py" ;;
  "") ;;
  *) echo "usage: $0 [--write]" >&2; exit 2 ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gptq-bindings.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

"$py" "$here/generate.py" --out "$tmp" >/dev/null

status=0
# Every file the generator writes now, and every file the committed manifest
# says it wrote (a file no longer generated shows up as removed).
files=$( (cd "$tmp" && find . -type f | sed 's|^\./||';
          grep -v '^#' "$here/generated_files.txt" 2>/dev/null || true) | sort -u)
for f in $files; do
  old="$here/$f"; new="$tmp/$f"
  [ -e "$old" ] || old=/dev/null
  [ -e "$new" ] || new=/dev/null
  if ! diff -u --label "a/bindings/$f" --label "b/bindings/$f" "$old" "$new"; then
    status=1
  fi
done

if [ "$status" -ne 0 ]; then
  echo >&2
  echo "check_generated.sh: the generated bindings are out of date with include/gptq.h." >&2
  echo "Run: bindings/check_generated.sh --write   (or /usr/bin/python3 bindings/generate.py)" >&2
  exit 1
fi
echo "check_generated.sh: generated bindings are up to date."
