//! Enums and the layer configuration.

use std::convert::TryFrom;
use std::mem::MaybeUninit;

use gptq_sys as sys;

use crate::error::{Error, Result, Status};

/// Which implementation runs the work (`gptq_backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// CUDA when a usable GPU and the CUDA plugin are present, else the CPU;
    /// the choice and the reason are logged.
    Auto,
    /// The CPU backend (OpenBLAS + LAPACKE).
    Cpu,
    /// Only CUDA; [`Context::new`](crate::Context::new) fails with
    /// [`Status::BackendUnavailable`] if it cannot be used.
    Cuda,
}

impl Backend {
    /// The C value.
    pub fn to_raw(self) -> sys::gptq_backend {
        match self {
            Backend::Auto => sys::GPTQ_BACKEND_AUTO,
            Backend::Cpu => sys::GPTQ_BACKEND_CPU,
            Backend::Cuda => sys::GPTQ_BACKEND_CUDA,
        }
    }

    /// The variant for a C value, if it is one this crate knows.
    pub fn from_raw(raw: sys::gptq_backend) -> Option<Backend> {
        match raw {
            sys::GPTQ_BACKEND_AUTO => Some(Backend::Auto),
            sys::GPTQ_BACKEND_CPU => Some(Backend::Cpu),
            sys::GPTQ_BACKEND_CUDA => Some(Backend::Cuda),
            _ => None,
        }
    }
}

/// Floating-point precision of the Hessian, the factorization and the GPTQ
/// loop (`gptq_precision`). F32 is the reference's and the fast path; F64
/// gives results that do not depend on summation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// binary32.
    F32,
    /// binary64.
    F64,
}

impl Precision {
    /// The C value.
    pub fn to_raw(self) -> sys::gptq_precision {
        match self {
            Precision::F32 => sys::GPTQ_PRECISION_F32,
            Precision::F64 => sys::GPTQ_PRECISION_F64,
        }
    }

    /// The variant for a C value, if it is one this crate knows.
    pub fn from_raw(raw: sys::gptq_precision) -> Option<Precision> {
        match raw {
            sys::GPTQ_PRECISION_F32 => Some(Precision::F32),
            sys::GPTQ_PRECISION_F64 => Some(Precision::F64),
            _ => None,
        }
    }
}

/// Severity of a log message (`gptq_log_level`); ordered, `Debug < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Timings and internals.
    Debug,
    /// Choices made (e.g. the backend `Auto` picked), dead columns.
    Info,
    /// Something the caller should know (raised damping, RTN fallback).
    Warn,
    /// Errors.
    Error,
}

impl LogLevel {
    /// The C value.
    pub fn to_raw(self) -> sys::gptq_log_level {
        match self {
            LogLevel::Debug => sys::GPTQ_LOG_DEBUG,
            LogLevel::Info => sys::GPTQ_LOG_INFO,
            LogLevel::Warn => sys::GPTQ_LOG_WARN,
            LogLevel::Error => sys::GPTQ_LOG_ERROR,
        }
    }

    /// The variant for a C value, if it is one this crate knows.
    pub fn from_raw(raw: sys::gptq_log_level) -> Option<LogLevel> {
        match raw {
            sys::GPTQ_LOG_DEBUG => Some(LogLevel::Debug),
            sys::GPTQ_LOG_INFO => Some(LogLevel::Info),
            sys::GPTQ_LOG_WARN => Some(LogLevel::Warn),
            sys::GPTQ_LOG_ERROR => Some(LogLevel::Error),
            _ => None,
        }
    }
}

/// The two 16-bit float formats, passed as raw `u16` bit patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Half {
    /// IEEE binary16 (`GPTQ_DTYPE_F16`).
    F16,
    /// bfloat16 (`GPTQ_DTYPE_BF16`).
    Bf16,
}

impl Half {
    /// The C dtype.
    pub fn to_raw(self) -> sys::gptq_dtype {
        match self {
            Half::F16 => sys::GPTQ_DTYPE_F16,
            Half::Bf16 => sys::GPTQ_DTYPE_BF16,
        }
    }

    /// Tag a buffer of bit patterns with this format, for
    /// [`Context::add_batch`](crate::Context::add_batch) and
    /// [`Context::quantize`](crate::Context::quantize).
    pub fn slice(self, bits: &[u16]) -> crate::Elements<'_> {
        crate::Elements::Half(self, bits)
    }
}

/// Checkpoint format (`gptq_checkpoint_format`): how zeros are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckpointFormat {
    /// Stores zero − 1 (what transformers / vLLM read by default); cannot hold
    /// a zero of 0, so asymmetric tensors usually need V2.
    V1,
    /// Stores the zero as is.
    V2,
}

impl CheckpointFormat {
    /// The C value.
    pub fn to_raw(self) -> sys::gptq_checkpoint_format {
        match self {
            CheckpointFormat::V1 => sys::GPTQ_FORMAT_V1,
            CheckpointFormat::V2 => sys::GPTQ_FORMAT_V2,
        }
    }

