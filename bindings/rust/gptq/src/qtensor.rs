//! Quantized tensors: query, dequantize, checkpoint export/import, matmul.

use std::mem::MaybeUninit;
use std::os::raw::c_void;
use std::ptr::{self, NonNull};

use gptq_sys as sys;

use crate::config::{CheckpointFormat, Grid, Half};
use crate::context::{expect_len, product, to_i64};
use crate::error::{check, Error, Result, Status};

fn raw_gguf_size(grid: sys::gptq_grid, rows: usize, cols: usize, function: &str) -> Result<usize> {
    let rows = to_i64(rows, function, "rows")?;
    let cols = to_i64(cols, function, "cols")?;
    let mut bytes: i64 = 0;
    // SAFETY: bytes is writable.
    check(unsafe { sys::gptq_gguf_size(grid, rows, cols, &mut bytes) })?;
    usize::try_from(bytes).map_err(|_| {
        Error::new(
            Status::InvalidSize,
            format!("{}: {} bytes do not fit in memory", function, bytes),
        )
    })
}

/// Bytes of a \[rows, cols] tensor in the GGUF block format of `grid`
/// (`gptq_gguf_size`). Fails with `InvalidConfig` for [`Grid::Gptq`] and
/// `InvalidSize` when cols is not whole blocks.
pub fn gguf_size(grid: Grid, rows: usize, cols: usize) -> Result<usize> {
    raw_gguf_size(grid.to_raw(), rows, cols, "gptq_gguf_size")
}

/// Decode GGUF blocks of `grid` (exactly [`gguf_size`] bytes) into f32
/// \[rows, cols], as llama.cpp dequantizes them (`gptq_gguf_dequantize`): for
/// a tensor this library quantized, exactly [`QTensor::dequantize`]'s values.
pub fn gguf_dequantize(grid: Grid, bytes: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>> {
    const F: &str = "gptq_gguf_dequantize";
    let mut out = vec![0.0f32; product(rows, cols, F, "the tensor")?];
    let bytes_len = to_i64(bytes.len(), F, "bytes_len")?;
    let out_len = to_i64(out.len(), F, "out_len")?;
    // SAFETY: bytes and out have the lengths passed; the library checks
    // them against the shape.
    check(unsafe {
        sys::gptq_gguf_dequantize(
            grid.to_raw(),
            bytes.as_ptr() as *const c_void,
            bytes_len,
            to_i64(rows, F, "rows")?,
            to_i64(cols, F, "cols")?,
            out.as_mut_ptr(),
            out_len,
        )
    })?;
    Ok(out)
}

/// Shape and parameters of a quantized tensor (`gptq_qtensor_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QTensorInfo {
    /// N: rows of the original weight.
    pub out_features: usize,
    /// K: columns of the original weight.
    pub in_features: usize,
    /// Bits per code, 2..8.
    pub bits: u32,
    /// As configured; −1 for one group.
    pub group_size: i32,
    /// G: number of scale/zero rows.
    pub groups: usize,
    /// g_idx is not j / group_size (act-order without static groups).
    pub act_order: bool,
}

/// Element counts of the four checkpoint tensors (`gptq_checkpoint_sizes`),
/// for K = in_features, N = out_features, G = groups, b = bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckpointSizes {
    /// K·b/32.
    pub qweight_rows: usize,
    /// N.
    pub qweight_cols: usize,
    /// G.
    pub qzeros_rows: usize,
    /// N·b/32.
    pub qzeros_cols: usize,
    /// G.
    pub scales_rows: usize,
    /// N.
    pub scales_cols: usize,
    /// K.
    pub g_idx_len: usize,
}

impl CheckpointSizes {
    fn from_raw(raw: &sys::gptq_checkpoint_sizes) -> CheckpointSizes {
        let u = |v: i64| v.max(0) as usize;
        CheckpointSizes {
            qweight_rows: u(raw.qweight_rows),
            qweight_cols: u(raw.qweight_cols),
            qzeros_rows: u(raw.qzeros_rows),
            qzeros_cols: u(raw.qzeros_cols),
            scales_rows: u(raw.scales_rows),
            scales_cols: u(raw.scales_cols),
            g_idx_len: u(raw.g_idx_len),
        }
    }

