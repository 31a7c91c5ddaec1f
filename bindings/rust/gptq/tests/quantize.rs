//! Quantization through the safe crate matches the C library's own output
//! (the same work done through raw gptq-sys calls) bit for bit; checkpoint
//! export/import; matmul; 16-bit inputs; threads.

mod common;

use std::convert::TryFrom;
use std::sync::Arc;
use std::thread;

use common::*;
use gptq::{
    Backend, CheckpointFormat, CheckpointRef, Config, Context, Grid, Half, MatmulOptions,
    Precision, QTensor, Status,
};
use gptq_sys as sys;

#[test]
fn version_matches_header_and_library() {
    let n = gptq::version_number();
    assert_eq!(n, unsafe { sys::gptq_version_number() });
    assert_eq!(n / 10000, sys::GPTQ_VERSION_MAJOR);
    assert!(n >= gptq::HEADER_VERSION_NUMBER);
    assert_eq!(
        gptq::version(),
        format!("{}.{}.{}", n / 10000, n / 100 % 100, n % 100)
    );
}

#[test]
fn status_enum_covers_every_code() {
    assert_eq!(Status::from_code(sys::GPTQ_OK), None);
    let codes = [
        (sys::GPTQ_ERR_NULL_POINTER, Status::NullPointer),
        (sys::GPTQ_ERR_INVALID_SIZE, Status::InvalidSize),
        (sys::GPTQ_ERR_SIZE_MISMATCH, Status::SizeMismatch),
        (sys::GPTQ_ERR_NON_FINITE, Status::NonFinite),
        (sys::GPTQ_ERR_INVALID_CONFIG, Status::InvalidConfig),
        (sys::GPTQ_ERR_INVALID_STATE, Status::InvalidState),
        (sys::GPTQ_ERR_UNSUPPORTED, Status::Unsupported),
        (
            sys::GPTQ_ERR_BACKEND_UNAVAILABLE,
            Status::BackendUnavailable,
        ),
        (sys::GPTQ_ERR_OUT_OF_MEMORY, Status::OutOfMemory),
        (sys::GPTQ_ERR_CANCELLED, Status::Cancelled),
        (sys::GPTQ_ERR_INVALID_DATA, Status::InvalidData),
        (sys::GPTQ_ERR_INTERNAL, Status::Internal),
    ];
    for (code, status) in codes.iter().copied() {
        assert_eq!(Status::from_code(code), Some(status));
        assert_eq!(status.code(), code);
        let c = unsafe { std::ffi::CStr::from_ptr(sys::gptq_status_string(code)) };
        assert_eq!(status.description(), c.to_str().unwrap());
        assert!(status.name().starts_with("GPTQ_ERR_"), "{}", status.name());
        assert!(!status.name().contains(':'));
    }
    // A code appended by a newer library.
    assert_eq!(Status::from_code(999), Some(Status::Unknown(999)));
    assert_eq!(Status::Unknown(999).code(), 999);
}

