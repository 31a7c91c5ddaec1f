//! Every kind of failure surfaces as a gptq::Error with the right status and,
//! for failures the library detects, exactly the library's own message (the
//! message the same raw gptq-sys call leaves in gptq_last_error()).

mod common;

use std::error::Error as StdError;
use std::ptr;
use std::thread;

use common::*;
use gptq::{Backend, CheckpointFormat, CheckpointRef, Config, Context, QTensor, Status};
use gptq_sys as sys;

fn cpu() -> Config {
    Config {
        backend: Backend::Cpu,
        ..Config::default()
    }
}

/// A raw context with the default CPU config, and a batch of `layer` data.
unsafe fn raw_ctx(n: usize, k: usize, cfg: &sys::gptq_config) -> *mut sys::gptq_ctx {
    let mut ctx = ptr::null_mut();
    assert_eq!(
        sys::gptq_ctx_create(n as i64, k as i64, cfg, &mut ctx),
        sys::GPTQ_OK,
        "{}",
        last_error()
    );
    ctx
}

#[test]
fn invalid_size_from_the_library() {
    let raw_cfg = raw_config(|r| r.backend = sys::GPTQ_BACKEND_CPU);
    let mut out = ptr::null_mut();
    let st = unsafe { sys::gptq_ctx_create(0, 16, &raw_cfg, &mut out) };
    assert_eq!(st, sys::GPTQ_ERR_INVALID_SIZE);
    let expected = last_error();

    let e = Context::new(0, 16, &cpu()).unwrap_err();
    assert_eq!(e.status, Status::InvalidSize);
    assert_eq!(e.message, expected);
    assert!(!e.message.is_empty());

    // rows 0 and samples 0 are the library's to reject, too.
    let mut ctx = Context::new(8, 16, &cpu()).unwrap();
    let e = ctx.add_batch(&[] as &[f32], 0, 1).unwrap_err();
    assert_eq!(e.status, Status::InvalidSize);
    assert!(e.message.starts_with("gptq_add_batch"), "{}", e.message);
    let e = ctx.add_batch(&vec![1.0f32; 16], 1, 0).unwrap_err();
    assert_eq!(e.status, Status::InvalidSize);
    assert_eq!(ctx.samples(), 0);
}

#[test]
fn wrong_sizes_are_size_mismatch() {
    let (n, k) = (32, 64);
    let l = layer(n, k, 16, 1);
    let mut ctx = Context::new(n, k, &cpu()).unwrap();

    // Checked in Rust (C gets no length for x / w / bias).
    let e = ctx.add_batch(&l.x[..k * 3 - 1], 3, 1).unwrap_err();
    assert_eq!(e.status, Status::SizeMismatch);
    assert_eq!(
        e.message,
        "gptq_add_batch: x has 191 elements, but rows 3 × in_features 64 needs 192"
    );
    ctx.add_batch(&l.x, 16, 1).unwrap();
    let e = ctx.quantize(&l.w[1..]).unwrap_err();
    assert_eq!(e.status, Status::SizeMismatch);
    assert!(
        e.message.starts_with("gptq_quantize: w has 2047 elements"),
        "{}",
        e.message
    );
    let (q, _) = ctx.quantize(&l.w).unwrap();
    let e = q.matmul(&l.x[..k + 1], 1, None).unwrap_err();
    assert_eq!(e.status, Status::SizeMismatch);
    let e = q.matmul(&l.x[..k], 1, Some(&[0.0; 31])).unwrap_err();
    assert_eq!(e.status, Status::SizeMismatch);
    assert!(e.message.contains("bias has 31 elements"), "{}", e.message);

    // Checked by the library (it gets the lengths): the message is its own.
    let mut y = vec![0f32; 2 * n - 1];
    let raw_msg = unsafe {
        let st = sys::gptq_matmul(
            q.as_ptr(),
            l.x.as_ptr() as *const _,
            sys::GPTQ_DTYPE_F32,
            2,
            k as i64,
            ptr::null(),
            y.as_mut_ptr() as *mut _,
            y.len() as i64,
        );
        assert_eq!(st, sys::GPTQ_ERR_SIZE_MISMATCH);
        last_error()
    };
    let e = q.matmul_into(&l.x[..2 * k], 2, None, &mut y).unwrap_err();
    assert_eq!(
        (e.status, e.message.as_str()),
        (Status::SizeMismatch, raw_msg.as_str())
    );

    let e = ctx.import_hessian(&vec![0.0; k * k - 1], 1).unwrap_err();
    assert_eq!(e.status, Status::SizeMismatch);
    assert!(
        e.message.starts_with("gptq_ctx_import_hessian"),
        "{}",
        e.message
    );

    let other = Context::new(n, k + 1, &cpu()).unwrap();
    let raw_msg = unsafe {
        let raw_cfg = raw_config(|r| r.backend = sys::GPTQ_BACKEND_CPU);
        let a = raw_ctx(n, k, &raw_cfg);
        let b = raw_ctx(n, k + 1, &raw_cfg);
        assert_eq!(sys::gptq_ctx_merge(a, b), sys::GPTQ_ERR_SIZE_MISMATCH);
        let m = last_error();
        sys::gptq_ctx_destroy(a);
        sys::gptq_ctx_destroy(b);
        m
    };
    let e = ctx.merge(&other).unwrap_err();
    assert_eq!((e.status, e.message), (Status::SizeMismatch, raw_msg));

    let e = q.dequantize_into(&mut vec![0.0; n * k - 1]).unwrap_err();
    assert_eq!(e.status, Status::SizeMismatch);
}

