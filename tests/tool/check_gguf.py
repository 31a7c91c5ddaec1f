"""Reads a GGUF file written by `gptq quantize --format gguf` with the gguf
package (PyPI) and checks it against the model it came from:

  - the metadata llama.cpp needs is there and says what the model's
    config.json says;
  - every tensor is present under llama.cpp's name with the intended shape
    and type: llama.cpp's per-tensor rules for the file type, written out
    again here from llama-quant.cpp (the _M mixes' Q6_K attn_v and
    ffn_down on the layers use_more_bits picks, the output role Q6_K, or
    Q8_0 in a Q8_0 file, K-quant tensors whose width is not a multiple of
    256 falling back to Q5_0, Q5_1 or Q8_0), norms and biases F32;
    general.file_type is llama.cpp's llama_ftype for the type;
  - the gguf package's numpy dequantization of every tensor equals ours
    (dump_gguf's files) bit for bit;
  - each linear layer, with llama.cpp's q/k row permutation undone, is close
    to the model's float weights (a wrong name or permutation is not).

  check_gguf.py FILE.gguf DUMP_DIR MODEL_DIR TYPE
"""
import json
import struct
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

path, dump_dir, model_dir, want_type = sys.argv[1:5]
config = json.load(open(f"{model_dir}/config.json"))
reader = GGUFReader(path)
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


def value(key):
    field = reader.fields.get(key)
    return None if field is None else field.contents()


arch = "qwen2" if config["model_type"] == "qwen2" else "llama"
check(value("general.architecture") == arch, f"general.architecture {value('general.architecture')}")
heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
head_dim = config.get("head_dim") or config["hidden_size"] // heads
for key, expected in [
    ("block_count", config["num_hidden_layers"]),
    ("context_length", config["max_position_embeddings"]),
    ("embedding_length", config["hidden_size"]),
    ("feed_forward_length", config["intermediate_size"]),
    ("attention.head_count", heads),
    ("attention.head_count_kv", kv_heads),
    ("rope.dimension_count", head_dim),
    ("vocab_size", config["vocab_size"]),
]:
    check(value(f"{arch}.{key}") == expected, f"{arch}.{key} = {value(f'{arch}.{key}')}, not {expected}")
check(abs(value(f"{arch}.rope.freq_base") - config.get("rope_theta", 10000.0)) < 1e-3, "rope.freq_base")
check(abs(value(f"{arch}.attention.layer_norm_rms_epsilon") - config["rms_norm_eps"]) < 1e-9, "rms eps")
check(value("tokenizer.ggml.model") == "gpt2", "tokenizer.ggml.model")
check(len(value("tokenizer.ggml.tokens")) == config["vocab_size"], "token count")
check(len(value("tokenizer.ggml.token_type")) == config["vocab_size"], "token type count")
check(len(value("tokenizer.ggml.merges")) > 0, "merges")
for key in ["tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
            "tokenizer.chat_template", "general.file_type"]:
    check(value(key) is not None, f"{key} missing")
file_types = {"Q4_0": 2, "Q4_1": 3, "Q5_0": 8, "Q5_1": 9, "Q8_0": 7, "Q4_K": 15, "Q5_K": 17,
              "Q6_K": 18, "Q4_K_M": 15, "Q5_K_M": 17}
check(value("general.file_type") == file_types[want_type],
      f"general.file_type {value('general.file_type')}, not {file_types[want_type]}")

# The model's float weights (safetensors: 8-byte header length, JSON, data).
with open(f"{model_dir}/model.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    blob = f.read()


def original(name):
    info = header[name]
    start, end = info["data_offsets"]
    assert info["dtype"] == "F32"
    return np.frombuffer(blob[start:end], dtype=np.float32).reshape(info["shape"])


slots = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
         "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
         "ffn_down": "mlp.down_proj"}
expected = {"token_embd.weight", "output_norm.weight"}
if not config.get("tie_word_embeddings", False):
    expected.add("output.weight")
for b in range(config["num_hidden_layers"]):
    expected |= {f"blk.{b}.attn_norm.weight", f"blk.{b}.ffn_norm.weight"}
    expected |= {f"blk.{b}.{s}.weight" for s in slots}
    if arch == "qwen2":
        expected |= {f"blk.{b}.attn_{x}.bias" for x in "qkv"}
names = {t.name for t in reader.tensors}
check(names == expected, f"tensor names: missing {expected - names}, unexpected {names - expected}")


def unpermute(w, n_head):
    # llama.cpp's rows (pairs adjacent) back to Hugging Face's (halves).
    return w.reshape(n_head, head_dim // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


base_type = {"Q4_K_M": "Q4_K", "Q5_K_M": "Q5_K"}.get(want_type, want_type)
n_layers = config["num_hidden_layers"]


def fallback(t, width):
    if t in ("Q4_K", "Q5_K", "Q6_K") and width % 256 != 0:
        return {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}[t]
    return t


def more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def expected_type(name, width):
    if name == "output.weight" or (name == "token_embd.weight" and config.get("tie_word_embeddings")):
        return "Q8_0" if base_type == "Q8_0" else fallback("Q6_K", width)
    t = base_type
    if want_type.endswith("_M") and name.split(".")[-2] in ("attn_v", "ffn_down") \
            and more_bits(int(name.split(".")[1]), n_layers):
        t = "Q6_K"
    return fallback(t, width)


for t in reader.tensors:
    shape = [int(x) for x in t.shape]
    ours = np.fromfile(f"{dump_dir}/{t.name}.f32", dtype=np.float32)
    theirs = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
    check(ours.shape == theirs.shape and np.array_equal(ours.view(np.uint32), theirs.view(np.uint32)),
          f"{t.name}: the gguf package's dequantization differs from ours")
    kind = t.name.split(".")[-2]
    if t.name.endswith(".bias") or "norm" in t.name:
        check(t.tensor_type.name == "F32", f"{t.name} is {t.tensor_type.name}, not F32")
        continue
    want = expected_type(t.name, shape[0])
    check(t.tensor_type.name == want, f"{t.name} is {t.tensor_type.name}, not {want}")
    if kind in slots:
        b = int(t.name.split(".")[1])
        w = original(f"model.layers.{b}.{slots[kind]}.weight")
        check(shape == [w.shape[1], w.shape[0]], f"{t.name} shape {shape}")
        q = theirs.reshape(w.shape)
        if arch == "llama" and kind in ("attn_q", "attn_k"):
            q = unpermute(q, heads if kind == "attn_q" else kv_heads)
        err = np.linalg.norm(q - w) / np.linalg.norm(w)
        check(err < 0.25, f"{t.name}: relative error {err:.3f} against the float weights")

if failures:
    print("\n".join("FAIL: " + f for f in failures))
    sys.exit(1)
print(f"ok: {path}: {len(reader.tensors)} tensors, metadata, bit-identical dequantization")
