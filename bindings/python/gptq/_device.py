"""Arrays in CUDA device memory (torch, CuPy, JAX, ...) passed straight to
the library: no copy to the host and back.

An object is taken as a device array when it has __cuda_array_interface__
(torch and CuPy tensors on a GPU) or, failing that, DLPack
(__dlpack_device__ naming a CUDA device, and __dlpack__), which also covers
bfloat16 tensors, for which torch offers no __cuda_array_interface__. Only
C-contiguous float32 / float16 / bfloat16 arrays are accepted; nothing is
converted. The library finds out itself that the pointer is device memory
(gptq_memory AUTO), and refuses it, with its message, on the CPU backend.

Streams: work on device arrays is queued on a CUDA stream and the call
returns without waiting, as a CUDA kernel would. The stream is the call's
`stream` argument (an int handle, or an object with .cuda_stream (torch) or
.ptr (CuPy)); else the one __cuda_array_interface__ names; else CUDA's
legacy default stream.
"""

from __future__ import annotations

import ctypes
from typing import NamedTuple, Optional

from ._config import Dtype
from ._errors import GptqError, Status

UNSUPPORTED = Status.GPTQ_ERR_UNSUPPORTED
SIZE_MISMATCH = Status.GPTQ_ERR_SIZE_MISMATCH

# DLPack's device types and dtype codes (dlpack.h).
_DL_CPU, _DL_CUDA, _DL_CUDA_HOST, _DL_CUDA_MANAGED = 1, 2, 3, 13
_DL_FLOAT, _DL_BFLOAT = 2, 4
# CUDA's legacy default stream as a handle (cudaStreamLegacy), which is also
# what DLPack's stream=1 means.
LEGACY_STREAM = 1

_TYPESTR = {"<f4": Dtype.GPTQ_DTYPE_F32, "<f2": Dtype.GPTQ_DTYPE_F16}
_ITEMSIZE = {Dtype.GPTQ_DTYPE_F32: 4, Dtype.GPTQ_DTYPE_F16: 2, Dtype.GPTQ_DTYPE_BF16: 2}


class DeviceArray(NamedTuple):
    """A view of another library's device memory; `owner` keeps it alive."""
    ptr: int
    shape: tuple
    dtype: Dtype
    stream: Optional[int]  # the stream the producer says the data is ready on
    owner: object


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def stream_handle(stream) -> Optional[int]:
    """A cudaStream_t as an int from an int, a torch.cuda.Stream
    (.cuda_stream), a cupy.cuda.Stream (.ptr), or None."""
    if stream is None:
        return None
    for attr in ("cuda_stream", "ptr"):
        if hasattr(stream, attr):
            return int(getattr(stream, attr))
    if isinstance(stream, int) and not isinstance(stream, bool):
        return stream
    raise TypeError("stream: expected an int handle, a torch.cuda.Stream or a cupy.cuda.Stream, "
                    "got %r" % (stream,))


def _contiguous(shape, strides, itemsize):
    """Whether strides (in bytes, or None) describe a C-contiguous layout."""
    if strides is None:
        return True
    expected = itemsize
    for extent, stride in zip(reversed(shape), reversed(strides)):
        if extent != 1 and stride != expected:
            return False
        expected *= extent
    return True


def _from_cuda_array_interface(x, what):
    cai = x.__cuda_array_interface__
    typestr = cai.get("typestr")
    code = _TYPESTR.get(typestr)
    if code is None:
        raise GptqError(UNSUPPORTED, "%s is a device array of type %s; libgptq takes float32, "
                                     "float16 or bfloat16" % (what, typestr))
    shape = tuple(int(v) for v in cai["shape"])
    if not _contiguous(shape, cai.get("strides"), _ITEMSIZE[code]):
        raise GptqError(UNSUPPORTED, "%s is a device array that is not C-contiguous; make it "
                                     "contiguous first" % what)
    stream = cai.get("stream")
    return DeviceArray(int(cai["data"][0]), shape, code, None if stream is None else int(stream), x)


def _from_dlpack(x, what, stream):
    capsule = x.__dlpack__(stream=LEGACY_STREAM if stream is None else stream)
    t = _DLTensor.from_address(_capsule_pointer(capsule, b"dltensor"))
    dt = t.dtype
    if dt.lanes == 1 and dt.code == _DL_FLOAT and dt.bits == 32:
        code = Dtype.GPTQ_DTYPE_F32
    elif dt.lanes == 1 and dt.code == _DL_FLOAT and dt.bits == 16:
        code = Dtype.GPTQ_DTYPE_F16
    elif dt.lanes == 1 and dt.code == _DL_BFLOAT and dt.bits == 16:
        code = Dtype.GPTQ_DTYPE_BF16
    else:
        raise GptqError(UNSUPPORTED, "%s is a device array of DLPack type code %d, %d bits; "
                                     "libgptq takes float32, float16 or bfloat16"
                                     % (what, dt.code, dt.bits))
    shape = tuple(t.shape[i] for i in range(t.ndim))
    strides = None if not t.strides else tuple(t.strides[i] * _ITEMSIZE[code] for i in range(t.ndim))
    if not _contiguous(shape, strides, _ITEMSIZE[code]):
        raise GptqError(UNSUPPORTED, "%s is a device array that is not C-contiguous; make it "
                                     "contiguous first" % what)
    ptr = (t.data or 0) + t.byte_offset
    # The capsule (kept as owner, never consumed) frees the tensor when it goes.
    return DeviceArray(ptr, shape, code, stream, (x, capsule))


def device_array(x, what, stream=None) -> Optional[DeviceArray]:
    """x as a DeviceArray, or None when x is not a device array (numpy or
    anything else host-side takes the numpy path)."""
    if hasattr(x, "__cuda_array_interface__"):
        try:
            return _from_cuda_array_interface(x, what)
        except (TypeError, AttributeError, RuntimeError):
            pass  # e.g. torch's bfloat16, which only DLPack describes
    device = getattr(x, "__dlpack_device__", None)
    if device is not None and hasattr(x, "__dlpack__"):
        kind, _ = device()
        if kind in (_DL_CUDA, _DL_CUDA_MANAGED):
            return _from_dlpack(x, what, stream)
    return None


def empty_like_device(x, shape, what):
    """A new device array of x's kind and dtype for a result, where x's
    library can make one (torch: new_empty; CuPy: cupy.empty); else an
    error asking for `out`."""
    if hasattr(x, "new_empty"):
        return x.new_empty(shape)
    module = type(x).__module__.split(".")[0]
    if module == "cupy":
        import cupy  # noqa: PLC0415 - only for CuPy callers
        return cupy.empty(shape, dtype=x.dtype)
    raise GptqError(UNSUPPORTED, "%s: x is a device array of a kind this package cannot allocate "
                                 "results for; pass out= (a device array of shape %s)"
                    % (what, tuple(shape)))
