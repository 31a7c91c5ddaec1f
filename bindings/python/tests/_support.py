"""Shared helpers of the gptq package tests: deterministic layer data, and
the same quantization driven through the raw generated layer (gptq._native)
so the idiomatic layer can be compared with the C library bit for bit."""

import ctypes
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)  # bindings/python
sys.path.insert(0, PACKAGE_ROOT)

import gptq  # noqa: E402,F401  (re-exported to the tests)
from gptq import _native as n  # noqa: E402


def activations(rows, cols, seed):
    """Correlated activations with a few outlier channels (float32)."""
    rng = np.random.default_rng(seed)
    rank = max(4, cols // 16)
    mix = rng.standard_normal((rank, cols)) / np.sqrt(rank)
    x = rng.standard_normal((rows, rank)) @ mix + 0.5 * rng.standard_normal((rows, cols))
    x *= np.exp(0.5 * rng.standard_normal(cols))  # per-channel scale spread
    x[:, rng.choice(cols, size=max(1, cols // 64), replace=False)] *= 20.0
    return x.astype(np.float32)


def weights(rows, cols, seed):
    rng = np.random.default_rng(seed)
    return (0.02 * rng.standard_normal((rows, cols))).astype(np.float32)


def native_config(**fields):
    """A raw gptq_config: gptq_config_default, then the given fields."""
    cfg = n.gptq_config()
    n.gptq_config_default(ctypes.byref(cfg))
    for name, value in fields.items():
        setattr(cfg, name, int(value) if isinstance(value, bool) else value)
    return cfg


def _check(status):
    assert status == n.GPTQ_OK, "%s: %s" % (n.gptq_status_string(status), n.gptq_last_error())


def native_quantize(fields, out_features, in_features, batches, w, fmt=n.GPTQ_FORMAT_V2):
    """The whole pipeline through the raw ctypes layer only: returns codes,
    dequantized weights, the checkpoint tensors (format `fmt`, or None if the
    layout cannot hold the shape) and the raw stats struct."""
    cfg = native_config(**fields)
    ctx = ctypes.POINTER(n.gptq_ctx)()
    _check(n.gptq_ctx_create(out_features, in_features, ctypes.byref(cfg), ctypes.byref(ctx)))
    q = ctypes.POINTER(n.gptq_qtensor)()
    try:
        for x in batches:
            x = np.ascontiguousarray(x, dtype=np.float32)
            _check(n.gptq_add_batch(ctx, x.ctypes.data, n.GPTQ_DTYPE_F32, x.shape[0], x.shape[1], 1))
        stats = n.gptq_quant_stats()
        stats.struct_size = ctypes.sizeof(stats)
        w = np.ascontiguousarray(w, dtype=np.float32)
        _check(n.gptq_quantize(ctx, w.ctypes.data, n.GPTQ_DTYPE_F32, w.shape[0], w.shape[1],
                               ctypes.byref(q), ctypes.byref(stats)))
        count = out_features * in_features
        codes = np.empty((out_features, in_features), dtype=np.uint8)
        _check(n.gptq_qtensor_codes(q, codes.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), count))
        deq = np.empty((out_features, in_features), dtype=np.float32)
        _check(n.gptq_qtensor_dequantize(q, deq.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), count))
        sizes = n.gptq_checkpoint_sizes()
        tensors = None
        if n.gptq_checkpoint_sizes_for(out_features, in_features, cfg.bits, cfg.group_size,
                                       ctypes.byref(sizes)) == n.GPTQ_OK:
            qweight = np.empty((sizes.qweight_rows, sizes.qweight_cols), dtype=np.int32)
            qzeros = np.empty((sizes.qzeros_rows, sizes.qzeros_cols), dtype=np.int32)
            scales = np.empty((sizes.scales_rows, sizes.scales_cols), dtype=np.uint16)
            g_idx = np.empty(sizes.g_idx_len, dtype=np.int32)
            t = n.gptq_checkpoint_tensors(
                qweight.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), qweight.size,
                qzeros.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), qzeros.size,
                scales.ctypes.data_as(ctypes.POINTER(ctypes.c_uint16)), scales.size,
                g_idx.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), g_idx.size)
            _check(n.gptq_qtensor_export(q, fmt, ctypes.byref(t)))
            tensors = {"qweight": qweight, "qzeros": qzeros, "scales": scales.view(np.float16),
                       "g_idx": g_idx}
        return codes, deq, tensors, stats
    finally:
        n.gptq_qtensor_destroy(q)
        n.gptq_ctx_destroy(ctx)


def native_error(fn, *args):
    """(status, message) of a raw call expected to fail."""
    status = fn(*args)
    assert status != n.GPTQ_OK
    return status, n.gptq_last_error().decode()


def bits_equal(a, b):
    """Arrays equal bit for bit (so -0.0 != 0.0 and NaN payloads count)."""
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return a.view(np.uint8).tobytes() == b.view(np.uint8).tobytes()


def unpack(words, bits, count, axis):
    """Unpack a little-endian bit stream of `bits`-bit values stored in
    int32 words along `axis` (the checkpoint layout) into `count` values."""
    w = np.moveaxis(np.asarray(words), axis, 0).astype(np.uint32).astype(np.uint64)
    nwords = w.shape[0]
    values = np.empty((count,) + w.shape[1:], dtype=np.int64)
    for i in range(count):
        bit = i * bits
        word, shift = divmod(bit, 32)
        v = w[word] >> np.uint64(shift)
        if shift + bits > 32 and word + 1 < nwords:
            v = v | (w[word + 1] << np.uint64(32 - shift))
        values[i] = (v & np.uint64((1 << bits) - 1)).astype(np.int64)
    return np.moveaxis(values, 0, axis)
