"""Each kind of failure raises the GptqError subclass of its status, with the
library's own message (compared with the message the raw generated layer
gets for the same call), or, for what only Python can see, a message that
names the problem with the status the library would have used."""

import ctypes
import unittest

try:
    import numpy as np
    import pytest
except ImportError as exc:
    raise unittest.SkipTest("needs numpy and pytest (bindings/python/test.sh installs them): %s" % exc)

import _support as S
from _support import gptq, n

N, K = 32, 64


@pytest.fixture
def ctx():
    with gptq.Context(N, K, group_size=32, backend="cpu") as c:
        yield c


@pytest.fixture
def raw_ctx():
    cfg = S.native_config(group_size=32, backend=n.GPTQ_BACKEND_CPU)
    p = ctypes.POINTER(n.gptq_ctx)()
    assert n.gptq_ctx_create(N, K, ctypes.byref(cfg), ctypes.byref(p)) == n.GPTQ_OK
    yield p
    n.gptq_ctx_destroy(p)


def _raises(cls, status, message, fn, *args, **kwargs):
    with pytest.raises(cls) as info:
        fn(*args, **kwargs)
    e = info.value
    assert isinstance(e, gptq.GptqError)
    assert e.status == status and isinstance(e.status, gptq.Status)
    assert e.message == message
    assert str(e) == "%s: %s" % (gptq.Status(status).name, message)
    return e


def test_context_bad_size():
    status, message = S.native_error(n.gptq_ctx_create, 0, K, None,
                                     ctypes.byref(ctypes.POINTER(n.gptq_ctx)()))
    assert message.startswith("gptq_ctx_create: out_features is 0")
    _raises(gptq.InvalidSizeError, status, message, gptq.Context, 0, K)


def test_bits_9():
    cfg = S.native_config(bits=9)
    status, message = S.native_error(n.gptq_ctx_create, N, K, ctypes.byref(cfg),
                                     ctypes.byref(ctypes.POINTER(n.gptq_ctx)()))
    assert status == n.GPTQ_ERR_INVALID_CONFIG and "bits is 9" in message
    e = _raises(gptq.InvalidConfigError, status, message, gptq.Context, N, K, bits=9)
    assert isinstance(e, ValueError)


def test_add_batch_width_mismatch(ctx, raw_ctx):
    x = S.activations(5, K - 1, 1)
    status, message = S.native_error(n.gptq_add_batch, raw_ctx, x.ctypes.data, n.GPTQ_DTYPE_F32,
                                     5, K - 1, 1)
    assert message == "gptq_add_batch: x has 63 columns but the layer has in_features 64"
    _raises(gptq.SizeMismatchError, status, message, ctx.add_batch, x)
    assert ctx.samples == 0  # unchanged and usable
    ctx.add_batch(S.activations(5, K, 1))
    assert ctx.samples == 1


def test_add_batch_nan(ctx, raw_ctx):
    x = S.activations(5, K, 2)
    x[3, 7] = np.nan
    status, message = S.native_error(n.gptq_add_batch, raw_ctx, x.ctypes.data, n.GPTQ_DTYPE_F32, 5, K, 1)
    assert status == n.GPTQ_ERR_NON_FINITE and "x[3, 7]" in message
    _raises(gptq.NonFiniteError, status, message, ctx.add_batch, x)
    x[3, 7] = np.inf
    _raises(gptq.NonFiniteError, status, message, ctx.add_batch, x.astype(np.float16))


def test_add_batch_bad_samples(ctx):
    with pytest.raises(gptq.InvalidSizeError, match="^GPTQ_ERR_INVALID_SIZE: gptq_add_batch: samples is 0"):
        ctx.add_batch(S.activations(5, K, 3), samples=0)


def test_quantize_before_add_batch(ctx, raw_ctx):
    w = S.weights(N, K, 4)
    q = ctypes.POINTER(n.gptq_qtensor)()
    status, message = S.native_error(n.gptq_quantize, raw_ctx, w.ctypes.data, n.GPTQ_DTYPE_F32, N, K,
                                     ctypes.byref(q), None)
    assert status == n.GPTQ_ERR_INVALID_STATE
    _raises(gptq.InvalidStateError, status, message, ctx.quantize, w)


