"""Python emitter: bindings/python/gptq/_native.py (ctypes).

Conventions:
  - every C name is kept: functions (gptq_ctx_create), structs (gptq_config,
    ctypes.Structure with _fields_ in C order), opaque types (gptq_ctx, an
    empty ctypes.Structure used only through ctypes.POINTER), callback types
    (gptq_log_fn = ctypes.CFUNCTYPE(...)), enum constants (GPTQ_OK);
  - each C enum is also an enum.IntEnum of the same name (gptq_status) whose
    members are the C constants; the module-level constants are its members;
  - argtypes/restype are set for every function. Enums travel as c_int, so
    results are plain ints (compare with the IntEnum, or wrap:
    gptq_status(rc)); `const char *` is c_char_p (bytes in, bytes out);
    `void *` is c_void_p; other pointers are ctypes.POINTER(T);
  - a struct field whose name is a Python keyword gets a trailing '_';
  - each function's __doc__ is its C comment.
The library is loaded at import: $GPTQ_LIBRARY (a path), else
ctypes.util.find_library('gptq'), else a libgptq next to this file.
LAYOUT and check_layout() carry the C compiler's sizes and offsets.
"""

import keyword
from typing import Dict, List

from .ir import Api, BANNER, CType, GenerationError

PATH = "python/gptq/_native.py"

SCALARS = {
    "int8_t": "ctypes.c_int8", "int16_t": "ctypes.c_int16",
    "int32_t": "ctypes.c_int32", "int64_t": "ctypes.c_int64",
    "uint8_t": "ctypes.c_uint8", "uint16_t": "ctypes.c_uint16",
    "uint32_t": "ctypes.c_uint32", "uint64_t": "ctypes.c_uint64",
    "size_t": "ctypes.c_size_t", "ptrdiff_t": "ctypes.c_ssize_t",
    "intptr_t": "ctypes.c_ssize_t", "uintptr_t": "ctypes.c_size_t",
    "int": "ctypes.c_int", "unsigned int": "ctypes.c_uint",
    "char": "ctypes.c_char", "float": "ctypes.c_float",
    "double": "ctypes.c_double", "_Bool": "ctypes.c_bool",
}


def field_name(name: str) -> str:
    return name + "_" if keyword.iskeyword(name) else name


def pytype(t: CType, where: str) -> str:
    if t.kind == "void":
        return "None"
    if t.kind == "scalar":
        if t.name not in SCALARS:
            raise GenerationError(f"python: no mapping for C type {t.name!r} ({where})")
        return SCALARS[t.name]
    if t.kind == "enum":
        return "ctypes.c_int"
    if t.kind in ("struct", "fnptr"):
        return t.name
    if t.kind == "pointer":
        p = t.pointee
        if t.is_string():
            return "ctypes.c_char_p"
        if p.kind == "void":
            return "ctypes.c_void_p"
        if p.kind == "opaque":
            return f"ctypes.POINTER({p.name})"
        return f"ctypes.POINTER({pytype(p, where)})"
    raise GenerationError(f"python: unsupported type {t.c()!r} ({where})")


def comment(lines: List[str], indent: str = "") -> List[str]:
    return [f"{indent}# {l}".rstrip() for l in lines]


def docstring(lines: List[str], indent: str) -> List[str]:
    if not lines:
        return []
    text = "\n".join(lines).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    body = text.split("\n")
    if len(body) == 1:
        return [f'{indent}"""{body[0]}"""']
    return [f'{indent}"""{body[0]}'] + [f"{indent}{l}".rstrip() for l in body[1:]] + [f'{indent}"""']


def pystr(lines: List[str]) -> str:
    """A Python string literal holding the lines."""
    return repr("\n".join(lines))


