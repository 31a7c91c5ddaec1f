#!/usr/bin/python3
"""Generate the low-level bindings of libgptq from include/gptq.h.

    /usr/bin/python3 bindings/generate.py            # write into bindings/
    /usr/bin/python3 bindings/generate.py --out DIR  # write into DIR instead
    /usr/bin/python3 bindings/generate.py --list     # print the generated paths

Needs Debian's python3-clang (clang.cindex) and libclang, and a C compiler
(cc, or $CC) for the layout probe. Output is deterministic: the same header
on the same kind of target gives byte-identical files. See bindings/README.md.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep bindings/generator/ free of __pycache__

from generator import csharp, go, ir, python, rust  # noqa: E402

EMITTERS = (rust, go, csharp, python)


# Lists every generated file (itself included), so that a file the generator
# no longer writes can be found and removed.
MANIFEST = "generated_files.txt"


def generate(header: str):
    """Return {path relative to bindings/: file content} for every generated file."""
    api = ir.read_header(header)
    files = {}
    for emitter in EMITTERS:
        for path, text in emitter.emit(api).items():
            if path in files or path == MANIFEST:
                raise ir.GenerationError(f"{path} generated twice")
            if not text.endswith("\n"):
                text += "\n"
            files[path] = text
    files[MANIFEST] = "".join(
        [f"# {ir.BANNER}\n", "# Files written by bindings/generate.py, relative to bindings/.\n"]
        + [p + "\n" for p in sorted(list(files) + [MANIFEST])])
    return dict(sorted(files.items()))


def read_manifest(directory: str):
    try:
        with open(os.path.join(directory, MANIFEST), encoding="utf-8") as f:
            return [l.strip() for l in f if l.strip() and not l.startswith("#")]
    except FileNotFoundError:
        return []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--header", default=os.path.join(HERE, "..", "include", "gptq.h"),
                    help="the C header (default: include/gptq.h)")
    ap.add_argument("--out", default=HERE,
                    help="directory that stands for bindings/ (default: bindings/)")
    ap.add_argument("--list", action="store_true",
                    help="print the generated paths (relative to bindings/) and exit")
    args = ap.parse_args(argv)
    try:
        files = generate(os.path.normpath(args.header))
    except ir.GenerationError as e:
        print(f"generate.py: error: {e}", file=sys.stderr)
        return 1
    if args.list:
        for path in files:
            print(path)
        return 0
    stale = [p for p in read_manifest(args.out) if p not in files]
    for path in stale:
        dest = os.path.join(args.out, path)
        if os.path.exists(dest):
            os.remove(dest)
            print(f"removed {os.path.relpath(dest)} (no longer generated)")
    for path, text in files.items():
        dest = os.path.join(args.out, path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        old = None
        if os.path.exists(dest):
            with open(dest, encoding="utf-8") as f:
                old = f.read()
        if old != text:
            with open(dest, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
            print(f"wrote {os.path.relpath(dest)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
