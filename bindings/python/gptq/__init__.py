"""libgptq for Python: GPTQ post-training quantization of linear layers, and
matmul with the quantized weights, on numpy arrays.

    import numpy as np
    import gptq

    with gptq.Context(out_features, in_features, gptq.Config(bits=4, group_size=128)) as ctx:
        for x in calibration_batches:          # float32 [tokens, in_features]
            ctx.add_batch(x)
        q, stats = ctx.quantize(w)             # w: float32 [out_features, in_features]
    with q:
        tensors = q.export("v1")               # qweight / qzeros / scales / g_idx
        y = q.matmul(x)                        # x · Wqᵀ

Everything goes through the ctypes declarations in gptq._native, which
bindings/generate.py generates from include/gptq.h (never edit that file).
The shared library is found through $GPTQ_LIBRARY (a path), else
ctypes.util.find_library("gptq"), else a libgptq next to this package.

Why ctypes: the package is pure Python (no compiler at install time, one
wheel for every Python version), the C API is a small, stable C ABI made for
foreign callers, and the generated layer carries the C compiler's struct
layouts, which gptq._native.check_layout() (and the tests) compare with
ctypes'. ctypes releases the GIL during every library call, so threads
sharing a QTensor run their matmuls in parallel. The cost, a few
microseconds per call, is small next to the work of each call. See
bindings/python/README.md.

Errors are GptqError (subclasses per status); see gptq._errors.
"""

from __future__ import annotations

from . import _native
from ._config import Backend, CheckpointFormat, Config, Dtype, Grid, LogLevel, Memory, Precision
from ._errors import (
    BackendUnavailableError,
    CancelledError,
    GptqError,
    InternalError,
    InvalidConfigError,
    InvalidDataError,
    InvalidSizeError,
    InvalidStateError,
    NonFiniteError,
    NullPointerError,
    OutOfMemoryError,
    SizeMismatchError,
    Status,
    UnsupportedError,
)

try:
    import numpy as _numpy
except ImportError as _exc:  # pragma: no cover - exercised by test_lowlevel.sh
    # gptq._native (the generated layer) must stay importable without numpy;
    # the numpy API then fails on first use with this error.
    _NUMPY_MISSING = _exc
else:
    del _numpy
    _NUMPY_MISSING = None
    from ._core import (Context, QTensor, QTensorInfo, QuantStats, checkpoint_shapes, gguf_dequantize,
                        gguf_size)

_NEEDS_NUMPY = ("Context", "QTensor", "QTensorInfo", "QuantStats", "checkpoint_shapes")


def __getattr__(name):
    if name in _NEEDS_NUMPY and _NUMPY_MISSING is not None:
        raise ImportError("gptq.%s needs numpy (pip install numpy): %s" % (name, _NUMPY_MISSING))
    raise AttributeError("module 'gptq' has no attribute %r" % name)


#: Version of this Python package.
__version__ = "0.1.0"

#: The header version the generated layer was made from (GPTQ_VERSION_NUMBER).
HEADER_VERSION = _native.GPTQ_VERSION_NUMBER


def version() -> str:
    """Version of the loaded libgptq, "MAJOR.MINOR.PATCH"."""
    return _native.gptq_version_string().decode("ascii")


def version_number() -> int:
    """Version of the loaded libgptq as MAJOR*10000 + MINOR*100 + PATCH."""
    return int(_native.gptq_version_number())


def _check_library_version():
    # The header's rule: a program built against header version X runs
    # against any library of the same MAJOR whose number is >= X.
    have = version_number()
    if have // 10000 != _native.GPTQ_VERSION_MAJOR or have < HEADER_VERSION:
        raise ImportError(
            "the loaded libgptq %s (%s) is not compatible with these bindings, generated from "
            "gptq.h %d.%d.%d: the major versions must match and the library must not be older"
            % (version(), getattr(_native.lib, "_name", "?"), _native.GPTQ_VERSION_MAJOR,
               _native.GPTQ_VERSION_MINOR, _native.GPTQ_VERSION_PATCH))


_check_library_version()

__all__ = [
    "__version__",
    "HEADER_VERSION",
    "version",
    "version_number",
    "Config",
    "Context",
    "QTensor",
    "QTensorInfo",
    "QuantStats",
    "checkpoint_shapes",
    "gguf_size",
    "gguf_dequantize",
    "Status",
    "Dtype",
    "Memory",
    "Grid",
    "Backend",
    "Precision",
    "LogLevel",
    "CheckpointFormat",
    "GptqError",
    "NullPointerError",
    "InvalidSizeError",
    "SizeMismatchError",
    "NonFiniteError",
    "InvalidConfigError",
    "InvalidStateError",
    "UnsupportedError",
    "BackendUnavailableError",
    "OutOfMemoryError",
    "CancelledError",
    "InvalidDataError",
    "InternalError",
]
