"""Rust emitter: the gptq-sys crate (bindings/rust/gptq-sys).

Conventions (the safe crate builds on these):
  - every C name is kept as is (gptq_config, gptq_ctx_create, GPTQ_OK);
  - C enums are `pub type gptq_x = i32;` plus one `pub const` per constant
    (a Rust enum would be undefined behaviour for a value the library adds
    later);
  - opaque structs are zero-sized #[repr(C)] structs that are !Send, !Sync and
    !Unpin (the Rustonomicon's pattern); only pointers to them exist;
  - function-pointer typedefs are `Option<unsafe extern "C" fn(..)>` (None is
    NULL);
  - `T *` is `*mut T`, `const T *` is `*const T`; void is c_void; char is
    c_char; int is c_int; size_t is usize;
  - integer macros get bindgen's types: u32 if 0 <= value <= u32::MAX, else i32
    or i64.
Doc comments: the C comment's lines become `///` lines ('[' escaped, so that
"[rows, cols]" is no intra-doc link); a comment with an indented line (code,
tables, lists) or a fence is kept verbatim in a ```text block, which rustdoc
neither reflows nor runs as a doctest.
"""

from typing import Dict, List

from .ir import Api, BANNER, CType, GenerationError

CRATE_DIR = "rust/gptq-sys"

RAW = "::std::os::raw::"
SCALARS = {
    "int8_t": "i8", "int16_t": "i16", "int32_t": "i32", "int64_t": "i64",
    "uint8_t": "u8", "uint16_t": "u16", "uint32_t": "u32", "uint64_t": "u64",
    "size_t": "usize", "ptrdiff_t": "isize", "intptr_t": "isize",
    "uintptr_t": "usize", "_Bool": "bool",
    "char": RAW + "c_char", "signed char": RAW + "c_schar",
    "unsigned char": RAW + "c_uchar", "short": RAW + "c_short",
    "unsigned short": RAW + "c_ushort", "int": RAW + "c_int",
    "unsigned int": RAW + "c_uint", "long": RAW + "c_long",
    "unsigned long": RAW + "c_ulong", "long long": RAW + "c_longlong",
    "unsigned long long": RAW + "c_ulonglong",
    "float": "f32", "double": "f64",
}

KEYWORDS = {
    "as", "break", "const", "continue", "crate", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod",
    "move", "mut", "pub", "ref", "return", "self", "Self", "static", "struct",
    "super", "trait", "true", "type", "unsafe", "use", "where", "while",
    "async", "await", "dyn", "abstract", "become", "box", "do", "final",
    "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try",
}


def ident(name: str) -> str:
    if name in ("self", "Self", "super", "crate"):
        return name + "_"
    return "r#" + name if name in KEYWORDS else name


def rtype(t: CType, where: str) -> str:
    """Rust spelling of a C type in a field, parameter or pointee position."""
    if t.kind == "pointer":
        p = t.pointee
        if p.kind == "void":
            inner = RAW + "c_void"
        elif p.kind == "opaque":
            inner = p.name
        else:
            inner = rtype(p, where)
        return ("*const " if p.const else "*mut ") + inner
    if t.kind == "scalar":
        if t.name not in SCALARS:
            raise GenerationError(f"rust: no mapping for C type {t.name!r} ({where})")
        return SCALARS[t.name]
    if t.kind in ("enum", "struct", "fnptr"):
        return t.name
    if t.kind == "opaque":
        raise GenerationError(f"rust: opaque {t.name} used by value ({where})")
    raise GenerationError(f"rust: unsupported type {t.c()!r} ({where})")


def ret(t: CType, where: str) -> str:
    return "" if t.kind == "void" else " -> " + rtype(t, where)


