#!/usr/bin/env python3
"""Quantize one synthetic linear layer with libgptq from Python, compare GPTQ
with round-to-nearest (RTN) on held-out tokens, export the GPTQ checkpoint
tensors, load them back, and run the quantized matmul.

    GPTQ_LIBRARY=build/libgptq.so PYTHONPATH=bindings/python \\
        python3 bindings/python/examples/quantize.py [--out N] [--in N] [--bits B] ...

Needs numpy. Everything is generated from fixed seeds.
"""

import argparse
import sys
import time

import numpy as np

import gptq


def layer_data(out_features, in_features, tokens, heldout, seed=0):
    """Weights with rare outliers; activations with correlated channels, a
    per-channel scale spread and a few large outlier channels, like the
    inputs of a transformer's linear layers."""
    rng = np.random.default_rng(seed)
    w = 0.02 * rng.standard_normal((out_features, in_features))
    outliers = rng.random(w.shape) < 1e-3
    w[outliers] *= rng.uniform(5, 10, outliers.sum())
    rank = min(64, max(8, in_features // 16))
    mix = rng.standard_normal((rank, in_features)) / np.sqrt(rank)
    scale = np.exp(0.5 * rng.standard_normal(in_features))
    offset = 0.1 * rng.standard_normal(in_features)
    hot = rng.choice(in_features, size=max(1, in_features // 200), replace=False)

    def tokens_of(n):
        x = rng.standard_normal((n, rank)) @ mix + rng.standard_normal((n, in_features))
        x = (x + offset) * scale
        x[:, hot] = np.abs(x[:, hot]) * 30
        return (x * rng.uniform(0.5, 1.5, (n, 1))).astype(np.float32)

    return w.astype(np.float32), tokens_of(tokens), tokens_of(heldout)


def output_error(q, x, w):
    """‖x·Wᵀ − x·Qᵀ‖² / ‖x·Wᵀ‖², with the library's own quantized matmul."""
    ref = x.astype(np.float64) @ w.astype(np.float64).T
    return float(np.sum((q.matmul(x).astype(np.float64) - ref) ** 2) / np.sum(ref ** 2))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=int, default=1024, help="out_features (default 1024)")
    p.add_argument("--in", dest="in_", type=int, default=1024, help="in_features (default 1024)")
    p.add_argument("--tokens", type=int, default=2048, help="calibration tokens (default 2048)")
    p.add_argument("--batches", type=int, default=8, help="add_batch calls (default 8)")
    p.add_argument("--heldout", type=int, default=256, help="evaluation tokens (default 256)")
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--group", type=int, default=128, help="group size, -1 for one group")
    p.add_argument("--act-order", action="store_true")
    p.add_argument("--asym", action="store_true")
    p.add_argument("--save", metavar="FILE.npz", help="write the checkpoint tensors here")
    args = p.parse_args(argv)

    print("libgptq %s (Python package %s)" % (gptq.version(), gptq.__version__))
    w, calib, heldout = layer_data(args.out, args.in_, args.tokens, args.heldout)
    config = gptq.Config(bits=args.bits, group_size=args.group, act_order=args.act_order,
                         sym=not args.asym)

    last = [0.0]

    def progress(done, total):  # return False to cancel
        now = time.monotonic()
        if now - last[0] > 0.5 or done == total:
            last[0] = now
            print("  quantize: %d / %d columns" % (done, total), file=sys.stderr)
        return True

    def log(level, message):
        print("  [%s] %s" % (level.name.rsplit("_", 1)[-1].lower(), message), file=sys.stderr)

    try:
        with gptq.Context(args.out, args.in_, config, progress=progress, log=log) as ctx:
            for batch in np.array_split(calib, args.batches):
                ctx.add_batch(batch)
            q, stats = ctx.quantize(w)
            # Round-to-nearest for comparison: GPTQ with H = I feeds no error forward.
        with gptq.Context(args.out, args.in_, config) as rtn_ctx:
            rtn_ctx.import_hessian(np.eye(args.in_), 1)
            rtn, _ = rtn_ctx.quantize(w)
    except gptq.GptqError as e:
        print("quantize.py: %s" % e, file=sys.stderr)
        return 1

    with q, rtn:
        print("layer [%d, %d], %d-bit, group %d%s%s, %d calibration tokens"
              % (args.out, args.in_, args.bits, args.group, ", act-order" if args.act_order else "",
                 ", asymmetric" if args.asym else "", args.tokens))
        backend = stats.backend.name.rsplit("_", 1)[-1].lower()
        print("GPTQ: loss %.6g, %.3f s on %s, damp %.4g, dead columns %d%s"
              % (stats.loss, stats.seconds, backend, stats.damp_percent_used, stats.dead_columns,
                 ", fell back to RTN" if stats.fell_back_to_rtn else ""))
        e_gptq, e_rtn = output_error(q, heldout, w), output_error(rtn, heldout, w)
        print("held-out relative output error: GPTQ %.4e, RTN %.4e (GPTQ/RTN %.3f)"
              % (e_gptq, e_rtn, e_gptq / e_rtn))

        try:
            fmt = "v2" if args.asym else "v1"
            tensors = q.export(fmt)
        except gptq.UnsupportedError as e:
            print("checkpoint: not exportable: %s" % e.message)
            return 0
        print("checkpoint (%s): %s" % (fmt, ", ".join("%s %s %s" % (k, v.dtype, list(v.shape))
                                                      for k, v in tensors.items())))
        if args.save:
            np.savez(args.save, bits=args.bits, group_size=args.group, format=fmt, **tensors)
            print("saved to %s" % args.save)
        with gptq.QTensor.import_checkpoint(**tensors, bits=args.bits, group_size=args.group,
                                            format=fmt) as loaded:
            same = (np.array_equal(loaded.dequantize(), q.dequantize())
                    and np.array_equal(loaded.matmul(heldout[:8]), q.matmul(heldout[:8])))
        print("round trip through the checkpoint: %s" % ("identical" if same else "DIFFERENT"))
        y16 = q.matmul(heldout[:4].astype(np.float16))
        print("float16 matmul: y %s %s, max |y16 - y32| %.3g"
              % (y16.dtype, list(y16.shape), float(np.abs(y16 - q.matmul(heldout[:4])).max())))
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
