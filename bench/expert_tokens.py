#!/usr/bin/env python3
"""How many calibration tokens an expert needs before GPTQ beats round-to-nearest.

A mixture-of-experts layer is calibrated only on the tokens routed to it,
and a rarely chosen expert may see a handful. GPTQ fits its Hessian: with
fewer tokens than input columns the Hessian is singular (damping makes it
invertible) and the error feedback can fit those tokens at the expense of
the inputs the expert meets later. This measures that on a synthetic layer
with activation-like inputs (a power-law spectrum and a few outlier
channels, the shape LLM hidden states have): for n calibration tokens,
GPTQ's output error ||X(W - Q)^T||^2 on held-out inputs from the same
distribution, over round-to-nearest's on the same inputs. The smallest n
where GPTQ is reliably better, as a fraction of the input width, gives the
default of `gptq quantize --expert-min-share` (bench/RESULTS.md).

    GPTQ_LIBRARY=build/libgptq.so PYTHONPATH=bindings/python \\
        python3 bench/expert_tokens.py [--in 1024] [--out 512] [--bits 4] [--seeds 3]
"""
import argparse

import numpy as np

import gptq


def activations(rng, n, basis, scales, outliers):
    x = (rng.standard_normal((n, basis.shape[0])) * scales) @ basis
    x[:, outliers] *= 20.0
    return x.astype(np.float32)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--in", dest="k", type=int, default=1024)
    p.add_argument("--out", dest="n", type=int, default=512)
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--group", type=int, default=128)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--heldout", type=int, default=4096)
    a = p.parse_args()
    counts = [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    ratios = {c: [] for c in counts}
    for seed in range(a.seeds):
        rng = np.random.default_rng(seed)
        basis, _ = np.linalg.qr(rng.standard_normal((a.k, a.k)))
        scales = 1.0 / np.arange(1, a.k + 1) ** 0.5
        outliers = rng.choice(a.k, size=max(1, a.k // 256), replace=False)
        w = (rng.standard_normal((a.n, a.k)) / np.sqrt(a.k)).astype(np.float32)
        test = activations(rng, a.heldout, basis, scales, outliers)
        cfg = gptq.Config(bits=a.bits, group_size=a.group)
        with gptq.Context(a.n, a.k, cfg) as ctx:
            ctx.add_batch(np.eye(a.k, dtype=np.float32))  # identity Hessian: RTN
            q_rtn, _ = ctx.quantize(w)
        with q_rtn:
            rtn_err = float(np.sum((test @ (w - q_rtn.dequantize()).T) ** 2))
        for c in counts:
            calib = activations(rng, c, basis, scales, outliers)
            with gptq.Context(a.n, a.k, cfg) as ctx:
                ctx.add_batch(calib)
                q, _ = ctx.quantize(w)
            with q:
                err = float(np.sum((test @ (w - q.dequantize()).T) ** 2))
            ratios[c].append(err / rtn_err)
    print(f"in {a.k}, out {a.n}, {a.bits}-bit, group {a.group}, {a.seeds} seeds, "
          f"{a.heldout} held-out tokens")
    print("tokens  tokens/in  GPTQ/RTN held-out error (mean, min..max)")
    for c in counts:
        r = np.array(ratios[c])
        print(f"{c:6d}  {c / a.k:9.4f}  {r.mean():.3f}  ({r.min():.3f}..{r.max():.3f})")


if __name__ == "__main__":
    main()