def emit(api: Api) -> Dict[str, str]:
    names: List[str] = []
    o = [f"# {BANNER}",
         '"""Raw ctypes declarations of libgptq, one for one with include/gptq.h.',
         "",
         "Build idiomatic wrappers on top of this module; never redeclare a C",
         "function elsewhere. The C header's own documentation follows.",
         ""]
    o += [l.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') for l in api.header_doc]
    o += ['"""', "",
          "import ctypes",
          "import ctypes.util",
          "import enum",
          "import glob",
          "import os",
          "",
          "",
          "def _load_library():",
          '    """Load libgptq: $GPTQ_LIBRARY (a path), else',
          "    ctypes.util.find_library('gptq'), else a libgptq next to this file.\"\"\"",
          '    path = os.environ.get("GPTQ_LIBRARY")',
          "    if path:",
          "        return ctypes.CDLL(path)",
          '    name = ctypes.util.find_library("gptq")',
          "    if name:",
          "        try:",
          "            return ctypes.CDLL(name)",
          "        except OSError:",
          "            pass",
          "    here = os.path.dirname(os.path.abspath(__file__))",
          '    candidates = [os.path.join(here, n) for n in ("libgptq.so", "libgptq.dylib", "gptq.dll")]',
          '    candidates += sorted(glob.glob(os.path.join(here, "libgptq.so.*")))',
          "    for candidate in candidates:",
          "        if os.path.exists(candidate):",
          "            return ctypes.CDLL(candidate)",
          "    raise OSError(",
          '        "libgptq not found: set GPTQ_LIBRARY to the path of the shared library, "',
          "        \"install it where ctypes.util.find_library('gptq') finds it, \"",
          '        "or put it next to " + __file__)',
          "",
          "",
          "#: The loaded shared library (a ctypes.CDLL).",
          "lib = _load_library()",
          ""]
    names.append("lib")

    o += ["# ---- Integer macros ----", ""]
    for c in api.constants:
        o += comment(c.doc)
        o.append(f"{c.name} = {c.value}")
        names.append(c.name)
    o.append("")

    o += ["# ---- Enums: an IntEnum per C enum, and its members as module constants ----", ""]
    for e in api.enums:
        o += ["", f"class {e.name}(enum.IntEnum):"]
        o += docstring(e.doc or [f"C enum {e.name}."], "    ")
        for k in e.constants:
            if k.doc:
                o += ["    #: " + l if l else "    #:" for l in k.doc]
            o.append(f"    {k.name} = {k.value}")
        o += ["", ""]
        names.append(e.name)
        for k in e.constants:
            o.append(f"{k.name} = {e.name}.{k.name}")
            names.append(k.name)
        o.append("")

    o += ["", "# ---- Opaque types: use them only as ctypes.POINTER(T) ----", ""]
    for t in api.opaques:
        o += ["", f"class {t.name}(ctypes.Structure):"]
        o += docstring(t.doc + ([""] if t.doc else []) +
                       [f"Opaque: the C code only ever hands out {t.name} *."], "    ")
        o.append("")
        names.append(t.name)

    o += ["", "# ---- Structs (declared here, fields below, so any order works) ----", ""]
    for s in api.structs:
        o += ["", f"class {s.name}(ctypes.Structure):"]
        o += docstring(s.doc or [f"C struct {s.name}."], "    ")
        o.append("")
        names.append(s.name)

    o += ["", "# ---- Callback types (keep the Python callback object alive while C may call it) ----", ""]
    for f in api.fnptrs:
        o += comment(f.doc)
        args = ", ".join([pytype(f.ret, f.name)] + [pytype(p.type, f"{f.name}({p.name})")
                                                     for p in f.params])
        o.append(f"{f.name} = ctypes.CFUNCTYPE({args})")
        o.append(f"# parameters: {', '.join(p.name for p in f.params)}")
        names.append(f.name)
        o.append("")

    o += ["# ---- Struct fields, in C order ----", ""]
    for s in api.structs:
        o.append(f"{s.name}._fields_ = [")
        for fld in s.fields:
            o += comment(fld.doc, "    ")
            o.append(f'    ("{field_name(fld.name)}", {pytype(fld.type, f"{s.name}.{fld.name}")}),')
        o += ["]", ""]

    o += ["# ---- Functions ----", ""]
    for f in api.functions:
        o.append(f"{f.name} = lib.{f.name}")
        args = ", ".join(pytype(p.type, f"{f.name}({p.name})") for p in f.params)
        o.append(f"{f.name}.argtypes = [{args}]")
        o.append(f"{f.name}.restype = {pytype(f.ret, f.name)}")
        sig = f"{f.ret.c()} {f.name}(" + ", ".join(
            p.type.c() + ("" if p.type.c().endswith("*") else " ") + p.name
            for p in f.params) + ")"
        o.append(f"{f.name}.__doc__ = {pystr([sig, ''] + f.doc)}")
        o.append("")
        names.append(f.name)

    bits = 8 * api.pointer_size
    o += ["# ---- Layout, as the C compiler reported it at generation time ----", "",
          f"#: {{struct: (size, align, {{field: (offset, size)}})}} on a {bits}-bit target;",
          "#: enums: {enum: size}.",
          "LAYOUT = {"]
    for s in api.structs:
        fields = ", ".join(f'"{field_name(f.name)}": ({f.offset}, {f.size})' for f in s.fields)
        o.append(f'    "{s.name}": ({s.size}, {s.align}, {{{fields}}}),')
    o += ["}", "ENUM_SIZES = {"]
    for e in api.enums:
        o.append(f'    "{e.name}": {e.size},')
    o += ["}",
          f"LAYOUT_POINTER_SIZE = {api.pointer_size}",
          "",
          "",
          "def check_layout():",
          '    """Differences between ctypes\' layouts and the C compiler\'s (a list of',
          '    strings, empty when all agree)."""',
          "    if ctypes.sizeof(ctypes.c_void_p) != LAYOUT_POINTER_SIZE:",
          "        return []",
          "    errors = []",
          "",
          "    def expect(what, got, want):",
          "        if got != want:",
          '            errors.append("%s: ctypes says %d, the C compiler said %d" % (what, got, want))',
          "",
          "    for name, (size, align, fields) in LAYOUT.items():",
          "        cls = globals()[name]",
          '        expect("sizeof(%s)" % name, ctypes.sizeof(cls), size)',
          '        expect("alignof(%s)" % name, ctypes.alignment(cls), align)',
          "        for field, (offset, fsize) in fields.items():",
          "            desc = getattr(cls, field)",
          '            expect("offsetof(%s, %s)" % (name, field), desc.offset, offset)',
          '            expect("sizeof(%s.%s)" % (name, field), desc.size, fsize)',
          "    for name, size in ENUM_SIZES.items():",
          '        expect("sizeof(%s)" % name, ctypes.sizeof(ctypes.c_int), size)',
          "    return errors",
          ""]
    names += ["LAYOUT", "ENUM_SIZES", "LAYOUT_POINTER_SIZE", "check_layout"]
    o += ["", "__all__ = ["]
    o += [f'    "{n}",' for n in names]
    o += ["]", ""]
    return {PATH: "\n".join(o)}
