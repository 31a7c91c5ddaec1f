#!/usr/bin/env python3
"""Writes the fuzz harnesses' seed corpora (corpus/<harness>/).

Small valid inputs of each kind, so that libFuzzer starts past the first
checks: the test fixtures trimmed to a few hundred entries (tokenizers), the
test configs as they are (model configs), hand-made safetensors files,
quantization_configs with dynamic rules, and qtensor_import inputs whose
buffers hold plausible codes and finite scales. Rerun after changing a
fixture: python3 tests/fuzz/make_seeds.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tool", "data")


def out(harness, name, data):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def seeds_safetensors():
    f32 = struct.pack("<6f", 1, -2, 0.5, 3e38, -0.0, 1e-45)
    out("fuzz_safetensors", "f32", safetensors([("w", "F32", [2, 3], f32)], {"format": "pt"}))
    out("fuzz_safetensors", "mixed", safetensors([
        ("a.weight", "F16", [2, 2], struct.pack("<4H", 0x3C00, 0x7C00, 0x8001, 0x7E00)),
        ("b.weight", "BF16", [3], struct.pack("<3H", 0x3F80, 0xFF80, 0x0001)),
        ("c.qweight", "I32", [1, 2], struct.pack("<2i", -1, 7)),
        ("d", "U8", [0], b""),
        ("e", "F64", [], struct.pack("<d", 2.5)),
    ]))
    out("fuzz_safetensors", "empty", safetensors([]))


def trimmed_tokenizer(path, keep):
    d = json.load(open(path, encoding="utf-8"))
    m = d["model"]
    if m.get("type") == "BPE":
        vocab = dict(list(m["vocab"].items())[:keep])
        m["vocab"] = vocab
        merges = []
        for merge in m["merges"]:
            a, b = merge.split(" ", 1) if isinstance(merge, str) else merge
            if a in vocab and b in vocab and a + b in vocab:
                merges.append(merge)
        m["merges"] = merges
    d["added_tokens"] = [t for t in d["added_tokens"] if t["id"] < keep + 8][:4]
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"))


def seeds_tokenizer():
    for name in ("gpt2", "metaspace", "llama3", "spm"):
        text = trimmed_tokenizer(os.path.join(DATA, "tokenizer", name + ".json"), 300)
        out("fuzz_tokenizer", name, text)
        out("fuzz_tokenizer", name + "_text", text + "\0" + " Hello wörld\n\n<|endoftext|> it's 42")


def seeds_model_config():
    for sub in ("tf4", "tf5"):
        d = os.path.join(DATA, "configs", sub)
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), "rb") as f:
                out("fuzz_model_config", sub + "_" + name, f.read())


def seeds_quant_config():
    base = {"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True, "desc_act": False,
            "checkpoint_format": "gptq"}
    out("fuzz_quant_config", "plain", json.dumps({"quantization_config": base}))
    dyn = dict(base, checkpoint_format="gptq_v2", lm_head=False, damp_percent=0.05, dynamic={
        r"+:.*\.(q|k)_proj": {"bits": 8, "group_size": 64},
        r"-:model\.layers\.1[0-9]\..*": {},
        r"model\.layers\.[0-3]\.mlp\..*": {"bits": 3, "sym": False, "desc_act": True},
    })
    out("fuzz_quant_config", "dynamic", json.dumps({"quantization_config": dyn}))
    out("fuzz_quant_config", "static", json.dumps({"quantization_config": dict(
        base, desc_act=True, static_groups=True, group_size=-1)}))


def seeds_qtensor_import():
    # header: bits-2, group pick, out pick, in pick, format, g_idx mode, seed (2)
    def one(bits_pick, group_pick, out_pick, in_pick, fmt, gmode, words):
        head = bytes([bits_pick, group_pick, out_pick, in_pick, fmt, gmode, 0x5A, 0xA5])
        return head + b"".join(struct.pack("<I", w) for w in words)
    codes = [0x76543210, 0xFEDCBA98, 0x88888888, 0x12345678] * 16
    zeros = [0x77777777] * 8
    scales = [0x211F211F] * 16  # f16 0.01
    out("fuzz_qtensor_import", "4bit_g32_v1", one(2, 1, 0, 1, 0, 0, codes + zeros + scales))
    out("fuzz_qtensor_import", "4bit_g32_v2_gidx", one(2, 1, 0, 1, 1, 1, codes + zeros + scales + list(range(64))))
    out("fuzz_qtensor_import", "3bit_one_group", one(1, 0, 0, 0, 1, 0, codes[:12] + zeros[:3] + scales[:16]))
    out("fuzz_qtensor_import", "8bit_g16", one(6, 4, 1, 2, 0, 2, codes * 3 + zeros + scales * 4))


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(kvs, tensors, alignment=32):
    """A GGUF v3 file: kvs [(key, type, packed value)], tensors [(name, ne, type, raw)]."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, vtype, value in kvs:
        head += gguf_string(key) + struct.pack("<I", vtype) + value
    offset, blobs = 0, b""
    for name, ne, gtype, raw in tensors:
        head += gguf_string(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        head += struct.pack("<IQ", gtype, offset)
        pad = -len(raw) % alignment
        blobs += raw + b"\0" * pad
        offset += len(raw) + pad
    head += b"\0" * (-len(head) % alignment)
    return head + blobs


def seeds_gguf():
    kvs = [("general.architecture", 8, gguf_string("llama")),
           ("general.alignment", 4, struct.pack("<I", 32)),
           ("llama.block_count", 4, struct.pack("<I", 1)),
           ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + gguf_string("a") + gguf_string("b"))]
    f32 = struct.pack("<4f", 1, -2, 0.5, 0)
    q8_0 = struct.pack("<H", 0x2C00) + bytes((i - 16) & 0xFF for i in range(32))  # d = 1/16
    q4_0 = struct.pack("<H", 0x3C00) + bytes([0x98, 0x7A] * 8)             # d = 1, 32 nibbles
    out("fuzz_gguf", "f32_q8_q4", gguf(kvs, [("token_embd.weight", [2, 2], 0, f32),
                                             ("blk.0.attn_q.weight", [32, 1], 8, q8_0),
                                             ("blk.0.attn_k.weight", [32, 1], 2, q4_0)]))
    out("fuzz_gguf", "metadata_only", gguf(kvs, []))
    # K-quants, one 256-column block each: Q4_K (d, dmin, scales[12],
    # qs[128]), Q5_K (with qh[32]) and Q6_K (ql[128], qh[64], scales[16], d).
    q4_k = struct.pack("<HH", 0x2C00, 0x2800) + bytes([0x21] * 12) + bytes(range(128))
    q5_k = struct.pack("<HH", 0x2C00, 0x2800) + bytes([0x21] * 12) + bytes([0xA5] * 32) + bytes(range(128))
    q6_k = bytes(range(128)) + bytes([0x1B] * 64) + bytes([3, 0xFD] * 8) + struct.pack("<H", 0x2000)
    out("fuzz_gguf", "k_quants", gguf(kvs, [("blk.0.attn_q.weight", [256, 1], 12, q4_k),
                                            ("blk.0.attn_k.weight", [256, 1], 13, q5_k),
                                            ("blk.0.attn_v.weight", [256, 1], 14, q6_k)]))


def seeds_calib_records():
    out("fuzz_calib_records", "jsonl", '{"text": "The GNU coding standards."}\n\n'
        '{"text": "second", "id": 3}\n"a bare string"\n')
    out("fuzz_calib_records", "array", '[{"text": "one"}, "two", {"messages": '
        '[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]')
    out("fuzz_calib_records", "chat_jsonl", '{"messages": [{"role": "system", "content": "s"}, '
        '{"role": "user", "content": "u"}]}\n')


if __name__ == "__main__":
    seeds_safetensors()
    seeds_tokenizer()
    seeds_model_config()
    seeds_quant_config()
    seeds_qtensor_import()
    seeds_gguf()
    seeds_calib_records()