def test_quantize_bad_weights(ctx, raw_ctx):
    x = S.activations(10, K, 5)
    ctx.add_batch(x)
    assert n.gptq_add_batch(raw_ctx, x.ctypes.data, n.GPTQ_DTYPE_F32, 10, K, 1) == n.GPTQ_OK
    q = ctypes.POINTER(n.gptq_qtensor)()
    w = S.weights(N + 1, K, 6)
    status, message = S.native_error(n.gptq_quantize, raw_ctx, w.ctypes.data, n.GPTQ_DTYPE_F32,
                                     N + 1, K, ctypes.byref(q), None)
    assert "w is [33, 64]" in message
    _raises(gptq.SizeMismatchError, status, message, ctx.quantize, w)
    w = S.weights(N, K, 6)
    w[0, 0] = -np.inf
    status, message = S.native_error(n.gptq_quantize, raw_ctx, w.ctypes.data, n.GPTQ_DTYPE_F32,
                                     N, K, ctypes.byref(q), None)
    _raises(gptq.NonFiniteError, status, message, ctx.quantize, w)


def test_v1_export_of_a_zero_of_0():
    w = np.abs(S.weights(N, K, 8))  # all >= 0: asymmetric zeros are 0
    with gptq.Context(N, K, group_size=32, sym=False) as asym:
        asym.add_batch(S.activations(50, K, 7))
        q, _ = asym.quantize(w)
    sizes = gptq.checkpoint_shapes(N, K, 4, 32)
    bufs = {k: np.empty(v, dtype=np.uint16 if k == "scales" else np.int32) for k, v in sizes.items()}
    raw = n.gptq_checkpoint_tensors(*[x for k in ("qweight", "qzeros", "scales", "g_idx") for x in (
        bufs[k].ctypes.data_as(ctypes.POINTER(ctypes.c_uint16 if k == "scales" else ctypes.c_int32)),
        bufs[k].size)])
    status, message = S.native_error(n.gptq_qtensor_export, q._ptr, n.GPTQ_FORMAT_V1, ctypes.byref(raw))
    assert status == n.GPTQ_ERR_UNSUPPORTED and "GPTQ_FORMAT_V2" in message
    _raises(gptq.UnsupportedError, status, message, q.export, "v1")
    assert q.export("v2")["qzeros"].shape == sizes["qzeros"]


def test_export_unpackable_shape():
    with gptq.Context(5, 40, group_size=8) as c:  # 5 rows: not a multiple of 8
        c.add_batch(S.activations(20, 40, 9))
        q, _ = c.quantize(S.weights(5, 40, 10))
    with pytest.raises(gptq.UnsupportedError, match="out_features 5 is not a multiple of 8"):
        q.export()
    assert q.codes().shape == (5, 40)  # the tensor itself is fine


def test_matmul_errors():
    with gptq.Context(N, K, group_size=32) as c:
        c.add_batch(S.activations(50, K, 11))
        q, _ = c.quantize(S.weights(N, K, 12))
    x = S.activations(3, K + 1, 13)
    y = np.empty((3, N), dtype=np.float32)
    status, message = S.native_error(n.gptq_matmul, q._ptr, x.ctypes.data, n.GPTQ_DTYPE_F32, 3, K + 1,
                                     None, y.ctypes.data, y.size)
    assert message == "gptq_matmul: x has 65 columns but the tensor has in_features 64"
    _raises(gptq.SizeMismatchError, status, message, q.matmul, x)
    x = S.activations(3, K, 13)
    with pytest.raises(gptq.SizeMismatchError, match=r"bias has shape \(31,\), \(32,\) expected"):
        q.matmul(x, np.zeros(N - 1, np.float32))
    with pytest.raises(gptq.UnsupportedError, match="has dtype float64"):
        q.matmul(x.astype(np.float64))
    with pytest.raises(gptq.SizeMismatchError, match="at least 1 dimension"):
        q.matmul(np.float32(1))
    with pytest.raises(gptq.SizeMismatchError, match="out has shape"):
        q.matmul(x, out=np.empty((3, N + 1), np.float32))
    with pytest.raises(gptq.UnsupportedError, match="bias has dtype float32"):
        q.matmul((x.view(np.uint32) >> 16).astype(np.uint16), np.zeros(N, np.float32), dtype="bf16")
    with pytest.raises(gptq.InvalidSizeError):  # the library's rows >= 1
        q.matmul(np.empty((0, K), np.float32))