#[test]
fn config_default_is_the_libraries() {
    let raw = raw_config(|_| {});
    let cfg = Config::default();
    assert_eq!(cfg.bits as i32, raw.bits);
    assert_eq!(cfg.group_size, raw.group_size);
    assert_eq!(cfg.sym as i32, raw.sym);
    assert_eq!(cfg.act_order as i32, raw.act_order);
    assert_eq!(cfg.static_groups as i32, raw.static_groups);
    assert_eq!(cfg.block_size as i32, raw.block_size);
    assert_eq!(cfg.damp_percent.to_bits(), raw.damp_percent.to_bits());
    assert_eq!(cfg.damp_increment.to_bits(), raw.damp_increment.to_bits());
    assert_eq!(cfg.mse as i32, raw.mse);
    assert_eq!(cfg.mse_norm.to_bits(), raw.mse_norm.to_bits());
    assert_eq!(cfg.mse_grid as i32, raw.mse_grid);
    assert_eq!(cfg.mse_max_shrink.to_bits(), raw.mse_max_shrink.to_bits());
    assert_eq!(cfg.backend.to_raw(), raw.backend);
    assert_eq!(cfg.precision.to_raw(), raw.precision);
    assert_eq!(cfg.log_level.to_raw(), raw.log_level);
    assert_eq!(cfg.num_threads as i32, raw.num_threads);
    assert_eq!(cfg.act_group_aware as i32, raw.act_group_aware);
    assert_eq!(cfg.grid.to_raw(), raw.grid);

    // Every field survives the trip to C and back.
    let changed = Config {
        bits: 3,
        group_size: -1,
        sym: false,
        act_order: true,
        static_groups: true,
        block_size: 7,
        damp_percent: 0.05,
        damp_increment: 0.01,
        mse: true,
        mse_norm: 2.0,
        mse_grid: 50,
        mse_max_shrink: 0.5,
        backend: Backend::Cpu,
        precision: Precision::F64,
        log_level: gptq::LogLevel::Warn,
        num_threads: 3,
        act_group_aware: true,
        grid: Grid::Q5_1,
    };
    let raw = changed.to_raw().unwrap();
    assert_eq!(raw.struct_size, std::mem::size_of::<sys::gptq_config>());
    assert!(raw.progress.is_none() && raw.log.is_none());
    assert_eq!(Config::from_raw(&raw), changed);
}

/// One configuration, built independently as a safe Config and a raw one.
#[derive(Clone, Copy, Debug)]
struct Case {
    bits: u32,
    group_size: i32,
    sym: bool,
    act_order: bool,
    static_groups: bool,
    mse: bool,
    block_size: u32,
    f64: bool,
}

impl Case {
    fn config(&self) -> Config {
        Config {
            bits: self.bits,
            group_size: self.group_size,
            sym: self.sym,
            act_order: self.act_order,
            static_groups: self.static_groups,
            mse: self.mse,
            block_size: self.block_size,
            precision: if self.f64 {
                Precision::F64
            } else {
                Precision::F32
            },
            backend: Backend::Cpu,
            ..Config::default()
        }
    }
    fn raw(&self) -> sys::gptq_config {
        let c = *self;
        raw_config(move |r| {
            r.bits = c.bits as i32;
            r.group_size = c.group_size;
            r.sym = c.sym as i32;
            r.act_order = c.act_order as i32;
            r.static_groups = c.static_groups as i32;
            r.mse = c.mse as i32;
            r.block_size = c.block_size as i32;
            r.precision = if c.f64 {
                sys::GPTQ_PRECISION_F64
            } else {
                sys::GPTQ_PRECISION_F32
            };
            r.backend = sys::GPTQ_BACKEND_CPU;
        })
    }
}

const CASES: &[Case] = &[
    Case {
        bits: 4,
        group_size: 32,
        sym: true,
        act_order: false,
        static_groups: false,
        mse: false,
        block_size: 128,
        f64: false,
    },
    Case {
        bits: 3,
        group_size: -1,
        sym: false,
        act_order: true,
        static_groups: false,
        mse: false,
        block_size: 32,
        f64: false,
    },
    Case {
        bits: 8,
        group_size: 16,
        sym: true,
        act_order: true,
        static_groups: true,
        mse: true,
        block_size: 24,
        f64: true,
    },
    Case {
        bits: 2,
        group_size: 64,
        sym: false,
        act_order: true,
        static_groups: false,
        mse: false,
        block_size: 16,
        f64: false,
    },
];