    /// qweight_rows · qweight_cols.
    pub fn qweight_len(&self) -> usize {
        self.qweight_rows * self.qweight_cols
    }

    /// qzeros_rows · qzeros_cols.
    pub fn qzeros_len(&self) -> usize {
        self.qzeros_rows * self.qzeros_cols
    }

    /// scales_rows · scales_cols.
    pub fn scales_len(&self) -> usize {
        self.scales_rows * self.scales_cols
    }
}

/// The sizes the checkpoint tensors of a \[out_features, in_features]
/// tensor with these bits and group size have (`gptq_checkpoint_sizes_for`).
///
/// Errors: `InvalidSize`, `InvalidConfig` (bits), `Unsupported` (K or N not
/// a multiple of the packing unit 32/b, 32 for 3 bits).
pub fn checkpoint_sizes(
    out_features: usize,
    in_features: usize,
    bits: u32,
    group_size: i32,
) -> Result<CheckpointSizes> {
    const F: &str = "gptq_checkpoint_sizes_for";
    let out_i = to_i64(out_features, F, "out_features")?;
    let in_i = to_i64(in_features, F, "in_features")?;
    let bits_i = bits_to_c(bits, F)?;
    let mut raw = MaybeUninit::<sys::gptq_checkpoint_sizes>::zeroed();
    // SAFETY: raw is a writable gptq_checkpoint_sizes.
    check(unsafe {
        sys::gptq_checkpoint_sizes_for(out_i, in_i, bits_i, group_size, raw.as_mut_ptr())
    })?;
    // SAFETY: zero-initialized plain integers, filled on success.
    Ok(CheckpointSizes::from_raw(unsafe { &raw.assume_init() }))
}

fn bits_to_c(bits: u32, function: &str) -> Result<i32> {
    if bits > i32::MAX as u32 {
        return Err(Error::new(
            Status::InvalidConfig,
            format!("{}: bits is {}; it must be in 2..8", function, bits),
        ));
    }
    Ok(bits as i32)
}

/// A quantized tensor's checkpoint tensors, owned (from [`QTensor::export`]).
///
/// `qweight` int32 \[K·b/32, N], `qzeros` int32 \[G, N·b/32], `scales` fp16
/// bit patterns \[G, N], `g_idx` int32 \[K], row-major; the shapes are in
/// `sizes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointTensors {
    /// Codes packed along K.
    pub qweight: Vec<i32>,
    /// Zeros packed along N (stored as zero − 1 in format V1).
    pub qzeros: Vec<i32>,
    /// fp16 scales as `u16` bit patterns.
    pub scales: Vec<u16>,
    /// Group of each input column.
    pub g_idx: Vec<i32>,
    /// The shapes of the four tensors.
    pub sizes: CheckpointSizes,
    /// The format the zeros are stored in.
    pub format: CheckpointFormat,
}

impl CheckpointTensors {
    /// Borrowed view, for [`QTensor::import`].
    pub fn view(&self) -> CheckpointRef<'_> {
        CheckpointRef {
            qweight: &self.qweight,
            qzeros: &self.qzeros,
            scales: &self.scales,
            g_idx: Some(&self.g_idx),
        }
    }
}

/// Borrowed checkpoint tensors for [`QTensor::import`] (e.g. slices of a
/// loaded safetensors file). `g_idx: None` means j / group_size.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointRef<'a> {
    /// int32 \[K·b/32, N].
    pub qweight: &'a [i32],
    /// int32 \[G, N·b/32].
    pub qzeros: &'a [i32],
    /// fp16 bit patterns \[G, N].
    pub scales: &'a [u16],
    /// int32 \[K], or `None` for j / group_size.
    pub g_idx: Option<&'a [i32]>,
}

struct RawQ(NonNull<sys::gptq_qtensor>);

