//! The layer context: configuration + Hessian accumulator of one linear layer.

use std::convert::TryFrom;
use std::mem;
use std::ptr::{self, NonNull};

use gptq_sys as sys;

use crate::callbacks::{Callbacks, StateBox};
use crate::config::{Backend, Config};
use crate::elements::Elements;
use crate::error::{check, Error, Result, Status};
use crate::qtensor::QTensor;

/// `usize` → C `int64_t`, or an `InvalidSize` error naming the value.
pub(crate) fn to_i64(value: usize, function: &str, what: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| {
        Error::new(
            Status::InvalidSize,
            format!("{}: {} is {}, too large", function, what, value),
        )
    })
}

/// `rows × cols` elements, or an `InvalidSize` error if that overflows.
pub(crate) fn product(rows: usize, cols: usize, function: &str, what: &str) -> Result<usize> {
    rows.checked_mul(cols).ok_or_else(|| {
        Error::new(
            Status::InvalidSize,
            format!(
                "{}: {} of {} × {} elements is too large",
                function, what, rows, cols
            ),
        )
    })
}

/// The Rust-side length check of a buffer the C function gets no length for.
pub(crate) fn expect_len(
    len: usize,
    expected: usize,
    function: &str,
    what: &str,
    shape: &str,
) -> Result<()> {
    if len == expected {
        Ok(())
    } else {
        Err(Error::new(
            Status::SizeMismatch,
            format!(
                "{}: {} has {} elements, but {} needs {}",
                function, what, len, shape, expected
            ),
        ))
    }
}

struct RawCtx(NonNull<sys::gptq_ctx>);

// SAFETY: a gptq_ctx may be used from any thread, one thread at a time
// (header: "A gptq_ctx must be used by one thread at a time"); it has no
// thread affinity. `Context` is deliberately not `Sync`.
unsafe impl Send for RawCtx {}

/// What `gptq_quantize` reports about one quantization.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantStats {
    /// Σ (w − q)² / U_jj² / 2 over all weights (the reference's "error").
    pub loss: f64,
    /// The damp_percent finally used (>= the configured one after retries).
    pub damp_percent_used: f64,
    /// Failed Cholesky attempts before success or fallback.
    pub damp_retries: u32,
    /// Every factorization failed and round-to-nearest was used.
    pub fell_back_to_rtn: bool,
    /// Input columns whose Hessian diagonal was 0.
    pub dead_columns: u64,
    /// Wall-clock seconds spent in quantize.
    pub seconds: f64,
    /// The backend that did the work (never `Auto`).
    pub backend: Backend,
}

impl QuantStats {
    fn from_raw(raw: &sys::gptq_quant_stats) -> QuantStats {
        QuantStats {
            loss: raw.loss,
            damp_percent_used: raw.damp_percent_used,
            damp_retries: raw.damp_retries.max(0) as u32,
            fell_back_to_rtn: raw.fell_back_to_rtn != 0,
            dead_columns: raw.dead_columns.max(0) as u64,
            seconds: raw.seconds,
            backend: Backend::from_raw(raw.backend).unwrap_or(Backend::Auto),
        }
    }
}

/// A layer's Hessian as exported by [`Context::export_hessian`].
#[derive(Debug, Clone, PartialEq)]
pub struct Hessian {
    /// \[in_features, in_features], row-major.
    pub data: Vec<f64>,
    /// in_features.
    pub in_features: usize,
    /// Calibration samples it stands for.
    pub samples: u64,
}

/// The GPTQ state of one linear layer (`gptq_ctx`): its configuration and
/// the Hessian of the calibration inputs collected so far.
///
/// Freed on drop (`gptq_ctx_destroy`); tensors it produced stay valid.
///
/// # Threads
///
/// `Context` is `Send`: the C library lets a context be used from any thread
/// as long as one thread at a time uses it, so it may be moved to (or
/// created on) a worker thread. It is not `Sync`: the library does no
/// internal locking, and its callbacks are `FnMut`, so a `&Context` must
/// not be usable from two threads at once. To share one context between
/// threads, put it in a `Mutex`. For calibration sharded over threads, give
/// each thread its own context and [`merge`](Context::merge) them.
///
/// ```compile_fail
/// fn needs_sync<T: Sync>() {}
/// needs_sync::<gptq::Context>();
/// ```
pub struct Context {
    // Field order matters only for documentation: `Drop` destroys the C
    // context before the callback state (a field) is freed.
    raw: RawCtx,
    callbacks: StateBox,
    out_features: usize,
    in_features: usize,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("out_features", &self.out_features)
            .field("in_features", &self.in_features)
            .field("samples", &self.samples())
            .finish()
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: created by gptq_ctx_create, destroyed exactly once, here.
        unsafe { sys::gptq_ctx_destroy(self.raw.0.as_ptr()) }
    }
}