#[test]
fn quantize_matches_raw_c_bit_for_bit() {
    let (n, k) = (64, 128);
    let l = layer(n, k, 192, 1);
    let (x1, x2) = l.x.split_at(128 * k);
    for case in CASES {
        let reference = raw_quantize(n, k, &case.raw(), &[(x1, 128, 2), (x2, 64, 1)], &l.w);

        let mut ctx = Context::new(n, k, &case.config()).unwrap();
        assert_eq!(
            (ctx.out_features(), ctx.in_features(), ctx.samples()),
            (n, k, 0)
        );
        ctx.add_batch(x1, 128, 2).unwrap();
        ctx.add_batch(x2, 64, 1).unwrap();
        assert_eq!(ctx.samples(), 3);
        let h = ctx.export_hessian().unwrap();
        assert_eq!((h.in_features, h.samples), (k, 3));
        assert_eq!(
            h.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            reference
                .hessian
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>(),
            "{:?}",
            case
        );

        let (q, stats) = ctx.quantize(&l.w).unwrap();
        assert_eq!(q.codes().unwrap(), reference.codes, "{:?}", case);
        assert_eq!(
            bits_f32(&q.dequantize().unwrap()),
            bits_f32(&reference.dequantized),
            "{:?}",
            case
        );
        let ck = q.export(CheckpointFormat::V2).unwrap();
        assert_eq!(ck.qweight, reference.qweight, "{:?}", case);
        assert_eq!(ck.qzeros, reference.qzeros, "{:?}", case);
        assert_eq!(ck.scales, reference.scales, "{:?}", case);
        assert_eq!(ck.g_idx, reference.g_idx, "{:?}", case);
        assert_eq!(ck.format, CheckpointFormat::V2);

        let r = &reference.stats;
        assert_eq!(stats.loss.to_bits(), r.loss.to_bits(), "{:?}", case);
        assert_eq!(
            stats.damp_percent_used.to_bits(),
            r.damp_percent_used.to_bits()
        );
        assert_eq!(stats.damp_retries as i32, r.damp_retries);
        assert_eq!(stats.fell_back_to_rtn as i32, r.fell_back_to_rtn);
        assert_eq!(stats.dead_columns as i64, r.dead_columns);
        assert_eq!(stats.backend, Backend::Cpu);
        assert!(stats.loss > 0.0 && stats.seconds >= 0.0);

        let info = q.info();
        assert_eq!(
            (
                info.out_features,
                info.in_features,
                info.bits,
                info.group_size
            ),
            (n, k, case.bits, case.group_size)
        );
        let groups = if case.group_size < 0 {
            1
        } else {
            (k + case.group_size as usize - 1) / case.group_size as usize
        };
        assert_eq!(info.groups, groups);
        assert_eq!(
            info.act_order,
            case.act_order && !case.static_groups && case.group_size > 0
        );
        let sizes = q.checkpoint_sizes().unwrap();
        assert_eq!(
            (sizes.qweight_rows, sizes.qweight_cols),
            (k * case.bits as usize / 32, n)
        );
        assert_eq!(
            (sizes.scales_rows, sizes.scales_cols, sizes.g_idx_len),
            (groups, n, k)
        );
        assert_eq!(
            sizes,
            gptq::checkpoint_sizes(n, k, case.bits, case.group_size).unwrap()
        );

        // The context is not consumed: quantizing again gives the same tensor.
        let (q2, _) = ctx.quantize(&l.w[..]).unwrap();
        assert_eq!(q2.codes().unwrap(), reference.codes);
    }
}

#[test]
fn dead_columns_are_reported_like_c() {
    let (n, k) = (32, 64);
    let mut l = layer(n, k, 96, 2);
    for t in 0..l.tokens {
        for j in [3usize, 17, 40] {
            l.x[t * k + j] = 0.0;
        }
    }
    let case = CASES[0];
    let reference = raw_quantize(
        n,
        k,
        &case.raw(),
        &[(&l.x, l.tokens, l.tokens as u64)],
        &l.w,
    );
    let mut ctx = Context::new(n, k, &case.config()).unwrap();
    ctx.add_batch(&l.x, l.tokens, l.tokens as u64).unwrap();
    let (q, stats) = ctx.quantize(&l.w).unwrap();
    assert_eq!(stats.dead_columns, 3);
    assert_eq!(stats.dead_columns as i64, reference.stats.dead_columns);
    assert_eq!(q.codes().unwrap(), reference.codes);
}