// SAFETY: a finished gptq_qtensor is immutable and has no thread affinity:
// the header allows any number of threads to call gptq_matmul,
// gptq_qtensor_dequantize, gptq_qtensor_export and the query functions on it
// at once, and it may be destroyed from any thread once no call is running
// (which `&self` borrows and `Drop` guarantee). So it is both Send and Sync.
unsafe impl Send for RawQ {}
unsafe impl Sync for RawQ {}

/// A quantized weight matrix (`gptq_qtensor`), from
/// [`Context::quantize`](crate::Context::quantize) or [`QTensor::import`].
///
/// Freed on drop (`gptq_qtensor_destroy`).
///
/// # Threads
///
/// `QTensor` is `Send + Sync`: the library treats a finished tensor as
/// immutable and documents `gptq_matmul`, dequantize, export and the queries
/// as safe to call from many threads at once on one tensor. Every method
/// takes `&self`, so share one tensor with `Arc<QTensor>` (or scoped
/// threads) and run matmuls concurrently.
pub struct QTensor {
    raw: RawQ,
    info: QTensorInfo,
}

impl std::fmt::Debug for QTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QTensor").field("info", &self.info).finish()
    }
}

impl Drop for QTensor {
    fn drop(&mut self) {
        // SAFETY: owned handle, destroyed exactly once, here.
        unsafe { sys::gptq_qtensor_destroy(self.raw.0.as_ptr()) }
    }
}

impl QTensor {
    /// Take ownership of a handle and read its info; destroys it if that fails.
    pub(crate) fn from_handle(raw: NonNull<sys::gptq_qtensor>) -> Result<QTensor> {
        let mut info = MaybeUninit::<sys::gptq_qtensor_info>::zeroed();
        // SAFETY: valid handle; info is writable.
        let status = unsafe { sys::gptq_qtensor_get_info(raw.as_ptr(), info.as_mut_ptr()) };
        if let Err(e) = check(status) {
            // SAFETY: owned and not used again.
            unsafe { sys::gptq_qtensor_destroy(raw.as_ptr()) };
            return Err(e);
        }
        // SAFETY: zero-initialized plain integers, filled on success.
        let info = unsafe { info.assume_init() };
        Ok(QTensor {
            raw: RawQ(raw),
            info: QTensorInfo {
                out_features: info.out_features.max(0) as usize,
                in_features: info.in_features.max(0) as usize,
                bits: info.bits.max(0) as u32,
                group_size: info.group_size,
                groups: info.groups.max(0) as usize,
                act_order: info.act_order != 0,
            },
        })
    }

    /// Take ownership of a C handle (e.g. from a raw `gptq_quantize` call).
    ///
    /// # Safety
    ///
    /// `raw` must be a live `gptq_qtensor` that nothing else destroys.
    pub unsafe fn from_raw(raw: NonNull<sys::gptq_qtensor>) -> Result<QTensor> {
        QTensor::from_handle(raw)
    }

    /// The C handle, for calls through [`gptq_sys`](crate::sys); it stays
    /// owned by this `QTensor`.
    pub fn as_ptr(&self) -> *const sys::gptq_qtensor {
        self.raw.0.as_ptr()
    }

    /// Shape and parameters.
    pub fn info(&self) -> QTensorInfo {
        self.info
    }

    /// N, rows of the weight.
    pub fn out_features(&self) -> usize {
        self.info.out_features
    }

    /// K, columns of the weight.
    pub fn in_features(&self) -> usize {
        self.info.in_features
    }

    fn weight_len(&self, function: &str) -> Result<usize> {
        product(
            self.info.out_features,
            self.info.in_features,
            function,
            "the weight",
        )
    }

