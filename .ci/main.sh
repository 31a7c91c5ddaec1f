#!/usr/bin/env bash
# The main job: install the build dependencies, build from scratch, and run
# examples/quantize_layer (GPTQ vs round-to-nearest on an embedded layer).
# Works on a fresh Debian 12 machine; needs no GPU and no CUDA toolkit.
#   bash .ci/main.sh [quantize_layer options, e.g. --act-order --bits 3]
# Build directory: build (override with GPTQ_BUILD_DIR); wiped first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. .ci/deps.sh

build=${GPTQ_BUILD_DIR:-build}

echo "=== dependencies"
install_deps meson ninja-build pkg-config gcc g++ libopenblas-dev liblapacke-dev

echo "=== build ($build)"
rm -rf "$build"
meson setup "$build" -Dtests=false
ninja -C "$build"

echo "=== run: $build/examples/quantize_layer $*"
"$build/examples/quantize_layer" "$@"
