#!/usr/bin/env python3
"""Side-by-side speed of libgptq's GPTQ solve against the reference gptq.py.

For each layer shape (and with / without act-order) this script times, in one
run and interleaved repetition by repetition:
  * the reference GPTQ (IST-DASLab/gptq: gptq.py + quant.py, PyTorch on the
    CPU, float32, torch.set_num_threads(--threads)): add_batch, then
    fasterquant(blocksize=128, percdamp=.01, groupsize=128, actorder=...);
  * libgptq's gptq_quantize on the same Hessian and weights, through ctypes,
    in the same process (OpenBLAS threads: OPENBLAS_NUM_THREADS, set to
    --threads before the library loads);
and prints the median of each with the ratio reference / libgptq.

The reference is not part of this repository. To rerun:
  python3 -m venv /tmp/venv-ref && /tmp/venv-ref/bin/pip install numpy torch
  # fetch IST-DASLab/gptq (gptq.py, quant.py) into some directory REF
  /tmp/venv-ref/bin/python bench/reference_gptq.py --ref REF \\
      --lib build/libgptq.so --threads 2 --reps 3
(gptq.py imports transformers only for an isinstance check and calls
torch.cuda.synchronize(); both are stubbed here so neither is needed.)
"""
import argparse
import ctypes
import math
import os
import statistics
import sys
import time
import types


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", required=True, help="directory holding the reference gptq.py and quant.py")
    p.add_argument("--lib", default="build/libgptq.so", help="path of libgptq.so")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--tokens", type=int, default=2048)
    p.add_argument("--pause", type=float, default=1.0, help="seconds of idle before each timed run")
    p.add_argument("--shapes", default="4096x4096,11008x4096,4096x11008",
                   help="comma-separated OUTxIN layer shapes")
    return p.parse_args()


class Config(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("bits", ctypes.c_int32), ("group_size", ctypes.c_int32),
                ("sym", ctypes.c_int32), ("act_order", ctypes.c_int32), ("static_groups", ctypes.c_int32),
                ("block_size", ctypes.c_int32), ("damp_percent", ctypes.c_float),
                ("damp_increment", ctypes.c_float), ("mse", ctypes.c_int32), ("mse_norm", ctypes.c_float),
                ("mse_grid", ctypes.c_int32), ("mse_max_shrink", ctypes.c_float), ("backend", ctypes.c_int),
                ("precision", ctypes.c_int), ("progress", ctypes.c_void_p), ("progress_user_data", ctypes.c_void_p),
                ("log", ctypes.c_void_p), ("log_user_data", ctypes.c_void_p), ("log_level", ctypes.c_int),
                ("num_threads", ctypes.c_int32)]


class Stats(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("loss", ctypes.c_double), ("damp_percent_used", ctypes.c_double),
                ("damp_retries", ctypes.c_int32), ("fell_back_to_rtn", ctypes.c_int32),
                ("dead_columns", ctypes.c_int64), ("seconds", ctypes.c_double), ("backend", ctypes.c_int)]


def load_reference(ref_dir):
    stub = types.ModuleType("transformers")
    stub.Conv1D = type("Conv1D", (), {})  # only used in an isinstance check
    sys.modules.setdefault("transformers", stub)
    sys.path.insert(0, ref_dir)
    import torch
    import gptq as ref_gptq
    import quant as ref_quant
    torch.cuda.synchronize = lambda *a, **k: None
    return torch, ref_gptq, ref_quant


def time_reference(torch, ref_gptq, ref_quant, x, w, act_order):
    layer = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
    layer.weight.data = torch.from_numpy(w.copy())
    g = ref_gptq.GPTQ(layer)
    g.quantizer = ref_quant.Quantizer()
    g.quantizer.configure(4, perchannel=True, sym=True, mse=False)
    g.add_batch(torch.from_numpy(x).unsqueeze(0), None)
    devnull = open(os.devnull, "w")
    saved, sys.stdout = sys.stdout, devnull  # fasterquant prints time and error
    try:
        t0 = time.perf_counter()
        g.fasterquant(blocksize=128, percdamp=.01, groupsize=128, actorder=act_order)
        seconds = time.perf_counter() - t0
    finally:
        sys.stdout = saved
        devnull.close()
    return seconds


def time_libgptq(lib, x, w, act_order):
    n, k = w.shape
    cfg = Config()
    lib.gptq_config_default(ctypes.byref(cfg))
    cfg.act_order = 1 if act_order else 0
    ctx = ctypes.c_void_p()
    assert lib.gptq_ctx_create(ctypes.c_int64(n), ctypes.c_int64(k), ctypes.byref(cfg), ctypes.byref(ctx)) == 0
    try:
        assert lib.gptq_add_batch(ctx, x.ctypes.data_as(ctypes.c_void_p), 0, ctypes.c_int64(x.shape[0]),
                                  ctypes.c_int64(k), ctypes.c_int64(1)) == 0
        q = ctypes.c_void_p()
        stats = Stats()
        stats.struct_size = ctypes.sizeof(Stats)
        status = lib.gptq_quantize(ctx, w.ctypes.data_as(ctypes.c_void_p), 0, ctypes.c_int64(n), ctypes.c_int64(k),
                                   ctypes.byref(q), ctypes.byref(stats))
        assert status == 0, lib.gptq_last_error().decode()
        lib.gptq_qtensor_destroy(q)
        return stats.seconds
    finally:
        lib.gptq_ctx_destroy(ctx)


def main():
    args = parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import numpy as np
    torch, ref_gptq, ref_quant = load_reference(args.ref)
    torch.set_num_threads(args.threads)
    lib = ctypes.CDLL(os.path.abspath(args.lib))
    lib.gptq_last_error.restype = ctypes.c_char_p

    lib.gptq_version_string.restype = ctypes.c_char_p
    print(f"# reference gptq.py (torch {torch.__version__}, {args.threads} threads) vs libgptq "
          f"{lib.gptq_version_string().decode()}")
    print(f"# 4-bit, group 128, sym, blocksize 128, {args.tokens} calibration tokens; "
          f"median of {args.reps} interleaved repetitions; solve time only (fasterquant / gptq_quantize)")
    print(f"{'out x in':>12} {'act':>4} {'reference s':>12} {'libgptq s':>10} {'ratio':>7}")
    rng = np.random.default_rng(0)
    for shape in args.shapes.split(","):
        n, k = (int(v) for v in shape.split("x"))
        mix = rng.standard_normal((k // 4, k), dtype=np.float32) / math.sqrt(k // 4)
        x = (rng.standard_normal((args.tokens, k // 4), dtype=np.float32) @ mix
             + 0.1 * rng.standard_normal((args.tokens, k), dtype=np.float32)).astype(np.float32)
        w = (0.02 * rng.standard_normal((n, k), dtype=np.float32)).astype(np.float32)
        for act in (False, True):
            ref_times, our_times = [], []
            for _ in range(args.reps):
                # Both libraries' worker threads spin for a while after a
                # parallel section (OpenMP in torch, OpenBLAS's own); pause so
                # that neither measurement competes with the other's spinners.
                time.sleep(args.pause)
                ref_times.append(time_reference(torch, ref_gptq, ref_quant, x, w, act))
                time.sleep(args.pause)
                our_times.append(time_libgptq(lib, x, w, act))
            r, o = statistics.median(ref_times), statistics.median(our_times)
            print(f"{shape:>12} {'yes' if act else 'no':>4} {r:12.3f} {o:10.3f} {r / o:7.1f}", flush=True)


if __name__ == "__main__":
    main()
