#!/bin/sh
# Builds the C# binding (Gptq.dll: the generated NativeMethods.g.cs plus the
# hand-written idiomatic layer), the example and the NUnit 2.6 tests, and runs
# the tests with their own runner against a libgptq build tree.
#
#   bindings/csharp/test.sh [BUILD_DIR] [TEST_NAME_SUBSTRING ...]
#
# BUILD_DIR defaults to <repo>/build (set up and built with Meson if it has no
# libgptq.so yet). Needs mcs + mono (Debian: mono-devel) and NUnit 2.6's
# nunit.framework.dll (Debian: libnunit-cil-dev; $NUNIT_FRAMEWORK overrides).
# Outputs go to BUILD_DIR/csharp-test/. The last line is "N passed, N failed";
# the exit status is non-zero on any failure.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
[ $# -gt 0 ] && shift

die() {
  echo "test.sh: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

command -v mcs >/dev/null 2>&1 && command -v mono >/dev/null 2>&1 ||
  die "mcs and mono are needed (apt-get install -y mono-devel)"

nunit=${NUNIT_FRAMEWORK:-}
if [ -z "$nunit" ]; then
  for f in /usr/lib/cli/nunit.framework-2.6*/nunit.framework.dll \
           /usr/lib/mono/gac/nunit.framework/2.6*/nunit.framework.dll; do
    if [ -f "$f" ]; then nunit=$f; break; fi
  done
fi
[ -n "$nunit" ] && [ -f "$nunit" ] ||
  die "nunit.framework.dll (NUnit 2.6) not found (apt-get install -y libnunit-cil-dev, or set NUNIT_FRAMEWORK)"

if [ ! -f "$build/libgptq.so" ]; then
  [ -d "$build" ] || meson setup "$build" "$root" || die "meson setup $build failed"
  ninja -C "$build" || die "building libgptq in $build failed"
fi
build=$(cd "$build" && pwd)
out="$build/csharp-test"
mkdir -p "$out" || die "cannot create $out"

cd "$here" || die "cannot cd to $here"
tests=$(ls tests/*.cs | grep -v 'tests/LowLevelSmoke.cs')
mcs -nologo -unsafe -target:library -warn:4 -out:"$out/Gptq.dll" Gptq/*.cs ||
  die "compiling Gptq.dll failed"
mcs -nologo -unsafe -warn:4 -out:"$out/Quantize.exe" -r:"$out/Gptq.dll" examples/Quantize.cs ||
  die "compiling the example failed"
# shellcheck disable=SC2086
mcs -nologo -unsafe -warn:4 -out:"$out/Gptq.Tests.exe" -main:Gptq.Tests.Runner \
    -r:"$out/Gptq.dll" -r:"$nunit" $tests examples/Quantize.cs ||
  die "compiling the tests failed"
cp -f "$nunit" "$out/nunit.framework.dll" || die "cannot copy $nunit"

LD_LIBRARY_PATH="$build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" mono --debug "$out/Gptq.Tests.exe" "$@"
rc=$?
if [ $rc -ne 0 ]; then
  exit $rc
fi
