// The instruction sets the CPU backend's SIMD code is built for, and the one
// this process uses. One probe for all of it: the matmul kernels and the
// GPTQ block kernel run at the same level, and GPTQ_CPU_KERNELS caps both.
#pragma once

#include <string>

// x86-64 with GCC or clang: SIMD builds exist (function target attributes,
// __builtin_cpu_supports). Elsewhere only the portable code is built.
#if defined(__x86_64__) && defined(__GNUC__)
#define GPTQ_X86 1
#endif

namespace gptq::cpu {

// In increasing order; each level includes the ones below it. The features
// a level requires are the ones its builds are compiled for.
enum class Isa {
  kPortable,    // plain C++
  kAvx2,        // AVX2, FMA
  kAvx512,      // AVX-512 F, BW, VL, DQ (and the above)
  kAvx512Vnni,  // AVX-512 VNNI (and the above)
};

// The level every kernel uses, decided once per process: the best this CPU
// supports, or less when the environment variable
// GPTQ_CPU_KERNELS=portable|avx2|avx512|avx512vnni asks (to test each build
// on one machine; a level above what the CPU supports gets what it
// supports). Any other non-empty value leaves the CPU's best and sets
// cpu_isa_error().
Isa cpu_isa();

// Why GPTQ_CPU_KERNELS cannot be honoured (an unknown value), or empty. The
// matmul refuses to run while it is set.
const std::string &cpu_isa_error();

}  // namespace gptq::cpu
