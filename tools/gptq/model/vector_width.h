// The vector width of the kernels written with explicit vectors
// (Lanes<N>, vector_math.h): each is built for AVX-512, AVX2 and baseline
// x86-64, and the widest build this CPU runs is called. The tool itself is
// compiled for baseline x86-64, whose 4-float vectors leave most of an AVX2
// or AVX-512 core idle. Every build computes the same values: those kernels
// keep each lane's sum separate and in a fixed order, and the tool is
// compiled with -ffp-contract=off, so the width changes speed only.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GPTQ_TARGET_AVX512 [[gnu::target("avx512f")]]
#define GPTQ_TARGET_AVX2 [[gnu::target("avx2")]]
#else
#define GPTQ_TARGET_AVX512
#define GPTQ_TARGET_AVX2
#endif

namespace gptqtool {

// Floats per vector of the widest build this CPU runs (16, 8 or 4), at
// most the cap below.
int vector_lanes();

// Caps vector_lanes() at `lanes` (4, 8 or 16) until set again, so that a
// test can compare the builds on one CPU. Not for use while a forward pass
// runs.
void cap_vector_lanes(int lanes);

}  // namespace gptqtool