def doc(lines: List[str], indent: str = "", inner: bool = False) -> List[str]:
    mark = indent + ("//!" if inner else "///")
    if not lines:
        return []
    if not any(l.startswith((" ", "\t")) or "```" in l or "~~~" in l for l in lines):
        # Plain markdown; '[' escaped so that "[rows, cols]" is not an intra-doc link.
        return [f"{mark} {l}".rstrip().replace("[", "\\[") for l in lines]
    fence = "```"
    while any(fence in l for l in lines):
        fence += "`"
    out = [f"{mark} {fence}text"]
    out += [f"{mark} {l}".rstrip() for l in lines]
    out.append(f"{mark} {fence}")
    return out


def const_type(value: int) -> str:
    if 0 <= value <= 2**32 - 1:
        return "u32"
    if -2**31 <= value < 0:
        return "i32"
    if -2**63 <= value <= 2**63 - 1:
        return "i64"
    return "u64"


def params(ps, where) -> str:
    return ", ".join(f"{ident(p.name)}: {rtype(p.type, f'{where}({p.name})')}" for p in ps)


def lib_rs(api: Api) -> str:
    o: List[str] = [f"// {BANNER}", "//",
                    "//! Raw FFI declarations of libgptq, one for one with include/gptq.h.",
                    "//!",
                    "//! Everything here is `unsafe` and mirrors the C header exactly; the",
                    "//! header text below is the manual. Build safe wrappers on top of this",
                    "//! crate rather than redeclaring any function.",
                    "//!"]
    o += doc(api.header_doc, inner=True)
    o += ["",
          "#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case)]",
          "#![allow(dead_code, clippy::all)]",
          ""]

    o.append("// ---- Constants (integer macros) ----")
    o.append("")
    for c in api.constants:
        o += doc(c.doc)
        o.append(f"pub const {c.name}: {const_type(c.value)} = {c.value};")
    o.append("")

    o.append("// ---- Enums: a type alias plus one constant per value ----")
    for e in api.enums:
        o.append("")
        o += doc(e.doc)
        o.append(f"pub type {e.name} = i32;")
        for k in e.constants:
            o += doc(k.doc)
            o.append(f"pub const {k.name}: {e.name} = {k.value};")
    o.append("")

    o.append("// ---- Opaque types: only pointers to them exist ----")
    for t in api.opaques:
        o.append("")
        o += doc(t.doc)
        o += ["#[repr(C)]",
              f"pub struct {t.name} {{",
              "    _private: [u8; 0],",
              "    _marker: ::core::marker::PhantomData<(*mut u8, ::core::marker::PhantomPinned)>,",
              "}"]
    o.append("")

    o.append("// ---- Callback types (None is NULL) ----")
    for f in api.fnptrs:
        o.append("")
        o += doc(f.doc)
        o.append(f"pub type {f.name} = ::core::option::Option<")
        o.append(f"    unsafe extern \"C\" fn({params(f.params, f.name)}){ret(f.ret, f.name)},")
        o.append(">;")
    o.append("")

    o.append("// ---- Structs ----")
    for s in api.structs:
        o.append("")
        o += doc(s.doc)
        o += ["#[repr(C)]", "#[derive(Debug, Copy, Clone)]", f"pub struct {s.name} {{"]
        for f in s.fields:
            o += doc(f.doc, "    ")
            o.append(f"    pub {ident(f.name)}: {rtype(f.type, f'{s.name}.{f.name}')},")
        o.append("}")
    o.append("")

    o.append("// ---- Functions ----")
    o.append("")
    o.append("#[link(name = \"gptq\")]")
    o.append("extern \"C\" {")
    for i, f in enumerate(api.functions):
        if i:
            o.append("")
        o += doc(f.doc, "    ")
        o.append(f"    pub fn {f.name}({params(f.params, f.name)}){ret(f.ret, f.name)};")
    o.append("}")
    o.append("")

    # Layout tests: the numbers come from the C compiler at generation time.
    bits = 8 * api.pointer_size
    o += ["/// Sizes, alignments and field offsets as the C compiler reported them when",
          f"/// this file was generated (on a {bits}-bit target).",
          f"#[cfg(all(test, target_pointer_width = \"{bits}\"))]",
          "mod layout_tests {",
          "    use super::*;",
          "    use ::core::mem::{align_of, size_of, MaybeUninit};",
          "",
          "    fn size_of_pointee<T>(_: *const T) -> usize {",
          "        size_of::<T>()",
          "    }"]
    for s in api.structs:
        o += ["",
              "    #[test]",
              f"    fn layout_{s.name}() {{",
              f"        assert_eq!(size_of::<{s.name}>(), {s.size}, \"sizeof({s.name})\");",
              f"        assert_eq!(align_of::<{s.name}>(), {s.align}, \"alignof({s.name})\");",
              f"        let v = MaybeUninit::<{s.name}>::uninit();",
              "        let base = v.as_ptr() as usize;"]
        for f in s.fields:
            fld = f"::core::ptr::addr_of!((*v.as_ptr()).{ident(f.name)})"
            o.append(f"        assert_eq!(unsafe {{ {fld} }} as usize - base, {f.offset}, "
                     f"\"offsetof({s.name}, {f.name})\");")
            o.append(f"        assert_eq!(size_of_pointee(unsafe {{ {fld} }}), {f.size}, "
                     f"\"sizeof({s.name}.{f.name})\");")
        o.append("    }")
    o += ["",
          "    #[test]",
          "    fn layout_enums() {"]
    for e in api.enums:
        o.append(f"        assert_eq!(size_of::<{e.name}>(), {e.size}, \"sizeof({e.name})\");")
    o += ["    }", "}", ""]
    return "\n".join(o)