impl Context {
    /// A context for a layer with weight \[out_features, in_features] and no
    /// callbacks.
    ///
    /// Errors: `InvalidSize` (a dimension 0 or > 2³¹−1), `InvalidConfig`
    /// (the message names the field), `BackendUnavailable`, `OutOfMemory`.
    pub fn new(out_features: usize, in_features: usize, config: &Config) -> Result<Context> {
        Context::with_callbacks(out_features, in_features, config, Callbacks::new())
    }

    /// [`Context::new`] with progress and/or log closures, which the context
    /// owns until it is dropped. The log closure already hears about the
    /// creation (e.g. which backend `Auto` chose).
    pub fn with_callbacks(
        out_features: usize,
        in_features: usize,
        config: &Config,
        callbacks: Callbacks,
    ) -> Result<Context> {
        const F: &str = "gptq_ctx_create";
        let mut raw_cfg = config.to_raw()?;
        let out_i = to_i64(out_features, F, "out_features")?;
        let in_i = to_i64(in_features, F, "in_features")?;
        let state = StateBox::new(callbacks);
        state.install(&mut raw_cfg);
        state.get().begin_call();
        let mut raw: *mut sys::gptq_ctx = ptr::null_mut();
        // SAFETY: raw_cfg is a complete gptq_config (struct_size set by
        // gptq_config_default); its user_data points to `state`, which the
        // returned Context keeps alive until after gptq_ctx_destroy.
        let status = unsafe { sys::gptq_ctx_create(out_i, in_i, &raw_cfg, &mut raw) };
        let result = check(status);
        // Own the context (if any) before a panic caught in the log closure
        // is resumed, so that the unwind frees it; a panic takes precedence
        // over the status, as in `quantize`.
        match NonNull::new(raw) {
            Some(raw) => {
                let ctx = Context {
                    raw: RawCtx(raw),
                    callbacks: state,
                    out_features,
                    in_features,
                };
                ctx.callbacks.get().resume_panic();
                result.map(|()| ctx)
            }
            None => {
                state.get().resume_panic();
                result?;
                Err(Error::new(
                    Status::Internal,
                    "gptq_ctx_create: returned GPTQ_OK but no context",
                ))
            }
        }
    }

    /// out_features (rows of the weight).
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// in_features (columns of the weight, width of the activations).
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// The C handle, for calls through [`gptq_sys`](crate::sys). It stays
    /// owned by this `Context`.
    pub fn as_ptr(&self) -> *const sys::gptq_ctx {
        self.raw.0.as_ptr()
    }

    /// The C handle, mutable.
    pub fn as_mut_ptr(&mut self) -> *mut sys::gptq_ctx {
        self.raw.0.as_ptr()
    }

    /// Add calibration activations `x` \[rows, in_features] (one token per
    /// row) to the Hessian, as `samples` calibration samples (their weight
    /// in the running mean; pass `rows` for a per-token mean).
    ///
    /// `x.len()` must be `rows · in_features` (checked here: `SizeMismatch`).
    /// Library errors: `InvalidSize` (rows or samples 0), `NonFinite`,
    /// `OutOfMemory`. On error the Hessian is unchanged.
    pub fn add_batch<'a, X: Into<Elements<'a>>>(
        &mut self,
        x: X,
        rows: usize,
        samples: u64,
    ) -> Result<()> {
        const F: &str = "gptq_add_batch";
        let x = x.into();
        if rows > 0 {
            let need = product(rows, self.in_features, F, "x")?;
            let shape = format!("rows {} × in_features {}", rows, self.in_features);
            expect_len(x.len(), need, F, "x", &shape)?;
        }
        let rows_i = to_i64(rows, F, "rows")?;
        let cols_i = to_i64(self.in_features, F, "cols")?;
        let samples_i = i64::try_from(samples).map_err(|_| {
            Error::new(
                Status::InvalidSize,
                format!("{}: samples is {}, too large", F, samples),
            )
        })?;
        // SAFETY: x holds rows·in_features elements of its dtype (checked
        // above; for rows 0 the library fails before reading).
        check(unsafe {
            sys::gptq_add_batch(
                self.raw.0.as_ptr(),
                x.as_ptr(),
                x.dtype(),
                rows_i,
                cols_i,
                samples_i,
            )
        })
    }

    /// Number of calibration samples added so far.
    pub fn samples(&self) -> u64 {
        // SAFETY: valid handle.
        let n = unsafe { sys::gptq_ctx_samples(self.raw.0.as_ptr()) };
        n.max(0) as u64
    }

