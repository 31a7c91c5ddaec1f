"""GptqError and its per-status subclasses.

Every failing library call becomes a GptqError whose ``status`` is the
gptq_status (an IntEnum from the generated layer) and whose ``message`` is
gptq_last_error(), read right after the failing call on the same thread (the
message is thread-local in C; a Python thread is one OS thread, and nothing
calls into the library between the failing call and the read).

Errors this package finds itself before calling the library (an array that
is not 2-D, a dtype the C API has no code for, a bias of the wrong length)
use the same classes and the status the library would have used.
"""

from __future__ import annotations

from . import _native as _n

Status = _n.gptq_status

__all__ = [
    "Status",
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


def _as_status(value):
    """The Status member for an int, or the int itself for a value this
    binding does not know (a newer library may append codes)."""
    try:
        return Status(int(value))
    except ValueError:
        return int(value)


class GptqError(Exception):
    """A libgptq call failed.

    Attributes:
        status:  the gptq_status (a ``gptq.Status`` member; a plain int for a
                 code newer than this binding).
        message: the library's message for the failure (gptq_last_error()),
                 e.g. "gptq_add_batch: x has 511 columns but the layer has
                 in_features 512".

    ``GptqError(status, message)`` returns an instance of the subclass for
    that status (``SizeMismatchError``, ``InvalidStateError``, ...), so either
    the base class or the specific one can be caught. The subclasses for bad
    input (sizes, shapes, NaN/Inf, configuration, imported data) also derive
    from ValueError. A subclass can be raised with just a message:
    ``SizeMismatchError("...")``.
    """

    #: The status a subclass stands for (None on GptqError itself).
    status_code = None

    def __new__(cls, *args, **kwargs):
        status = args[0] if args else kwargs.get("status")
        if cls is GptqError and status is not None:
            cls = _CLASSES.get(_status_int(status), GptqError)
        return super().__new__(cls, *args)

    def __init__(self, status=None, message=""):
        if isinstance(status, str) and not message and self.status_code is not None:
            status, message = self.status_code, status
        if status is None:
            status = self.status_code
        if _status_int(status) is None:
            raise TypeError("GptqError needs a status (a gptq.Status or int), got %r" % (status,))
        self.status = _as_status(status)
        self.message = str(message)
        super().__init__(int(self.status), self.message)

    def __str__(self):
        name = self.status.name if isinstance(self.status, Status) else "status %d" % self.status
        return "%s: %s" % (name, self.message) if self.message else name

    def __repr__(self):
        name = self.status.name if isinstance(self.status, Status) else int(self.status)
        return "%s(%s, %r)" % (type(self).__name__, name, self.message)


def _status_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class NullPointerError(GptqError):
    """GPTQ_ERR_NULL_POINTER (a bug in this binding if it ever happens)."""
    status_code = Status.GPTQ_ERR_NULL_POINTER


class InvalidSizeError(GptqError, ValueError):
    """GPTQ_ERR_INVALID_SIZE: a size or count is zero, negative or too large."""
    status_code = Status.GPTQ_ERR_INVALID_SIZE


class SizeMismatchError(GptqError, ValueError):
    """GPTQ_ERR_SIZE_MISMATCH: shapes that must agree do not."""
    status_code = Status.GPTQ_ERR_SIZE_MISMATCH


class NonFiniteError(GptqError, ValueError):
    """GPTQ_ERR_NON_FINITE: NaN or Inf in activations, weights or a Hessian."""
    status_code = Status.GPTQ_ERR_NON_FINITE


class InvalidConfigError(GptqError, ValueError):
    """GPTQ_ERR_INVALID_CONFIG: a configuration value is out of range."""
    status_code = Status.GPTQ_ERR_INVALID_CONFIG


class InvalidStateError(GptqError, RuntimeError):
    """GPTQ_ERR_INVALID_STATE: not valid now (no calibration data, a closed
    object, a Context used by two threads at once)."""
    status_code = Status.GPTQ_ERR_INVALID_STATE


class UnsupportedError(GptqError):
    """GPTQ_ERR_UNSUPPORTED: well-formed but not representable (a dtype, a
    checkpoint format that cannot hold these zeros, an unpackable shape)."""
    status_code = Status.GPTQ_ERR_UNSUPPORTED


class BackendUnavailableError(GptqError):
    """GPTQ_ERR_BACKEND_UNAVAILABLE: the requested backend cannot be used."""
    status_code = Status.GPTQ_ERR_BACKEND_UNAVAILABLE


class OutOfMemoryError(GptqError):
    """GPTQ_ERR_OUT_OF_MEMORY: the library could not allocate memory."""
    status_code = Status.GPTQ_ERR_OUT_OF_MEMORY


class CancelledError(GptqError):
    """GPTQ_ERR_CANCELLED: the progress callback asked to stop."""
    status_code = Status.GPTQ_ERR_CANCELLED


class InvalidDataError(GptqError, ValueError):
    """GPTQ_ERR_INVALID_DATA: imported checkpoint data is inconsistent."""
    status_code = Status.GPTQ_ERR_INVALID_DATA


class InternalError(GptqError):
    """GPTQ_ERR_INTERNAL: a bug in libgptq; please report the message."""
    status_code = Status.GPTQ_ERR_INTERNAL


_CLASSES = {
    int(cls.status_code): cls
    for cls in (NullPointerError, InvalidSizeError, SizeMismatchError, NonFiniteError,
                InvalidConfigError, InvalidStateError, UnsupportedError,
                BackendUnavailableError, OutOfMemoryError, CancelledError,
                InvalidDataError, InternalError)
}


def last_error():
    """gptq_last_error() of the calling thread, as str."""
    return _n.gptq_last_error().decode("utf-8", "replace")


def error_from_status(status):
    """The GptqError for a failing status; reads gptq_last_error() now, so
    call it right after the failing call, on the same thread."""
    return GptqError(status, last_error())


def check(status):
    """Raise the GptqError for `status` unless it is GPTQ_OK."""
    if status != 0:
        raise error_from_status(status)
