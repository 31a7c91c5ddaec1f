#!/usr/bin/env python3
"""Make the config.json fixtures of tests/tool/test_model_config.cpp.

The gptq tool reads a model's config.json itself (tools/gptq/model/model_config.cpp)
and computes RoPE itself (tools/gptq/model/rope.cpp). Both must mean what
transformers means, whichever major version wrote the file: transformers 4
writes a top-level "rope_theta" and "rope_scaling", transformers 5 a
"rope_parameters" object (and "layer_types" for Qwen2). This script is the
reference side. For each case below (a LLaMA, Mistral, Qwen2, Phi-3 or
Gemma 2 model of a real model's shape and RoPE) it writes

    tf4/<case>.json   the config as transformers 4 saves it
    tf5/<case>.json   the config as transformers 5 saves it
    expected.json     (transformers 5 run only) per case: RoPE's inverse
                      frequencies and attention factor as transformers 5's
                      own functions compute them (modeling_rope_utils), and
                      for dynamic scaling the same past max_position_embeddings

Configs are written as save_pretrained writes them (to_json_string with
use_diff=True: keys at their class default are left out, so the tool must
apply transformers' defaults itself).

transformers needs no torch for configs. Its RoPE functions do use torch;
they are run here on a small numpy stand-in for the few tensor operations
they use (arange, where, clamp, float32 arithmetic), so the numbers come
from transformers' own code, not from a transcription.

Rerun (from anywhere):

    python3 -m venv /tmp/tf4 && /tmp/tf4/bin/pip install "transformers==4.57.6" numpy
    python3 -m venv /tmp/tf5 && /tmp/tf5/bin/pip install "transformers==5.23.0" numpy
    /tmp/tf4/bin/python tests/tool/data/configs/make_fixtures.py
    /tmp/tf5/bin/python tests/tool/data/configs/make_fixtures.py

The committed files were made with transformers 4.57.6 and 5.23.0 and
numpy 2 (Python 3.11).
"""
import json
import os
import sys

import numpy as np
import transformers
from transformers import Gemma2Config, LlamaConfig, MistralConfig, Phi3Config, Qwen2Config

HERE = os.path.dirname(os.path.abspath(__file__))

LLAMA, MISTRAL, QWEN2 = "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"
PHI3, GEMMA2 = "Phi3ForCausalLM", "Gemma2ForCausalLM"
CLASSES = {LLAMA: LlamaConfig, MISTRAL: MistralConfig, QWEN2: Qwen2Config, PHI3: Phi3Config,
           GEMMA2: Gemma2Config}

