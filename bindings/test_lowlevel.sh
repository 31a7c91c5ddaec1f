#!/bin/sh
# Runs the low-level binding tests of all four languages against a libgptq
# build tree, plus the drift check of the generated files.
#
#   bindings/test_lowlevel.sh [BUILD_DIR]
#
# BUILD_DIR defaults to $GPTQ_BUILD_DIR, else build-gen/ (set up and built with
# Meson if it has no libgptq.so yet). A language whose toolchain is missing
# (cargo, go, mcs + mono, python3) is reported as SKIPPED; any failure makes
# the exit status 1. Build outputs go under BUILD_DIR/bindings-test/.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-${GPTQ_BUILD_DIR:-$root/build-gen}}

if [ ! -f "$build/libgptq.so" ]; then
  [ -d "$build" ] || meson setup "$build" "$root"
  ninja -C "$build"
fi
build=$(cd "$build" && pwd)
out="$build/bindings-test"
mkdir -p "$out"
export LD_LIBRARY_PATH="$build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

failed=""
run() {
  name=$1; shift
  echo "==== $name"
  if "$@"; then echo "==== $name: ok"; else echo "==== $name: FAILED"; failed="$failed $name"; fi
}
have() { command -v "$1" >/dev/null 2>&1; }

run generated "$here/check_generated.sh"

if have cargo; then
  run rust sh -c "cd '$here/rust/gptq-sys' && GPTQ_LIB_DIR='$build' \
    CARGO_TARGET_DIR='$out/rust-target' cargo test --offline"
else echo "==== rust: SKIPPED (no cargo)"; fi

if have go; then
  run go sh -c "cd '$here/go' && test -z \"\$(gofmt -l gptq)\" && \
    CGO_CFLAGS='-I$root/include' CGO_LDFLAGS='-L$build' go vet ./... && \
    CGO_CFLAGS='-I$root/include' CGO_LDFLAGS='-L$build' go test -count=1 ./..."
else echo "==== go: SKIPPED (no go)"; fi

if have mcs && have mono; then
  run csharp sh -c "cd '$here/csharp' && \
    mcs -unsafe -target:library -warn:4 -out:'$out/Gptq.LowLevel.dll' Gptq/NativeMethods.g.cs && \
    mcs -unsafe -out:'$out/csharp-smoke.exe' Gptq/NativeMethods.g.cs tests/LowLevelSmoke.cs && \
    mono '$out/csharp-smoke.exe'"
else echo "==== csharp: SKIPPED (no mcs/mono)"; fi

if have python3; then
  run python sh -c "GPTQ_LIBRARY='$build/libgptq.so' PYTHONDONTWRITEBYTECODE=1 \
    python3 -m unittest discover -s '$here/python/tests' -v"
else echo "==== python: SKIPPED (no python3)"; fi

if [ -n "$failed" ]; then
  echo "test_lowlevel.sh: FAILED:$failed"
  exit 1
fi
echo "test_lowlevel.sh: all run tests passed"
