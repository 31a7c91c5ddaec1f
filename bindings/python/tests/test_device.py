"""Tests of device arrays in the gptq package (gptq/_device.py).

On a machine without a GPU they use stand-ins: objects that describe host
memory through __cuda_array_interface__ or DLPack as a CUDA library would
describe device memory. The library itself then finds the pointer is host
memory (gptq_memory AUTO on the CPU backend), so what is tested here is
the package's side: parsing, dtype and layout checks, which pointer and
stream reach the C call, and the errors. With torch and a GPU the last test
runs the real thing.
"""

import unittest

try:
    import numpy as np
    import pytest
except ImportError as exc:
    raise unittest.SkipTest("needs numpy and pytest (bindings/python/test.sh installs them): %s" % exc)

import _support as S
from _support import gptq
from gptq import _device as dev


class CudaArray:
    """A numpy array presented as __cuda_array_interface__ (version 3)."""

    def __init__(self, a, stream=1, strides=None):
        self.a = a
        self.__cuda_array_interface__ = {
            "shape": a.shape, "typestr": a.dtype.str, "data": (a.ctypes.data, False),
            "version": 3, "strides": strides, "stream": stream}


class DlpackCuda:
    """A numpy array presented through DLPack as if on CUDA device 0."""

    def __init__(self, a):
        self.a = a
        self.streams = []

    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, stream=None):
        self.streams.append(stream)
        return self.a.__dlpack__()


def test_cuda_array_interface_is_parsed():
    a = np.arange(12, dtype=np.float16).reshape(3, 4)
    d = dev.device_array(CudaArray(a, stream=7), "x")
    assert d.ptr == a.ctypes.data and d.shape == (3, 4)
    assert d.dtype == gptq.Dtype.GPTQ_DTYPE_F16 and d.stream == 7


def test_dlpack_is_parsed_and_told_the_stream():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    src = DlpackCuda(a)
    d = dev.device_array(src, "x", stream=5)
    assert d.ptr == a.ctypes.data and d.shape == (2, 3) and d.dtype == gptq.Dtype.GPTQ_DTYPE_F32
    assert src.streams == [5]
    dev.device_array(src, "x")
    assert src.streams[-1] == dev.LEGACY_STREAM


def test_host_arrays_are_not_device_arrays():
    assert dev.device_array(np.zeros((2, 2), np.float32), "x") is None  # DLPack on the CPU
    assert dev.device_array([1.0, 2.0], "x") is None


def test_device_arrays_must_be_contiguous_float():
    a = np.zeros((4, 4), np.float32)
    with pytest.raises(gptq.UnsupportedError, match="not C-contiguous"):
        dev.device_array(CudaArray(a, strides=(4, 16)), "x")
    with pytest.raises(gptq.UnsupportedError, match="libgptq takes float32"):
        dev.device_array(CudaArray(np.zeros((2, 2), np.float64)), "x")
    with pytest.raises(gptq.UnsupportedError, match="libgptq takes float32"):
        dev.device_array(DlpackCuda(np.zeros((2, 2), np.int32)), "x")
    # Strides that describe the C layout are fine.
    assert dev.device_array(CudaArray(a, strides=(16, 4)), "x").shape == (4, 4)


def test_streams_from_torch_and_cupy_objects():
    class TorchStream:
        cuda_stream = 11

    class CupyStream:
        ptr = 12

    assert dev.stream_handle(TorchStream()) == 11
    assert dev.stream_handle(CupyStream()) == 12
    assert dev.stream_handle(13) == 13 and dev.stream_handle(None) is None
    with pytest.raises(TypeError):
        dev.stream_handle("fast")
    cfg = gptq.Config(stream=TorchStream()).to_native()
    assert cfg.stream == 11


def test_calibration_and_weights_through_the_device_path_reach_the_library():
    # On the CPU backend AUTO calls these pointers host memory: the results
    # must be those of the numpy path, bit for bit.
    x = S.activations(64, 32, 1)
    w = S.weights(16, 32, 2)
    cfg = gptq.Config(group_size=16, backend="cpu")
    with gptq.Context(16, 32, cfg) as a, gptq.Context(16, 32, cfg) as b:
        a.add_batch(x)
        b.add_batch(CudaArray(x))
        assert np.array_equal(a.export_hessian()[0], b.export_hessian()[0])
        qa, _ = a.quantize(w)
        qb, _ = b.quantize(DlpackCuda(w))
        with qa, qb:
            assert np.array_equal(qa.codes(), qb.codes())
            assert qb.backend == gptq.Backend.GPTQ_BACKEND_CPU
    with gptq.Context(16, 32, cfg) as c:
        with pytest.raises(gptq.SizeMismatchError, match="must be a 2-D array"):
            c.add_batch(CudaArray(x.reshape(-1)))


def test_matmul_with_a_device_x_declares_device_memory():
    x = S.activations(64, 32, 1)
    with gptq.Context(16, 32, gptq.Config(group_size=16, backend="cpu")) as ctx:
        ctx.add_batch(x)
        q, _ = ctx.quantize(S.weights(16, 32, 2))
    with q:
        x16 = np.ascontiguousarray(x[:4].astype(np.float16))
        out = CudaArray(np.zeros((4, 16), np.float16))
        # The CPU backend has no device: the library says so.
        with pytest.raises(gptq.UnsupportedError, match="declared device memory, but the cpu backend"):
            q.matmul(CudaArray(x16), out=out)
        # A result array the package cannot make, and outputs that do not fit.
        with pytest.raises(gptq.UnsupportedError, match="pass out="):
            q.matmul(CudaArray(x16))
        with pytest.raises(gptq.SizeMismatchError, match="out must be"):
            q.matmul(CudaArray(x16), out=CudaArray(np.zeros((4, 15), np.float16)))
        with pytest.raises(gptq.UnsupportedError, match="bias must be a device array"):
            q.matmul(CudaArray(x16), bias=np.zeros(16, np.float16), out=out)


def test_torch_tensors_on_a_gpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device for torch")
    try:
        ctx = gptq.Context(64, 128, gptq.Config(backend="cuda"))
    except gptq.BackendUnavailableError as e:
        pytest.skip("no usable CUDA backend: %s" % e)
    x = torch.from_numpy(S.activations(256, 128, 3)).cuda()
    w = torch.from_numpy(S.weights(64, 128, 4)).cuda()
    with ctx:
        ctx.add_batch(x)
        q, _ = ctx.quantize(w)
    with q:
        for dtype in (torch.float16, torch.bfloat16):
            xs = x[:8].to(dtype)
            y = q.matmul(xs, stream=torch.cuda.current_stream())
            torch.cuda.synchronize()
            assert y.is_cuda and y.dtype == dtype and tuple(y.shape) == (8, 64)
            host = q.matmul(xs.float().cpu().numpy())
            assert np.allclose(y.float().cpu().numpy(), host, rtol=2e-2, atol=2e-2)