    /// The dequantized weights scale·(code − zero), f32 \[out_features,
    /// in_features] in the original column order: exactly the weights
    /// [`matmul`](QTensor::matmul) multiplies by.
    pub fn dequantize(&self) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; self.weight_len("gptq_qtensor_dequantize")?];
        self.dequantize_into(&mut out)?;
        Ok(out)
    }

    /// [`dequantize`](QTensor::dequantize) into a caller buffer of at least
    /// out_features · in_features elements (else `SizeMismatch`).
    pub fn dequantize_into(&self, out: &mut [f32]) -> Result<()> {
        let len = to_i64(out.len(), "gptq_qtensor_dequantize", "out_len")?;
        // SAFETY: out has out_len elements; the library checks the length.
        check(unsafe { sys::gptq_qtensor_dequantize(self.raw.0.as_ptr(), out.as_mut_ptr(), len) })
    }

    /// The integer codes \[out_features, in_features], one byte each,
    /// original column order, values 0 .. 2^bits − 1.
    pub fn codes(&self) -> Result<Vec<u8>> {
        const F: &str = "gptq_qtensor_codes";
        let mut out = vec![0u8; self.weight_len(F)?];
        let len = to_i64(out.len(), F, "out_len")?;
        // SAFETY: out has out_len elements.
        check(unsafe { sys::gptq_qtensor_codes(self.raw.0.as_ptr(), out.as_mut_ptr(), len) })?;
        Ok(out)
    }

    /// The grid the codes lie on (`gptq_qtensor_grid`): the
    /// [`Config::grid`](crate::Config::grid) of the context that made it,
    /// [`Grid::Gptq`] for imported checkpoints; `None` for a grid newer than
    /// this crate.
    pub fn grid(&self) -> Option<Grid> {
        // SAFETY: valid handle.
        Grid::from_raw(unsafe { sys::gptq_qtensor_grid(self.raw.0.as_ptr()) })
    }

    /// The tensor in its GGUF block format's bytes (`gptq_gguf_export`):
    /// [`gguf_size`] bytes, the data of a GGUF tensor of that type with
    /// ne0 = in_features. Fails with `Unsupported` for a tensor on GPTQ's own
    /// grid.
    pub fn gguf_export(&self) -> Result<Vec<u8>> {
        const F: &str = "gptq_gguf_export";
        // SAFETY: valid handle.
        let grid = unsafe { sys::gptq_qtensor_grid(self.raw.0.as_ptr()) };
        if grid == sys::GPTQ_GRID_GPTQ {
            return Err(Error::new(
                Status::Unsupported,
                format!("{}: the tensor is on GPTQ's own grid, not a GGUF one", F),
            ));
        }
        let len = raw_gguf_size(grid, self.info.out_features, self.info.in_features, F)?;
        let mut out = vec![0u8; len];
        let out_len = to_i64(len, F, "out_len")?;
        // SAFETY: out has out_len bytes; the library checks the length.
        check(unsafe {
            sys::gptq_gguf_export(self.raw.0.as_ptr(), out.as_mut_ptr() as *mut c_void, out_len)
        })?;
        Ok(out)
    }

    /// The sizes of this tensor's checkpoint tensors.
    pub fn checkpoint_sizes(&self) -> Result<CheckpointSizes> {
        checkpoint_sizes(
            self.info.out_features,
            self.info.in_features,
            self.info.bits,
            self.info.group_size,
        )
    }

    /// The tensor in GPTQ checkpoint layout (qweight / qzeros / scales /
    /// g_idx), zeros stored as `format` says.
    ///
    /// Errors: `Unsupported` (K or N not a multiple of the packing unit;
    /// format V1 with a zero of 0, as asymmetric quantization produces).
    pub fn export(&self, format: CheckpointFormat) -> Result<CheckpointTensors> {
        const F: &str = "gptq_qtensor_export";
        let sizes = self.checkpoint_sizes()?;
        let mut qweight = vec![0i32; sizes.qweight_len()];
        let mut qzeros = vec![0i32; sizes.qzeros_len()];
        let mut scales = vec![0u16; sizes.scales_len()];
        let mut g_idx = vec![0i32; sizes.g_idx_len];
        let t = sys::gptq_checkpoint_tensors {
            qweight: qweight.as_mut_ptr(),
            qweight_len: to_i64(qweight.len(), F, "qweight_len")?,
            qzeros: qzeros.as_mut_ptr(),
            qzeros_len: to_i64(qzeros.len(), F, "qzeros_len")?,
            scales: scales.as_mut_ptr(),
            scales_len: to_i64(scales.len(), F, "scales_len")?,
            g_idx: g_idx.as_mut_ptr(),
            g_idx_len: to_i64(g_idx.len(), F, "g_idx_len")?,
        };
        // SAFETY: each pointer has its stated number of elements.
        check(unsafe { sys::gptq_qtensor_export(self.raw.0.as_ptr(), format.to_raw(), &t) })?;
        Ok(CheckpointTensors {
            qweight,
            qzeros,
            scales,
            g_idx,
            sizes,
            format,
        })
    }

    /// Build a tensor from checkpoint tensors quantized elsewhere (the
    /// buffers are copied). With V1, zero = stored + 1.
    ///
    /// Errors: `InvalidSize`, `InvalidConfig` (bits, group size),
    /// `Unsupported` (shape), `SizeMismatch` (buffer lengths),
    /// `InvalidData` (g_idx out of range, non-finite scales), `OutOfMemory`.
    pub fn import(
        out_features: usize,
        in_features: usize,
        bits: u32,
        group_size: i32,
        format: CheckpointFormat,
        tensors: CheckpointRef<'_>,
    ) -> Result<QTensor> {
        const F: &str = "gptq_qtensor_import";
        let out_i = to_i64(out_features, F, "out_features")?;
        let in_i = to_i64(in_features, F, "in_features")?;
        let bits_i = bits_to_c(bits, F)?;
        let (g_ptr, g_len) = match tensors.g_idx {
            Some(g) => (g.as_ptr() as *mut i32, to_i64(g.len(), F, "g_idx_len")?),
            None => (ptr::null_mut(), 0),
        };
        // The struct's pointers are `*mut` because export writes through the
        // same struct; import only reads them.
        let t = sys::gptq_checkpoint_tensors {
            qweight: tensors.qweight.as_ptr() as *mut i32,
            qweight_len: to_i64(tensors.qweight.len(), F, "qweight_len")?,
            qzeros: tensors.qzeros.as_ptr() as *mut i32,
            qzeros_len: to_i64(tensors.qzeros.len(), F, "qzeros_len")?,
            scales: tensors.scales.as_ptr() as *mut u16,
            scales_len: to_i64(tensors.scales.len(), F, "scales_len")?,
            g_idx: g_ptr,
            g_idx_len: g_len,
        };
        let mut out: *mut sys::gptq_qtensor = ptr::null_mut();
        // SAFETY: each pointer has its stated number of elements (g_idx may
        // be NULL); the library copies them and checks every length.
        check(unsafe {
            sys::gptq_qtensor_import(
                out_i,
                in_i,
                bits_i,
                group_size,
                format.to_raw(),
                &t,
                &mut out,
            )
        })?;
        match NonNull::new(out) {
            Some(raw) => QTensor::from_handle(raw),
            None => Err(Error::new(
                Status::Internal,
                "gptq_qtensor_import: returned GPTQ_OK but no tensor",
            )),
        }
    }

    /// Matmuls with options (`gptq_matmul_ex`), e.g. int8 activations:
    ///
    /// ```no_run
    /// # fn f(q: &gptq::QTensor, x: &[f32]) -> gptq::Result<()> {
    /// let opts = gptq::MatmulOptions { int8_activations: true, ..Default::default() };
    /// let y = q.with_options(&opts).matmul(x, 4, None)?;
    /// # Ok(()) }
    /// ```
    pub fn with_options(&self, options: &MatmulOptions) -> Matmul<'_> {
        Matmul {
            q: self,
            options: Some(options.to_raw()),
        }
    }

    fn plain(&self) -> Matmul<'_> {
        Matmul {
            q: self,
            options: None,
        }
    }

    /// y = x · Wᵀ (+ bias) with W the dequantized weights (`gptq_matmul`):
    /// x f32 \[rows, in_features], bias \[out_features], y \[rows,
    /// out_features]. Accumulation in f32. NaN/Inf in x or bias propagate.
    ///
    /// `x.len()` and `bias.len()` are checked here (`SizeMismatch`); the
    /// library reports `InvalidSize` for rows 0. Any number of threads may
    /// call this on one tensor at once.
    pub fn matmul(&self, x: &[f32], rows: usize, bias: Option<&[f32]>) -> Result<Vec<f32>> {
        self.plain().matmul(x, rows, bias)
    }

    /// [`matmul`](QTensor::matmul) into a caller buffer of at least
    /// rows · out_features elements (the library checks: `SizeMismatch`).
    pub fn matmul_into(
        &self,
        x: &[f32],
        rows: usize,
        bias: Option<&[f32]>,
        y: &mut [f32],
    ) -> Result<()> {
        self.plain().matmul_into(x, rows, bias, y)
    }

    /// [`matmul`](QTensor::matmul) with x, bias and y in a 16-bit format
    /// (bit patterns); accumulation in f32, rounded once at the end.
    pub fn matmul_half(
        &self,
        kind: Half,
        x: &[u16],
        rows: usize,
        bias: Option<&[u16]>,
    ) -> Result<Vec<u16>> {
        self.plain().matmul_half(kind, x, rows, bias)
    }

    /// [`matmul_half`](QTensor::matmul_half) into a caller buffer.
    pub fn matmul_half_into(
        &self,
        kind: Half,
        x: &[u16],
        rows: usize,
        bias: Option<&[u16]>,
        y: &mut [u16],
    ) -> Result<()> {
        self.plain().matmul_half_into(kind, x, rows, bias, y)
    }
}