#[test]
fn half_inputs_equal_their_f32_values() {
    let (n, k) = (32, 64);
    let l = layer(n, k, 80, 3);
    let cfg = Config {
        group_size: 32,
        backend: Backend::Cpu,
        ..Config::default()
    };

    // Activations as bf16, weights as f16; the f32 contexts get exactly the
    // values those bit patterns stand for.
    let xb: Vec<u16> = l.x.iter().map(|&v| f32_to_bf16(v)).collect();
    let xf: Vec<f32> = xb.iter().map(|&h| bf16_to_f32(h)).collect();
    let wh: Vec<u16> = l.w.iter().map(|&v| f32_to_f16(v)).collect();
    let wf: Vec<f32> = wh.iter().map(|&h| f16_to_f32(h)).collect();

    let mut a = Context::new(n, k, &cfg).unwrap();
    a.add_batch(Half::Bf16.slice(&xb), l.tokens, 1).unwrap();
    let mut b = Context::new(n, k, &cfg).unwrap();
    b.add_batch(&xf, l.tokens, 1).unwrap();
    assert_eq!(a.export_hessian().unwrap(), b.export_hessian().unwrap());

    let (qa, _) = a.quantize((Half::F16, &wh)).unwrap();
    let (qb, _) = b.quantize(&wf).unwrap();
    assert_eq!(qa.codes().unwrap(), qb.codes().unwrap());
    assert_eq!(
        bits_f32(&qa.dequantize().unwrap()),
        bits_f32(&qb.dequantize().unwrap())
    );

    // And the other way round: f16 activations, bf16 weights.
    let xh: Vec<u16> = l.x.iter().map(|&v| f32_to_f16(v)).collect();
    let mut c = Context::new(n, k, &cfg).unwrap();
    c.add_batch(gptq::Elements::Half(Half::F16, &xh), l.tokens, 1)
        .unwrap();
    let mut d = Context::new(n, k, &cfg).unwrap();
    d.add_batch(
        &xh.iter().map(|&h| f16_to_f32(h)).collect::<Vec<_>>(),
        l.tokens,
        1,
    )
    .unwrap();
    assert_eq!(c.export_hessian().unwrap(), d.export_hessian().unwrap());
    let wb: Vec<u16> = l.w.iter().map(|&v| f32_to_bf16(v)).collect();
    let (qc, _) = c.quantize(Half::Bf16.slice(&wb)).unwrap();
    let (qd, _) = d
        .quantize(&wb.iter().map(|&h| bf16_to_f32(h)).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(qc.codes().unwrap(), qd.codes().unwrap());
}

fn quantized(case: Case, seed: u64) -> (common::Layer, QTensor) {
    let (n, k) = (64, 128);
    let l = layer(n, k, 160, seed);
    let mut ctx = Context::new(n, k, &case.config()).unwrap();
    ctx.add_batch(&l.x, l.tokens, 4).unwrap();
    let (q, _) = ctx.quantize(&l.w).unwrap();
    (l, q)
}

#[test]
fn export_import_round_trip() {
    for (case, format) in [
        (CASES[0], CheckpointFormat::V1),
        (CASES[1], CheckpointFormat::V2),
        (CASES[3], CheckpointFormat::V2),
        (CASES[2], CheckpointFormat::V1),
    ] {
        let (_, q) = quantized(case, 4);
        let info = q.info();
        let ck = q.export(format).unwrap();
        assert_eq!(ck.format, format);
        let back = QTensor::import(
            info.out_features,
            info.in_features,
            info.bits,
            info.group_size,
            format,
            ck.view(),
        )
        .unwrap();
        assert_eq!(back.info(), info, "{:?}", case);
        assert_eq!(back.codes().unwrap(), q.codes().unwrap(), "{:?}", case);
        assert_eq!(
            bits_f32(&back.dequantize().unwrap()),
            bits_f32(&q.dequantize().unwrap()),
            "{:?}",
            case
        );
        assert_eq!(back.export(format).unwrap(), ck);
        // The other format holds the same tensor too (when it can).
        let other = if format == CheckpointFormat::V1 {
            CheckpointFormat::V2
        } else {
            CheckpointFormat::V1
        };
        match q.export(other) {
            Ok(ck2) => {
                let b2 = QTensor::import(
                    info.out_features,
                    info.in_features,
                    info.bits,
                    info.group_size,
                    other,
                    ck2.view(),
                )
                .unwrap();
                assert_eq!(b2.codes().unwrap(), q.codes().unwrap());
            }
            Err(e) => assert_eq!(
                (e.status, other, case.sym),
                (Status::Unsupported, CheckpointFormat::V1, false)
            ),
        }
    }

    // g_idx None means j / group_size: fine for a tensor without act-order.
    let (_, q) = quantized(CASES[0], 5);
    let info = q.info();
    assert!(!info.act_order);
    let ck = q.export(CheckpointFormat::V1).unwrap();
    let view = CheckpointRef {
        g_idx: None,
        ..ck.view()
    };
    let back = QTensor::import(
        info.out_features,
        info.in_features,
        info.bits,
        info.group_size,
        CheckpointFormat::V1,
        view,
    )
    .unwrap();
    assert_eq!(back.codes().unwrap(), q.codes().unwrap());
}

/// f32 → 16-bit bits, and back.
type Codec = (fn(f32) -> u16, fn(u16) -> f32);

#[test]
fn matmul_matches_dequantize_then_multiply() {
    let (l, q) = quantized(CASES[1], 6);
    let (n, k) = (l.out_features, l.in_features);
    let wq = q.dequantize().unwrap();
    let rows = 5;
    let x = &l.x[..rows * k];
    let bias: Vec<f32> = (0..n).map(|i| 0.01 * i as f32 - 0.3).collect();

    let y = q.matmul(x, rows, None).unwrap();
    assert_eq!(y.len(), rows * n);
    assert!(rel_max_err(&y, &matmul_ref(x, rows, &wq, n, k, None)) < 1e-5);
    let yb = q.matmul(x, rows, Some(&bias)).unwrap();
    assert!(rel_max_err(&yb, &matmul_ref(x, rows, &wq, n, k, Some(&bias))) < 1e-5);

    // Into a caller buffer, which may be longer than needed.
    let mut buf = vec![f32::NAN; rows * n + 3];
    q.matmul_into(x, rows, Some(&bias), &mut buf).unwrap();
    assert_eq!(bits_f32(&buf[..rows * n]), bits_f32(&yb));

    // 16-bit activations/bias/output: one rounding at the end.
    for kind in [Half::F16, Half::Bf16] {
        let (enc, dec): Codec = match kind {
            Half::F16 => (f32_to_f16, f16_to_f32),
            Half::Bf16 => (f32_to_bf16, bf16_to_f32),
        };
        let xh: Vec<u16> = x.iter().map(|&v| enc(v)).collect();
        let bh: Vec<u16> = bias.iter().map(|&v| enc(v)).collect();
        let xf: Vec<f32> = xh.iter().map(|&h| dec(h)).collect();
        let bf: Vec<f32> = bh.iter().map(|&h| dec(h)).collect();
        let yh = q.matmul_half(kind, &xh, rows, Some(&bh)).unwrap();
        let reference = matmul_ref(&xf, rows, &wq, n, k, Some(&bf));
        let tol = if kind == Half::F16 {
            1.0 / 1024.0
        } else {
            1.0 / 128.0
        };
        let scale = reference.iter().fold(0f64, |m, v| m.max(v.abs()));
        for (h, r) in yh.iter().zip(&reference) {
            assert!(
                (dec(*h) as f64 - r).abs() <= tol * r.abs() + 1e-6 * scale,
                "{:?}: {} vs {}",
                kind,
                dec(*h),
                r
            );
        }
        let mut yh2 = vec![0u16; rows * n];
        q.matmul_half_into(kind, &xh, rows, Some(&bh), &mut yh2)
            .unwrap();
        assert_eq!(yh2, yh);
    }
}

/// The raw gptq_matmul / gptq_matmul_ex result, to compare bit for bit.
fn raw_matmul(
    q: &QTensor,
    x: &[f32],
    rows: usize,
    bias: Option<&[f32]>,
    opts: Option<&sys::gptq_matmul_options>,
) -> Vec<f32> {
    let mut y = vec![0f32; rows * q.out_features()];
    let b = bias.map_or(std::ptr::null(), |b| b.as_ptr() as *const _);
    let (xp, yp, yl) = (
        x.as_ptr() as *const _,
        y.as_mut_ptr() as *mut _,
        y.len() as i64,
    );
    let (r, c) = (rows as i64, q.in_features() as i64);
    let st = unsafe {
        match opts {
            None => sys::gptq_matmul(q.as_ptr(), xp, sys::GPTQ_DTYPE_F32, r, c, b, yp, yl),
            Some(o) => sys::gptq_matmul_ex(q.as_ptr(), xp, sys::GPTQ_DTYPE_F32, r, c, b, yp, yl, o),
        }
    };
    assert_eq!(st, sys::GPTQ_OK, "{}", last_error());
    y
}

fn rel_l2_err(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

#[test]
fn matmul_paths_and_options_match_raw_c() {
    let raw = unsafe {
        let mut o: sys::gptq_matmul_options = std::mem::zeroed();
        sys::gptq_matmul_options_default(&mut o);
        o
    };
    let d = MatmulOptions::default();
    assert_eq!(
        (d.int8_activations as i32, d.num_threads as i32),
        (raw.int8_activations, raw.num_threads)
    );
    assert_eq!(
        d.to_raw().struct_size,
        std::mem::size_of::<sys::gptq_matmul_options>()
    );

    let one = MatmulOptions {
        num_threads: 1,
        ..MatmulOptions::default()
    };
    let int8 = MatmulOptions {
        int8_activations: true,
        ..MatmulOptions::default()
    };
    for case in [CASES[0], CASES[1], CASES[2]] {
        let (l, q) = quantized(case, 10);
        let (n, k) = (l.out_features, l.in_features);
        let wq = q.dequantize().unwrap();
        let bias: Vec<f32> = (0..n).map(|i| 0.02 * i as f32 - 0.5).collect();
        // Up to 16 rows run the SIMD kernels, more dequantize + sgemm.
        for rows in [1usize, 5, 16, 17, 40] {
            let x = &l.x[..rows * k];
            let reference = matmul_ref(x, rows, &wq, n, k, Some(&bias));
            let y = q.matmul(x, rows, Some(&bias)).unwrap();
            assert_eq!(
                bits_f32(&y),
                bits_f32(&raw_matmul(&q, x, rows, Some(&bias), None))
            );
            assert!(
                rel_max_err(&y, &reference) < 1e-5,
                "{:?} rows {}",
                case,
                rows
            );

            let y_def = q
                .with_options(&MatmulOptions::default())
                .matmul(x, rows, Some(&bias))
                .unwrap();
            assert_eq!(
                bits_f32(&y_def),
                bits_f32(&y),
                "default options are plain gptq_matmul"
            );

            let y1 = q.with_options(&one).matmul(x, rows, Some(&bias)).unwrap();
            assert_eq!(
                bits_f32(&y1),
                bits_f32(&raw_matmul(&q, x, rows, Some(&bias), Some(&one.to_raw())))
            );
            assert!(rel_max_err(&y1, &reference) < 1e-5);

            let y8 = q.with_options(&int8).matmul(x, rows, Some(&bias)).unwrap();
            assert_eq!(
                bits_f32(&y8),
                bits_f32(&raw_matmul(&q, x, rows, Some(&bias), Some(&int8.to_raw())))
            );
            let e8 = rel_l2_err(&y8, &reference);
            assert!(
                e8 < 0.03,
                "{:?} rows {}: int8 activations error {}",
                case,
                rows,
                e8
            );

            let mut buf = vec![0f32; rows * n];
            q.with_options(&int8)
                .matmul_into(x, rows, Some(&bias), &mut buf)
                .unwrap();
            assert_eq!(bits_f32(&buf), bits_f32(&y8));
        }
    }
}

#[test]
fn qtensor_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<QTensor>();

    let (l, q) = quantized(CASES[0], 7);
    let q = Arc::new(q);
    let k = l.in_features;
    let rows = 3;
    let inputs: Vec<Vec<f32>> = (0..8)
        .map(|i| l.x[i * rows * k..(i + 1) * rows * k].to_vec())
        .collect();
    let expected: Vec<Vec<f32>> = inputs
        .iter()
        .map(|x| q.matmul(x, rows, None).unwrap())
        .collect();
    let wq = q.dequantize().unwrap();

    let handles: Vec<_> = inputs
        .into_iter()
        .enumerate()
        .map(|(i, x)| {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut ys = Vec::new();
                for _ in 0..4 {
                    ys.push(q.matmul(&x, rows, None).unwrap());
                }
                (i, x, ys)
            })
        })
        .collect();
    for h in handles {
        let (i, x, ys) = h.join().unwrap();
        let reference = matmul_ref(&x, rows, &wq, l.out_features, k, None);
        for y in ys {
            assert!(rel_max_err(&y, &reference) < 1e-5);
            assert_eq!(bits_f32(&y), bits_f32(&expected[i]), "thread {}", i);
        }
    }
    // The last Arc drops the tensor on this thread; it could be any.
    assert_eq!(Arc::strong_count(&q), 1);
}

