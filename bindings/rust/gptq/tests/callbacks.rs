//! Progress (with cancel) and log closures, and panics inside them.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use gptq::{Backend, Callbacks, Config, Context, LogLevel, Status};

const N: usize = 32;
const K: usize = 128;

fn cfg(block_size: u32) -> Config {
    Config {
        block_size,
        group_size: 32,
        backend: Backend::Cpu,
        ..Config::default()
    }
}

#[test]
fn progress_sees_increasing_progress() {
    let l = layer(N, K, 64, 1);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let cb = Callbacks::new().progress(move |done, total| {
        s.lock().unwrap().push((done, total));
        true
    });
    let mut ctx = Context::with_callbacks(N, K, &cfg(16), cb).unwrap();
    ctx.add_batch(&l.x, l.tokens, 1).unwrap();
    assert!(
        seen.lock().unwrap().is_empty(),
        "no progress before quantize"
    );
    let (q, _) = ctx.quantize(&l.w).unwrap();

    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), K / 16, "{:?}", calls);
    for w in calls.windows(2) {
        assert!(w[1].0 > w[0].0, "not increasing: {:?}", calls);
    }
    assert!(calls
        .iter()
        .all(|&(d, t)| t == K as u64 && d >= 1 && d <= t));
    assert_eq!(calls.last().unwrap().0, K as u64);

    // The callback does not change the result.
    let mut plain = Context::new(N, K, &cfg(16)).unwrap();
    plain.add_batch(&l.x, l.tokens, 1).unwrap();
    assert_eq!(
        plain.quantize(&l.w).unwrap().0.codes().unwrap(),
        q.codes().unwrap()
    );

    // A second quantize reports again from the start.
    seen.lock().unwrap().clear();
    ctx.quantize(&l.w).unwrap();
    assert_eq!(seen.lock().unwrap().len(), K / 16);
}

#[test]
fn cancel_really_stops() {
    let l = layer(N, K, 64, 2);
    let calls = Arc::new(AtomicUsize::new(0));
    let cancel_at = Arc::new(AtomicUsize::new(3));
    let (c, at) = (Arc::clone(&calls), Arc::clone(&cancel_at));
    let cb = Callbacks::new()
        .progress(move |_, _| c.fetch_add(1, Ordering::SeqCst) + 1 < at.load(Ordering::SeqCst));
    let mut ctx = Context::with_callbacks(N, K, &cfg(16), cb).unwrap();
    ctx.add_batch(&l.x, l.tokens, 1).unwrap();
    let before = ctx.export_hessian().unwrap();

    let e = ctx.quantize(&l.w).unwrap_err();
    assert_eq!(e.status, Status::Cancelled);
    assert!(e.message.contains("cancelled"), "{}", e.message);
    // Stopped at the third check, and never called again after saying stop.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // The context is as before, and usable.
    assert_eq!(ctx.export_hessian().unwrap(), before);
    cancel_at.store(usize::MAX, Ordering::SeqCst);
    calls.store(0, Ordering::SeqCst);
    let (q, _) = ctx.quantize(&l.w).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), K / 16);
    let mut plain = Context::new(N, K, &cfg(16)).unwrap();
    plain.add_batch(&l.x, l.tokens, 1).unwrap();
    assert_eq!(
        plain.quantize(&l.w).unwrap().0.codes().unwrap(),
        q.codes().unwrap()
    );

    // Cancelling at the very first check works too.
    cancel_at.store(1, Ordering::SeqCst);
    calls.store(0, Ordering::SeqCst);
    assert_eq!(ctx.quantize(&l.w).unwrap_err().status, Status::Cancelled);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn log_receives_messages() {
    let l = layer(N, K, 64, 3);
    let log = Arc::new(Mutex::new(Vec::<(LogLevel, String)>::new()));
    let sink = Arc::clone(&log);
    let cb =
        Callbacks::new().log(move |level, msg| sink.lock().unwrap().push((level, msg.to_string())));
    let config = Config {
        backend: Backend::Auto,
        log_level: LogLevel::Debug,
        ..cfg(32)
    };
    let mut ctx = Context::with_callbacks(N, K, &config, cb).unwrap();
    // Backend Auto logs its choice at creation.
    {
        let got = log.lock().unwrap();
        assert!(!got.is_empty(), "no message at creation");
        assert!(
            got.iter()
                .any(|(lv, m)| *lv == LogLevel::Info && m.contains("backend")),
            "{:?}",
            *got
        );
    }
    ctx.add_batch(&l.x, l.tokens, 1).unwrap();
    let before = log.lock().unwrap().len();
    ctx.quantize(&l.w).unwrap();
    let got = log.lock().unwrap();
    assert!(got.len() > before, "no message during quantize");
    assert!(
        got[before..].iter().any(|(lv, _)| *lv == LogLevel::Debug),
        "{:?}",
        &got[before..]
    );
    assert!(got.iter().all(|(_, m)| !m.is_empty()));
}