/// How a matmul computes (`gptq_matmul_options`); `Default` is the C
/// library's `gptq_matmul_options_default()`. Used through
/// [`QTensor::with_options`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatmulOptions {
    /// `false` (default): f32 activations; the result equals
    /// dequantize-then-multiply up to f32 summation order. `true`: for small
    /// batches on CPUs with AVX2, activations are rounded to int8 per block
    /// of 32 and multiplied in integer arithmetic: faster, with a relative
    /// L2 error of y of about 0.5–1% on LLM-like activations. Only 2-, 3- and
    /// 4-bit tensors use it.
    pub int8_activations: bool,
    /// Threads for this call; 0 = one per core.
    pub num_threads: u32,
}

fn raw_matmul_options_default() -> sys::gptq_matmul_options {
    let mut raw = MaybeUninit::<sys::gptq_matmul_options>::zeroed();
    // SAFETY: fills the whole struct, struct_size included.
    unsafe {
        sys::gptq_matmul_options_default(raw.as_mut_ptr());
        raw.assume_init()
    }
}

impl Default for MatmulOptions {
    /// The C library's defaults.
    fn default() -> MatmulOptions {
        let raw = raw_matmul_options_default();
        MatmulOptions {
            int8_activations: raw.int8_activations != 0,
            num_threads: raw.num_threads.max(0) as u32,
        }
    }
}