    /// Merge the Hessian of `src` into this one (calibration sharded over
    /// threads or machines): the sample-weighted mean, as if this context
    /// had seen `src`'s batches too. `src` is unchanged.
    ///
    /// Errors: `SizeMismatch` (different in_features), `InvalidSize`,
    /// `NonFinite`, `OutOfMemory`. On error this context is unchanged.
    pub fn merge(&mut self, src: &Context) -> Result<()> {
        // SAFETY: two valid handles; they are distinct (&mut self and &src
        // cannot alias), and src is only read.
        check(unsafe { sys::gptq_ctx_merge(self.raw.0.as_ptr(), src.raw.0.as_ptr()) })
    }

    /// Copy out the Hessian \[in_features, in_features] and the sample count.
    pub fn export_hessian(&self) -> Result<Hessian> {
        const F: &str = "gptq_ctx_export_hessian";
        let len = product(self.in_features, self.in_features, F, "the Hessian")?;
        let len_i = to_i64(len, F, "h_len")?;
        let mut data = vec![0.0f64; len];
        let mut samples: i64 = 0;
        // SAFETY: data has h_len elements.
        check(unsafe {
            sys::gptq_ctx_export_hessian(
                self.raw.0.as_ptr(),
                data.as_mut_ptr(),
                len_i,
                &mut samples,
            )
        })?;
        Ok(Hessian {
            data,
            in_features: self.in_features,
            samples: samples.max(0) as u64,
        })
    }

    /// Merge an exported Hessian `h` \[in_features, in_features] of
    /// `samples` samples into this context, as [`merge`](Context::merge)
    /// would; into an empty context this is a plain load.
    ///
    /// Errors: `SizeMismatch` (h.len() != in_features²), `InvalidSize`
    /// (samples 0), `NonFinite`. On error the context is unchanged.
    pub fn import_hessian(&mut self, h: &[f64], samples: u64) -> Result<()> {
        const F: &str = "gptq_ctx_import_hessian";
        let len_i = to_i64(h.len(), F, "h_len")?;
        let samples_i = i64::try_from(samples).map_err(|_| {
            Error::new(
                Status::InvalidSize,
                format!("{}: samples is {}, too large", F, samples),
            )
        })?;
        // SAFETY: h has h_len elements; the library checks h_len itself.
        check(unsafe {
            sys::gptq_ctx_import_hessian(self.raw.0.as_ptr(), h.as_ptr(), len_i, samples_i)
        })
    }

    /// Quantize the layer's weights `w` \[out_features, in_features] with the
    /// Hessian collected so far. The context is not consumed: more batches
    /// may be added and quantize called again.
    ///
    /// `w.len()` must be `out_features · in_features` (checked here:
    /// `SizeMismatch`). Library errors: `InvalidState` (no calibration data
    /// yet), `NonFinite`, `Unsupported` (a scale beyond fp16 range),
    /// `Cancelled` (the progress closure returned `false`), `OutOfMemory`.
    /// On error the context is unchanged.
    ///
    /// # Panics
    ///
    /// If a callback panicked during the call, the panic is resumed here
    /// once the library has returned (the operation was cancelled).
    pub fn quantize<'a, W: Into<Elements<'a>>>(&mut self, w: W) -> Result<(QTensor, QuantStats)> {
        const F: &str = "gptq_quantize";
        let w = w.into();
        let need = product(self.out_features, self.in_features, F, "w")?;
        let shape = format!(
            "out_features {} × in_features {}",
            self.out_features, self.in_features
        );
        expect_len(w.len(), need, F, "w", &shape)?;
        let rows_i = to_i64(self.out_features, F, "rows")?;
        let cols_i = to_i64(self.in_features, F, "cols")?;
        // SAFETY: all-zero is a valid gptq_quant_stats.
        let mut stats: sys::gptq_quant_stats = unsafe { mem::zeroed() };
        stats.struct_size = mem::size_of::<sys::gptq_quant_stats>();
        let mut out: *mut sys::gptq_qtensor = ptr::null_mut();
        let state = self.callbacks.get();
        state.begin_call();
        // SAFETY: w holds rows·cols elements of its dtype; stats has its
        // struct_size set. Callbacks run on this thread, during this call,
        // while `self` is mutably borrowed.
        let status = unsafe {
            sys::gptq_quantize(
                self.raw.0.as_ptr(),
                w.as_ptr(),
                w.dtype(),
                rows_i,
                cols_i,
                &mut out,
                &mut stats,
            )
        };
        let result = check(status);
        // Own the tensor (if any) before a panic may be resumed, so that it
        // is freed during the unwind.
        let tensor = NonNull::new(out).map(QTensor::from_handle);
        state.resume_panic();
        result?;
        match tensor {
            Some(t) => Ok((t?, QuantStats::from_raw(&stats))),
            None => Err(Error::new(
                Status::Internal,
                "gptq_quantize: returned GPTQ_OK but no tensor",
            )),
        }
    }
}