# Each case: the architecture and the keyword arguments of the config class,
# as the model's published config.json has them (transformers 4 style).
CASES = {
    # SmolLM2-135M: plain RoPE with a non-default theta, tied embeddings.
    "llama_smollm2": (LLAMA, dict(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192,
        rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True)),
    # Llama-3.2-1B: llama3 scaling.
    "llama_llama3": (LLAMA, dict(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
        num_key_value_heads=8, head_dim=64, vocab_size=128256, max_position_embeddings=131072,
        rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True,
        rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                      "original_max_position_embeddings": 8192, "rope_type": "llama3"})),
    # Linear position interpolation (LongChat-style), old "type" key.
    "llama_linear": (LLAMA, dict(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
        vocab_size=32000, max_position_embeddings=16384, rms_norm_eps=1e-6,
        rope_scaling={"type": "linear", "factor": 8.0})),
    # Dynamic NTK scaling.
    "llama_dynamic": (LLAMA, dict(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
        vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5,
        rope_scaling={"type": "dynamic", "factor": 2.0})),
    # YaRN with mscale / mscale_all_dim and explicit betas (DeepSeek-style).
    "llama_yarn_mscale": (LLAMA, dict(
        hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=16,
        num_key_value_heads=16, vocab_size=32000, max_position_embeddings=163840,
        rope_theta=10000.0, rope_scaling={
            "type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096,
            "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707})),
    # YaRN with an explicit attention factor and no truncation (gpt-oss style).
    "llama_yarn_untruncated": (LLAMA, dict(
        hidden_size=2880, intermediate_size=2880, num_hidden_layers=24, num_attention_heads=64,
        num_key_value_heads=8, head_dim=64, vocab_size=201088, max_position_embeddings=131072,
        rope_theta=150000.0, rope_scaling={
            "rope_type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096,
            "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False, "attention_factor": 1.2})),
    # Mistral-7B-v0.1: a 4096 window (the class default), 8 KV heads (the default).
    "mistral_v01": (MISTRAL, dict(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=32000, max_position_embeddings=32768,
        rms_norm_eps=1e-5, rope_theta=10000.0, sliding_window=4096)),
    # Mistral-7B-v0.3: no window, theta 1e6.
    "mistral_v03": (MISTRAL, dict(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, head_dim=128, vocab_size=32768, max_position_embeddings=32768,
        rms_norm_eps=1e-5, rope_theta=1000000.0, sliding_window=None)),
    # Qwen2.5-0.5B: theta 1e6, tied, a window that is not used.
    "qwen2_5": (QWEN2, dict(
        hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
        rms_norm_eps=1e-6, rope_theta=1000000.0, sliding_window=32768, max_window_layers=21,
        use_sliding_window=False, tie_word_embeddings=True)),
    # Qwen2.5-7B with the YaRN scaling its model card recommends.
    "qwen2_5_yarn": (QWEN2, dict(
        hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, vocab_size=152064, max_position_embeddings=32768,
        rms_norm_eps=1e-6, rope_theta=1000000.0, sliding_window=131072, max_window_layers=28,
        use_sliding_window=False,
        rope_scaling={"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"})),
    # Qwen2 with sliding-window attention from layer 2 of 4.
    "qwen2_window": (QWEN2, dict(
        hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=1000, max_position_embeddings=8192,
        rms_norm_eps=1e-6, rope_theta=10000.0, sliding_window=1024, max_window_layers=2,
        use_sliding_window=True)),
    # Phi-3-mini-4k-instruct: fused qkv/gate_up, a 2047 window on every layer,
    # rms_norm_eps at its class default (1e-5, where LLaMA's is 1e-6).
    "phi3_mini_4k": (PHI3, dict(
        hidden_size=3072, intermediate_size=8192, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=32, vocab_size=32064, max_position_embeddings=4096,
        original_max_position_embeddings=4096, rope_theta=10000.0, rope_scaling=None,
        sliding_window=2047, tie_word_embeddings=False, bos_token_id=1, eos_token_id=32000,
        pad_token_id=32000)),
    # gemma-2-2b: head_dim 256 (not hidden / heads), soft caps, a 4096 window
    # on the even layers, tied embeddings (all class defaults but the shape).
    "gemma2_2b": (GEMMA2, dict(
        hidden_size=2304, intermediate_size=9216, num_hidden_layers=26, num_attention_heads=8,
        num_key_value_heads=4, head_dim=256, vocab_size=256000, max_position_embeddings=8192,
        rms_norm_eps=1e-6, rope_theta=10000.0, query_pre_attn_scalar=256, sliding_window=4096,
        attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
        hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True)),
}


class Tensor(np.ndarray):
    """The torch.Tensor methods transformers' RoPE functions call."""

    def to(self, device=None, dtype=None):
        return self if dtype is None else self.astype(dtype).view(Tensor)

    def float(self):
        return self.astype(np.float32).view(Tensor)


class TorchStandIn:
    int64 = np.int64
    float = np.float32
    float32 = np.float32
    Tensor = Tensor

    @staticmethod
    def arange(*args, dtype=None, device=None):
        return np.arange(*args, dtype=dtype or np.int64).view(Tensor)

    @staticmethod
    def clamp(x, lo, hi):
        return np.clip(x, lo, hi).astype(x.dtype).view(Tensor)

    @staticmethod
    def where(cond, a, b):
        return np.where(cond, a, b).view(Tensor)


def default_inv_freq(base, dim):
    # What each model's RotaryEmbedding.compute_default_rope_parameters does.
    torch = TorchStandIn
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype=torch.float) / dim))


def config_json(arch, kwargs):
    config = CLASSES[arch](**kwargs)
    config.architectures = [arch]
    return json.loads(config.to_json_string(use_diff=True))


def expected(arch, kwargs):
    import transformers.modeling_rope_utils as rope_utils
    rope_utils.torch = TorchStandIn
    config = CLASSES[arch](**kwargs)
    params = config.rope_parameters
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    rope_type = params.get("rope_type", "default")
    out = {"rope_type": rope_type, "rope_theta": params["rope_theta"], "head_dim": head_dim}
    if rope_type == "default":
        inv_freq, attention = default_inv_freq(params["rope_theta"], head_dim), 1.0
    else:
        inv_freq, attention = rope_utils.ROPE_INIT_FUNCTIONS[rope_type](config, None)
    out["inv_freq"] = [float(x) for x in np.asarray(inv_freq, dtype=np.float32)]
    out["attention_factor"] = float(attention)
    if rope_type == "dynamic":
        seq_len = 3 * config.max_position_embeddings
        grown, _ = rope_utils.ROPE_INIT_FUNCTIONS[rope_type](config, None, seq_len=seq_len)
        out["grown"] = {"seq_len": seq_len,
                        "inv_freq": [float(x) for x in np.asarray(grown, dtype=np.float32)]}
    return out


def main():
    major = int(transformers.__version__.split(".")[0])
    if major not in (4, 5):
        sys.exit("run with transformers 4 and then 5")
    folder = os.path.join(HERE, "tf%d" % major)
    os.makedirs(folder, exist_ok=True)
    for name, (arch, kwargs) in CASES.items():
        with open(os.path.join(folder, name + ".json"), "w") as f:
            json.dump(config_json(arch, dict(kwargs)), f, indent=2, sort_keys=True)
            f.write("\n")
    if major == 5:
        cases = {name: expected(arch, dict(kwargs)) for name, (arch, kwargs) in CASES.items()}
        with open(os.path.join(HERE, "expected.json"), "w") as f:
            json.dump({"transformers": transformers.__version__, "cases": cases}, f, indent=1,
                      sort_keys=True)
            f.write("\n")
    print("wrote", folder)


if __name__ == "__main__":
    main()
