"""numpy <-> C buffers: dtype mapping, shape checks, contiguity, pointers.

What is checked here is what the C API cannot see (it gets a pointer and a
length): the number of dimensions, the element type, the layout in memory,
and the lengths of buffers that have no length argument (bias). Everything
the library can check (widths against in_features, NaN/Inf, value ranges) is
left to it, so its message is the one the caller sees.
"""

from __future__ import annotations

import ctypes
import operator

import numpy as np

from ._config import Dtype, enum_value
from ._errors import GptqError, Status

UNSUPPORTED = Status.GPTQ_ERR_UNSUPPORTED
SIZE_MISMATCH = Status.GPTQ_ERR_SIZE_MISMATCH
INVALID_SIZE = Status.GPTQ_ERR_INVALID_SIZE
INVALID_DATA = Status.GPTQ_ERR_INVALID_DATA

_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1
_INT32 = np.dtype(np.int32)


def int64_arg(value, what, status=INVALID_SIZE):
    """An int for an int64_t parameter (ctypes would silently truncate a
    larger one)."""
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError("%s: expected an int, got %r" % (what, value)) from None
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise GptqError(status, "%s is %d, which does not fit in int64" % (what, value))
    return value


def int32_arg(value, what, status):
    value = int64_arg(value, what, status)
    if not -(2 ** 31) <= value < 2 ** 31:
        raise GptqError(status, "%s is %d, which does not fit in int32" % (what, value))
    return value


def is_bfloat16(dtype):
    """True for a numpy bfloat16 dtype (ml_dtypes, as used by JAX)."""
    return dtype.itemsize == 2 and dtype.name == "bfloat16"


def _native_byte_order(a):
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return a


def _describe(a):
    return "%s %s" % (a.dtype, tuple(a.shape))


def float_array(x, what, dtype=None):
    """(array, gptq dtype) for activations / weights / matmul inputs.

    Without `dtype`: float32 -> F32, float16 -> F16, a bfloat16 dtype
    (ml_dtypes) -> BF16. `dtype` ("f32", "f16", "bf16" or a gptq.Dtype) says
    how to read the array and also allows uint16 bit patterns for "f16" and
    "bf16". Nothing is converted: float64 and integers are refused with
    UnsupportedError, so no hidden copy of a large array is made.
    """
    a = _native_byte_order(np.asarray(x))
    if dtype is None:
        if a.dtype == np.float32:
            code = Dtype.GPTQ_DTYPE_F32
        elif a.dtype == np.float16:
            code = Dtype.GPTQ_DTYPE_F16
        elif is_bfloat16(a.dtype):
            code = Dtype.GPTQ_DTYPE_BF16
        elif a.dtype == np.uint16:
            raise GptqError(UNSUPPORTED, "%s is uint16: pass dtype='bf16' (bfloat16 bit patterns) "
                                         "or dtype='f16' (float16 bit patterns)" % what)
        else:
            raise GptqError(UNSUPPORTED, "%s has dtype %s; libgptq takes float32, float16, or "
                                         "bfloat16 (as uint16 bit patterns with dtype='bf16'); "
                                         "convert with .astype(np.float32)" % (what, a.dtype))
    else:
        code = enum_value(Dtype, dtype, what + ": dtype", status=UNSUPPORTED)
        accepted = {
            Dtype.GPTQ_DTYPE_F32: a.dtype == np.float32,
            Dtype.GPTQ_DTYPE_F16: a.dtype == np.float16 or a.dtype == np.uint16,
            Dtype.GPTQ_DTYPE_BF16: a.dtype == np.uint16 or is_bfloat16(a.dtype),
        }
        if not accepted.get(code, a.dtype.itemsize in (2, 4)):
            raise GptqError(UNSUPPORTED, "%s has dtype %s, which cannot hold %s values"
                                         % (what, a.dtype, getattr(code, "name", code)))
    return np.ascontiguousarray(a), code