#[test]
fn context_moves_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Context>();

    let (n, k) = (32, 64);
    let l = layer(n, k, 64, 8);
    let case = CASES[0];
    let reference = raw_quantize(n, k, &case.raw(), &[(&l.x, l.tokens, 1)], &l.w);
    let mut ctx = Context::new(n, k, &case.config()).unwrap();
    let x = l.x.clone();
    let w = l.w.clone();
    // Calibrate on one thread, quantize on another, drop on a third.
    ctx = thread::spawn(move || {
        ctx.add_batch(&x, 64, 1).unwrap();
        ctx
    })
    .join()
    .unwrap();
    let (ctx, q) = thread::spawn(move || {
        let (q, _) = ctx.quantize(&w).unwrap();
        (ctx, q)
    })
    .join()
    .unwrap();
    assert_eq!(q.codes().unwrap(), reference.codes);
    thread::spawn(move || drop(ctx)).join().unwrap();
}

#[test]
fn sharded_calibration_merge_and_hessian_import_match_c() {
    let (n, k) = (32, 64);
    let l = layer(n, k, 120, 9);
    let (x1, x2) = l.x.split_at(50 * k);
    let cfg = Config {
        backend: Backend::Cpu,
        ..Config::default()
    };

    // Raw: two contexts, merged.
    let raw_merged = unsafe {
        let raw_cfg = raw_config(|r| r.backend = sys::GPTQ_BACKEND_CPU);
        let mut a: *mut sys::gptq_ctx = std::ptr::null_mut();
        let mut b: *mut sys::gptq_ctx = std::ptr::null_mut();
        assert_eq!(
            sys::gptq_ctx_create(n as i64, k as i64, &raw_cfg, &mut a),
            sys::GPTQ_OK
        );
        assert_eq!(
            sys::gptq_ctx_create(n as i64, k as i64, &raw_cfg, &mut b),
            sys::GPTQ_OK
        );
        assert_eq!(
            sys::gptq_add_batch(
                a,
                x1.as_ptr() as *const _,
                sys::GPTQ_DTYPE_F32,
                50,
                k as i64,
                5
            ),
            sys::GPTQ_OK
        );
        assert_eq!(
            sys::gptq_add_batch(
                b,
                x2.as_ptr() as *const _,
                sys::GPTQ_DTYPE_F32,
                70,
                k as i64,
                7
            ),
            sys::GPTQ_OK
        );
        assert_eq!(sys::gptq_ctx_merge(a, b), sys::GPTQ_OK);
        let mut h = vec![0f64; k * k];
        let mut s = 0i64;
        assert_eq!(
            sys::gptq_ctx_export_hessian(a, h.as_mut_ptr(), h.len() as i64, &mut s),
            sys::GPTQ_OK
        );
        sys::gptq_ctx_destroy(a);
        sys::gptq_ctx_destroy(b);
        (h, s)
    };

    let mut a = Context::new(n, k, &cfg).unwrap();
    let mut b = Context::new(n, k, &cfg).unwrap();
    a.add_batch(x1, 50, 5).unwrap();
    b.add_batch(x2, 70, 7).unwrap();
    a.merge(&b).unwrap();
    assert_eq!(b.samples(), 7);
    let h = a.export_hessian().unwrap();
    assert_eq!(i64::try_from(h.samples).unwrap(), raw_merged.1);
    assert_eq!(h.data, raw_merged.0);

    // Import into an empty context is a plain load.
    let mut c = Context::new(n, k, &cfg).unwrap();
    c.import_hessian(&h.data, h.samples).unwrap();
    assert_eq!(c.export_hessian().unwrap(), h);
    let (qa, _) = a.quantize(&l.w).unwrap();
    let (qc, _) = c.quantize(&l.w).unwrap();
    assert_eq!(qa.codes().unwrap(), qc.codes().unwrap());
}

