"""Context and QTensor: the two library objects, over the generated layer."""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import threading
from typing import Callable, Optional, Tuple

import numpy as np

from . import _arrays as arr
from . import _device as dev
from . import _native as _n
from ._config import Backend, CheckpointFormat, Config, Dtype, Grid, LogLevel, Memory, enum_value
from ._errors import GptqError, InvalidStateError, Status, check, error_from_status

_ctx_p = ctypes.POINTER(_n.gptq_ctx)
_qtensor_p = ctypes.POINTER(_n.gptq_qtensor)


# ---------------------------------------------------------------------------
# Handles: close() once, safely, even with calls in flight on other threads.
# ---------------------------------------------------------------------------

class _Handle:
    """Owns one library object. Every call borrows the pointer (_acquire /
    _release); close() frees it at once when nothing is borrowed, else the
    last call in flight frees it, so closing an object another thread is
    using never frees memory under that call. After close() every call
    raises InvalidStateError."""

    _exclusive = False  # True: one call at a time (gptq_ctx is not thread-safe)

    def _init_handle(self, ptr):
        self._lock = threading.Lock()
        self._users = 0
        self._closing = False
        self._ptr = ptr

    def _free(self, ptr):  # pragma: no cover - overridden
        raise NotImplementedError

    def _acquire(self):
        name = type(self).__name__
        with self._lock:
            if self._closing:
                raise InvalidStateError("%s is closed" % name)
            if self._exclusive and self._users:
                raise InvalidStateError(
                    "%s is already in use by another call (a Context is for one thread at a "
                    "time, and its callbacks must not call back into it)" % name)
            self._users += 1
            return self._ptr

    def _release(self):
        with self._lock:
            self._users -= 1
            if self._users or not self._closing or self._ptr is None:
                return
            ptr, self._ptr = self._ptr, None
        self._free(ptr)

    def close(self):
        """Free the library object. Idempotent; later calls on this object
        raise InvalidStateError. If a call is still running on another
        thread, the object is freed when that call returns."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ failed before the object existed
            return
        with lock:
            if self._closing:
                return
            self._closing = True
            if self._users:
                return
            ptr, self._ptr = self._ptr, None
        if ptr:
            self._free(ptr)

    @property
    def closed(self):
        """True once close() has been called."""
        return getattr(self, "_closing", True)

    def __enter__(self):
        if self.closed:
            raise InvalidStateError("%s is closed" % type(self).__name__)
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        # Safety net for objects that were never closed. Must not raise, even
        # at interpreter shutdown.
        try:
            self.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------

_PY_LOG_LEVELS = {
    LogLevel.GPTQ_LOG_DEBUG: logging.DEBUG,
    LogLevel.GPTQ_LOG_INFO: logging.INFO,
    LogLevel.GPTQ_LOG_WARN: logging.WARNING,
    LogLevel.GPTQ_LOG_ERROR: logging.ERROR,
}


def _log_level(level):
    try:
        return LogLevel(level)
    except ValueError:
        return int(level)


class _Callbacks:
    """The C trampolines of one Context, and the first exception that a
    Python callback raised during the current library call.

    No Python exception may unwind through C frames, so the trampolines
    catch everything (KeyboardInterrupt included), remember the first
    exception, and make the library stop: the progress trampoline returns
    "cancel" from then on. The Context re-raises the exception when the
    library call has returned. The progress trampoline is installed even
    without a progress callable, so that a failing log callback, or Ctrl-C
    (a KeyboardInterrupt raised in the trampoline), also stops gptq_quantize
    at its next progress check (at most one block of columns later)."""

    def __init__(self, progress, log):
        if progress is not None and not callable(progress):
            raise TypeError("progress must be callable(done, total) -> bool, got %r" % (progress,))
        if isinstance(log, logging.Logger):
            logger = log
            log = lambda level, message: logger.log(_PY_LOG_LEVELS.get(level, logging.ERROR), "%s", message)
        elif log is not None and not callable(log):
            raise TypeError("log must be callable(level, message) or a logging.Logger, got %r" % (log,))
        self.progress = progress
        self.log = log
        self.error = None
        # References held here for as long as the C context may call them.
        self.c_progress = _n.gptq_progress_fn(self._on_progress)
        self.c_log = _n.gptq_log_fn(self._on_log) if log is not None else None

    def _on_progress(self, done, total, user_data):
        try:
            if self.error is not None:
                return 1
            if self.progress is None:
                return 0
            result = self.progress(done, total)
            return 0 if result is None or result else 1
        except BaseException as exc:  # noqa: B902 - nothing may cross into C
            if self.error is None:
                self.error = exc
            return 1

    def _on_log(self, level, message, user_data):
        try:
            if self.error is not None:
                return
            text = message.decode("utf-8", "replace") if message is not None else ""
            self.log(_log_level(level), text)
        except BaseException as exc:  # noqa: B902
            if self.error is None:
                self.error = exc

    def take_error(self):
        exc, self.error = self.error, None
        return exc


def _raise_callback_error(exc, where, err):
    """Re-raise an exception from a callback, noting what happened to the call."""
    if hasattr(exc, "add_note"):  # Python 3.11+
        if err is not None and err.status == Status.GPTQ_ERR_CANCELLED:
            exc.add_note("(raised in a gptq callback during %s, which was cancelled)" % where)
        elif err is not None:
            exc.add_note("(raised in a gptq callback during %s, which then failed: %s)" % (where, err))
        else:
            exc.add_note("(raised in a gptq callback during %s)" % where)
    raise exc


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class QuantStats:
    """What Context.quantize reports (gptq_quant_stats)."""

    loss: float               # Σ (w - q)² / U_jj² / 2, the reference's "error"
    damp_percent_used: float  # >= the configured one after retries
    damp_retries: int         # failed Cholesky attempts
    fell_back_to_rtn: bool    # every factorization failed: round-to-nearest
    dead_columns: int         # input columns with a zero Hessian diagonal
    seconds: float            # wall-clock time of gptq_quantize
    backend: Backend          # the backend that did the work

    @classmethod
    def from_native(cls, s):
        return cls(loss=s.loss, damp_percent_used=s.damp_percent_used,
                   damp_retries=s.damp_retries, fell_back_to_rtn=bool(s.fell_back_to_rtn),
                   dead_columns=s.dead_columns, seconds=s.seconds,
                   backend=enum_value(Backend, s.backend, "backend"))


@dataclasses.dataclass(frozen=True)
class QTensorInfo:
    """Shape and parameters of a quantized tensor (gptq_qtensor_info)."""

    out_features: int  # N: rows of the original weight
    in_features: int   # K: columns of the original weight
    bits: int
    group_size: int    # as configured; -1 for one group
    groups: int        # G: rows of scales / qzeros
    act_order: bool    # g_idx is not j // group_size

    @classmethod
    def from_native(cls, i):
        return cls(out_features=i.out_features, in_features=i.in_features, bits=i.bits,
                   group_size=i.group_size, groups=i.groups, act_order=bool(i.act_order))


def checkpoint_shapes(out_features, in_features, bits, group_size):
    """Shapes of the four GPTQ checkpoint tensors of an [out_features,
    in_features] layer: {"qweight": (K*bits/32, N), "qzeros": (G, N*bits/32),
    "scales": (G, N), "g_idx": (K,)}, as gptq_checkpoint_sizes_for says.
    Raises UnsupportedError when the layout cannot hold the shape."""
    s = _n.gptq_checkpoint_sizes()
    check(_n.gptq_checkpoint_sizes_for(
        arr.int64_arg(out_features, "out_features"), arr.int64_arg(in_features, "in_features"),
        arr.int32_arg(bits, "bits", Status.GPTQ_ERR_INVALID_CONFIG),
        arr.int32_arg(group_size, "group_size", Status.GPTQ_ERR_INVALID_CONFIG),
        ctypes.byref(s)))
    return {"qweight": (s.qweight_rows, s.qweight_cols), "qzeros": (s.qzeros_rows, s.qzeros_cols),
            "scales": (s.scales_rows, s.scales_cols), "g_idx": (s.g_idx_len,)}


# ---------------------------------------------------------------------------
# Context
# ---------------------------------------------------------------------------

class Context(_Handle):
    """Configuration + Hessian accumulator of one linear layer (gptq_ctx).

        with gptq.Context(out_features, in_features, gptq.Config(bits=4)) as ctx:
            for x in batches:                  # [tokens, in_features] float32
                ctx.add_batch(x)
            q, stats = ctx.quantize(w)         # w: [out_features, in_features]

    Config fields may also be given as keywords (``Context(n, k, bits=3)``),
    over `config` or the defaults.

    progress: callable(done, total) -> bool, called during quantize with
        the number of columns done; returning False (or anything false but
        None) cancels: quantize then raises CancelledError and the Context is
        unchanged.
    log: callable(level: gptq.LogLevel, message: str), or a logging.Logger;
        messages at or above Config.log_level.
    Both are kept referenced for the life of the Context. An exception raised
    inside either stops the running call (at its next progress check) and is
    re-raised from it once the library has returned; if that call had
    produced a QTensor, the QTensor is freed.

    A Context must be used by one thread at a time: a second concurrent call
    raises InvalidStateError instead of corrupting the Hessian.
    """

    _exclusive = True

    def __init__(self, out_features: int, in_features: int, config: Optional[Config] = None, *,
                 progress: Optional[Callable[[int, int], bool]] = None,
                 log: Optional[Callable[[LogLevel, str], None]] = None, **overrides):
        if config is None:
            config = Config()
        elif not isinstance(config, Config):
            raise TypeError("config must be a gptq.Config, got %r" % (config,))
        config = dataclasses.replace(config, **overrides)  # TypeError for unknown names
        native = config.to_native()
        callbacks = _Callbacks(progress, log)
        native.progress = callbacks.c_progress
        if callbacks.c_log is not None:
            native.log = callbacks.c_log
        out_features = arr.int64_arg(out_features, "out_features")
        in_features = arr.int64_arg(in_features, "in_features")
        ptr = _ctx_p()
        status = _n.gptq_ctx_create(out_features, in_features, ctypes.byref(native), ctypes.byref(ptr))
        err = error_from_status(status) if status != 0 else None
        exc = callbacks.take_error()
        if exc is not None:
            _n.gptq_ctx_destroy(ptr)  # NULL is ignored
            _raise_callback_error(exc, "Context()", err)
        if err is not None:
            raise err
        self._callbacks = callbacks
        self._config = config
        self.out_features = out_features
        self.in_features = in_features
        self._init_handle(ptr)

    # Bound here so that __del__ still finds it late in interpreter shutdown.
    _destroy = staticmethod(_n.gptq_ctx_destroy)

    def _free(self, ptr):
        self._destroy(ptr)
        self._callbacks = None  # the C side can no longer call them

    def _invoke(self, where, fn, *args, discard=None):
        """fn(ctx_ptr, *args) with the pointer borrowed; raises the library's
        error (message read right after the call) or a callback's exception.
        `discard` undoes a success when a callback raised."""
        callbacks = self._callbacks
        ptr = self._acquire()
        try:
            status = fn(ptr, *args)
            err = error_from_status(status) if status != 0 else None
        finally:
            self._release()
        exc = callbacks.take_error() if callbacks is not None else None
        if exc is not None:
            if err is None and discard is not None:
                discard()
            _raise_callback_error(exc, where, err)
        if err is not None:
            raise err

    @property
    def config(self) -> Config:
        """A copy of the configuration this Context was created with."""
        return dataclasses.replace(self._config)

    @property
    def samples(self) -> int:
        """Calibration samples seen so far (gptq_ctx_samples)."""
        ptr = self._acquire()
        try:
            return _n.gptq_ctx_samples(ptr)
        finally:
            self._release()

    def add_batch(self, x, samples: int = 1, *, dtype=None) -> None:
        """Add calibration activations x [rows, in_features] to the Hessian;
        `samples` is this batch's weight in the running mean (the reference
        counts an input [batch, seq, in] as `batch` samples; pass
        samples=rows for a per-token mean).

        x: float32, float16, or bfloat16 (uint16 bit patterns with
        dtype="bf16", or an ml_dtypes bfloat16 array). Not converted: other
        dtypes raise UnsupportedError. A CUDA device array (torch, CuPy,
        DLPack) is read where it is, on the CUDA backend, in the Context's
        stream (Config.stream)."""
        samples = arr.int64_arg(samples, "add_batch: samples")
        d = _device_matrix(x, "add_batch: x", dtype)
        if d is not None:
            self._invoke("add_batch", _n.gptq_add_batch, d.ptr, int(d.dtype), d.shape[0],
                         d.shape[1], samples)
            return
        a, code, rows, cols = arr.matrix(x, "add_batch: x", dtype)
        self._invoke("add_batch", _n.gptq_add_batch, a.ctypes.data, int(code), rows, cols, samples)

    def merge(self, other: "Context") -> None:
        """Merge other's Hessian into this one (sample-weighted mean), as if
        this Context had seen other's batches too. `other` is unchanged."""
        if not isinstance(other, Context):
            raise TypeError("merge: expected a gptq.Context, got %r" % (other,))
        if other is self:  # the library's own check and message
            self._invoke("merge", lambda p: _n.gptq_ctx_merge(p, p))
            return
        src = other._acquire()
        try:
            self._invoke("merge", _n.gptq_ctx_merge, src)
        finally:
            other._release()

    def export_hessian(self) -> Tuple[np.ndarray, int]:
        """(H as float64 [in_features, in_features], samples)."""
        h = np.empty((self.in_features, self.in_features), dtype=np.float64)
        samples = ctypes.c_int64()
        self._invoke("export_hessian", _n.gptq_ctx_export_hessian, arr.ptr(h, ctypes.c_double),
                     h.size, ctypes.byref(samples))
        return h, samples.value

    def import_hessian(self, h, samples: int) -> None:
        """Merge a Hessian [in_features, in_features] (e.g. exported on another
        machine) standing for `samples` samples into this Context; into an
        empty Context this is a plain load."""
        a = arr.float64_square(h, "import_hessian: h")
        samples = arr.int64_arg(samples, "import_hessian: samples")
        self._invoke("import_hessian", _n.gptq_ctx_import_hessian, arr.ptr(a, ctypes.c_double),
                     a.size, samples)

    def quantize(self, w, *, dtype=None) -> Tuple["QTensor", QuantStats]:
        """Quantize the weights w [out_features, in_features] (float32,
        float16 or bfloat16, as for add_batch) with the Hessian collected so
        far. Returns (QTensor, QuantStats). The Context is not consumed.
        w may be a CUDA device array, as for add_batch."""
        d = _device_matrix(w, "quantize: w", dtype)
        if d is not None:
            data, code, rows, cols = d.ptr, d.dtype, d.shape[0], d.shape[1]
        else:
            a, code, rows, cols = arr.matrix(w, "quantize: w", dtype)
            data = a.ctypes.data
        out = _qtensor_p()
        stats = _n.gptq_quant_stats()
        stats.struct_size = ctypes.sizeof(stats)
        self._invoke("quantize", _n.gptq_quantize, data, int(code), rows, cols,
                     ctypes.byref(out), ctypes.byref(stats),
                     discard=lambda: _n.gptq_qtensor_destroy(out))
        return QTensor._wrap(out), QuantStats.from_native(stats)

    def __repr__(self):
        if self.closed:
            return "<gptq.Context [%d, %d] closed>" % (self.out_features, self.in_features)
        return "<gptq.Context [%d, %d] bits=%s group_size=%s>" % (
            self.out_features, self.in_features, self._config.bits, self._config.group_size)


