#!/bin/sh
# Tests of the Rust bindings (workspace: gptq-sys + gptq) against a libgptq
# build tree, then the safe crate's test binaries under valgrind.
#
#   bindings/rust/test.sh [BUILD_DIR]
#
# BUILD_DIR is a Meson build directory holding libgptq.so; default build/ at
# the repository root. Cargo output goes to $CARGO_TARGET_DIR, default
# BUILD_DIR/rust-target. Needs cargo (rustup's, or Debian 12's `cargo`
# package: the crates build with Rust 1.63) and valgrind; no network (there
# are no dependencies). GPTQ_SKIP_VALGRIND=1 skips the valgrind step.
#
# valgrind runs with --leak-check=full --errors-for-leak-kinds=definite
# --error-exitcode=1: any memory error or definite leak fails. No
# suppressions are needed. (The Rust runtime leaves a "possibly lost" block,
# the main thread's handle, and panics leave the backtrace symbolizer's
# cache reachable; neither is counted, and --show-leak-kinds=definite keeps
# them out of the output.) They run with GPTQ_BACKEND=cpu: valgrind models
# no GPU, and the CUDA libraries a build's plugin would load under AUTO are
# no subject of this check.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}

if [ ! -f "$build/libgptq.so" ]; then
  echo "test.sh: no libgptq.so in $build; build it first, e.g." >&2
  echo "  meson setup $build -Dtests=false && ninja -C $build" >&2
  exit 1
fi
build=$(cd "$build" && pwd)

export GPTQ_LIB_DIR="$build"
export LD_LIBRARY_PATH="$build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$build/rust-target}"

cd "$here"
# No dependencies, so the (git-ignored) lock file holds nothing; drop any
# left by another cargo, whose format this one might not read.
rm -f Cargo.lock

echo "==== cargo test (workspace: gptq-sys, gptq) against $build"
cargo --version
cargo test --offline

if [ "${GPTQ_SKIP_VALGRIND:-0}" = 1 ]; then
  echo "==== valgrind: SKIPPED (GPTQ_SKIP_VALGRIND=1)"
  exit 0
fi
if ! command -v valgrind >/dev/null 2>&1; then
  echo "test.sh: valgrind not found (apt-get install -y valgrind), or set GPTQ_SKIP_VALGRIND=1" >&2
  exit 1
fi

# The gptq crate's test binaries (lib unit tests + tests/*.rs), already
# built by the run above; cargo names their paths in its JSON messages.
bins=$(cargo test --offline -p gptq --tests --no-run --message-format=json 2>/dev/null |
  grep '"test":true' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
if [ -z "$bins" ]; then
  echo "test.sh: found no test binaries of the gptq crate" >&2
  exit 1
fi

failed=""
for bin in $bins; do
  name=$(basename "$bin")
  echo "==== valgrind $name"
  if GPTQ_BACKEND=cpu valgrind -q --leak-check=full --show-leak-kinds=definite \
      --errors-for-leak-kinds=definite --error-exitcode=1 "$bin"; then
    echo "==== valgrind $name: clean"
  else
    echo "==== valgrind $name: FAILED"
    failed="$failed $name"
  fi
done

if [ -n "$failed" ]; then
  echo "test.sh: valgrind FAILED:$failed"
  exit 1
fi
echo "test.sh: cargo tests passed; valgrind clean on $(echo "$bins" | wc -w) test binaries"
