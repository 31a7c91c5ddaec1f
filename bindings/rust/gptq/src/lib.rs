//! Safe Rust bindings of libgptq: GPTQ post-training quantization of linear
//! layers (Frantar et al., 2022) and matmul with the quantized weights.
//!
//! Built on the generated raw crate [`gptq_sys`] (re-exported as [`sys`]);
//! this crate never redeclares a C function, struct or enum. The C header
//! `include/gptq.h` is the full manual; the docs here say what is specific
//! to Rust.
//!
//! ```no_run
//! use gptq::{CheckpointFormat, Config, Context};
//!
//! # fn main() -> gptq::Result<()> {
//! let (out_features, in_features, tokens) = (256, 512, 1024);
//! # let weights = vec![0.0f32; out_features * in_features];
//! # let activations = vec![0.0f32; tokens * in_features];
//! let cfg = Config { bits: 4, group_size: 128, ..Config::default() };
//! let mut ctx = Context::new(out_features, in_features, &cfg)?;
//! ctx.add_batch(&activations, tokens, 1)?;          // [tokens, in_features]
//! let (q, stats) = ctx.quantize(&weights)?;           // [out_features, in_features]
//! println!("loss {}", stats.loss);
//! let ckpt = q.export(CheckpointFormat::V1)?;         // qweight / qzeros / scales / g_idx
//! let y = q.matmul(&activations[..in_features], 1, None)?;
//! # let _ = (ckpt, y);
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! - **Handles.** [`Context`] (`gptq_ctx`) and [`QTensor`] (`gptq_qtensor`)
//!   free themselves on drop. `Context: Send` (not `Sync`); `QTensor: Send +
//!   Sync` — see their docs for why.
//! - **Errors.** Every fallible call returns [`Result<T>`](Result) with an
//!   [`Error`] holding a [`Status`] and the library's message, read from the
//!   thread-local `gptq_last_error()` right after the failing call on the
//!   same thread. Slices whose length the C function cannot see (activations,
//!   weights, matmul inputs) are checked here first (`SizeMismatch` with a
//!   message naming the buffer); every other check is the library's.
//! - **Element types.** Activations and weights are [`Elements`]: `&[f32]`
//!   converts by itself, 16-bit data is `&[u16]` bit patterns tagged with
//!   [`Half::F16`] or [`Half::Bf16`] (`Half::Bf16.slice(&bits)`).
//! - **Configuration.** [`Config`] is a plain struct whose `Default` is the
//!   C library's `gptq_config_default()`. Callbacks are closures given to
//!   [`Context::with_callbacks`] through [`Callbacks`].
//! - **Matmul.** [`QTensor::matmul`] and friends take `&self` (many threads
//!   may multiply with one tensor); [`QTensor::with_options`] gives the same
//!   methods with [`MatmulOptions`] (`gptq_matmul_ex`).
//! - **Callbacks** never unwind into C: a panic in one is caught, the
//!   operation is cancelled, and the panic is resumed once the C call has
//!   returned.

#![warn(missing_docs)]

mod callbacks;
mod config;
mod context;
mod elements;
mod error;
mod qtensor;

use std::ffi::CStr;

pub use gptq_sys as sys;

pub use callbacks::Callbacks;
pub use config::{Backend, CheckpointFormat, Config, Grid, Half, LogLevel, Precision};
pub use context::{Context, Hessian, QuantStats};
pub use elements::Elements;
pub use error::{Error, Result, Status};
pub use qtensor::{
    checkpoint_sizes, gguf_dequantize, gguf_size, CheckpointRef, CheckpointSizes,
    CheckpointTensors, Matmul, MatmulOptions, QTensor, QTensorInfo,
};

/// The header version these bindings were generated from, as
/// MAJOR·10000 + MINOR·100 + PATCH.
pub const HEADER_VERSION_NUMBER: u32 = sys::GPTQ_VERSION_NUMBER;

/// The version of the libgptq actually loaded, as MAJOR·10000 + MINOR·100 +
/// PATCH (compatible with these bindings if the MAJOR is the same and it is
/// >= [`HEADER_VERSION_NUMBER`]).
pub fn version_number() -> u32 {
    // SAFETY: no arguments, thread-safe.
    unsafe { sys::gptq_version_number() }
}

/// The version of the libgptq actually loaded, "MAJOR.MINOR.PATCH".
pub fn version() -> &'static str {
    // SAFETY: static storage, never NULL.
    unsafe { CStr::from_ptr(sys::gptq_version_string()) }
        .to_str()
        .unwrap_or("")
}
