#!/usr/bin/env python3
"""Checks that the size-prefixed option structs only grew at the end.

gptq_config, gptq_quant_stats, gptq_import_options and gptq_matmul_options
begin with `size_t struct_size`; the library reads and writes only as many
bytes as the caller's struct has, so fields appended at the end are
compatible. check_abi.sh therefore tells abidiff to accept their growth
(size_prefixed_structs.abignore), but such a suppression hides every change
inside the struct, a retyped field or a changed enum or callback type among
them. This script closes that hole: each baseline field must still be there
with the same name, offset and type, the type compared structurally
(typedef targets, callback signatures, nested structs), and every enumerator
it reaches must keep its value (enumerators may be appended).

    check_appended_fields.py baseline.abi current.abi

Exit status 0 when every struct only grew at the end, 1 otherwise (each
difference printed).
"""
import sys
import xml.etree.ElementTree as ET

SIZE_PREFIXED = ("gptq_config", "gptq_quant_stats", "gptq_import_options", "gptq_matmul_options")


class Corpus:
    def __init__(self, path):
        self.by_id = {}
        self.structs = {}
        self.enums = {}  # filled by describe(): the enums the structs' fields reach
        for el in ET.parse(path).getroot().iter():
            type_id = el.get("id")
            if type_id is not None:
                self.by_id[type_id] = el
            # A declaration-only copy of a struct may come first; keep the definition.
            if el.tag == "class-decl" and el.get("name") in SIZE_PREFIXED \
                    and el.get("is-declaration-only") != "yes":
                self.structs[el.get("name")] = el

    def describe(self, type_id, seen=()):
        """A string that changes whenever the type's ABI changes."""
        el = self.by_id.get(type_id)
        if el is None:
            return "?" + type_id
        tag, name = el.tag, el.get("name", "")
        if tag == "type-decl":
            return "%s:%s" % (name, el.get("size-in-bits"))
        if tag == "typedef-decl":
            return "typedef %s=%s" % (name, self.describe(el.get("type-id"), seen))
        if tag == "pointer-type-def" or tag == "reference-type-def":
            return "*" + self.describe(el.get("type-id"), seen)
        if tag == "qualified-type-def":
            quals = [q for q in ("const", "volatile", "restrict") if el.get(q) == "yes"]
            return " ".join(quals + [self.describe(el.get("type-id"), seen)])
        if tag == "array-type-def":
            return "%s[%s]" % (self.describe(el.get("type-id"), seen), el.get("size-in-bits"))
        if tag == "enum-decl":
            # Enumerators may be appended: they are compared apart (enums_grew).
            self.enums[name] = {e.get("name"): e.get("value") for e in el.iter("enumerator")}
            under = el.find("underlying-type")
            base = self.describe(under.get("type-id"), seen) if under is not None else ""
            return "enum %s:%s" % (name, base)
        if tag == "function-type":
            params = [self.describe(p.get("type-id"), seen) if p.get("type-id") else "..."
                      for p in el.findall("parameter")]
            ret = el.find("return")
            return "fn(%s)->%s" % (",".join(params), self.describe(ret.get("type-id"), seen))
        if tag in ("class-decl", "union-decl"):
            if name in seen or el.get("is-declaration-only") == "yes":
                return "%s %s" % (tag, name)
            return "%s %s:%s{%s}" % (tag, name, el.get("size-in-bits"),
                                     ";".join(self.fields(el, seen + (name,))))
        return "%s %s" % (tag, name)

    def fields(self, struct, seen=()):
        out = []
        for member in struct.findall("data-member"):
            var = member.find("var-decl")
            out.append("%s@%s:%s" % (var.get("name"), member.get("layout-offset-in-bits"),
                                     self.describe(var.get("type-id"), seen)))
        return out


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    old, new = Corpus(argv[1]), Corpus(argv[2])
    ok = True
    for name in SIZE_PREFIXED:
        if name not in old.structs:
            continue  # not in the baseline: abidiff judges it
        if name not in new.structs:
            print("check_appended_fields: %s: no longer in the library's ABI" % name)
            ok = False
            continue
        before = old.fields(old.structs[name], (name,))
        after = new.fields(new.structs[name], (name,))
        for i, field in enumerate(before):
            if i >= len(after) or after[i] != field:
                print("check_appended_fields: %s: field %d was %s, is now %s"
                      % (name, i, field, after[i] if i < len(after) else "gone"))
                ok = False
                break
    for name, values in old.enums.items():
        now = new.enums.get(name, {})
        changed = [k for k, v in values.items() if now.get(k) != v]
        if changed:
            print("check_appended_fields: enum %s: %s removed or renumbered" % (name, ", ".join(changed)))
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