impl MatmulOptions {
    /// The C struct: the library's defaults with these fields written over
    /// them. A `num_threads` beyond the C int range is clamped to it.
    pub fn to_raw(&self) -> sys::gptq_matmul_options {
        let mut raw = raw_matmul_options_default();
        raw.int8_activations = self.int8_activations as i32;
        raw.num_threads = self.num_threads.min(i32::MAX as u32) as i32;
        raw
    }
}

/// A tensor with matmul options, from [`QTensor::with_options`]; the same
/// four matmul methods as [`QTensor`], through `gptq_matmul_ex`.
#[derive(Debug, Clone, Copy)]
pub struct Matmul<'a> {
    q: &'a QTensor,
    options: Option<sys::gptq_matmul_options>,
}

impl<'a> Matmul<'a> {
    /// Shape checks of a matmul's x and bias (C sees no length for them).
    fn check_inputs(&self, x_len: usize, rows: usize, bias_len: Option<usize>) -> Result<()> {
        const F: &str = "gptq_matmul";
        let info = &self.q.info;
        if rows > 0 {
            let need = product(rows, info.in_features, F, "x")?;
            let shape = format!("rows {} × in_features {}", rows, info.in_features);
            expect_len(x_len, need, F, "x", &shape)?;
        }
        if let Some(len) = bias_len {
            let shape = format!("out_features {}", info.out_features);
            expect_len(len, info.out_features, F, "bias", &shape)?;
        }
        Ok(())
    }

