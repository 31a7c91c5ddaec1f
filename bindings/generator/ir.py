"""Front end: read include/gptq.h through libclang into a small IR.

Nothing here parses C text by hand. libclang gives the declarations and their
types; its tokenizer gives the comments (see `_Comments`) and the bodies of
macro definitions. Struct layouts come from libclang and, independently, from
the C compiler (a small probe program, see `layout_probe`); the two must agree.

Every construct the header may contain is either mapped into the IR below or
rejected with a GenerationError naming it, so that a header change cannot slip
through as silently wrong bindings.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import shutil
import subprocess
import tempfile
from typing import Dict, List, Optional, Tuple

HEADER_NAME = "gptq.h"
# The enum that fallible functions return; emitters treat it specially
# (Go captures the thread-local error message along with it).
STATUS_ENUM = "gptq_status"

# Object-like macros that are not API constants: include guard, export and
# language-linkage helpers. Anything else must be an integer constant
# expression, or generation fails.
IGNORED_MACROS = ("GPTQ_H", "GPTQ_API", "GPTQ_ENUM_INT")

# Scalar typedefs from <stdint.h>/<stddef.h> the IR knows. Emitters map each
# of these (and the builtin scalars below) or fail.
STD_TYPEDEFS = (
    "int8_t", "int16_t", "int32_t", "int64_t",
    "uint8_t", "uint16_t", "uint32_t", "uint64_t",
    "size_t", "ptrdiff_t", "intptr_t", "uintptr_t",
)


class GenerationError(Exception):
    """Something in the header the generator does not (yet) know how to map."""


# ---------------------------------------------------------------------------
# IR
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CType:
    """A C type as used in a declaration.

    kind:
      'void'    -- void (only as a return type or behind a pointer)
      'scalar'  -- name is a builtin ('int', 'char', 'float', 'double', ...)
                   or one of STD_TYPEDEFS ('int32_t', 'size_t', ...)
      'enum'    -- name is a gptq.h enum typedef (e.g. 'gptq_status')
      'struct'  -- name is a gptq.h struct typedef with a definition
      'opaque'  -- name is a gptq.h typedef of an incomplete struct
      'fnptr'   -- name is a gptq.h function-pointer typedef
      'pointer' -- pointee is the type pointed to
    const: the type itself is const-qualified ('const char *' is a non-const
      pointer whose pointee is a const 'char').
    """
    kind: str
    name: str = ""
    const: bool = False
    pointee: Optional["CType"] = None

    @property
    def depth(self) -> int:
        """Pointer depth: 0 for `T`, 1 for `T *`, 2 for `T **`."""
        return 1 + self.pointee.depth if self.kind == "pointer" else 0

    @property
    def base(self) -> "CType":
        """The type under all pointers."""
        return self.pointee.base if self.kind == "pointer" else self

    def is_string(self) -> bool:
        """`const char *`: a NUL-terminated string the callee only reads."""
        return (self.kind == "pointer" and self.pointee.kind == "scalar"
                and self.pointee.name == "char" and self.pointee.const)

    def c(self) -> str:
        """C spelling (without a declarator name)."""
        if self.kind == "pointer":
            inner = self.pointee.c()
            s = inner + ("*" if inner.endswith("*") else " *")
            return s + (" const" if self.const else "")
        return ("const " if self.const else "") + (self.name or "void")


@dataclasses.dataclass
class Param:
    name: str
    type: CType


@dataclasses.dataclass
class Constant:
    """An integer object-like macro, e.g. GPTQ_VERSION_MAJOR."""
    name: str
    value: int
    doc: List[str]


@dataclasses.dataclass
class EnumConstant:
    name: str
    value: int
    doc: List[str]


@dataclasses.dataclass
class Enum:
    name: str
    doc: List[str]
    constants: List[EnumConstant]
    size: int          # bytes, from the C compiler (4 for every enum today)


@dataclasses.dataclass
class Field:
    name: str
    type: CType
    doc: List[str]
    offset: int        # bytes, from the C compiler
    size: int


@dataclasses.dataclass
class Struct:
    name: str
    doc: List[str]
    fields: List[Field]
    size: int
    align: int


@dataclasses.dataclass
class Opaque:
    name: str
    doc: List[str]


@dataclasses.dataclass
class FnPtr:
    name: str
    doc: List[str]
    ret: CType
    params: List[Param]


@dataclasses.dataclass
class Function:
    name: str
    doc: List[str]
    ret: CType
    params: List[Param]

    @property
    def returns_status(self) -> bool:
        return self.ret.kind == "enum" and self.ret.name == STATUS_ENUM


@dataclasses.dataclass
class Api:
    header_doc: List[str]
    constants: List[Constant]
    enums: List[Enum]
    structs: List[Struct]
    opaques: List[Opaque]
    fnptrs: List[FnPtr]
    functions: List[Function]
    pointer_size: int  # sizeof(void *) where the layouts were measured

    def enum(self, name: str) -> Enum:
        for e in self.enums:
            if e.name == name:
                return e
        raise GenerationError(f"no enum {name!r} in the header")

    def constant(self, name: str) -> Constant:
        for c in self.constants:
            if c.name == name:
                return c
        raise GenerationError(f"no macro {name!r} in the header")

    @property
    def version(self) -> Tuple[int, int, int]:
        return tuple(self.constant("GPTQ_VERSION_" + p).value
                     for p in ("MAJOR", "MINOR", "PATCH"))

    @property
    def status_ok(self) -> EnumConstant:
        """The status constant with value 0 (GPTQ_OK)."""
        for c in self.enum(STATUS_ENUM).constants:
            if c.value == 0:
                return c
        raise GenerationError(f"{STATUS_ENUM} has no constant with value 0")


# ---------------------------------------------------------------------------
# libclang
# ---------------------------------------------------------------------------

def _libclang_candidates() -> List[str]:
    env = os.environ.get("LIBCLANG_PATH") or os.environ.get("GPTQ_LIBCLANG")
    if env:
        if os.path.isdir(env):
            found = sorted(glob.glob(os.path.join(env, "libclang*.so*")))
            if not found:
                raise GenerationError(f"no libclang*.so* in {env}")
            return found
        return [env]
    cands = []
    llvm_config = shutil.which("llvm-config")
    if llvm_config:
        try:
            libdir = subprocess.run([llvm_config, "--libdir"], check=True,
                                    capture_output=True, text=True).stdout.strip()
            cands += glob.glob(os.path.join(libdir, "libclang*.so*"))
        except (OSError, subprocess.CalledProcessError):
            pass
    for pattern in ("/usr/lib/llvm-*/lib/libclang*.so*",
                    "/usr/lib/*-linux-gnu/libclang*.so*",
                    "/usr/lib64/libclang*.so*",
                    "/usr/local/lib/libclang*.so*",
                    "/usr/lib/libclang*.so*"):
        cands += glob.glob(pattern)
    # libclang-cpp is the C++ library, not the C API.
    cands = [c for c in cands if "clang-cpp" not in os.path.basename(c)]

    def version_key(path):
        nums = [int(n) for n in re.findall(r"\d+", path)]
        return (nums, path)
    return sorted(set(cands), key=version_key, reverse=True)


def _cindex():
    try:
        import clang.cindex as ci
    except ImportError as e:
        raise GenerationError(
            "clang.cindex is not importable. Install Debian's python3-clang "
            "(apt-get install -y python3-clang libclang-14-dev) and run the "
            "generator with /usr/bin/python3.") from e
    if not ci.Config.loaded:
        cands = _libclang_candidates()
        if not cands:
            raise GenerationError(
                "libclang not found; install libclang-14-dev or set "
                "LIBCLANG_PATH to the library file")
        ci.Config.set_library_file(cands[0])
    return ci


def _macro_is_function_like(ci, cursor) -> bool:
    # Cursor.is_macro_function_like() is missing from the 14.x Python bindings;
    # the C entry point has existed since libclang 3.9.
    import ctypes
    fn = ci.conf.lib.clang_Cursor_isMacroFunctionLike
    fn.argtypes = [ci.Cursor]
    fn.restype = ctypes.c_uint
    return bool(fn(cursor))


class _Comments:
    """Attach comments to declarations using libclang's token stream.

    A declaration's doc is (a) the block of comments directly before its first
    token (no other token in between; consecutive comments merge when no blank
    line separates them; a comment that follows code on its own line belongs to
    that code, not to what comes next), plus (b) a trailing comment that starts
    on the line where the declaration ends, after at most one ',' or ';'.

    clang's own raw_comment is not used because its heuristic attaches a
    comment to every declaration up to the next ';', '{' or '}' -- in an enum
    that hands one constant's comment to the constants after it.
    """

    def __init__(self, ci, tu, path: str):
        self.ci = ci
        size = os.path.getsize(path)
        extent = tu.get_extent(path, (0, size))
        self.tokens = list(tu.get_tokens(extent=extent))
        self.offsets = [t.extent.start.offset for t in self.tokens]

    def _is_comment(self, i: int) -> bool:
        return self.tokens[i].kind == self.ci.TokenKind.COMMENT

    def _is_trailing(self, i: int) -> bool:
        """Comment i follows another token on the same line."""
        return (i > 0 and self.tokens[i - 1].extent.end.line
                == self.tokens[i].extent.start.line)

    def _index_at(self, offset: int) -> int:
        import bisect
        return bisect.bisect_left(self.offsets, offset)

    def header(self) -> List[str]:
        if self.tokens and self._is_comment(0):
            return clean_comment(self.tokens[0].spelling)
        return []

    def for_cursor(self, cursor, is_macro: bool = False) -> List[str]:
        start = self._index_at(cursor.extent.start.offset)
        if is_macro:  # the extent starts at the name; step back over '# define'
            while start > 0 and self.tokens[start - 1].spelling in ("define", "#"):
                start -= 1
        leading = []
        i = start - 1
        next_line = self.tokens[start].extent.start.line if start < len(self.tokens) else None
        while i >= 0 and self._is_comment(i) and not self._is_trailing(i):
            tok = self.tokens[i]
            if next_line is not None and next_line - tok.extent.end.line > 1:
                break  # a blank line separates it from what follows
            leading.insert(0, tok.spelling)
            next_line = tok.extent.start.line
            i -= 1
        trailing = []
        j = self._index_at(cursor.extent.end.offset)
        end_line = cursor.extent.end.line
        if j < len(self.tokens) and self.tokens[j].spelling in (",", ";") \
                and self.tokens[j].extent.start.line == end_line:
            j += 1
        if j < len(self.tokens) and self._is_comment(j) \
                and self.tokens[j].extent.start.line == end_line:
            trailing.append(self.tokens[j].spelling)
        doc: List[str] = []
        for raw in leading + trailing:
            lines = clean_comment(raw)
            if lines:
                if doc:
                    doc.append("")
                doc.extend(lines)
        return doc


_BANNER = re.compile(r"^[-=*/#~\s]*$")


def clean_comment(raw: str) -> List[str]:
    """Turn a C comment's text into plain lines: no /* */ or // markers, no
    leading ' * ', no banner lines of dashes; indentation after the ' * '
    column is kept (it marks code examples)."""
    if raw.startswith("//"):
        lines = [l.lstrip()[2:].lstrip("/!") for l in raw.splitlines()]
        lines = [l[1:] if l.startswith(" ") else l for l in lines]
    elif raw.startswith("/*"):
        body = raw[2:]
        if body.endswith("*/"):
            body = body[:-2]
        body = body.lstrip("*!")  # /** and /*! doc styles
        lines = []
        for k, line in enumerate(body.splitlines()):
            if k > 0:
                s = line.lstrip()
                if s.startswith("*"):
                    s = s[1:]
                line = s
            lines.append(line[1:] if line.startswith(" ") else line)
    else:
        raise GenerationError(f"not a comment: {raw[:40]!r}")
    lines = [l.rstrip() for l in lines]
    lines = ["" if _BANNER.match(l) else l for l in lines]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    out: List[str] = []
    for l in lines:  # collapse runs of blank lines
        if l or (out and out[-1]):
            out.append(l)
    return out


# ---------------------------------------------------------------------------
# Layout probe: the C compiler's view of every struct, enum and macro.
# ---------------------------------------------------------------------------

def layout_probe(include_dir: str, structs: List[Tuple[str, List[str]]],
                 enums: List[str], macros: List[str]) -> Dict[str, int]:
    """Compile and run a C program that prints sizeof/alignof/offsetof for every
    struct and field, sizeof for every enum, and the value of every constant
    macro. Returns {'sizeof(gptq_config)': 120, ...}. The compiler is $CC or
    cc."""
    lines = ["#include <stdio.h>", "#include <stddef.h>",
             f'#include "{HEADER_NAME}"', "int main(void) {",
             '  printf("sizeof(void*) %lld\\n", (long long)sizeof(void *));']
    for name, fields in structs:
        lines.append(f'  printf("sizeof({name}) %lld\\n", (long long)sizeof({name}));')
        lines.append(f'  printf("alignof({name}) %lld\\n", (long long)_Alignof({name}));')
        for f in fields:
            lines.append(f'  printf("offsetof({name}.{f}) %lld\\n", '
                         f'(long long)offsetof({name}, {f}));')
            lines.append(f'  printf("sizeof({name}.{f}) %lld\\n", '
                         f'(long long)sizeof((({name} *)0)->{f}));')
    for name in enums:
        lines.append(f'  printf("sizeof({name}) %lld\\n", (long long)sizeof({name}));')
    for name in macros:
        lines.append(f'  printf("value({name}) %lld\\n", (long long)({name}));')
    lines += ["  return 0;", "}", ""]
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory(prefix="gptq-probe-") as tmp:
        src = os.path.join(tmp, "probe.c")
        exe = os.path.join(tmp, "probe")
        with open(src, "w") as f:
            f.write("\n".join(lines))
        try:
            subprocess.run(cc.split() + ["-std=c11", "-I", include_dir, src, "-o", exe],
                           check=True, capture_output=True, text=True)
        except FileNotFoundError as e:
            raise GenerationError(f"C compiler {cc!r} not found (set CC)") from e
        except subprocess.CalledProcessError as e:
            raise GenerationError(f"layout probe did not compile:\n{e.stderr}") from e
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    result = {}
    for line in out.splitlines():
        key, value = line.rsplit(" ", 1)
        result[key] = int(value)
    return result


# ---------------------------------------------------------------------------
# Walking the translation unit
# ---------------------------------------------------------------------------

class _Reader:
    def __init__(self, header: str):
        self.ci = ci = _cindex()
        self.header = os.path.abspath(header)
        index = ci.Index.create()
        args = ["-x", "c", "-std=c99"]
        opts = (ci.TranslationUnit.PARSE_DETAILED_PROCESSING_RECORD
                | ci.TranslationUnit.PARSE_SKIP_FUNCTION_BODIES)
        self.tu = index.parse(self.header, args=args, options=opts)
        errors = [str(d) for d in self.tu.diagnostics
                  if d.severity >= ci.Diagnostic.Error]
        if errors:
            raise GenerationError("libclang could not parse the header:\n"
                                  + "\n".join(errors))
        self.comments = _Comments(ci, self.tu, self.header)
        # typedef name -> kind ('enum' | 'struct' | 'opaque' | 'fnptr')
        self.typedef_kinds: Dict[str, str] = {}

    def in_header(self, cursor) -> bool:
        f = cursor.location.file
        return f is not None and os.path.abspath(f.name) == self.header

    def where(self, cursor) -> str:
        return f"{HEADER_NAME}:{cursor.location.line}"

    # -- types --------------------------------------------------------------

    def ctype(self, t, where: str) -> CType:
        K = self.ci.TypeKind
        const = t.is_const_qualified()
        if t.kind == K.ELABORATED:
            inner = self.ctype(t.get_named_type(), where)
            return dataclasses.replace(inner, const=const or inner.const)
        if t.kind == K.POINTER:
            return CType("pointer", const=const,
                         pointee=self.ctype(t.get_pointee(), where))
        if t.kind == K.TYPEDEF:
            name = t.get_declaration().spelling
            if name in self.typedef_kinds:
                return CType(self.typedef_kinds[name], name, const)
            if name in STD_TYPEDEFS:
                return CType("scalar", name, const)
            raise GenerationError(f"{where}: unknown typedef {name!r} "
                                  f"(teach bindings/generator/ir.py about it)")
        if t.kind in (K.ENUM, K.RECORD):
            name = t.get_declaration().spelling
            if name in self.typedef_kinds:
                return CType(self.typedef_kinds[name], name, const)
            raise GenerationError(f"{where}: {t.spelling!r} has no typedef of "
                                  f"the same name in {HEADER_NAME}")
        builtins = {
            K.VOID: ("void", "void"), K.BOOL: ("scalar", "_Bool"),
            K.CHAR_S: ("scalar", "char"), K.CHAR_U: ("scalar", "char"),
            K.SCHAR: ("scalar", "signed char"), K.UCHAR: ("scalar", "unsigned char"),
            K.SHORT: ("scalar", "short"), K.USHORT: ("scalar", "unsigned short"),
            K.INT: ("scalar", "int"), K.UINT: ("scalar", "unsigned int"),
            K.LONG: ("scalar", "long"), K.ULONG: ("scalar", "unsigned long"),
            K.LONGLONG: ("scalar", "long long"),
            K.ULONGLONG: ("scalar", "unsigned long long"),
            K.FLOAT: ("scalar", "float"), K.DOUBLE: ("scalar", "double"),
        }
        if t.kind in builtins:
            kind, name = builtins[t.kind]
            return CType(kind, name if kind != "void" else "", const)
        raise GenerationError(f"{where}: unsupported type {t.spelling!r} "
                              f"({t.kind})")

    def params(self, cursor, where: str) -> List[Param]:
        K = self.ci.CursorKind
        out = []
        for i, p in enumerate(c for c in cursor.get_children()
                              if c.kind == K.PARM_DECL):
            out.append(Param(p.spelling or f"arg{i}", self.ctype(p.type, where)))
        return out

    # -- declarations --------------------------------------------------------

    def read(self) -> Api:
        ci, K = self.ci, self.ci.CursorKind
        cursors = [c for c in self.tu.cursor.get_children() if self.in_header(c)]

        # Pass 1: classify the header's typedefs so types can be resolved.
        tag_defs = {}      # tag name -> definition cursor (enum or struct)
        for c in cursors:
            if c.kind in (K.ENUM_DECL, K.STRUCT_DECL) and c.is_definition():
                tag_defs[c.spelling] = c
            if c.kind == K.UNION_DECL:
                raise GenerationError(f"{self.where(c)}: unions are not supported")
        typedefs = []
        for c in cursors:
            if c.kind != K.TYPEDEF_DECL:
                continue
            u = c.underlying_typedef_type
            if u.kind == ci.TypeKind.ELABORATED:
                u = u.get_named_type()
            if u.kind == ci.TypeKind.ENUM:
                kind = "enum"
            elif u.kind == ci.TypeKind.RECORD:
                decl = u.get_declaration()
                if decl.kind != K.STRUCT_DECL:
                    raise GenerationError(f"{self.where(c)}: unions are not supported")
                kind = "struct" if decl.spelling in tag_defs else "opaque"
            elif (u.kind == ci.TypeKind.POINTER and u.get_pointee().kind
                  in (ci.TypeKind.FUNCTIONPROTO, ci.TypeKind.FUNCTIONNOPROTO)):
                kind = "fnptr"
            else:
                raise GenerationError(
                    f"{self.where(c)}: typedef {c.spelling} = {u.spelling!r} is "
                    f"not an enum, struct, opaque struct or function pointer")
            if kind != "fnptr" and u.get_declaration().spelling != c.spelling:
                raise GenerationError(
                    f"{self.where(c)}: typedef {c.spelling} names a tag of a "
                    f"different name ({u.get_declaration().spelling})")
            self.typedef_kinds[c.spelling] = kind
            typedefs.append((c, kind))

        enums, structs, opaques, fnptrs, functions = [], [], [], [], []
        macro_cursors = []
        for c in cursors:
            if c.kind == K.MACRO_DEFINITION:
                macro_cursors.append(c)
            elif c.kind == K.FUNCTION_DECL:
                functions.append(self.function(c))
            elif c.kind == K.VAR_DECL:
                raise GenerationError(f"{self.where(c)}: global variables are "
                                      f"not supported ({c.spelling})")
        for c, kind in typedefs:
            doc = self.comments.for_cursor(c)
            if kind == "enum":
                enums.append(self.enum(c, tag_defs[c.spelling], doc))
            elif kind == "struct":
                structs.append(self.struct(c, tag_defs[c.spelling], doc))
            elif kind == "opaque":
                opaques.append(Opaque(c.spelling, doc))
            else:
                fnptrs.append(self.fnptr(c, doc))
        for name, d in tag_defs.items():
            if name not in self.typedef_kinds:
                raise GenerationError(f"{self.where(d)}: {d.kind.name} {name} "
                                      f"needs a typedef of the same name")

        constants = self.constants(macro_cursors)
        include_dir = os.path.dirname(self.header)
        probe = layout_probe(include_dir,
                             [(s.name, [f.name for f in s.fields]) for s in structs],
                             [e.name for e in enums],
                             [c.name for c in constants])
        self.apply_layout(probe, structs, enums, constants)
        names = [d.name for d in constants + enums + structs + opaques + fnptrs + functions]
        names += [k.name for e in enums for k in e.constants]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            raise GenerationError(f"names declared twice: {dups}")
        return Api(self.comments.header(), constants, enums, structs, opaques,
                   fnptrs, functions, probe["sizeof(void*)"])

    def enum(self, typedef, decl, doc) -> Enum:
        K = self.ci.CursorKind
        if not doc:
            doc = self.comments.for_cursor(decl)
        consts = []
        for k in decl.get_children():
            if k.kind != K.ENUM_CONSTANT_DECL:
                continue
            has_init = any(True for _ in k.get_children())
            if not has_init:
                raise GenerationError(
                    f"{self.where(k)}: enum constant {k.spelling} needs an "
                    f"explicit value (the ABI rule is explicit values)")
            consts.append(EnumConstant(k.spelling, k.enum_value,
                                       self.comments.for_cursor(k)))
        if not consts:
            raise GenerationError(f"{self.where(decl)}: empty enum {decl.spelling}")
        return Enum(typedef.spelling, doc, consts, size=0)

    def struct(self, typedef, decl, doc) -> Struct:
        K = self.ci.CursorKind
        if not doc:
            doc = self.comments.for_cursor(decl)
        fields = []
        groups: Dict[int, List[str]] = {}  # fields declared in one declaration
        for f in decl.get_children():
            if f.kind in (K.STRUCT_DECL, K.UNION_DECL, K.ENUM_DECL):
                raise GenerationError(f"{self.where(f)}: nested type declarations "
                                      f"are not supported")
            if f.kind != K.FIELD_DECL:
                continue
            if f.is_bitfield():
                raise GenerationError(f"{self.where(f)}: bit-fields are not supported")
            if f.type.kind in (self.ci.TypeKind.CONSTANTARRAY,
                               self.ci.TypeKind.INCOMPLETEARRAY):
                raise GenerationError(f"{self.where(f)}: array fields are not supported")
            fdoc = self.comments.for_cursor(f)
            fields.append(Field(f.spelling, self.ctype(f.type, self.where(f)),
                                fdoc, offset=-1, size=-1))
            # clang's field offsets, checked against the C compiler later
            fields[-1]._clang_offset = decl.type.get_offset(f.spelling) // 8
            groups.setdefault(f.extent.start.offset, []).append(len(fields) - 1)
        for idxs in groups.values():  # `int64_t a, b; /* doc */` documents both
            shared = next((fields[i].doc for i in reversed(idxs) if fields[i].doc), [])
            for i in idxs:
                if not fields[i].doc:
                    fields[i].doc = shared
        s = Struct(typedef.spelling, doc, fields, size=-1, align=-1)
        s._clang_size = decl.type.get_size()
        s._clang_align = decl.type.get_align()
        return s

    def fnptr(self, c, doc) -> FnPtr:
        where = self.where(c)
        proto = c.underlying_typedef_type.get_pointee()
        if proto.kind == self.ci.TypeKind.FUNCTIONNOPROTO or proto.is_function_variadic():
            raise GenerationError(f"{where}: {c.spelling} must have a prototype "
                                  f"without '...'")
        params = self.params(c, where)
        if len(params) != len(list(proto.argument_types())):
            raise GenerationError(f"{where}: could not read the parameters of {c.spelling}")
        return FnPtr(c.spelling, doc, self.ctype(proto.get_result(), where), params)

    def function(self, c) -> Function:
        K = self.ci.CursorKind
        where = self.where(c)
        if c.type.kind == self.ci.TypeKind.FUNCTIONNOPROTO:
            raise GenerationError(f"{where}: {c.spelling}() needs a prototype "
                                  f"('(void)' for no parameters)")
        if c.type.is_function_variadic():
            raise GenerationError(f"{where}: variadic function {c.spelling}")
        exported = any(k.kind == K.VISIBILITY_ATTR and k.spelling == "default"
                       for k in c.get_children())
        if not exported:
            raise GenerationError(f"{where}: {c.spelling} is declared without "
                                  f"GPTQ_API, so it is not exported")
        return Function(c.spelling, self.comments.for_cursor(c),
                        self.ctype(c.result_type, where), self.params(c, where))

    def constants(self, macro_cursors) -> List[Constant]:
        TK = self.ci.TokenKind
        known: List[str] = []
        out = []
        arithmetic = set("()+-*/%<>&|^~") | {"<<", ">>"}
        for c in macro_cursors:
            name = c.spelling
            tokens = list(c.get_tokens())
            body = tokens[1:]
            if name in IGNORED_MACROS:
                continue
            if _macro_is_function_like(self.ci, c):
                raise GenerationError(f"{self.where(c)}: function-like macro "
                                      f"{name} cannot be bound; add it to "
                                      f"IGNORED_MACROS or map it")
            if not body:
                raise GenerationError(f"{self.where(c)}: empty macro {name}; "
                                      f"add it to IGNORED_MACROS if it is a helper")
            for t in body:
                ok = ((t.kind == TK.LITERAL and re.fullmatch(r"(0[xX])?[0-9a-fA-F]+[uUlL]*", t.spelling))
                      or (t.kind == TK.PUNCTUATION and t.spelling in arithmetic)
                      or (t.kind == TK.IDENTIFIER and t.spelling in known))
                if not ok:
                    raise GenerationError(
                        f"{self.where(c)}: macro {name} is not an integer "
                        f"constant expression (token {t.spelling!r}); map it or "
                        f"add it to IGNORED_MACROS")
            known.append(name)
            out.append(Constant(name, 0, self.comments.for_cursor(c, is_macro=True)))
        return out

    def apply_layout(self, probe, structs, enums, constants):
        for s in structs:
            s.size = probe[f"sizeof({s.name})"]
            s.align = probe[f"alignof({s.name})"]
            if (s.size, s.align) != (s._clang_size, s._clang_align):
                raise GenerationError(
                    f"{s.name}: the C compiler says size {s.size} align {s.align}, "
                    f"libclang says {s._clang_size}/{s._clang_align}")
            for f in s.fields:
                f.offset = probe[f"offsetof({s.name}.{f.name})"]
                f.size = probe[f"sizeof({s.name}.{f.name})"]
                if f.offset != f._clang_offset:
                    raise GenerationError(
                        f"{s.name}.{f.name}: the C compiler says offset {f.offset}, "
                        f"libclang says {f._clang_offset}")
        for e in enums:
            e.size = probe[f"sizeof({e.name})"]
            lo = min(k.value for k in e.constants)
            hi = max(k.value for k in e.constants)
            if e.size != 4 or lo < -2**31 or hi > 2**31 - 1:
                raise GenerationError(
                    f"{e.name}: bindings map enums to a 32-bit int, but it has "
                    f"size {e.size} and values {lo}..{hi}")
        for c in constants:
            c.value = probe[f"value({c.name})"]


def read_header(header: str) -> Api:
    """Parse `header` (include/gptq.h) into an Api."""
    return _Reader(header).read()


# ---------------------------------------------------------------------------
# Helpers shared by the emitters
# ---------------------------------------------------------------------------

BANNER = "generated by bindings/generate.py from include/gptq.h — do not edit."


def camel(name: str, initialisms=()) -> str:
    """'GPTQ_ERR_NULL_POINTER' minus its prefix -> 'ErrNullPointer'.

    Each '_'-separated word is capitalized; a word containing a digit keeps its
    C spelling (F32, BF16, V1); words listed in `initialisms` are upper case."""
    out = []
    for w in name.split("_"):
        if not w:
            continue
        if any(ch.isdigit() for ch in w):
            out.append(w.upper())
        elif w.upper() in initialisms:
            out.append(w.upper())
        else:
            out.append(w[:1].upper() + w[1:].lower())
    return "".join(out)


def strip_prefix(name: str, prefix: str) -> str:
    if not name.lower().startswith(prefix.lower()):
        raise GenerationError(f"{name} does not start with {prefix}")
    return name[len(prefix):]


def enum_member_prefix(enum: Enum) -> str:
    """The longest common '_'-word prefix of an enum's constants, such that no
    member is left empty or starting with a digit ('GPTQ_DTYPE_' for
    gptq_dtype, 'GPTQ_' for gptq_status whose members are GPTQ_OK, GPTQ_ERR_*)."""
    split = [k.name.split("_") for k in enum.constants]
    n = 0
    while all(len(s) > n + 1 for s in split) and len({s[n] for s in split}) == 1:
        n += 1
    while n > 0 and any(s[n][:1].isdigit() for s in split):
        n -= 1
    return "".join(w + "_" for w in split[0][:n])