def test_python_side_validation(ctx):
    with pytest.raises(gptq.SizeMismatchError, match="must be a 2-D array, got shape \\(64,\\)"):
        ctx.add_batch(np.zeros(K, np.float32))
    with pytest.raises(gptq.UnsupportedError, match="has dtype float64"):
        ctx.add_batch(np.zeros((2, K)))
    with pytest.raises(gptq.UnsupportedError, match="int32"):
        ctx.add_batch(np.zeros((2, K), np.int32))
    with pytest.raises(gptq.UnsupportedError, match="uint16: pass dtype='bf16'"):
        ctx.add_batch(np.zeros((2, K), np.uint16))
    with pytest.raises(gptq.UnsupportedError, match="cannot hold GPTQ_DTYPE_F32"):
        ctx.add_batch(np.zeros((2, K), np.float16), dtype="f32")
    with pytest.raises(gptq.UnsupportedError, match="unknown gptq_dtype 'f8'"):
        ctx.add_batch(np.zeros((2, K), np.float32), dtype="f8")
    with pytest.raises(gptq.SizeMismatchError, match="square"):
        ctx.import_hessian(np.zeros((K, K + 1)), 1)
    with pytest.raises(gptq.InvalidSizeError, match="does not fit in int64"):
        ctx.add_batch(np.zeros((2, K), np.float32), samples=2 ** 64)
    assert ctx.samples == 0


def test_import_hessian_errors(ctx, raw_ctx):
    h = np.eye(K + 1)
    status, message = S.native_error(n.gptq_ctx_import_hessian, raw_ctx,
                                     h.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), h.size, 1)
    _raises(gptq.SizeMismatchError, status, message, ctx.import_hessian, h, 1)
    h = np.eye(K)
    h[1, 2] = np.nan
    with pytest.raises(gptq.NonFiniteError, match=r"h\[1, 2\] is NaN or Inf"):
        ctx.import_hessian(h, 1)


def test_import_checkpoint_invalid_data():
    with gptq.Context(N, K, group_size=32) as c:
        c.add_batch(S.activations(50, K, 14))
        q, _ = c.quantize(S.weights(N, K, 15))
    t = q.export("v2")
    t["g_idx"][5] = 7  # only 2 groups
    with pytest.raises(gptq.InvalidDataError) as info:
        gptq.QTensor.import_checkpoint(**t, bits=4, group_size=32, format="v2")
    assert info.value.message.startswith("gptq_qtensor_import:")
    with pytest.raises(gptq.InvalidConfigError, match="bits is 9"):
        gptq.QTensor.import_checkpoint(**t, bits=9, group_size=32)
    with pytest.raises(gptq.UnsupportedError, match="unknown gptq_checkpoint_format 'v3'"):
        gptq.QTensor.import_checkpoint(**t, bits=4, group_size=32, format="v3")
    t["g_idx"][5] = 1
    with pytest.raises(gptq.UnsupportedError, match="format 3 is not"):  # the library's word on ints
        gptq.QTensor.import_checkpoint(**t, bits=4, group_size=32, format=3)


def test_merge_errors(ctx):
    with pytest.raises(gptq.InvalidStateError, match="gptq_ctx_merge: dst and src are the same context"):
        ctx.merge(ctx)
    with gptq.Context(N, K + 32) as other:
        with pytest.raises(gptq.SizeMismatchError, match="gptq_ctx_merge: dst has in_features 64"):
            ctx.merge(other)
    with pytest.raises(TypeError):
        ctx.merge(object())


def test_backend_choice():
    try:
        with gptq.Context(N, K, backend="cuda") as c:  # only on a CUDA build with a GPU
            c.add_batch(S.activations(20, K, 18))
            _, stats = c.quantize(S.weights(N, K, 19))
        assert stats.backend == gptq.Backend.GPTQ_BACKEND_CUDA
    except gptq.BackendUnavailableError as e:
        assert e.status == gptq.Status.GPTQ_ERR_BACKEND_UNAVAILABLE
        assert e.message.startswith("gptq_ctx_create:")
    with gptq.Context(N, K, backend=gptq.Backend.GPTQ_BACKEND_CPU) as c:
        c.add_batch(S.activations(20, K, 18))
        assert c.quantize(S.weights(N, K, 19))[1].backend == gptq.Backend.GPTQ_BACKEND_CPU
    with pytest.raises(gptq.InvalidConfigError, match="backend 7 is not a gptq_backend"):
        gptq.Context(N, K, backend=7)


def test_closed_objects():
    c = gptq.Context(N, K)
    c.add_batch(S.activations(20, K, 16))
    q, _ = c.quantize(S.weights(N, K, 17))
    c.close()
    c.close()  # idempotent
    assert c.closed
    with pytest.raises(gptq.InvalidStateError, match="Context is closed"):
        c.add_batch(S.activations(2, K, 1))
    with pytest.raises(gptq.InvalidStateError):
        c.samples
    assert q.codes().shape == (N, K)  # tensors outlive their context
    with q:
        pass
    q.close()
    with pytest.raises(gptq.InvalidStateError, match="QTensor is closed"):
        q.matmul(S.activations(1, K, 1))
    with pytest.raises(gptq.InvalidStateError):
        with q:
            pass
    with pytest.raises(TypeError):
        gptq.QTensor()
