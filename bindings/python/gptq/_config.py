"""Config: the layer configuration as a dataclass, and enum helpers.

The defaults are read from the library (gptq_config_default) when this
module is imported; no number is repeated here.
"""

from __future__ import annotations

import ctypes
import dataclasses
import operator
import struct
from typing import Union

from . import _native as _n
from ._errors import GptqError, Status

Dtype = _n.gptq_dtype
Backend = _n.gptq_backend
Precision = _n.gptq_precision
LogLevel = _n.gptq_log_level
CheckpointFormat = _n.gptq_checkpoint_format
Memory = _n.gptq_memory
Grid = _n.gptq_grid

_INT32_MIN, _INT32_MAX = -(2 ** 31), 2 ** 31 - 1

# Extra spellings accepted for enum values given as strings (besides the C
# name and its last part: "GPTQ_BACKEND_CPU", "cpu").
_ALIASES = {
    Dtype: {"FLOAT32": "F32", "FLOAT16": "F16", "HALF": "F16", "BFLOAT16": "BF16"},
    LogLevel: {"WARNING": "WARN"},
    Memory: {"GPU": "DEVICE", "CUDA": "DEVICE", "CPU": "HOST"},
    CheckpointFormat: {"1": "V1", "2": "V2"},
}


def enum_value(enum_cls, value, what, status=Status.GPTQ_ERR_INVALID_CONFIG):
    """A member of `enum_cls` for a member, an int or a name ("cpu",
    "GPTQ_BACKEND_CPU"). An int the enum does not know is returned as is (the
    library is the authority and rejects it with its own message); an
    unknown name raises GptqError(status)."""
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        key = value.strip().upper().replace("-", "_")
        key = _ALIASES.get(enum_cls, {}).get(key, key)
        for member in enum_cls:
            if member.name == key or member.name.endswith("_" + key):
                return member
        names = ", ".join(repr(m.name.rsplit("_", 1)[-1].lower()) for m in enum_cls)
        raise GptqError(status, "%s: unknown %s %r; one of %s" % (what, enum_cls.__name__, value, names))
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError("%s: expected a %s, an int or a name, got %r"
                            % (what, enum_cls.__name__, value)) from None
    try:
        return enum_cls(value)
    except ValueError:
        if not _INT32_MIN <= value <= _INT32_MAX:
            raise GptqError(status, "%s: %d is out of the int32 range" % (what, value)) from None
        return int(value)


def _shortest_float32(value):
    """The shortest decimal that rounds to the same float32 as `value`
    (0.01 rather than 0.009999999776482582), so defaults read back from C
    look as the header documents them and assign back bit for bit."""
    bits = struct.pack("<f", value)
    for digits in range(1, 10):
        text = "%.*g" % (digits, value)
        if struct.pack("<f", float(text)) == bits:
            return float(text)
    return float(value)


def _native_default():
    cfg = _n.gptq_config()
    _n.gptq_config_default(ctypes.byref(cfg))
    return cfg


_D = _native_default()

# gptq_config fields that are not data: set by Context from its arguments.
NATIVE_ONLY_FIELDS = ("struct_size", "progress", "progress_user_data", "log", "log_user_data")


@dataclasses.dataclass
class Config:
    """Configuration of one layer (gptq_config without the callbacks, which
    are Context arguments). Field meanings and ranges are those of the C
    header; the defaults come from gptq_config_default(). The library
    validates the values when a Context is created (InvalidConfigError with
    its message); this class only converts types.

    Enum fields accept the enum, its int, or a name: ``backend="cpu"``,
    ``precision="f64"``, ``log_level="debug"``. Flag fields are bools.
    """

    bits: int = _D.bits
    group_size: int = _D.group_size
    sym: bool = bool(_D.sym)
    act_order: bool = bool(_D.act_order)
    static_groups: bool = bool(_D.static_groups)
    block_size: int = _D.block_size
    damp_percent: float = _shortest_float32(_D.damp_percent)
    damp_increment: float = _shortest_float32(_D.damp_increment)
    mse: bool = bool(_D.mse)
    mse_norm: float = _shortest_float32(_D.mse_norm)
    mse_grid: int = _D.mse_grid
    mse_max_shrink: float = _shortest_float32(_D.mse_max_shrink)
    backend: Union[Backend, int, str] = Backend(_D.backend)
    precision: Union[Precision, int, str] = Precision(_D.precision)
    log_level: Union[LogLevel, int, str] = LogLevel(_D.log_level)
    num_threads: int = _D.num_threads
    #: CUDA backend: the stream (an int cudaStream_t, a torch.cuda.Stream or a
    #: cupy.cuda.Stream) the Context's device work runs on; None = CUDA's
    #: default stream.
    stream: object = None
    memory: Union[Memory, int, str] = Memory(_D.memory)
    act_group_aware: bool = bool(_D.act_group_aware)
    #: GPTQ's own grid, or one of llama.cpp's GGUF block formats ("q4_0",
    #: "q8_0", ...): see gptq_grid in the header and QTensor.gguf_export.
    grid: Union[Grid, int, str] = Grid(_D.grid)

    # Which enum each enum-typed field holds.
    _ENUMS = {"backend": Backend, "precision": Precision, "log_level": LogLevel, "memory": Memory,
              "grid": Grid}

    def to_native(self):
        """A gptq_config (ctypes) with these values over the library's
        defaults; callbacks are left NULL."""
        cfg = _native_default()
        types = dict(_n.gptq_config._fields_)
        for field in dataclasses.fields(self):
            name = field.name
            value = getattr(self, name)
            what = "Config.%s" % name
            if name in self._ENUMS:
                value = int(enum_value(self._ENUMS[name], value, what))
            elif name == "stream":
                from ._device import stream_handle  # noqa: PLC0415 - avoids an import cycle
                value = stream_handle(value)
            elif types[name] is ctypes.c_float:
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise TypeError("%s: expected a number, got %r" % (what, value)) from None
            else:
                value = _int32(value, what)
            setattr(cfg, name, value)
        return cfg

    @classmethod
    def from_native(cls, cfg):
        """A Config holding the data fields of a gptq_config (ctypes)."""
        values = {}
        for field in dataclasses.fields(cls):
            value = getattr(cfg, field.name)
            default = field.default
            if field.name in cls._ENUMS:
                value = enum_value(cls._ENUMS[field.name], value, field.name)
            elif field.name == "stream":
                value = value or None
            elif isinstance(default, bool):
                value = bool(value) if value in (0, 1) else value
            elif isinstance(default, float):
                value = _shortest_float32(value)
            values[field.name] = value
        return cls(**values)

    def replace(self, **changes):
        """A copy with some fields changed (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)


def _int32(value, what):
    """An int for an int32 field: bools become 0/1, other ints pass as they
    are (the library checks ranges) unless they do not fit in int32, which
    ctypes would silently truncate."""
    if isinstance(value, bool):
        return int(value)
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError("%s: expected an int, got %r" % (what, value)) from None
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise GptqError(Status.GPTQ_ERR_INVALID_CONFIG,
                        "%s is %d, which does not fit in int32" % (what, value))
    return value
