#include "isa.h"

#include <algorithm>
#include <cstdlib>

#ifdef GPTQ_X86
#include <cpuid.h>
#endif

namespace gptq::cpu {

namespace {

#ifdef GPTQ_X86
// F16C (half ↔ float conversions, which the matmul kernels use for the
// scales), from CPUID: not every compiler's __builtin_cpu_supports knows it.
// Every CPU with AVX2 and FMA has it; a virtual machine might hide it.
bool has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  return (ecx & bit_F16C) != 0;
}
#endif

Isa best_supported() {
#ifdef GPTQ_X86
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || !has_f16c())
    return Isa::kPortable;
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq"))
    return Isa::kAvx2;
  if (!__builtin_cpu_supports("avx512vnni")) return Isa::kAvx512;
  return Isa::kAvx512Vnni;
#else
  return Isa::kPortable;
#endif
}

struct Selection {
  Isa isa = Isa::kPortable;
  std::string error;  // non-empty when GPTQ_CPU_KERNELS has an unknown value
};

Selection select() {
  Selection sel;
  sel.isa = best_supported();
  const char *env = std::getenv("GPTQ_CPU_KERNELS");
  if (env == nullptr || *env == '\0') return sel;
  const std::string want = env;
  const struct {
    const char *name;
    Isa isa;
  } names[] = {{"portable", Isa::kPortable},
               {"avx2", Isa::kAvx2},
               {"avx512", Isa::kAvx512},
               {"avx512vnni", Isa::kAvx512Vnni}};
  for (const auto &n : names)
    if (want == n.name) {
      sel.isa = std::min(sel.isa, n.isa);
      return sel;
    }
  sel.error = "GPTQ_CPU_KERNELS=" + want + ": expected portable, avx2, avx512 or avx512vnni";
  return sel;
}

const Selection &selection() {
  static const Selection sel = select();
  return sel;
}

}  // namespace

Isa cpu_isa() { return selection().isa; }

const std::string &cpu_isa_error() { return selection().error; }

}  // namespace gptq::cpu
