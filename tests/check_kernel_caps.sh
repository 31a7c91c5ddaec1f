#!/bin/sh
# The GPTQ block kernel's builds (portable, AVX2, AVX-512) promise
# bit-identical results: run solver_digest at every GPTQ_CPU_KERNELS level
# (a level this CPU lacks runs its best) and require the same output as
# with no cap. Usage: check_kernel_caps.sh path/to/solver_digest
set -u

digest=${1:-}
if [ -z "$digest" ]; then
  echo "usage: $0 path/to/solver_digest" >&2
  exit 2
fi

if ! expected=$(env -u GPTQ_CPU_KERNELS "$digest"); then
  echo "FAIL: $digest (no cap) failed"
  exit 1
fi
printf '%s\n' "$expected"
status=0
for isa in portable avx2 avx512 avx512vnni; do
  if ! got=$(GPTQ_CPU_KERNELS=$isa "$digest"); then
    echo "FAIL: GPTQ_CPU_KERNELS=$isa: $digest failed"
    status=1
  elif [ "$got" != "$expected" ]; then
    echo "FAIL: GPTQ_CPU_KERNELS=$isa gives other results:"
    printf '%s\n' "$got" | sed 's/^/  /'
    status=1
  else
    echo "ok: GPTQ_CPU_KERNELS=$isa gives the same results"
  fi
done
exit $status