    /// The variant for a C value, if it is one this crate knows.
    pub fn from_raw(raw: sys::gptq_checkpoint_format) -> Option<CheckpointFormat> {
        match raw {
            sys::GPTQ_FORMAT_V1 => Some(CheckpointFormat::V1),
            sys::GPTQ_FORMAT_V2 => Some(CheckpointFormat::V2),
            _ => None,
        }
    }
}

/// The grid the weights are quantized onto (`gptq_grid`): GPTQ's own, or
/// one of llama.cpp's GGUF block formats, whose bytes
/// [`QTensor::gguf_export`](crate::QTensor::gguf_export) writes. The
/// header documents each format's parameter rule and byte layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grid {
    /// `bits`, `group_size` and `sym` as configured; GPTQ checkpoints.
    Gptq,
    /// Blocks of 32, d = (largest-magnitude weight) / −8, 4-bit codes.
    Q4_0,
    /// Blocks of 32, d = (max − min) / 15, min m, 4-bit codes.
    Q4_1,
    /// Blocks of 32, d = (largest-magnitude weight) / −16, 5-bit codes.
    Q5_0,
    /// Blocks of 32, d = (max − min) / 31, min m, 5-bit codes.
    Q5_1,
    /// Blocks of 32, d = max|w| / 127, 8-bit codes.
    Q8_0,
    /// Super-blocks of 256: eight sub-blocks of 32 with 6-bit scales and
    /// mins, 4-bit codes.
    Q4_K,
    /// As Q4_K with 5-bit codes.
    Q5_K,
    /// Super-blocks of 256: sixteen sub-blocks of 16 with int8 scales,
    /// 6-bit codes.
    Q6_K,
}

impl Grid {
    /// The C value.
    pub fn to_raw(self) -> sys::gptq_grid {
        match self {
            Grid::Gptq => sys::GPTQ_GRID_GPTQ,
            Grid::Q4_0 => sys::GPTQ_GRID_Q4_0,
            Grid::Q4_1 => sys::GPTQ_GRID_Q4_1,
            Grid::Q5_0 => sys::GPTQ_GRID_Q5_0,
            Grid::Q5_1 => sys::GPTQ_GRID_Q5_1,
            Grid::Q8_0 => sys::GPTQ_GRID_Q8_0,
            Grid::Q4_K => sys::GPTQ_GRID_Q4_K,
            Grid::Q5_K => sys::GPTQ_GRID_Q5_K,
            Grid::Q6_K => sys::GPTQ_GRID_Q6_K,
        }
    }

    /// The variant for a C value, if it is one this crate knows.
    pub fn from_raw(raw: sys::gptq_grid) -> Option<Grid> {
        match raw {
            sys::GPTQ_GRID_GPTQ => Some(Grid::Gptq),
            sys::GPTQ_GRID_Q4_0 => Some(Grid::Q4_0),
            sys::GPTQ_GRID_Q4_1 => Some(Grid::Q4_1),
            sys::GPTQ_GRID_Q5_0 => Some(Grid::Q5_0),
            sys::GPTQ_GRID_Q5_1 => Some(Grid::Q5_1),
            sys::GPTQ_GRID_Q8_0 => Some(Grid::Q8_0),
            sys::GPTQ_GRID_Q4_K => Some(Grid::Q4_K),
            sys::GPTQ_GRID_Q5_K => Some(Grid::Q5_K),
            sys::GPTQ_GRID_Q6_K => Some(Grid::Q6_K),
            _ => None,
        }
    }
}