#[test]
fn log_level_filters() {
    let l = layer(N, K, 64, 4);
    let log = Arc::new(Mutex::new(Vec::<(LogLevel, String)>::new()));
    let sink = Arc::clone(&log);
    let cb =
        Callbacks::new().log(move |level, msg| sink.lock().unwrap().push((level, msg.to_string())));
    let config = Config {
        backend: Backend::Auto,
        log_level: LogLevel::Warn,
        ..cfg(32)
    };
    let mut ctx = Context::with_callbacks(N, K, &config, cb).unwrap();
    ctx.add_batch(&l.x, l.tokens, 1).unwrap();
    ctx.quantize(&l.w).unwrap();
    let got = log.lock().unwrap();
    assert!(
        got.iter().all(|(lv, _)| *lv >= LogLevel::Warn),
        "{:?}",
        *got
    );
}

#[test]
fn panic_in_progress_cancels_and_resumes_in_rust() {
    let l = layer(N, K, 64, 5);
    let calls = Arc::new(AtomicUsize::new(0));
    let armed = Arc::new(AtomicBool::new(true));
    let (c, a) = (Arc::clone(&calls), Arc::clone(&armed));
    let cb = Callbacks::new().progress(move |done, _| {
        c.fetch_add(1, Ordering::SeqCst);
        if a.load(Ordering::SeqCst) && done >= 32 {
            panic!("progress closure failed at {}", done);
        }
        true
    });
    let mut ctx = Context::with_callbacks(N, K, &cfg(16), cb).unwrap();
    ctx.add_batch(&l.x, l.tokens, 1).unwrap();

    let caught = panic::catch_unwind(AssertUnwindSafe(|| ctx.quantize(&l.w)));
    let payload = caught.expect_err("the panic must reach the caller");
    let text = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert_eq!(text, "progress closure failed at 32");
    // The panic cancelled the operation: no call after the one that panicked.
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // The context survived and works.
    armed.store(false, Ordering::SeqCst);
    calls.store(0, Ordering::SeqCst);
    ctx.quantize(&l.w).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), K / 16);
}

#[test]
fn panic_in_log_cancels_and_resumes_in_rust() {
    let l = layer(N, K, 64, 6);
    let progress_calls = Arc::new(AtomicUsize::new(0));
    let armed = Arc::new(AtomicBool::new(false));
    let (p, a) = (Arc::clone(&progress_calls), Arc::clone(&armed));
    let cb = Callbacks::new()
        .progress(move |_, _| {
            p.fetch_add(1, Ordering::SeqCst);
            true
        })
        .log(move |_, msg| {
            if a.load(Ordering::SeqCst) {
                panic!("log closure failed on: {}", msg);
            }
        });
    let config = Config {
        log_level: LogLevel::Debug,
        ..cfg(16)
    };
    let mut ctx = Context::with_callbacks(N, K, &config, cb).unwrap();
    ctx.add_batch(&l.x, l.tokens, 1).unwrap();
    armed.store(true, Ordering::SeqCst);
    // The Debug timing message comes after the loop, so quantize finishes
    // and the tensor it made is freed while the panic unwinds.
    let caught = panic::catch_unwind(AssertUnwindSafe(|| ctx.quantize(&l.w)));
    let payload = caught.expect_err("the panic must reach the caller");
    let text = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(text.starts_with("log closure failed on: "), "{}", text);
    armed.store(false, Ordering::SeqCst);
    ctx.quantize(&l.w).unwrap();

    // A panic while the context is being created: creation unwinds, and the
    // new context is freed.
    let cb = Callbacks::new().log(|_, _| panic!("at creation"));
    let config = Config {
        backend: Backend::Auto,
        log_level: LogLevel::Debug,
        ..cfg(16)
    };
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        Context::with_callbacks(N, K, &config, cb)
    }));
    let payload = caught.expect_err("the panic must reach the caller");
    assert_eq!(payload.downcast_ref::<&str>().copied(), Some("at creation"));
}

#[test]
fn callbacks_move_with_the_context() {
    let l = layer(N, K, 64, 7);
    let seen = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&seen);
    let cb = Callbacks::new().progress(move |_, _| {
        s.fetch_add(1, Ordering::SeqCst);
        true
    });
    let mut ctx = Context::with_callbacks(N, K, &cfg(32), cb).unwrap();
    ctx.add_batch(&l.x, l.tokens, 1).unwrap();
    let w = l.w.clone();
    let ctx = std::thread::spawn(move || {
        ctx.quantize(&w).unwrap();
        ctx
    })
    .join()
    .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), K / 32);
    drop(ctx);
    assert_eq!(
        Arc::strong_count(&seen),
        1,
        "the closure is freed with the context"
    );
}
