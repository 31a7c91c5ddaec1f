#!/usr/bin/env python3
"""libgptq's CUDA backend side by side with its peers on the same GPU, in
one process, on the same tensors:

  * matmul: libgptq W4A16 (4-bit g128, through ctypes on torch's device
    buffers and stream) against PyTorch f16 (cuBLAS) and PyTorch's int4
    weight-only kernel (torch._weight_int4pack_mm, bf16, group 128);
  * solve: libgptq's gptq_quantize (CUDA) against the reference gptq.py
    (IST-DASLab/gptq, fasterquant on the GPU), if --ref names its folder.

Times are CUDA-event medians with the L2 flushed (a 256 MB write) before
each timed call; solve times are wall clock of one call after a warm-up.
Prints a table and, with --json, writes the numbers.

  python3 bench/gpu_peers.py --lib build-cuda/libgptq.so [--ref DIR] [--json out.json]

Needs PyTorch with CUDA; GPTQ_CUDA_PLUGIN must name libgptq-cuda.so unless it
sits next to libgptq. The reference is not part of this repository.
"""
import argparse
import ctypes
import json
import math
import os
import sys
import time
import types


class MatmulOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("int8_activations", ctypes.c_int32),
                ("num_threads", ctypes.c_int32), ("stream", ctypes.c_void_p), ("memory", ctypes.c_int)]


class ImportOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("backend", ctypes.c_int), ("memory", ctypes.c_int),
                ("stream", ctypes.c_void_p)]


class Tensors(ctypes.Structure):
    _fields_ = [("qweight", ctypes.c_void_p), ("qweight_len", ctypes.c_int64),
                ("qzeros", ctypes.c_void_p), ("qzeros_len", ctypes.c_int64),
                ("scales", ctypes.c_void_p), ("scales_len", ctypes.c_int64),
                ("g_idx", ctypes.c_void_p), ("g_idx_len", ctypes.c_int64)]


CUDA, DEVICE, F16, F32, FORMAT_V1 = 2, 2, 1, 0, 1


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lib", default="build-cuda/libgptq.so")
    p.add_argument("--ref", help="folder holding the reference gptq.py and quant.py")
    p.add_argument("--json")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--shapes", default="4096x4096,4096x11008,11008x4096,4096x14336,14336x4096,8192x28672",
                   help="INxOUT matmul shapes")
    p.add_argument("--batches", default="1,16,128")
    p.add_argument("--solve", default="4096x4096,11008x4096,4096x11008", help="OUTxIN solve shapes")
    return p.parse_args()