def cargo_toml(api: Api) -> str:
    major, minor, patch = api.version
    return f"""# {BANNER}
[package]
name = "gptq-sys"
version = "{major}.{minor}.{patch}"
edition = "2021"
rust-version = "1.56"
links = "gptq"
build = "build.rs"
description = "Raw FFI declarations of libgptq (GPTQ quantization), generated from include/gptq.h"
license = "MIT"
publish = false

[lib]
path = "src/lib.rs"

[dependencies]
"""


BUILD_RS = f"""// {BANNER}
//
// Tells cargo where libgptq is: the directory in $GPTQ_LIB_DIR if set (e.g. a
// Meson build directory), else whatever `pkg-config --libs-only-L gptq` says
// ($PKG_CONFIG overrides the command; PKG_CONFIG_PATH=<builddir>/meson-uninstalled
// finds an uninstalled build), else the linker's default search path.
// At run time the dynamic loader must find libgptq.so too (install it, or set
// LD_LIBRARY_PATH / DYLD_LIBRARY_PATH / PATH).

use std::env;
use std::process::Command;

fn main() {{
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GPTQ_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    if let Some(dir) = env::var_os("GPTQ_LIB_DIR") {{
        println!("cargo:rustc-link-search=native={{}}", dir.to_string_lossy());
    }} else {{
        let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
        match Command::new(&pkg_config).args(["--libs-only-L", "gptq"]).output() {{
            Ok(out) if out.status.success() => {{
                for flag in String::from_utf8_lossy(&out.stdout).split_whitespace() {{
                    if let Some(dir) = flag.strip_prefix("-L") {{
                        println!("cargo:rustc-link-search=native={{}}", dir);
                    }}
                }}
            }}
            _ => println!(
                "cargo:warning=gptq-sys: GPTQ_LIB_DIR is not set and `{{}} --libs-only-L gptq` \\
                 failed; relying on the linker's default search path",
                pkg_config
            ),
        }}
    }}
    println!("cargo:rustc-link-lib=dylib=gptq");
}}
"""


def emit(api: Api) -> Dict[str, str]:
    return {
        f"{CRATE_DIR}/src/lib.rs": lib_rs(api),
        f"{CRATE_DIR}/Cargo.toml": cargo_toml(api),
        f"{CRATE_DIR}/build.rs": BUILD_RS,
    }