    fn y_len(&self, rows: usize) -> Result<usize> {
        product(rows, self.q.info.out_features, "gptq_matmul", "y")
    }

    fn call(
        &self,
        x: *const c_void,
        dtype: sys::gptq_dtype,
        rows: usize,
        bias: *const c_void,
        y: *mut c_void,
        y_len: usize,
    ) -> Result<()> {
        const F: &str = "gptq_matmul";
        let rows_i = to_i64(rows, F, "rows")?;
        let cols_i = to_i64(self.q.info.in_features, F, "cols")?;
        let y_len_i = to_i64(y_len, F, "y_len")?;
        let q = self.q.raw.0.as_ptr();
        // SAFETY: the callers checked x (rows·in_features) and bias
        // (out_features) lengths; y has y_len elements, checked by the
        // library. Concurrent calls on one tensor are allowed.
        check(unsafe {
            match &self.options {
                None => sys::gptq_matmul(q, x, dtype, rows_i, cols_i, bias, y, y_len_i),
                Some(o) => sys::gptq_matmul_ex(q, x, dtype, rows_i, cols_i, bias, y, y_len_i, o),
            }
        })
    }

    /// See [`QTensor::matmul`].
    pub fn matmul(&self, x: &[f32], rows: usize, bias: Option<&[f32]>) -> Result<Vec<f32>> {
        self.check_inputs(x.len(), rows, bias.map(|b| b.len()))?;
        let mut y = vec![0.0f32; self.y_len(rows)?];
        self.matmul_into(x, rows, bias, &mut y)?;
        Ok(y)
    }

    /// See [`QTensor::matmul_into`].
    pub fn matmul_into(
        &self,
        x: &[f32],
        rows: usize,
        bias: Option<&[f32]>,
        y: &mut [f32],
    ) -> Result<()> {
        self.check_inputs(x.len(), rows, bias.map(|b| b.len()))?;
        let bias_ptr = bias.map_or(ptr::null(), |b| b.as_ptr() as *const c_void);
        let (y_ptr, y_len) = (y.as_mut_ptr() as *mut c_void, y.len());
        self.call(
            x.as_ptr() as *const c_void,
            sys::GPTQ_DTYPE_F32,
            rows,
            bias_ptr,
            y_ptr,
            y_len,
        )
    }

    /// See [`QTensor::matmul_half`].
    pub fn matmul_half(
        &self,
        kind: Half,
        x: &[u16],
        rows: usize,
        bias: Option<&[u16]>,
    ) -> Result<Vec<u16>> {
        self.check_inputs(x.len(), rows, bias.map(|b| b.len()))?;
        let mut y = vec![0u16; self.y_len(rows)?];
        self.matmul_half_into(kind, x, rows, bias, &mut y)?;
        Ok(y)
    }

    /// See [`QTensor::matmul_half_into`].
    pub fn matmul_half_into(
        &self,
        kind: Half,
        x: &[u16],
        rows: usize,
        bias: Option<&[u16]>,
        y: &mut [u16],
    ) -> Result<()> {
        self.check_inputs(x.len(), rows, bias.map(|b| b.len()))?;
        let bias_ptr = bias.map_or(ptr::null(), |b| b.as_ptr() as *const c_void);
        let (y_ptr, y_len) = (y.as_mut_ptr() as *mut c_void, y.len());
        self.call(
            x.as_ptr() as *const c_void,
            kind.to_raw(),
            rows,
            bias_ptr,
            y_ptr,
            y_len,
        )
    }
}
