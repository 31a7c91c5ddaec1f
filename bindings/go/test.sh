#!/bin/sh
# Vets and tests the Go binding (bindings/go) against a libgptq build tree,
# offline: no module downloads (the module has no dependencies).
#
#   bindings/go/test.sh [BUILD_DIR]
#
# BUILD_DIR (default <repo>/build) must hold libgptq.so. Runs gofmt, go vet,
# go test -v, the example program, and go test -race where the race detector
# works here. Exits non-zero on any failure.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
if [ ! -f "$build/libgptq.so" ]; then
  echo "test.sh: $build/libgptq.so not found; build the library first" >&2
  echo "  (meson setup $build && ninja -C $build)" >&2
  exit 2
fi
build=$(cd "$build" && pwd)

command -v go >/dev/null 2>&1 || { echo "test.sh: go not found (apt-get install -y golang-go)" >&2; exit 2; }

export CGO_ENABLED=1
export CGO_CFLAGS="-I$root/include"
export CGO_LDFLAGS="-L$build"
export LD_LIBRARY_PATH="$build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Offline: no proxy, no checksum database, no toolchain downloads (Go >= 1.21).
export GOPROXY=off GOSUMDB=off GOFLAGS=-mod=mod GOTOOLCHAIN=local
# A writable build cache and GOPATH even when HOME is unset, missing or
# read-only (Go puts both under HOME by default); explicit settings win.
tmp=${TMPDIR:-/tmp}/libgptq-go-$(id -u)
if [ -z "${HOME:-}" ] || [ ! -d "$HOME" ] || [ ! -w "$HOME" ]; then
  export GOCACHE="${GOCACHE:-$tmp/cache}"
  export GOPATH="${GOPATH:-$tmp/gopath}"
fi

cd "$here"
echo "==== go $(go env GOVERSION), library $build"

unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "test.sh: not gofmt'ed:" $unformatted >&2
  exit 1
fi

echo "==== go vet ./..."
go vet ./...

echo "==== go test -v ./..."
go test -count=1 -v ./...

echo "==== example: go run ./examples/quantize (small layer)"
go run ./examples/quantize -out 128 -in 256 -tokens 512 -heldout 64

# The race detector needs a supported platform and its runtime support
# files; probe with an empty program before relying on it.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'module probe\n\ngo 1.19\n' >"$probe/go.mod"
printf 'package main\n\nfunc main() {}\n' >"$probe/main.go"
if (cd "$probe" && go build -race -o /dev/null . >/dev/null 2>&1); then
  echo "==== go test -race ./..."
  go test -count=1 -race ./...
else
  echo "==== go test -race: SKIPPED (the race detector does not work here)"
fi

echo "test.sh: all Go binding checks passed"
