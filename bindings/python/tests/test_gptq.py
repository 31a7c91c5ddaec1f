"""Tests of the idiomatic gptq package: quantization equal to the C library's
own output bit for bit, checkpoints, Hessians, dtypes and matmul.

    bindings/python/test.sh [BUILD_DIR]     # venv + numpy + pytest, then pytest -q
"""

import dataclasses
import os
import pickle
import subprocess
import sys
import unittest

try:
    import numpy as np
    import pytest
except ImportError as exc:  # `python3 -m unittest discover` without them
    raise unittest.SkipTest("needs numpy and pytest (bindings/python/test.sh installs them): %s" % exc)

import _support as S
from _support import gptq, n


# ---------------------------------------------------------------------------
# Version, config, and the dataclasses covering the C structs
# ---------------------------------------------------------------------------

def test_version():
    v = gptq.version_number()
    assert gptq.version() == "%d.%d.%d" % (v // 10000, v // 100 % 100, v % 100)
    assert v // 10000 == n.GPTQ_VERSION_MAJOR and v >= gptq.HEADER_VERSION


def test_config_defaults_are_the_library_defaults():
    want = S.native_config()
    got = gptq.Config().to_native()
    assert bytes(got) == bytes(want)  # every byte, struct_size included
    assert gptq.Config.from_native(want) == gptq.Config()
    assert gptq.Config().damp_percent == 0.01  # shown as the header documents it


def test_dataclasses_cover_every_c_field():
    # The Python counterpart of "the compiler shows every place": a field
    # appended to a C struct fails here until the dataclass follows.
    def c_fields(struct):
        return [f[0] for f in struct._fields_]

    config_fields = [f.name for f in dataclasses.fields(gptq.Config)]
    assert config_fields == [f for f in c_fields(n.gptq_config)
                             if f not in gptq._config.NATIVE_ONLY_FIELDS]
    assert [f.name for f in dataclasses.fields(gptq.QuantStats)] == \
        [f for f in c_fields(n.gptq_quant_stats) if f != "struct_size"]
    assert [f.name for f in dataclasses.fields(gptq.QTensorInfo)] == c_fields(n.gptq_qtensor_info)
    for status in gptq.Status:
        if status != gptq.Status.GPTQ_OK:
            err = gptq.GptqError(status, "m")
            assert type(err) is not gptq.GptqError and err.status is status


def test_config_conversions():
    cfg = gptq.Config(backend="cpu", precision="F64", log_level="warning", sym=False, bits=3)
    native = cfg.to_native()
    assert (native.backend, native.precision, native.log_level) == \
        (n.GPTQ_BACKEND_CPU, n.GPTQ_PRECISION_F64, n.GPTQ_LOG_WARN)
    assert (native.sym, native.bits) == (0, 3)
    with pytest.raises(gptq.InvalidConfigError, match="unknown gptq_backend 'gpu'"):
        gptq.Config(backend="gpu").to_native()
    with pytest.raises(gptq.InvalidConfigError, match="does not fit in int32"):
        gptq.Config(bits=2 ** 32 + 4).to_native()  # ctypes would silently make it 4
    with pytest.raises(TypeError):
        gptq.Config(bits="4").to_native()
    with pytest.raises(TypeError):
        gptq.Context(8, 32, bitz=4)  # unknown override


# ---------------------------------------------------------------------------
# Quantization: the same as the C library's own output, bit for bit
# ---------------------------------------------------------------------------

CASES = [
    dict(bits=4, group_size=128),
    dict(bits=4, group_size=32, sym=False, act_order=True),
    dict(bits=3, group_size=64, sym=False),
    dict(bits=2, group_size=-1, precision=n.GPTQ_PRECISION_F64),
    dict(bits=8, group_size=64, act_order=True, static_groups=True, block_size=32),
    dict(bits=4, group_size=32, mse=True, damp_percent=0.05),
]


@pytest.mark.parametrize("fields", CASES, ids=lambda f: ",".join("%s=%s" % kv for kv in f.items()))
def test_quantize_equals_the_c_library_bit_for_bit(fields):
    out_features, in_features = 64, 256
    batches = [S.activations(96, in_features, seed) for seed in (1, 2, 3)]
    w = S.weights(out_features, in_features, 4)
    codes, deq, tensors, stats = S.native_quantize(fields, out_features, in_features, batches, w)

    with gptq.Context(out_features, in_features, gptq.Config(**fields)) as ctx:
        for x in batches:
            ctx.add_batch(x)
        assert ctx.samples == 3
        q, st = ctx.quantize(w)
    with q:
        assert np.array_equal(q.codes(), codes)
        assert S.bits_equal(q.dequantize(), deq)
        exported = q.export("v2")
        for name in ("qweight", "qzeros", "scales", "g_idx"):
            assert S.bits_equal(exported[name], tensors[name]), name
        assert st.loss == stats.loss and st.dead_columns == stats.dead_columns
        assert st.damp_retries == stats.damp_retries and st.fell_back_to_rtn is False
        assert st.backend == gptq.Backend.GPTQ_BACKEND_CPU
        info = q.info
        assert (info.out_features, info.in_features, info.bits, info.group_size) == \
            (out_features, in_features, fields["bits"], fields["group_size"])
        assert q.shape == (out_features, in_features)


def test_quantize_is_not_destructive_and_repeatable():
    x, w = S.activations(128, 64, 5), S.weights(32, 64, 6)
    with gptq.Context(32, 64, group_size=32) as ctx:
        ctx.add_batch(x)
        h0, _ = ctx.export_hessian()
        q1, _ = ctx.quantize(w)
        q2, _ = ctx.quantize(w)
        assert S.bits_equal(ctx.export_hessian()[0], h0)
        assert np.array_equal(q1.codes(), q2.codes())


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------

def _quantized(out_features=64, in_features=128, **fields):
    with gptq.Context(out_features, in_features, **fields) as ctx:
        ctx.add_batch(S.activations(200, in_features, 7))
        q, _ = ctx.quantize(S.weights(out_features, in_features, 8))
    return q


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("fmt,sym,act_order", [("v1", True, False), ("v2", False, True), ("v2", True, True)])
def test_export_import_round_trip(bits, fmt, sym, act_order):
    group = 32
    q = _quantized(64, 128, bits=bits, group_size=group, sym=sym, act_order=act_order)
    t = q.export(fmt)
    assert t["qweight"].dtype == np.int32 and t["qweight"].shape == (128 * bits // 32, 64)
    assert t["qzeros"].dtype == np.int32 and t["qzeros"].shape == (4, 64 * bits // 32)
    assert t["scales"].dtype == np.float16 and t["scales"].shape == (4, 64)
    assert t["g_idx"].dtype == np.int32 and t["g_idx"].shape == (128,)
    assert gptq.checkpoint_shapes(64, 128, bits, group) == {k: v.shape for k, v in t.items()}

    # The layout, checked independently: codes packed along K, zeros along N.
    codes = q.codes()
    assert np.array_equal(S.unpack(t["qweight"], bits, 128, axis=0), codes.T)
    zeros = S.unpack(t["qzeros"], bits, 64, axis=1) + (1 if fmt == "v1" else 0)
    g = t["g_idx"]
    want = t["scales"].astype(np.float32)[g, np.arange(64)[:, None]] * \
        (codes.astype(np.float32) - zeros[g, np.arange(64)[:, None]].astype(np.float32))
    assert np.array_equal(q.dequantize(), want.astype(np.float32))

    r = gptq.QTensor.import_checkpoint(**t, bits=bits, group_size=group, format=fmt)
    assert r.info == q.info
    assert np.array_equal(r.codes(), codes)
    assert S.bits_equal(r.dequantize(), q.dequantize())
    for name, value in r.export(fmt).items():
        assert S.bits_equal(value, t[name]), name
    if not act_order:  # g_idx may be left out: j // group_size
        r2 = gptq.QTensor.import_checkpoint(t["qweight"], t["qzeros"], t["scales"], bits=bits,
                                            group_size=group, format=fmt)
        assert S.bits_equal(r2.dequantize(), q.dequantize())


# ---------------------------------------------------------------------------
# GGUF grids: llama.cpp's block bytes
# ---------------------------------------------------------------------------

# Bytes per 256 weights (eight blocks of 32, or one K super-block) of each
# GGUF grid the header documents.
GGUF_BYTES_PER_256 = {"q4_0": 8 * 18, "q4_1": 8 * 20, "q5_0": 8 * 22, "q5_1": 8 * 24, "q8_0": 8 * 34,
                      "q4_k": 144, "q5_k": 176, "q6_k": 210}


@pytest.mark.parametrize("grid", sorted(GGUF_BYTES_PER_256))
def test_gguf_export_decodes_to_the_dequantized_weights(grid):
    n, k = 16, 512
    q = _quantized(out_features=n, in_features=k, grid=grid)
    with q:
        assert q.grid == gptq.Grid["GPTQ_GRID_" + grid.upper()]
        blocks = q.gguf_export()
        assert blocks.dtype == np.uint8
        assert blocks.size == n * k // 256 * GGUF_BYTES_PER_256[grid] == gptq.gguf_size(grid, n, k)
        assert S.bits_equal(gptq.gguf_dequantize(grid, blocks, n, k), q.dequantize())
        assert S.bits_equal(gptq.gguf_dequantize(q.grid, bytes(blocks), n, k), q.dequantize())


def test_gguf_q4_0_block_layout():
    # The first block of row 0 by hand: fp16 d, then byte j holds code j in
    # its low nibble and code j+16 in its high one; value (code - 8)·d.
    q = _quantized(out_features=4, in_features=64, grid="q4_0")
    with q:
        blocks, codes, deq = q.gguf_export(), q.codes(), q.dequantize()
    d = blocks[:2].view(np.float16)[0].astype(np.float32)
    qs = blocks[2:18]
    assert np.array_equal(qs & 0x0F, codes[0, :16]) and np.array_equal(qs >> 4, codes[0, 16:32])
    assert S.bits_equal((codes[0, :32].astype(np.float32) - 8) * d, deq[0, :32])


def test_gguf_errors():
    q = _quantized(out_features=8, in_features=64)
    with q:
        assert q.grid == gptq.Grid.GPTQ_GRID_GPTQ
        with pytest.raises(gptq.UnsupportedError, match="GPTQ's own grid"):
            q.gguf_export()
    with pytest.raises(gptq.InvalidConfigError, match="unknown gptq_grid 'q3_0'"):
        gptq.gguf_size("q3_0", 1, 32)
    with pytest.raises(gptq.InvalidSizeError):
        gptq.gguf_size("q4_0", 1, 48)  # not whole blocks
    with pytest.raises(gptq.SizeMismatchError):
        gptq.gguf_dequantize("q8_0", bytes(33), 1, 32)  # one byte short
    with pytest.raises(TypeError, match="bytes or a uint8"):
        gptq.gguf_dequantize("q8_0", np.zeros(34, dtype=np.int8), 1, 32)
    assert gptq.Config(grid="Q8_0").to_native().grid == n.GPTQ_GRID_Q8_0


def test_import_accepts_other_spellings():
    q = _quantized(bits=4, group_size=64)
    t = q.export("v1")
    r = gptq.QTensor.import_checkpoint(
        t["qweight"].view(np.uint32), t["qzeros"], t["scales"].view(np.uint16),
        t["g_idx"].astype(np.int64), bits=4, group_size=64,
        format=gptq.CheckpointFormat.GPTQ_FORMAT_V1, out_features=64, in_features=128)
    assert S.bits_equal(r.dequantize(), q.dequantize())


def test_import_validates_shapes_before_the_call():
    t = _quantized(bits=4, group_size=64).export("v2")
    with pytest.raises(gptq.SizeMismatchError, match="qzeros has shape"):
        gptq.QTensor.import_checkpoint(t["qweight"], t["qzeros"].T, t["scales"], bits=4,
                                       group_size=64, format="v2")
    with pytest.raises(gptq.UnsupportedError, match="qweight has dtype int64"):
        gptq.QTensor.import_checkpoint(t["qweight"].astype(np.int64), t["qzeros"], t["scales"],
                                       bits=4, group_size=64, format="v2")


# ---------------------------------------------------------------------------
# Hessians: merge, export, import, dtypes
# ---------------------------------------------------------------------------

def test_merge_and_hessian_round_trip():
    k = 48
    xs = [S.activations(64, k, s) for s in (10, 11, 12, 13)]
    cfg = gptq.Config(precision="f64")
    with gptq.Context(8, k, cfg) as whole, gptq.Context(8, k, cfg) as a, \
            gptq.Context(8, k, cfg) as b:
        for x in xs:
            whole.add_batch(x, samples=2)
        for x in xs[:1]:
            a.add_batch(x, samples=2)
        for x in xs[1:]:
            b.add_batch(x, samples=2)
        a.merge(b)
        assert a.samples == whole.samples == 8 and b.samples == 6
        hw, sw = whole.export_hessian()
        ha, sa = a.export_hessian()
        assert hw.shape == (k, k) and hw.dtype == np.float64 and sw == sa == 8
        np.testing.assert_allclose(ha, hw, rtol=1e-12, atol=1e-12 * np.abs(hw).max())
        # The reference's Hessian: 2/n Σ xᵀx with each batch counted `samples` times.
        ref = sum(x.astype(np.float64).T @ x.astype(np.float64) for x in xs) * 2 / 8
        np.testing.assert_allclose(hw, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
        with gptq.Context(8, k, cfg) as c:
            c.import_hessian(hw, sw)
            h, s = c.export_hessian()
            assert S.bits_equal(h, hw) and s == sw
            c.import_hessian(hw.astype(np.float32), 1)  # widened exactly
            assert c.samples == 9


def test_float16_and_bfloat16_activations():
    x32 = S.activations(50, 32, 20)
    x16 = x32.astype(np.float16)
    bf16_bits = (x32.view(np.uint32) >> 16).astype(np.uint16)  # truncated bfloat16
    bf16_as_f32 = (bf16_bits.astype(np.uint32) << 16).view(np.float32)
    cfg = gptq.Config(precision="f64")

    def hessian(x, **kw):
        with gptq.Context(4, 32, cfg) as ctx:
            ctx.add_batch(x, **kw)
            return ctx.export_hessian()[0]

    assert S.bits_equal(hessian(x16), hessian(x16.astype(np.float32)))
    assert S.bits_equal(hessian(x16.view(np.uint16), dtype="f16"), hessian(x16))
    assert S.bits_equal(hessian(bf16_bits, dtype="bf16"), hessian(bf16_as_f32))
    assert S.bits_equal(hessian(bf16_bits, dtype=gptq.Dtype.GPTQ_DTYPE_BF16), hessian(bf16_as_f32))
    # Non-contiguous and byte-swapped inputs are made contiguous / native.
    assert S.bits_equal(hessian(np.asfortranarray(x32)), hessian(x32))
    assert S.bits_equal(hessian(x32.astype(">f4")), hessian(x32))
    wide = np.zeros((50, 64), dtype=np.float32)
    wide[:, ::2] = x32
    assert S.bits_equal(hessian(wide[:, ::2]), hessian(x32))


def test_float16_weights():
    x, w = S.activations(100, 64, 21), S.weights(16, 64, 22).astype(np.float16)
    with gptq.Context(16, 64, group_size=32) as ctx:
        ctx.add_batch(x)
        q16, _ = ctx.quantize(w)
        q32, _ = ctx.quantize(w.astype(np.float32))
    assert np.array_equal(q16.codes(), q32.codes())
    assert S.bits_equal(q16.dequantize(), q32.dequantize())


# ---------------------------------------------------------------------------
# Matmul
# ---------------------------------------------------------------------------
#
# Tolerance: y is accumulated in float32 over K products. The classic bound
# for any summation order is |y - y_exact| <= K·u·Σ|x·w| with u = 2^-24 (the
# test uses 2^-23, the C tests' documented bound); the reference is computed
# in float64 from the dequantized weights, whose own error is negligible.
# A float16 result is then rounded once more: + 2^-11·|y| (half an ulp).

def _reference(x, wq, bias=None):
    x64 = x.astype(np.float64)
    ref = x64 @ wq.astype(np.float64).T
    mag = np.abs(x64) @ np.abs(wq.astype(np.float64)).T
    if bias is not None:
        ref = ref + bias.astype(np.float64)
        mag = mag + np.abs(bias.astype(np.float64))
    return ref, mag


@pytest.mark.parametrize("rows", [1, 3, 16, 17, 100])
@pytest.mark.parametrize("with_bias", [False, True])
def test_matmul_equals_dequantize_then_multiply(rows, with_bias):
    k = 256
    q = _quantized(96, k, bits=4, group_size=64, act_order=True, sym=False)
    wq = q.dequantize()
    x = S.activations(rows, k, 30 + rows)
    bias = np.linspace(-1, 1, 96, dtype=np.float32) if with_bias else None
    y = q.matmul(x, bias)
    assert y.dtype == np.float32 and y.shape == (rows, 96)
    ref, mag = _reference(x, wq, bias)
    assert np.all(np.abs(y - ref) <= k * 2.0 ** -23 * mag + 1e-30)


def test_matmul_shapes_and_out():
    q = _quantized(64, 128, group_size=32)
    x = S.activations(6, 128, 31)
    y = q.matmul(x)
    assert S.bits_equal(q.matmul(x.reshape(2, 3, 128)), y.reshape(2, 3, 64))
    # (a single row may take another kernel than six rows: compare like with like)
    assert S.bits_equal(q.matmul(x[0]), q.matmul(x[:1])[0])
    out = np.full((6, 64), np.nan, dtype=np.float32)
    assert q.matmul(x, out=out) is out and S.bits_equal(out, y)
    bias_list = [0.5] * 64  # a list is converted to x's dtype
    np.testing.assert_array_equal(q.matmul(x, bias_list), q.matmul(x, np.full(64, 0.5, np.float32)))


def test_matmul_float16_in_float16_out():
    k = 128
    q = _quantized(64, k, bits=4, group_size=32)
    wq = q.dequantize()
    for rows in (2, 40):
        x16 = S.activations(rows, k, 40 + rows).astype(np.float16)
        bias = np.linspace(-0.5, 0.5, 64).astype(np.float16)
        y16 = q.matmul(x16, bias)
        assert y16.dtype == np.float16 and y16.shape == (rows, 64)
        ref, mag = _reference(x16, wq, bias)
        tol = k * 2.0 ** -23 * mag + 2.0 ** -11 * np.abs(ref) + 2.0 ** -24
        assert np.all(np.abs(y16.astype(np.float64) - ref) <= tol)


def test_matmul_bfloat16_bits():
    k = 128
    q = _quantized(32, k, bits=4, group_size=32)
    x = S.activations(4, k, 50)
    bits = (x.view(np.uint32) >> 16).astype(np.uint16)
    y = q.matmul(bits, dtype="bf16")
    assert y.dtype == np.uint16 and y.shape == (4, 32)
    y32 = (y.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    ref, mag = _reference((bits.astype(np.uint32) << 16).view(np.float32), q.dequantize())
    assert np.all(np.abs(y32 - ref) <= k * 2.0 ** -23 * mag + 2.0 ** -8 * np.abs(ref) + 1e-30)


def test_matmul_options():
    k = 256
    q = _quantized(64, k, bits=4, group_size=64)
    x = S.activations(4, k, 60)
    y = q.matmul(x)
    np.testing.assert_array_equal(q.matmul(x, num_threads=1), y)
    y8 = q.matmul(x, int8_activations=True)
    # int8 activations: each product carries at most 1/254 relative error of
    # its activation's block maximum, so |err| <= Σ_blocks max|x_b|/254·Σ|w|.
    ref, mag = _reference(x, q.dequantize())
    blocks = np.abs(x).reshape(4, -1, 32).max(axis=2) / 254.0        # [rows, K/32]
    wsum = np.abs(q.dequantize().astype(np.float64)).reshape(64, -1, 32).sum(axis=2)  # [N, K/32]
    bound = blocks @ wsum.T + k * 2.0 ** -23 * mag
    assert np.all(np.abs(y8 - ref) <= bound)


# ---------------------------------------------------------------------------
# Errors pickle, and the example program runs
# ---------------------------------------------------------------------------

def test_errors_pickle():
    e = gptq.GptqError(gptq.Status.GPTQ_ERR_SIZE_MISMATCH, "a message")
    r = pickle.loads(pickle.dumps(e))
    assert type(r) is gptq.SizeMismatchError and r.status is e.status and r.message == e.message
    assert str(r) == "GPTQ_ERR_SIZE_MISMATCH: a message"
    assert gptq.CancelledError("stop").status == gptq.Status.GPTQ_ERR_CANCELLED


def test_example_program_runs():
    example = os.path.join(S.PACKAGE_ROOT, "examples", "quantize.py")
    env = dict(os.environ, PYTHONPATH=S.PACKAGE_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, example, "--out", "64", "--in", "128", "--tokens", "256",
                          "--heldout", "64"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    assert out.returncode == 0, out.stdout
    assert "GPTQ" in out.stdout and "round trip" in out.stdout
