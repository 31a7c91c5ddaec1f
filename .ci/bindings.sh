#!/usr/bin/env bash
# The bindings' tests: the drift check of the generated low-level layers, then
# Rust, Go, C# and Python against an already built library.
#   bash .ci/bindings.sh [BUILD_DIR]     (default: build)
# Installs the toolchains from Debian's packages when missing. Exits non-zero
# if any language fails; the last line counts languages passed and failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. .ci/deps.sh

build=$(cd "${1:-build}" && pwd)

echo "=== bindings: dependencies"
pkgs="python3-clang libclang-14-dev golang-go mono-devel libnunit-cil-dev valgrind python3-venv python3-pip"
command -v cargo >/dev/null 2>&1 || pkgs="$pkgs cargo"
# shellcheck disable=SC2086
install_deps $pkgs

passed=0
failed=0
failures=""
run() {
  local name=$1
  shift
  echo "=== bindings: $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures="$failures $name"
  fi
}

run generated-files-up-to-date bash bindings/check_generated.sh
run rust bash bindings/rust/test.sh "$build"
run go bash bindings/go/test.sh "$build"
run csharp bash bindings/csharp/test.sh "$build"
run python bash bindings/python/test.sh "$build"

[ -n "$failures" ] && echo "=== bindings FAILED:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
