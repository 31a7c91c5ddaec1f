#!/bin/sh
# Tests of the Python package `gptq` (bindings/python) against a libgptq build.
#
#   bindings/python/test.sh [BUILD_DIR] [PYTEST_ARGS...]
#
# BUILD_DIR defaults to $GPTQ_BUILD_DIR, else <repo>/build (set up and built
# with Meson if it has no libgptq.so yet). A virtual environment is made in
# BUILD_DIR/python-venv (reused by later runs) with numpy and pytest, and
# pytest -q runs bindings/python/tests with GPTQ_LIBRARY=BUILD_DIR/libgptq.so.
# The exit status is pytest's; its summary line is the last line printed.
#
# The interpreter: the first of `python3` on PATH and /usr/bin/python3 with
# a working `-m venv` ($GPTQ_PYTHON overrides). Debian's python3 needs the
# python3-venv package for that; it is installed with apt-get when neither
# works and we are root.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${GPTQ_BUILD_DIR:-$root/build}
if [ $# -gt 0 ]; then build=$1; shift; fi

if [ ! -f "$build/libgptq.so" ]; then
  echo "test.sh: no $build/libgptq.so; building it" >&2
  [ -d "$build" ] || meson setup "$build" "$root" >&2
  ninja -C "$build" >&2
fi
build=$(cd "$build" && pwd)
venv="$build/python-venv"

venv_works() {  # can interpreter $1 make a virtual environment (with pip)?
  command -v "$1" >/dev/null 2>&1 || return 1
  probe=$(mktemp -d)
  if "$1" -m venv "$probe/v" >/dev/null 2>&1 && [ -x "$probe/v/bin/pip" ]; then
    rm -rf "$probe"; return 0
  fi
  rm -rf "$probe"; return 1
}

pick_python() {
  for candidate in ${GPTQ_PYTHON:-} python3 /usr/bin/python3; do
    if venv_works "$candidate"; then echo "$candidate"; return 0; fi
  done
  return 1
}

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "" 2>/dev/null; then
  rm -rf "$venv"
  if ! python=$(pick_python); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "test.sh: python3 -m venv does not work; installing python3-venv" >&2
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv) >&2
    fi
    python=$(pick_python) || {
      echo "test.sh: no python3 whose 'python3 -m venv' works (install python3-venv)" >&2
      exit 1
    }
  fi
  echo "test.sh: creating $venv with $python ($("$python" --version 2>&1))" >&2
  "$python" -m venv "$venv" >&2
fi

if ! "$venv/bin/python" -c "import numpy, pytest" 2>/dev/null; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check numpy pytest >&2
fi

cd "$here"
export GPTQ_LIBRARY="$build/libgptq.so"
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" tests