def timer(torch, reps):
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")

    def measure(fn):
        fn()
        torch.cuda.synchronize()
        times = []
        for r in range(reps):
            flush.fill_(r & 0xFF)
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) * 1000.0)
        times.sort()
        return times[len(times) // 2]
    return measure


def check(lib, status, what):
    if status != 0:
        raise RuntimeError(f"{what}: {lib.gptq_last_error().decode()}")


def matmul_peers(torch, lib, args, results):
    measure = timer(torch, args.reps)
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    batches = [int(b) for b in args.batches.split(",")]
    print(f"\nmatmul, 4-bit g128, us (median of {args.reps}, L2 flushed)")
    print(f"{'in x out':>13} {'batch':>5} {'libgptq f16':>11} {'torch f16':>10} {'torch int4':>10} "
          f"{'vs f16':>7} {'vs int4':>8}")
    for shape in args.shapes.split(","):
        k, n = (int(v) for v in shape.split("x"))
        g = torch.Generator(device="cuda").manual_seed(k * 7 + n)
        qweight = torch.randint(-2**31, 2**31 - 1, (k // 8, n), dtype=torch.int32, device="cuda", generator=g)
        qzeros = torch.full((k // 128, n // 8), 0x77777777, dtype=torch.int32, device="cuda")
        scales = torch.full((k // 128, n), 2.0 ** -8, dtype=torch.float16, device="cuda")
        t = Tensors(qweight.data_ptr(), qweight.numel(), qzeros.data_ptr(), qzeros.numel(),
                    scales.data_ptr(), scales.numel(), None, 0)
        io = ImportOptions(ctypes.sizeof(ImportOptions), CUDA, DEVICE, stream)
        q = ctypes.c_void_p()
        check(lib, lib.gptq_qtensor_import_ex(ctypes.c_int64(n), ctypes.c_int64(k), 4, 128, FORMAT_V1,
                                              ctypes.byref(t), ctypes.byref(io), ctypes.byref(q)), "import")
        w16 = (torch.randn(n, k, device="cuda", generator=g) * 0.02).half()
        int4 = None
        try:
            nibbles = torch.randint(0, 16, (n, k), dtype=torch.uint8, device="cuda", generator=g)
            packed = (nibbles[:, ::2] << 4 | nibbles[:, 1::2]).contiguous()
            int4 = torch._convert_weight_to_int4pack(packed, 8)
            sz = torch.zeros(k // 128, n, 2, dtype=torch.bfloat16, device="cuda")
            sz[..., 0] = 2.0 ** -8
        except Exception as e:  # noqa: BLE001 - report and go on without it
            print(f"  torch int4 unavailable: {e}")
        opts = MatmulOptions(ctypes.sizeof(MatmulOptions), 0, 0, stream, DEVICE)
        for b in batches:
            x = torch.randn(b, k, device="cuda", generator=g).half()
            y = torch.empty(b, n, device="cuda", dtype=torch.float16)
            ours = measure(lambda: lib.gptq_matmul_ex(q, ctypes.c_void_p(x.data_ptr()), F16, ctypes.c_int64(b),
                                                      ctypes.c_int64(k), None, ctypes.c_void_p(y.data_ptr()),
                                                      ctypes.c_int64(b * n), ctypes.byref(opts)))
            f16 = measure(lambda: torch.matmul(x, w16.t()))
            i4 = None
            if int4 is not None:
                xb = x.bfloat16()
                try:
                    i4 = measure(lambda: torch._weight_int4pack_mm(xb, int4, 128, sz))
                except Exception as e:  # noqa: BLE001
                    print(f"  torch int4 failed: {e}")
                    int4 = None
            print(f"{k:>6}x{n:<6} {b:>5} {ours:>11.1f} {f16:>10.1f} "
                  f"{(f'{i4:.1f}' if i4 else '-'):>10} {f16 / ours:>7.2f} {(f'{i4 / ours:.2f}' if i4 else '-'):>8}")
            results.append({"in": k, "out": n, "batch": b, "libgptq_us": ours, "torch_f16_us": f16,
                            "torch_int4_us": i4})
        lib.gptq_qtensor_destroy(q)


def solve_peers(torch, lib, args, results):
    stub = types.ModuleType("transformers")
    stub.Conv1D = type("Conv1D", (), {})
    sys.modules.setdefault("transformers", stub)
    sys.path.insert(0, args.ref)
    import gptq as ref_gptq
    import quant as ref_quant

    class Config(ctypes.Structure):
        _fields_ = [("struct_size", ctypes.c_size_t), ("bits", ctypes.c_int32), ("group_size", ctypes.c_int32),
                    ("sym", ctypes.c_int32), ("act_order", ctypes.c_int32), ("static_groups", ctypes.c_int32),
                    ("block_size", ctypes.c_int32), ("damp_percent", ctypes.c_float),
                    ("damp_increment", ctypes.c_float), ("mse", ctypes.c_int32), ("mse_norm", ctypes.c_float),
                    ("mse_grid", ctypes.c_int32), ("mse_max_shrink", ctypes.c_float), ("backend", ctypes.c_int),
                    ("precision", ctypes.c_int), ("progress", ctypes.c_void_p),
                    ("progress_user_data", ctypes.c_void_p), ("log", ctypes.c_void_p),
                    ("log_user_data", ctypes.c_void_p), ("log_level", ctypes.c_int),
                    ("num_threads", ctypes.c_int32), ("stream", ctypes.c_void_p), ("memory", ctypes.c_int)]

    print("\nsolve, 4-bit g128 sym, 2048 tokens, s (wall clock of one call after a warm-up)")
    print(f"{'out x in':>12} {'act':>4} {'reference':>10} {'libgptq':>9} {'ratio':>7}")
    g = torch.Generator(device="cuda").manual_seed(0)
    for shape in args.solve.split(","):
        n, k = (int(v) for v in shape.split("x"))
        mix = torch.randn(k // 4, k, device="cuda", generator=g) / math.sqrt(k // 4)
        x = torch.randn(2048, k // 4, device="cuda", generator=g) @ mix + 0.1 * torch.randn(2048, k, device="cuda", generator=g)
        w = 0.02 * torch.randn(n, k, device="cuda", generator=g)
        for act in (False, True):
            def reference():
                layer = torch.nn.Linear(k, n, bias=False, device="cuda")
                layer.weight.data = w.clone()
                gq = ref_gptq.GPTQ(layer)
                gq.quantizer = ref_quant.Quantizer()
                gq.quantizer.configure(4, perchannel=True, sym=True, mse=False)
                gq.add_batch(x.unsqueeze(0), None)
                saved, sys.stdout = sys.stdout, open(os.devnull, "w")
                try:
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    gq.fasterquant(blocksize=128, percdamp=.01, groupsize=128, actorder=act)
                    torch.cuda.synchronize()
                    return time.perf_counter() - t0
                finally:
                    sys.stdout.close()
                    sys.stdout = saved

            def ours():
                cfg = Config()
                lib.gptq_config_default(ctypes.byref(cfg))
                cfg.act_order = int(act)
                cfg.backend = CUDA
                cfg.stream = torch.cuda.current_stream().cuda_stream
                ctx = ctypes.c_void_p()
                check(lib, lib.gptq_ctx_create(ctypes.c_int64(n), ctypes.c_int64(k), ctypes.byref(cfg),
                                               ctypes.byref(ctx)), "create")
                check(lib, lib.gptq_add_batch(ctx, ctypes.c_void_p(x.data_ptr()), F32, ctypes.c_int64(2048),
                                              ctypes.c_int64(k), ctypes.c_int64(1)), "add_batch")
                q = ctypes.c_void_p()
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                check(lib, lib.gptq_quantize(ctx, ctypes.c_void_p(w.data_ptr()), F32, ctypes.c_int64(n),
                                             ctypes.c_int64(k), ctypes.byref(q), None), "quantize")
                seconds = time.perf_counter() - t0
                lib.gptq_qtensor_destroy(q)
                lib.gptq_ctx_destroy(ctx)
                return seconds

            reference()
            ref_s = reference()
            ours()
            our_s = ours()
            print(f"{n:>6}x{k:<5} {'yes' if act else 'no':>4} {ref_s:>10.4f} {our_s:>9.4f} {ref_s / our_s:>7.1f}")
            results.append({"out": n, "in": k, "act_order": act, "reference_s": ref_s, "libgptq_s": our_s})


def main():
    args = parse_args()
    import torch
    lib = ctypes.CDLL(os.path.abspath(args.lib))
    lib.gptq_last_error.restype = ctypes.c_char_p
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}")
    results = {"matmul": [], "solve": []}
    matmul_peers(torch, lib, args, results["matmul"])
    if args.ref:
        solve_peers(torch, lib, args, results["solve"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
