//! Shared helpers of the integration tests: deterministic data, 16-bit float
//! conversions, and the same work done through the raw gptq-sys calls, as
//! the reference the safe crate must match bit for bit.
#![allow(dead_code)]

use std::ffi::CStr;
use std::mem;
use std::ptr;

use gptq_sys as sys;

/// xorshift64* with Box-Muller normals: the same numbers on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// A small layer: weights [out, in] (sigma 0.02 with a few outliers) and
/// correlated activations [tokens, in] with per-channel scales.
pub struct Layer {
    pub out_features: usize,
    pub in_features: usize,
    pub tokens: usize,
    pub w: Vec<f32>,
    pub x: Vec<f32>,
}

pub fn layer(out_features: usize, in_features: usize, tokens: usize, seed: u64) -> Layer {
    let mut rng = Rng::new(seed);
    let w: Vec<f32> = (0..out_features * in_features)
        .map(|_| {
            let v = 0.02 * rng.normal();
            (if rng.uniform() < 0.002 { 8.0 * v } else { v }) as f32
        })
        .collect();
    let rank = 8;
    let mix: Vec<f64> = (0..rank * in_features).map(|_| rng.normal()).collect();
    let scale: Vec<f64> = (0..in_features)
        .map(|_| (0.5 * rng.normal()).exp())
        .collect();
    let mut x = vec![0.0f32; tokens * in_features];
    for t in 0..tokens {
        let z: Vec<f64> = (0..rank).map(|_| rng.normal()).collect();
        for j in 0..in_features {
            let mut v = rng.normal();
            for r in 0..rank {
                v += z[r] * mix[r * in_features + j] / (rank as f64).sqrt();
            }
            x[t * in_features + j] = (v * scale[j]) as f32;
        }
    }
    Layer {
        out_features,
        in_features,
        tokens,
        w,
        x,
    }
}

/// f32 → IEEE binary16 bits, round to nearest even (finite, normal-range
/// inputs as the tests use; subnormals handled, overflow to Inf).
pub fn f32_to_f16(v: f32) -> u16 {
    let b = v.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rest = m & ((1u32 << shift) - 1);
        let mut r = m >> shift;
        if rest > half || (rest == half && (r & 1) == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (man >> 13);
    let rest = man & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && (r & 1) == 1) {
        r += 1;
    }
    sign | r as u16
}

pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            // subnormal: man · 2^-24
            let v = man as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
    } else if exp == 0x1f {
        sign | 0x7f80_0000 | (man << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

/// f32 → bfloat16 bits, round to nearest even (finite inputs).
pub fn f32_to_bf16(v: f32) -> u16 {
    let b = v.to_bits();
    let r = b.wrapping_add(0x7fff + ((b >> 16) & 1));
    (r >> 16) as u16
}

pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

pub fn bits_f32(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

pub fn last_error() -> String {
    unsafe { CStr::from_ptr(sys::gptq_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A raw C config: the library's defaults plus the changes `f` makes.
pub fn raw_config(f: impl FnOnce(&mut sys::gptq_config)) -> sys::gptq_config {
    let mut cfg: sys::gptq_config = unsafe { mem::zeroed() };
    unsafe { sys::gptq_config_default(&mut cfg) };
    f(&mut cfg);
    cfg
}

/// Everything the raw C calls produce for one quantization.
pub struct RawResult {
    pub codes: Vec<u8>,
    pub dequantized: Vec<f32>,
    pub qweight: Vec<i32>,
    pub qzeros: Vec<i32>,
    pub scales: Vec<u16>,
    pub g_idx: Vec<i32>,
    pub stats: sys::gptq_quant_stats,
    pub hessian: Vec<f64>,
}

/// Calibrate with `batches` (each [rows, in], samples) and quantize `w`,
/// through gptq-sys only; export in format V2.
pub fn raw_quantize(
    out_features: usize,
    in_features: usize,
    cfg: &sys::gptq_config,
    batches: &[(&[f32], usize, u64)],
    w: &[f32],
) -> RawResult {
    unsafe {
        let mut ctx: *mut sys::gptq_ctx = ptr::null_mut();
        let st = sys::gptq_ctx_create(out_features as i64, in_features as i64, cfg, &mut ctx);
        assert_eq!(st, sys::GPTQ_OK, "raw ctx_create: {}", last_error());
        for (x, rows, samples) in batches {
            assert_eq!(x.len(), rows * in_features);
            let st = sys::gptq_add_batch(
                ctx,
                x.as_ptr() as *const _,
                sys::GPTQ_DTYPE_F32,
                *rows as i64,
                in_features as i64,
                *samples as i64,
            );
            assert_eq!(st, sys::GPTQ_OK, "raw add_batch: {}", last_error());
        }
        let mut hessian = vec![0.0f64; in_features * in_features];
        let mut samples = 0i64;
        let st = sys::gptq_ctx_export_hessian(
            ctx,
            hessian.as_mut_ptr(),
            hessian.len() as i64,
            &mut samples,
        );
        assert_eq!(st, sys::GPTQ_OK, "raw export_hessian: {}", last_error());

        let mut stats: sys::gptq_quant_stats = mem::zeroed();
        stats.struct_size = mem::size_of::<sys::gptq_quant_stats>();
        let mut q: *mut sys::gptq_qtensor = ptr::null_mut();
        let st = sys::gptq_quantize(
            ctx,
            w.as_ptr() as *const _,
            sys::GPTQ_DTYPE_F32,
            out_features as i64,
            in_features as i64,
            &mut q,
            &mut stats,
        );
        assert_eq!(st, sys::GPTQ_OK, "raw quantize: {}", last_error());
        sys::gptq_ctx_destroy(ctx);

        let n = out_features * in_features;
        let mut codes = vec![0u8; n];
        assert_eq!(
            sys::gptq_qtensor_codes(q, codes.as_mut_ptr(), n as i64),
            sys::GPTQ_OK
        );
        let mut dequantized = vec![0f32; n];
        assert_eq!(
            sys::gptq_qtensor_dequantize(q, dequantized.as_mut_ptr(), n as i64),
            sys::GPTQ_OK
        );

        let mut sizes: sys::gptq_checkpoint_sizes = mem::zeroed();
        assert_eq!(
            sys::gptq_checkpoint_sizes_for(
                out_features as i64,
                in_features as i64,
                cfg.bits,
                cfg.group_size,
                &mut sizes
            ),
            sys::GPTQ_OK,
            "raw sizes: {}",
            last_error()
        );
        let mut qweight = vec![0i32; (sizes.qweight_rows * sizes.qweight_cols) as usize];
        let mut qzeros = vec![0i32; (sizes.qzeros_rows * sizes.qzeros_cols) as usize];
        let mut scales = vec![0u16; (sizes.scales_rows * sizes.scales_cols) as usize];
        let mut g_idx = vec![0i32; sizes.g_idx_len as usize];
        let t = sys::gptq_checkpoint_tensors {
            qweight: qweight.as_mut_ptr(),
            qweight_len: qweight.len() as i64,
            qzeros: qzeros.as_mut_ptr(),
            qzeros_len: qzeros.len() as i64,
            scales: scales.as_mut_ptr(),
            scales_len: scales.len() as i64,
            g_idx: g_idx.as_mut_ptr(),
            g_idx_len: g_idx.len() as i64,
        };
        assert_eq!(
            sys::gptq_qtensor_export(q, sys::GPTQ_FORMAT_V2, &t),
            sys::GPTQ_OK,
            "raw export: {}",
            last_error()
        );
        sys::gptq_qtensor_destroy(q);
        RawResult {
            codes,
            dequantized,
            qweight,
            qzeros,
            scales,
            g_idx,
            stats,
            hessian,
        }
    }
}

/// y = x · Wᵀ (+ bias) in f64, the reference for matmul.
pub fn matmul_ref(
    x: &[f32],
    rows: usize,
    w: &[f32],
    out: usize,
    inn: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    let mut y = vec![0f64; rows * out];
    for r in 0..rows {
        for o in 0..out {
            let mut acc = bias.map_or(0.0, |b| b[o] as f64);
            for k in 0..inn {
                acc += x[r * inn + k] as f64 * w[o * inn + k] as f64;
            }
            y[r * out + o] = acc;
        }
    }
    y
}

/// Largest |a − b| relative to the largest |b|.
pub fn rel_max_err(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-30);
    a.iter()
        .zip(b)
        .fold(0f64, |m, (x, y)| m.max((*x as f64 - y).abs()))
        / scale
}
