#!/usr/bin/env bash
# The ABI gate: compares the public ABI of a freshly built libgptq with the
# committed baseline for its soname (abi/<soname>.abi, made by abidw from
# Debian's abigail-tools) and fails on any incompatible change. Additions
# (new functions, enumerators, fields appended to the size-prefixed option
# structs) pass. An incompatible change passes only with a new soname, whose
# baseline is then recorded with --update. Policy: README.md, "ABI policy".
#
#   bash abi/check_abi.sh path/to/libgptq.so.0            # the gate
#   bash abi/check_abi.sh --update path/to/libgptq.so.0   # (re)write the baseline
#
# The library must carry DWARF (buildtype debug or debugoptimized): abidw
# reads the types of the exported functions from it. Only what include/gptq.h
# declares is recorded; the library's internal types are dropped.
set -euo pipefail

update=0
if [ "${1:-}" = "--update" ]; then update=1; shift; fi
lib=${1:-}
if [ -z "$lib" ] || [ $# -ne 1 ]; then
  echo "usage: $0 [--update] path/to/libgptq.so.0" >&2
  exit 2
fi
if [ ! -f "$lib" ]; then
  echo "check_abi: no such file: $lib" >&2
  exit 1
fi
for tool in abidw abidiff readelf; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "check_abi: $tool not found (apt-get install abigail-tools binutils)" >&2
    exit 1
  fi
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
suppressions="$root/abi/size_prefixed_structs.abignore"

soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [ -z "$soname" ]; then
  echo "check_abi: $lib has no SONAME" >&2
  exit 1
fi
baseline="$root/abi/$soname.abi"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The build directory's absolute path (comp-dir-path) differs from machine to
# machine and says nothing about the ABI: drop it so the baseline is stable.
abidw --headers-dir "$root/include" --drop-private-types --exported-interfaces-only \
  --no-corpus-path --short-locs "$lib" | sed "s/ comp-dir-path='[^']*'//" >"$work/current.abi"
if ! grep -q '<abi-instr' "$work/current.abi"; then
  echo "check_abi: $lib has no debug information; build it with -Dbuildtype=debugoptimized" >&2
  exit 1
fi

if [ "$update" -eq 1 ]; then
  cp "$work/current.abi" "$baseline"
  echo "check_abi: wrote $baseline ($(grep -c '<elf-symbol' "$baseline") exported functions)"
  exit 0
fi

if [ ! -f "$baseline" ]; then
  others=$(cd "$root/abi" && ls ./*.abi 2>/dev/null | sed 's|^\./||' | tr '\n' ' ')
  echo "check_abi: no baseline for $soname (committed: ${others:-none})." >&2
  echo "check_abi: the soname moved, so incompatible changes are allowed; record the new" >&2
  echo "check_abi: baseline with: bash abi/check_abi.sh --update $lib" >&2
  exit 1
fi

set +e
abidiff --suppressions "$suppressions" --no-added-syms "$baseline" "$work/current.abi" >"$work/report.txt"
rc=$?
python3 "$root/abi/check_appended_fields.py" "$baseline" "$work/current.abi" >"$work/fields.txt"
fields_rc=$?
abidiff --suppressions "$suppressions" "$baseline" "$work/current.abi" >"$work/full.txt"
set -e

# abidiff's exit status is a bit set: 1 error, 2 usage error, 4 an ABI change,
# 8 an incompatible change (a symbol removed). With added symbols left out of
# the report, any change still reported breaks programs built against the
# baseline.
if [ $((rc & 3)) -ne 0 ] || [ "$fields_rc" -gt 1 ]; then
  cat "$work/report.txt" "$work/fields.txt" >&2
  echo "check_abi: abidiff or check_appended_fields.py failed (exit status $rc, $fields_rc)" >&2
  exit 1
fi
if [ "$rc" -ne 0 ] || [ "$fields_rc" -ne 0 ]; then
  cat "$work/report.txt" "$work/fields.txt"
  echo "check_abi: FAIL: $soname changed incompatibly against abi/$soname.abi." >&2
  echo "check_abi: keep the ABI (append only; README.md, \"ABI policy\"), or move the soname" >&2
  echo "check_abi: (soversion in meson.build) and record its baseline with --update." >&2
  exit 1
fi
if ! cmp -s "$baseline" "$work/current.abi"; then
  sed -n '/^[0-9]* Added/,$p' "$work/full.txt"
  echo "check_abi: the ABI differs from the baseline only compatibly (additions, or"
  echo "check_abi: declarations that moved in gptq.h); record additions so they are protected too:"
  echo "check_abi:   bash abi/check_abi.sh --update $lib"
fi
echo "check_abi: OK: $soname is compatible with abi/$soname.abi"