# ---------------------------------------------------------------------------
# QTensor
# ---------------------------------------------------------------------------

class QTensor(_Handle):
    """A quantized tensor (gptq_qtensor): packed codes, fp16 scales, zeros
    and g_idx, usable for matmul and exportable as a GPTQ checkpoint.

    Made by Context.quantize or QTensor.import_checkpoint. Immutable: any
    number of threads may call matmul, dequantize, codes and export on one
    QTensor at once (the library releases the GIL during each call)."""

    def __init__(self, *args, **kwargs):
        raise TypeError("QTensor objects come from Context.quantize() or QTensor.import_checkpoint()")

    @classmethod
    def _wrap(cls, ptr):
        self = cls.__new__(cls)
        self._init_handle(ptr)  # owned from here on: __del__ frees it
        info = _n.gptq_qtensor_info()
        self._call(_n.gptq_qtensor_get_info, ctypes.byref(info))
        self._info = QTensorInfo.from_native(info)
        self._grid = enum_value(Grid, _n.gptq_qtensor_grid(ptr), "grid")
        return self

    _destroy = staticmethod(_n.gptq_qtensor_destroy)

    def _free(self, ptr):
        self._destroy(ptr)

    def _call(self, fn, *args):
        ptr = self._acquire()
        try:
            status = fn(ptr, *args)
            err = error_from_status(status) if status != 0 else None
        finally:
            self._release()
        if err is not None:
            raise err

    # -- queries -------------------------------------------------------------

    @property
    def info(self) -> QTensorInfo:
        """Shape and parameters (gptq_qtensor_get_info; fixed for life)."""
        return self._info

    @property
    def out_features(self) -> int:
        return self._info.out_features

    @property
    def in_features(self) -> int:
        return self._info.in_features

    @property
    def shape(self) -> Tuple[int, int]:
        """(out_features, in_features), the shape of the original weight."""
        return (self._info.out_features, self._info.in_features)

    @property
    def bits(self) -> int:
        return self._info.bits

    @property
    def group_size(self) -> int:
        return self._info.group_size

    def dequantize(self, *, out=None) -> np.ndarray:
        """The weights scale·(code − zero) as float32 [out_features,
        in_features], original column order."""
        y = arr.output(out, self.shape, np.float32, "dequantize")
        self._call(_n.gptq_qtensor_dequantize, arr.ptr(y, ctypes.c_float), y.size)
        return y

    def codes(self) -> np.ndarray:
        """The integer codes as uint8 [out_features, in_features], original
        column order, values 0 .. 2**bits - 1."""
        c = np.empty(self.shape, dtype=np.uint8)
        self._call(_n.gptq_qtensor_codes, arr.ptr(c, ctypes.c_uint8), c.size)
        return c

    @property
    def grid(self) -> Grid:
        """The grid the codes lie on (gptq_qtensor_grid): Config.grid of the
        Context that made this tensor, GPTQ's own for imported checkpoints."""
        return self._grid

    # -- GGUF ----------------------------------------------------------------

    def gguf_export(self) -> np.ndarray:
        """The tensor as its GGUF block format's bytes (gptq_gguf_export):
        uint8 [gguf_size(grid, out_features, in_features)], the data of a
        GGUF tensor of that type with ne0 = in_features. Only for a tensor
        quantized on a GGUF grid (Config.grid); UnsupportedError otherwise."""
        if self._grid == Grid.GPTQ_GRID_GPTQ:
            raise GptqError(Status.GPTQ_ERR_UNSUPPORTED,
                            "gguf_export: the tensor is on GPTQ's own grid, not a GGUF one (Config.grid)")
        out = np.empty(gguf_size(self._grid, self.out_features, self.in_features), dtype=np.uint8)
        self._call(_n.gptq_gguf_export, out.ctypes.data_as(ctypes.c_void_p), out.size)
        return out

    # -- checkpoints ---------------------------------------------------------

    def export(self, format="v1") -> dict:
        """The GPTQ checkpoint tensors, as new numpy arrays:
        {"qweight": int32 [K*bits/32, N], "qzeros": int32 [G, N*bits/32],
         "scales": float16 [G, N], "g_idx": int32 [K]}.
        format "v1" stores zero − 1 (what readers assume by default; cannot
        hold a zero of 0, so asymmetric results raise UnsupportedError: use
        "v2"), "v2" the zero as is."""
        fmt = enum_value(CheckpointFormat, format, "export: format", Status.GPTQ_ERR_UNSUPPORTED)
        shapes = checkpoint_shapes(self.out_features, self.in_features, self.bits, self.group_size)
        qweight = np.empty(shapes["qweight"], dtype=np.int32)
        qzeros = np.empty(shapes["qzeros"], dtype=np.int32)
        scales = np.empty(shapes["scales"], dtype=np.float16)
        g_idx = np.empty(shapes["g_idx"], dtype=np.int32)
        t = _n.gptq_checkpoint_tensors(
            qweight=arr.ptr(qweight, ctypes.c_int32), qweight_len=qweight.size,
            qzeros=arr.ptr(qzeros, ctypes.c_int32), qzeros_len=qzeros.size,
            scales=arr.ptr(scales, ctypes.c_uint16), scales_len=scales.size,
            g_idx=arr.ptr(g_idx, ctypes.c_int32), g_idx_len=g_idx.size)
        self._call(_n.gptq_qtensor_export, int(fmt), ctypes.byref(t))
        return {"qweight": qweight, "qzeros": qzeros, "scales": scales, "g_idx": g_idx}

    @classmethod
    def import_checkpoint(cls, qweight, qzeros, scales, g_idx=None, *, bits: int, group_size: int,
                          format="v1", out_features: Optional[int] = None,
                          in_features: Optional[int] = None) -> "QTensor":
        """Build a QTensor from GPTQ checkpoint tensors (e.g. loaded from
        safetensors): qweight int32 [K*bits/32, N], qzeros int32
        [G, N*bits/32], scales float16 [G, N] (or uint16 bits), g_idx int
        [K] or None (j // group_size). N and K are taken from the shapes
        unless given. ``QTensor.import_checkpoint(**q.export("v2"), bits=4,
        group_size=128, format="v2")`` round-trips. The arrays are copied."""
        where = "import_checkpoint"
        bits = arr.int32_arg(bits, where + ": bits", Status.GPTQ_ERR_INVALID_CONFIG)
        group_size = arr.int32_arg(group_size, where + ": group_size", Status.GPTQ_ERR_INVALID_CONFIG)
        fmt = enum_value(CheckpointFormat, format, where + ": format", Status.GPTQ_ERR_UNSUPPORTED)
        qw = np.asarray(qweight)
        if out_features is None or (in_features is None and g_idx is None):
            if qw.ndim != 2:
                raise GptqError(Status.GPTQ_ERR_SIZE_MISMATCH,
                                "%s: qweight must be 2-D [in_features*bits/32, out_features], got "
                                "shape %s" % (where, tuple(qw.shape)))
        if out_features is None:
            out_features = qw.shape[1]
        if in_features is None:
            if g_idx is not None:
                gi = np.asarray(g_idx)
                if gi.ndim != 1:
                    raise GptqError(Status.GPTQ_ERR_SIZE_MISMATCH,
                                    "%s: g_idx must be 1-D [in_features], got shape %s"
                                    % (where, tuple(gi.shape)))
                in_features = gi.shape[0]
            elif bits < 1:
                in_features = qw.shape[0] * 32  # the library reports the bits
            elif qw.shape[0] * 32 % bits:
                raise GptqError(Status.GPTQ_ERR_SIZE_MISMATCH,
                                "%s: qweight has %d rows, which is not in_features*%d/32 for any "
                                "in_features" % (where, qw.shape[0], bits))
            else:
                in_features = qw.shape[0] * 32 // bits
        out_features = arr.int64_arg(out_features, where + ": out_features")
        in_features = arr.int64_arg(in_features, where + ": in_features")
        shapes = checkpoint_shapes(out_features, in_features, bits, group_size)
        qw = arr.int32_packed(qw, where + ": qweight", shapes["qweight"])
        qz = arr.int32_packed(qzeros, where + ": qzeros", shapes["qzeros"])
        sc = arr.fp16_bits(scales, where + ": scales", shapes["scales"])
        gi = None if g_idx is None else arr.int32_index(g_idx, where + ": g_idx", in_features)
        t = _n.gptq_checkpoint_tensors(
            qweight=arr.ptr(qw, ctypes.c_int32), qweight_len=qw.size,
            qzeros=arr.ptr(qz, ctypes.c_int32), qzeros_len=qz.size,
            scales=arr.ptr(sc, ctypes.c_uint16), scales_len=sc.size,
            g_idx=None if gi is None else arr.ptr(gi, ctypes.c_int32),
            g_idx_len=0 if gi is None else gi.size)
        out = _qtensor_p()
        check(_n.gptq_qtensor_import(out_features, in_features, bits, group_size, int(fmt),
                                     ctypes.byref(t), ctypes.byref(out)))
        return cls._wrap(out)

    # -- matmul --------------------------------------------------------------

    def matmul(self, x, bias=None, *, dtype=None, out=None, int8_activations=None,
               num_threads=None, stream=None):
        """y = x · Wᵀ (+ bias) with W the dequantized weights.

        x: [..., in_features] (1-D, 2-D or more; leading dimensions are
        batch) float32, float16, or bfloat16 (uint16 bit patterns with
        dtype="bf16", or ml_dtypes bfloat16). y: [..., out_features], same
        dtype as x (float32 in -> float32 out, float16 in -> float16 out).
        Accumulation is float32; a 16-bit result is rounded once at the end.
        bias: [out_features] or None; for float32/float16 x it is converted
        to x's dtype, otherwise it must have x's dtype.
        out: an optional preallocated result array (C-contiguous, y's shape
        and dtype).
        int8_activations / num_threads: gptq_matmul_options (then
        gptq_matmul_ex runs): int8_activations=True rounds each block of 32
        activations to int8 for the AVX2/VNNI kernels (small batches, 2-4
        bits; faster, ~0.1-0.3% error); num_threads for this call
        (0 = one per core).
        Thread-safe on a shared QTensor.

        x may also be a CUDA device array (a torch or CuPy tensor, or any
        DLPack producer on a GPU): then bias and out must be device arrays
        too, y is a new tensor of x's kind (torch, CuPy) unless out is
        given, and the product is only queued, on `stream` (an int handle,
        a torch.cuda.Stream or a cupy.cuda.Stream), else the stream x's
        __cuda_array_interface__ names, else the tensor's own."""
        d = dev.device_array(x, "matmul: x", dev.stream_handle(stream))
        if d is not None:
            return self._matmul_device(x, d, bias, dtype, out, stream)
        a = np.asarray(x)
        if a.ndim == 0:
            raise GptqError(Status.GPTQ_ERR_SIZE_MISMATCH,
                            "matmul: x must have at least 1 dimension [..., in_features]")
        a, code = arr.float_array(a, "matmul: x", dtype)
        cols = a.shape[-1]
        lead = tuple(a.shape[:-1])
        rows = int(np.prod(lead, dtype=np.int64)) if lead else 1
        n = self.out_features
        y = arr.output(out, lead + (n,), a.dtype, "matmul")
        b = None
        if bias is not None:
            b = np.asarray(bias)
            if a.dtype == np.float32 or a.dtype == np.float16:
                b = np.ascontiguousarray(b, dtype=a.dtype)
            elif b.dtype != a.dtype:
                raise GptqError(Status.GPTQ_ERR_UNSUPPORTED,
                                "matmul: bias has dtype %s; with x %s it must be %s too"
                                % (b.dtype, a.dtype, a.dtype))
            else:
                b = np.ascontiguousarray(b)
            if b.shape != (n,):
                raise GptqError(Status.GPTQ_ERR_SIZE_MISMATCH,
                                "matmul: bias has shape %s, (%d,) expected (out_features)"
                                % (tuple(b.shape), n))
        bias_p = None if b is None else b.ctypes.data
        if int8_activations is None and num_threads is None:
            self._call(_n.gptq_matmul, a.ctypes.data, int(code), rows, cols, bias_p,
                       y.ctypes.data, y.size)
        else:
            opts = _matmul_options(int8_activations, num_threads)
            self._call(_n.gptq_matmul_ex, a.ctypes.data, int(code), rows, cols, bias_p,
                       y.ctypes.data, y.size, ctypes.byref(opts))
        return y

    def _matmul_device(self, x, d, bias, dtype, out, stream):
        if dtype is not None and enum_value(Dtype, dtype, "matmul: dtype", Status.GPTQ_ERR_UNSUPPORTED) != d.dtype:
            raise GptqError(Status.GPTQ_ERR_UNSUPPORTED,
                            "matmul: x is a device array of %s; dtype=%r does not match"
                            % (d.dtype.name, dtype))
        if not d.shape:
            raise GptqError(Status.GPTQ_ERR_SIZE_MISMATCH,
                            "matmul: x must have at least 1 dimension [..., in_features]")
        lead, cols = d.shape[:-1], d.shape[-1]
        rows = int(np.prod(lead, dtype=np.int64)) if lead else 1
        n = self.out_features
        y = dev.empty_like_device(x, lead + (n,), "matmul") if out is None else out
        yd = dev.device_array(y, "matmul: out")
        if yd is None or yd.dtype != d.dtype or tuple(yd.shape) != lead + (n,):
            raise GptqError(Status.GPTQ_ERR_SIZE_MISMATCH,
                            "matmul: out must be a C-contiguous device array of %s, shape %s"
                            % (d.dtype.name, lead + (n,)))
        bias_p = None
        if bias is not None:
            bd = dev.device_array(bias, "matmul: bias")
            if bd is None or bd.dtype != d.dtype or tuple(bd.shape) != (n,):
                raise GptqError(Status.GPTQ_ERR_UNSUPPORTED,
                                "matmul: with a device x, bias must be a device array of %s, "
                                "shape (%d,)" % (d.dtype.name, n))
            bias_p = bd.ptr
        opts = _matmul_options(None, None)
        handle = dev.stream_handle(stream)
        if handle is None:
            handle = d.stream
        opts.stream = handle
        opts.memory = int(Memory.GPTQ_MEMORY_DEVICE)
        self._call(_n.gptq_matmul_ex, d.ptr, int(d.dtype), rows, cols, bias_p, yd.ptr,
                   rows * n, ctypes.byref(opts))
        return y

    @property
    def backend(self) -> Backend:
        """The backend the tensor lives on and whose matmul runs it."""
        ptr = self._acquire()
        try:
            return Backend(_n.gptq_qtensor_backend(ptr))
        finally:
            self._release()

    def __repr__(self):
        i = self._info
        return "<gptq.QTensor [%d, %d] bits=%d group_size=%d%s%s>" % (
            i.out_features, i.in_features, i.bits, i.group_size,
            " act_order" if i.act_order else "", " closed" if self.closed else "")