#[test]
fn nan_and_inf_are_non_finite_and_leave_the_context_usable() {
    let (n, k) = (16, 32);
    let l = layer(n, k, 8, 2);
    let mut x = l.x.clone();
    x[5] = f32::NAN;

    let raw_msg = unsafe {
        let a = raw_ctx(n, k, &raw_config(|r| r.backend = sys::GPTQ_BACKEND_CPU));
        let st = sys::gptq_add_batch(
            a,
            x.as_ptr() as *const _,
            sys::GPTQ_DTYPE_F32,
            8,
            k as i64,
            1,
        );
        assert_eq!(st, sys::GPTQ_ERR_NON_FINITE);
        let m = last_error();
        sys::gptq_ctx_destroy(a);
        m
    };
    let mut ctx = Context::new(n, k, &cpu()).unwrap();
    let e = ctx.add_batch(&x, 8, 1).unwrap_err();
    assert_eq!((e.status, e.message.clone()), (Status::NonFinite, raw_msg));
    assert_eq!(ctx.samples(), 0);

    ctx.add_batch(&l.x, 8, 1).unwrap();
    let mut w = l.w.clone();
    w[7] = f32::INFINITY;
    let e = ctx.quantize(&w).unwrap_err();
    assert_eq!(e.status, Status::NonFinite);
    assert!(e.message.starts_with("gptq_quantize"), "{}", e.message);
    ctx.quantize(&l.w).unwrap();
}