def matrix(x, what, dtype=None):
    """float_array() of a 2-D array: (array, code, rows, cols)."""
    a = np.asarray(x)
    if a.ndim != 2:
        raise GptqError(SIZE_MISMATCH, "%s must be a 2-D array, got shape %s" % (what, tuple(a.shape)))
    a, code = float_array(a, what, dtype)
    return a, code, a.shape[0], a.shape[1]


def float64_square(h, what):
    """A C-contiguous float64 [n, n] array (float16/32 are widened, which is
    exact; other dtypes are refused)."""
    a = _native_byte_order(np.asarray(h))
    if a.dtype.kind != "f":
        raise GptqError(UNSUPPORTED, "%s has dtype %s; a Hessian is float64" % (what, a.dtype))
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise GptqError(SIZE_MISMATCH, "%s must be a square 2-D array, got shape %s"
                        % (what, tuple(a.shape)))
    if a.dtype.itemsize > 8:
        raise GptqError(UNSUPPORTED, "%s has dtype %s; convert to float64" % (what, a.dtype))
    return np.ascontiguousarray(a, dtype=np.float64)


def int32_packed(x, what, shape):
    """Packed checkpoint words: int32 (or uint32, the same bits) of `shape`."""
    a = _native_byte_order(np.asarray(x))
    if a.dtype == np.uint32:
        a = a.view(np.int32)
    elif a.dtype != np.int32:
        raise GptqError(UNSUPPORTED, "%s has dtype %s; packed checkpoint words are int32"
                        % (what, a.dtype))
    _expect_shape(a, what, shape)
    return np.ascontiguousarray(a)


def fp16_bits(x, what, shape):
    """Checkpoint scales: float16 (or uint16 bit patterns) of `shape`, as uint16."""
    a = _native_byte_order(np.asarray(x))
    if a.dtype == np.float16:
        a = a.view(np.uint16)
    elif a.dtype != np.uint16:
        raise GptqError(UNSUPPORTED, "%s has dtype %s; checkpoint scales are float16"
                        % (what, a.dtype))
    _expect_shape(a, what, shape)
    return np.ascontiguousarray(a)


def int32_index(x, what, length):
    """g_idx: any integer dtype whose values fit in int32, as int32 [length]."""
    a = _native_byte_order(np.asarray(x))
    if a.dtype.kind not in "iu":
        raise GptqError(UNSUPPORTED, "%s has dtype %s; g_idx is an integer array" % (what, a.dtype))
    _expect_shape(a, what, (length,))
    if a.dtype != _INT32:
        if a.size and (a.min() < -(2 ** 31) or a.max() >= 2 ** 31):
            raise GptqError(INVALID_DATA, "%s holds values beyond the int32 range" % what)
        a = a.astype(np.int32)
    return np.ascontiguousarray(a)


def _expect_shape(a, what, shape):
    if tuple(a.shape) != tuple(shape):
        raise GptqError(SIZE_MISMATCH, "%s has shape %s, %s expected" % (what, tuple(a.shape), tuple(shape)))


def output(out, shape, dtype, what):
    """A fresh array, or the caller's `out` after checking it can take the
    result in place (shape, dtype, C-contiguous, writeable)."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError("%s: out must be a numpy array" % what)
    if out.dtype != dtype:
        raise GptqError(UNSUPPORTED, "%s: out has dtype %s, %s needed"
                        % (what, out.dtype, np.dtype(dtype)))
    if tuple(out.shape) != tuple(shape):
        raise GptqError(SIZE_MISMATCH, "%s: out has shape %s, %s needed"
                        % (what, tuple(out.shape), tuple(shape)))
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise GptqError(UNSUPPORTED, "%s: out must be C-contiguous and writeable" % what)
    return out


def ptr(a, ctype):
    """A typed ctypes pointer to the data of array `a` (keep `a` alive)."""
    return a.ctypes.data_as(ctypes.POINTER(ctype))
