#!/usr/bin/env python3
"""Whole-model quality of libgptq's `gptq` tool against the reference GPTQ.

Runs the reference implementation (IST-DASLab/gptq: gptq.py + quant.py,
PyTorch on the CPU, float32) over a LLaMA-family Hugging Face model with
transformers, the way the reference's llama.py drives it (true-sequential
groups q/k/v, o, gate/up, down; each group's inputs taken through the block's
already-quantized layers; fasterquant(blocksize=128, percdamp=.01, ...)), on
exactly the calibration windows `gptq quantize` uses (the same tokenizer and
the same window rule), then prints the perplexity with the same windows as
`gptq eval`. Put its number next to `gptq eval`'s GPTQ row for the same
settings: equal settings should give equal quality.

The reference is not part of this repository. To rerun:
  python3 -m venv V && V/bin/pip install numpy torch transformers
  # fetch IST-DASLab/gptq (gptq.py, quant.py) into some directory REF
  V/bin/python bench/reference_model_ppl.py --ref REF --model build/smollm2 \\
      --calib /usr/share/doc/gnu-standards/maintain.text.gz \\
      --text /usr/share/doc/gnu-standards/standards.text.gz \\
      --samples 32 --seqlen 512 --bits 4 --group 128 --act-order --max-tokens 8192
(gptq.py calls torch.cuda.synchronize(), stubbed here to run without a GPU.)
"""
import argparse
import gzip
import math
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", required=True, help="directory holding gptq.py and quant.py")
    p.add_argument("--model", required=True, help="Hugging Face model directory")
    p.add_argument("--calib", required=True, help="calibration text (.gz allowed)")
    p.add_argument("--text", required=True, help="evaluation text (.gz allowed)")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--seqlen", type=int, default=512)
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--group", type=int, default=128)
    p.add_argument("--asym", action="store_true")
    p.add_argument("--act-order", action="store_true")
    p.add_argument("--ctx", type=int, default=512)
    p.add_argument("--max-tokens", type=int, default=8192)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def read_text(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read()


def windows(stream, count, length):
    """The window rule of the tool's cut_windows (tools/gptq/formats/token_data.cpp)."""
    n = len(stream)
    if n <= length:
        return [stream]
    k = min(count, n // length)
    return [stream[w * n // k: w * n // k + length] for w in range(k)]


def main():
    a = parse_args()
    sys.path.insert(0, a.ref)
    import torch
    torch.set_num_threads(a.threads)
    torch.cuda.synchronize = lambda *args, **kw: None
    import transformers
    from gptq import GPTQ
    from quant import Quantizer

    tok = transformers.AutoTokenizer.from_pretrained(a.model)
    model = transformers.AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    model.eval()
    calib = windows(tok(read_text(a.calib), add_special_tokens=False)["input_ids"],
                    a.samples, a.seqlen)
    stream = tok(read_text(a.text), add_special_tokens=False)["input_ids"][:a.max_tokens]
    print(f"calibration: {len(calib)} sequences; eval: {len(stream)} tokens", flush=True)

    t0 = time.time()
    inner = model.model
    groups = [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
              ["self_attn.o_proj"], ["mlp.gate_proj", "mlp.up_proj"], ["mlp.down_proj"]]
    with torch.no_grad():
        hs = [inner.embed_tokens(torch.tensor([s])) for s in calib]
        pos = [torch.arange(len(s)).unsqueeze(0) for s in calib]
        rope = [inner.rotary_emb(h, p) for h, p in zip(hs, pos)]
        for layer in inner.layers:
            mods = dict(layer.named_modules())
            for names in groups:
                g = {n: GPTQ(mods[n]) for n in names}
                for n in names:
                    g[n].quantizer = Quantizer()
                    g[n].quantizer.configure(a.bits, perchannel=True, sym=not a.asym, mse=False)
                hooks = [mods[n].register_forward_hook(
                    (lambda name: lambda m, i, o: g[name].add_batch(i[0].data, o.data))(n))
                    for n in names]
                for h, p, r in zip(hs, pos, rope):
                    layer(h, position_ids=p, position_embeddings=r)
                for hook in hooks:
                    hook.remove()
                for n in names:
                    g[n].fasterquant(blocksize=128, percdamp=.01, groupsize=a.group,
                                     actorder=a.act_order)
                    g[n].free()
            hs = [layer(h, position_ids=p, position_embeddings=r)
                  for h, p, r in zip(hs, pos, rope)]
            hs = [h[0] if isinstance(h, tuple) else h for h in hs]
    t_quant = time.time() - t0

    t0 = time.time()
    nll, count = 0.0, 0
    with torch.no_grad():
        for begin in range(0, len(stream), a.ctx):
            ids = stream[begin:begin + a.ctx]
            if len(ids) < 2:
                break
            logits = model(torch.tensor([ids])).logits[0].double()
            lp = torch.log_softmax(logits[:-1], dim=-1)
            tgt = torch.tensor(ids[1:])
            nll -= lp.gather(1, tgt.unsqueeze(1)).sum().item()
            count += len(ids) - 1
    print(f"reference GPTQ {a.bits}-bit group {a.group}{' act-order' if a.act_order else ''}: "
          f"perplexity {math.exp(nll / count):.4f} over {count} tokens "
          f"(quantize {t_quant:.0f} s, eval {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