def gguf_size(grid, rows: int, cols: int) -> int:
    """Bytes of a [rows, cols] tensor in the GGUF block format of `grid`
    (a Grid, its int or a name such as "q4_0"; gptq_gguf_size)."""
    g = enum_value(Grid, grid, "gguf_size: grid")
    size = ctypes.c_int64()
    check(_n.gptq_gguf_size(int(g), arr.int64_arg(rows, "gguf_size: rows"),
                            arr.int64_arg(cols, "gguf_size: cols"), ctypes.byref(size)))
    return size.value


def gguf_dequantize(grid, data, rows: int, cols: int, *, out=None) -> np.ndarray:
    """Decode GGUF blocks of `grid` (bytes or a uint8 array of exactly
    gguf_size(grid, rows, cols) bytes) into float32 [rows, cols], as llama.cpp
    dequantizes them (gptq_gguf_dequantize)."""
    g = enum_value(Grid, grid, "gguf_dequantize: grid")
    rows = arr.int64_arg(rows, "gguf_dequantize: rows")
    cols = arr.int64_arg(cols, "gguf_dequantize: cols")
    if isinstance(data, (bytes, bytearray, memoryview)):
        blocks = np.frombuffer(data, dtype=np.uint8)
    elif isinstance(data, np.ndarray) and data.dtype == np.uint8:
        blocks = np.ascontiguousarray(data)
    else:
        raise TypeError("gguf_dequantize: data must be bytes or a uint8 numpy array, got %r"
                        % (type(data).__name__,))
    y = arr.output(out, (rows, cols), np.float32, "gguf_dequantize")
    check(_n.gptq_gguf_dequantize(int(g), blocks.ctypes.data_as(ctypes.c_void_p), blocks.size,
                                  rows, cols, arr.ptr(y, ctypes.c_float), y.size))
    return y


def _matmul_options(int8_activations, num_threads):
    opts = _n.gptq_matmul_options()
    _n.gptq_matmul_options_default(ctypes.byref(opts))
    if int8_activations is not None:
        opts.int8_activations = arr.int32_arg(int(bool(int8_activations)), "int8_activations",
                                              Status.GPTQ_ERR_INVALID_CONFIG)
    if num_threads is not None:
        opts.num_threads = arr.int32_arg(num_threads, "num_threads", Status.GPTQ_ERR_INVALID_CONFIG)
    return opts


def _device_matrix(x, what, dtype):
    """x as a 2-D DeviceArray, or None for host arrays."""
    d = dev.device_array(x, what)
    if d is None:
        return None
    if len(d.shape) != 2:
        raise GptqError(Status.GPTQ_ERR_SIZE_MISMATCH,
                        "%s must be a 2-D array, got shape %s" % (what, d.shape))
    if dtype is not None and enum_value(Dtype, dtype, what + ": dtype", Status.GPTQ_ERR_UNSUPPORTED) != d.dtype:
        raise GptqError(Status.GPTQ_ERR_UNSUPPORTED,
                        "%s is a device array of %s; dtype=%r does not match" % (what, d.dtype.name, dtype))
    return d
