#!/bin/sh
# Only the C API may leave the shared library: every defined dynamic symbol of
# libgptq must start with gptq_, and the four calls the design card names must
# be there. Usage: check_exports.sh path/to/libgptq.so
set -u

lib=${1:-}
if [ -z "$lib" ]; then
  echo "usage: $0 path/to/libgptq.so" >&2
  exit 2
fi
if [ ! -f "$lib" ]; then
  echo "check_exports: no such file: $lib" >&2
  exit 1
fi
if ! command -v nm >/dev/null 2>&1; then
  echo "check_exports: nm not found (install binutils)" >&2
  exit 1
fi

# nm -D lines are "address type name" (name possibly with @version).
if ! symbols=$(nm -D --defined-only "$lib"); then
  echo "check_exports: nm -D --defined-only $lib failed" >&2
  exit 1
fi
names=$(printf '%s\n' "$symbols" | awk 'NF >= 2 { name = $NF; sub(/@.*/, "", name); print name }')
count=$(printf '%s\n' "$names" | grep -c . || true)

echo "check_exports: $lib: $count defined dynamic symbols"
status=0

foreign=$(printf '%s\n' "$names" | grep -v '^gptq_' | grep . || true)
if [ -n "$foreign" ]; then
  echo "FAIL: defined dynamic symbols without the gptq_ prefix:"
  printf '%s\n' "$foreign" | sed 's/^/  /'
  status=1
else
  echo "ok: every defined dynamic symbol starts with gptq_"
fi

for fn in gptq_ctx_create gptq_add_batch gptq_quantize gptq_matmul; do
  if printf '%s\n' "$names" | grep -qx "$fn"; then
    echo "ok: $fn is exported"
  else
    echo "FAIL: $fn is not exported"
    status=1
  fi
done

exit $status