#[test]
fn gguf_grids_export_blocks_that_decode_to_the_dequantized_weights() {
    // Bytes per 256 weights (eight blocks of 32, or one K super-block), as
    // the header documents them.
    let grids = [
        (Grid::Q4_0, 8 * 18),
        (Grid::Q4_1, 8 * 20),
        (Grid::Q5_0, 8 * 22),
        (Grid::Q5_1, 8 * 24),
        (Grid::Q8_0, 8 * 34),
        (Grid::Q4_K, 144),
        (Grid::Q5_K, 176),
        (Grid::Q6_K, 210),
    ];
    let (n, k) = (16, 512);
    let l = layer(n, k, 160, 21);
    for (grid, block_bytes) in grids {
        let cfg = Config {
            grid,
            ..Config::default()
        };
        let mut ctx = Context::new(n, k, &cfg).unwrap();
        ctx.add_batch(&l.x, l.tokens, 1).unwrap();
        let (q, _) = ctx.quantize(&l.w).unwrap();
        assert_eq!(q.grid(), Some(grid));
        let bytes = q.gguf_export().unwrap();
        assert_eq!(bytes.len(), n * k / 256 * block_bytes);
        assert_eq!(gptq::gguf_size(grid, n, k).unwrap(), bytes.len());
        let decoded = gptq::gguf_dequantize(grid, &bytes, n, k).unwrap();
        assert_eq!(bits_f32(&decoded), bits_f32(&q.dequantize().unwrap()), "{:?}", grid);
    }
}

#[test]
fn gguf_errors() {
    let (_, plain) = quantized(CASES[0], 22);
    assert_eq!(plain.grid(), Some(Grid::Gptq));
    assert_eq!(plain.gguf_export().unwrap_err().status(), Status::Unsupported);
    assert_eq!(
        gptq::gguf_size(Grid::Gptq, 1, 32).unwrap_err().status(),
        Status::InvalidConfig
    );
    assert_eq!(
        gptq::gguf_size(Grid::Q4_0, 1, 48).unwrap_err().status(),
        Status::InvalidSize
    );
    let short = vec![0u8; 33];
    assert_eq!(
        gptq::gguf_dequantize(Grid::Q8_0, &short, 1, 32)
            .unwrap_err()
            .status(),
        Status::SizeMismatch
    );
}