#[test]
fn bad_config_is_invalid_config() {
    let raw_cfg = raw_config(|r| r.bits = 9);
    let mut out = ptr::null_mut();
    assert_eq!(
        unsafe { sys::gptq_ctx_create(8, 16, &raw_cfg, &mut out) },
        sys::GPTQ_ERR_INVALID_CONFIG
    );
    let expected = last_error();
    assert!(out.is_null());

    let e = Context::new(
        8,
        16,
        &Config {
            bits: 9,
            ..Config::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.status, Status::InvalidConfig);
    assert_eq!(e.message, expected);
    assert!(e.message.contains("bits"), "{}", e.message);

    for cfg in [
        Config {
            group_size: 0,
            ..cpu()
        },
        Config {
            block_size: 0,
            ..cpu()
        },
        Config {
            damp_percent: 1.5,
            ..cpu()
        },
        Config {
            mse_norm: f32::NAN,
            ..cpu()
        },
    ] {
        assert_eq!(
            Context::new(8, 16, &cfg).unwrap_err().status,
            Status::InvalidConfig,
            "{:?}",
            cfg
        );
    }
    // Values that do not even fit the C int are refused here.
    let e = Context::new(
        8,
        16,
        &Config {
            bits: u32::MAX,
            ..cpu()
        },
    )
    .unwrap_err();
    assert_eq!(e.status, Status::InvalidConfig);
    assert!(gptq::checkpoint_sizes(32, 32, 9, 32).unwrap_err().status == Status::InvalidConfig);
}

#[test]
fn quantize_before_add_batch_is_invalid_state() {
    let (n, k) = (16, 32);
    let l = layer(n, k, 1, 3);
    let raw_msg = unsafe {
        let a = raw_ctx(n, k, &raw_config(|r| r.backend = sys::GPTQ_BACKEND_CPU));
        let mut q = ptr::null_mut();
        let st = sys::gptq_quantize(
            a,
            l.w.as_ptr() as *const _,
            sys::GPTQ_DTYPE_F32,
            n as i64,
            k as i64,
            &mut q,
            ptr::null_mut(),
        );
        assert_eq!(st, sys::GPTQ_ERR_INVALID_STATE);
        let m = last_error();
        sys::gptq_ctx_destroy(a);
        m
    };
    let mut ctx = Context::new(n, k, &cpu()).unwrap();
    let e = ctx.quantize(&l.w).unwrap_err();
    assert_eq!(e.status, Status::InvalidState);
    assert_eq!(e.message, raw_msg);
}

#[test]
fn v1_export_of_zero_0_is_unsupported() {
    let (n, k) = (32, 64);
    let mut l = layer(n, k, 64, 4);
    // All weights positive: asymmetric groups get xmin = 0, so a zero of 0.
    for v in l.w.iter_mut() {
        *v = v.abs() + 0.001;
    }
    let cfg = Config {
        sym: false,
        group_size: 32,
        ..cpu()
    };
    let mut ctx = Context::new(n, k, &cfg).unwrap();
    ctx.add_batch(&l.x, l.tokens, 1).unwrap();
    let (q, _) = ctx.quantize(&l.w).unwrap();

    let sizes = q.checkpoint_sizes().unwrap();
    let raw_msg = unsafe {
        let mut qw = vec![0i32; sizes.qweight_len()];
        let mut qz = vec![0i32; sizes.qzeros_len()];
        let mut sc = vec![0u16; sizes.scales_len()];
        let mut gi = vec![0i32; sizes.g_idx_len];
        let t = sys::gptq_checkpoint_tensors {
            qweight: qw.as_mut_ptr(),
            qweight_len: qw.len() as i64,
            qzeros: qz.as_mut_ptr(),
            qzeros_len: qz.len() as i64,
            scales: sc.as_mut_ptr(),
            scales_len: sc.len() as i64,
            g_idx: gi.as_mut_ptr(),
            g_idx_len: gi.len() as i64,
        };
        assert_eq!(
            sys::gptq_qtensor_export(q.as_ptr(), sys::GPTQ_FORMAT_V1, &t),
            sys::GPTQ_ERR_UNSUPPORTED
        );
        last_error()
    };
    let e = q.export(CheckpointFormat::V1).unwrap_err();
    assert_eq!(e.status, Status::Unsupported);
    assert_eq!(e.message, raw_msg);
    q.export(CheckpointFormat::V2).unwrap();

    // A shape the packing cannot hold.
    assert_eq!(
        gptq::checkpoint_sizes(30, 64, 4, 32).unwrap_err().status,
        Status::Unsupported
    );
}

#[test]
fn inconsistent_import_is_invalid_data() {
    let (n, k) = (32, 64);
    let l = layer(n, k, 64, 5);
    let mut ctx = Context::new(
        n,
        k,
        &Config {
            group_size: 32,
            ..cpu()
        },
    )
    .unwrap();
    ctx.add_batch(&l.x, l.tokens, 1).unwrap();
    let (q, _) = ctx.quantize(&l.w).unwrap();
    let ck = q.export(CheckpointFormat::V2).unwrap();
    let mut g_idx = ck.g_idx.clone();
    g_idx[3] = 7; // only 2 groups
    let view = CheckpointRef {
        g_idx: Some(&g_idx),
        ..ck.view()
    };
    let e = QTensor::import(n, k, 4, 32, CheckpointFormat::V2, view).unwrap_err();
    assert_eq!(e.status, Status::InvalidData);
    assert!(
        e.message.starts_with("gptq_qtensor_import"),
        "{}",
        e.message
    );

    let short = CheckpointRef {
        scales: &ck.scales[1..],
        ..ck.view()
    };
    assert_eq!(
        QTensor::import(n, k, 4, 32, CheckpointFormat::V2, short)
            .unwrap_err()
            .status,
        Status::SizeMismatch
    );
}

#[test]
fn cuda_without_cuda_is_backend_unavailable() {
    match Context::new(
        8,
        16,
        &Config {
            backend: Backend::Cuda,
            ..Config::default()
        },
    ) {
        Ok(_) => eprintln!("this libgptq has a usable CUDA backend; nothing to check"),
        Err(e) => {
            assert_eq!(e.status, Status::BackendUnavailable);
            assert!(e.message.contains("CUDA"), "{}", e.message);
        }
    }
}

#[test]
fn error_is_a_std_error_with_a_useful_display() {
    let e = Context::new(
        8,
        16,
        &Config {
            bits: 9,
            ..Config::default()
        },
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&e.message) && text.contains("GPTQ_ERR_INVALID_CONFIG"),
        "{}",
        text
    );
    let boxed: Box<dyn StdError + Send + Sync> = Box::new(e.clone());
    assert_eq!(boxed.to_string(), text);
    assert_eq!(e.status().code(), sys::GPTQ_ERR_INVALID_CONFIG);
    assert_eq!(e.message(), e.message);
    // `?` into Box<dyn Error>.
    fn f() -> Result<(), Box<dyn StdError>> {
        Context::new(0, 1, &Config::default())?;
        Ok(())
    }
    assert!(f().is_err());
}

#[test]
fn concurrent_failures_keep_their_own_messages() {
    // The C message is thread-local; each thread must see its own.
    let handles: Vec<_> = (9u32..25)
        .map(|bits| {
            thread::spawn(move || {
                for _ in 0..20 {
                    let e = Context::new(
                        4,
                        8,
                        &Config {
                            bits,
                            ..Config::default()
                        },
                    )
                    .unwrap_err();
                    assert_eq!(e.status, Status::InvalidConfig);
                    assert!(
                        e.message.contains(&format!("bits is {}", bits)),
                        "{}",
                        e.message
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