/// Configuration of one layer context (`gptq_config` without the callback
/// fields; callbacks are given as closures, see [`Callbacks`](crate::Callbacks)).
///
/// [`Config::default()`] asks the C library (`gptq_config_default`), so the
/// defaults are always the loaded library's. Change fields directly:
///
/// ```
/// let cfg = gptq::Config { bits: 3, group_size: 64, act_order: true, ..gptq::Config::default() };
/// assert_eq!(cfg.sym, true);
/// ```
///
/// Ranges are checked by the library when a context is created (an
/// out-of-range value is an [`Error`] with [`Status::InvalidConfig`] and a
/// message naming the field). The field docs below are the C header's.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// 2..8.
    pub bits: u32,
    /// Columns (input features) per quantization group, or −1 for one group
    /// spanning all columns. Any positive size is allowed; the last group
    /// may be shorter.
    pub group_size: i32,
    /// `true`: symmetric (zero fixed at 2^(bits−1)); `false`: asymmetric.
    pub sym: bool,
    /// Quantize columns in order of descending Hessian diagonal ("desc_act").
    pub act_order: bool,
    /// With groups: compute every group's scale/zero before any column is
    /// quantized, over original column ranges (g_idx stays j / group_size).
    pub static_groups: bool,
    /// Columns per lazy block, >= 1.
    pub block_size: u32,
    /// Damping added to the Hessian diagonal as a fraction of its mean, in
    /// \[0, 1).
    pub damp_percent: f32,
    /// Step by which damping is raised when the Cholesky factorization
    /// fails; 0 disables the retries.
    pub damp_increment: f32,
    /// Search per group and row for the clipping range minimizing
    /// Σ|q − w|^mse_norm.
    pub mse: bool,
    /// > 0.
    pub mse_norm: f32,
    /// >= 1.
    pub mse_grid: u32,
    /// In (0, 1].
    pub mse_max_shrink: f32,
    /// Which implementation runs the work.
    pub backend: Backend,
    /// Precision of the Hessian and the GPTQ loop.
    pub precision: Precision,
    /// Lowest level passed to the log callback.
    pub log_level: LogLevel,
    /// Threads for the CPU backend's own loops; 0 = one per core. Results do
    /// not depend on it.
    pub num_threads: u32,
    /// Group-aware act-order: groups keep their original column ranges
    /// (g_idx stays j / group_size) but are quantized by their largest
    /// Hessian diagonal, and their columns by diagonal. Not with
    /// `act_order`.
    pub act_group_aware: bool,
    /// The grid: GPTQ's own, or a GGUF block format (then `bits` and
    /// `group_size` are the format's, `sym` and `mse` are ignored, and
    /// in_features must be a multiple of the block: 32, or 256 for the
    /// K-quants).
    pub grid: Grid,
}

pub(crate) fn raw_config_default() -> sys::gptq_config {
    let mut raw = MaybeUninit::<sys::gptq_config>::zeroed();
    // SAFETY: gptq_config_default fills the whole struct (struct_size
    // included); zeroed is a valid gptq_config anyway (NULL callbacks).
    unsafe {
        sys::gptq_config_default(raw.as_mut_ptr());
        raw.assume_init()
    }
}

impl Default for Config {
    /// The C library's defaults (`gptq_config_default`).
    fn default() -> Config {
        Config::from_raw(&raw_config_default())
    }
}

fn to_c_int(value: u32, field: &str) -> Result<i32> {
    i32::try_from(value).map_err(|_| {
        Error::new(
            Status::InvalidConfig,
            format!(
                "gptq_ctx_create: {} is {}; it does not fit a C int",
                field, value
            ),
        )
    })
}

impl Config {
    /// Read a C config. Enum values this crate does not know (impossible
    /// for the library's defaults) read as the default variant.
    pub fn from_raw(raw: &sys::gptq_config) -> Config {
        Config {
            bits: raw.bits.max(0) as u32,
            group_size: raw.group_size,
            sym: raw.sym != 0,
            act_order: raw.act_order != 0,
            static_groups: raw.static_groups != 0,
            block_size: raw.block_size.max(0) as u32,
            damp_percent: raw.damp_percent,
            damp_increment: raw.damp_increment,
            mse: raw.mse != 0,
            mse_norm: raw.mse_norm,
            mse_grid: raw.mse_grid.max(0) as u32,
            mse_max_shrink: raw.mse_max_shrink,
            backend: Backend::from_raw(raw.backend).unwrap_or(Backend::Auto),
            precision: Precision::from_raw(raw.precision).unwrap_or(Precision::F32),
            log_level: LogLevel::from_raw(raw.log_level).unwrap_or(LogLevel::Info),
            num_threads: raw.num_threads.max(0) as u32,
            act_group_aware: raw.act_group_aware != 0,
            grid: Grid::from_raw(raw.grid).unwrap_or(Grid::Gptq),
        }
    }

    /// The C config: `gptq_config_default()` with these fields written over
    /// it (so fields a newer header appends keep the library's defaults),
    /// no callbacks. Fails only for a value that does not fit the C field.
    pub fn to_raw(&self) -> Result<sys::gptq_config> {
        let mut raw = raw_config_default();
        raw.bits = to_c_int(self.bits, "bits")?;
        raw.group_size = self.group_size;
        raw.sym = self.sym as i32;
        raw.act_order = self.act_order as i32;
        raw.static_groups = self.static_groups as i32;
        raw.block_size = to_c_int(self.block_size, "block_size")?;
        raw.damp_percent = self.damp_percent;
        raw.damp_increment = self.damp_increment;
        raw.mse = self.mse as i32;
        raw.mse_norm = self.mse_norm;
        raw.mse_grid = to_c_int(self.mse_grid, "mse_grid")?;
        raw.mse_max_shrink = self.mse_max_shrink;
        raw.backend = self.backend.to_raw();
        raw.precision = self.precision.to_raw();
        raw.log_level = self.log_level.to_raw();
        raw.num_threads = to_c_int(self.num_threads, "num_threads")?;
        raw.act_group_aware = self.act_group_aware as i32;
        raw.grid = self.grid.to_raw();
        Ok(raw)
    }
}
