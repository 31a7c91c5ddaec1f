//! Quantize one synthetic linear layer with libgptq from Rust and compare
//! GPTQ with round-to-nearest (RTN) on held-out inputs.
//!
//!   cargo run --release --example quantize -- [--out N] [--in N] [--tokens N]
//!       [--bits B] [--group G] [--act-order] [--asym] [--threads T]
//!
//! What it shows: calibration sharded over threads (one `Context` per
//! thread, then `merge`), progress and log closures, `quantize`, RTN as GPTQ
//! with an identity Hessian (`import_hessian`), checkpoint export + import,
//! and `matmul` with the quantized weights.
//!
//! The data are made up from a fixed seed: weights ~ N(0, 0.02²) with rare
//! outliers; activations with correlated channels (a random rank-16
//! mixing plus noise) and a log-normal per-channel scale, as LLM layer
//! inputs have.

use std::process;
use std::thread;
use std::time::Instant;

use gptq::{Backend, Callbacks, CheckpointFormat, Config, Context, LogLevel, QTensor};

struct Options {
    out_features: usize,
    in_features: usize,
    tokens: usize,
    heldout: usize,
    bits: u32,
    group_size: i32,
    act_order: bool,
    sym: bool,
    threads: usize,
}

fn usage(code: i32) -> ! {
    let text = "usage: quantize [--out N] [--in N] [--tokens N] [--heldout N] [--bits B] [--group G]\n\
                \x20               [--act-order] [--asym] [--threads T]\n\
                defaults: --out 256 --in 512 --tokens 2048 --heldout 256 --bits 4 --group 128 --threads 4";
    if code == 0 {
        println!("{}", text);
    } else {
        eprintln!("{}", text);
    }
    process::exit(code)
}

fn parse() -> Options {
    let mut o = Options {
        out_features: 256,
        in_features: 512,
        tokens: 2048,
        heldout: 256,
        bits: 4,
        group_size: 128,
        act_order: false,
        sym: true,
        threads: 4,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || -> i64 {
            match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => v,
                None => {
                    eprintln!("quantize: {} needs an integer", flag);
                    usage(2)
                }
            }
        };
        match flag.as_str() {
            "--out" => o.out_features = value().max(1) as usize,
            "--in" => o.in_features = value().max(1) as usize,
            "--tokens" => o.tokens = value().max(1) as usize,
            "--heldout" => o.heldout = value().max(1) as usize,
            "--bits" => o.bits = value().max(0) as u32,
            "--group" => o.group_size = value() as i32,
            "--threads" => o.threads = value().max(1) as usize,
            "--act-order" => o.act_order = true,
            "--asym" => o.sym = false,
            "--help" | "-h" => usage(0),
            _ => usage(2),
        }
    }
    o
}

/// xorshift64* + Box-Muller.
struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

struct Activations {
    mix: Vec<f64>,
    scale: Vec<f64>,
    rank: usize,
}

impl Activations {
    fn new(in_features: usize, rng: &mut Rng) -> Activations {
        let rank = 16;
        Activations {
            mix: (0..rank * in_features)
                .map(|_| rng.normal() / (rank as f64).sqrt())
                .collect(),
            scale: (0..in_features)
                .map(|_| (0.7 * rng.normal()).exp())
                .collect(),
            rank,
        }
    }
    fn sample(&self, tokens: usize, rng: &mut Rng) -> Vec<f32> {
        let k = self.scale.len();
        let mut x = Vec::with_capacity(tokens * k);
        for _ in 0..tokens {
            let z: Vec<f64> = (0..self.rank).map(|_| rng.normal()).collect();
            for j in 0..k {
                let mut v = rng.normal();
                for (r, zr) in z.iter().enumerate() {
                    v += zr * self.mix[r * k + j];
                }
                x.push((v * self.scale[j]) as f32);
            }
        }
        x
    }
}

/// ‖x·Wᵀ − y‖² / ‖x·Wᵀ‖² for y from the quantized weights.
fn relative_output_error(x: &[f32], w: &[f32], y: &[f32], out: usize, k: usize) -> f64 {
    let rows = x.len() / k;
    let (mut num, mut den) = (0f64, 0f64);
    for r in 0..rows {
        let xr = &x[r * k..(r + 1) * k];
        for o in 0..out {
            let wo = &w[o * k..(o + 1) * k];
            let exact: f64 = xr.iter().zip(wo).map(|(a, b)| *a as f64 * *b as f64).sum();
            let d = exact - y[r * out + o] as f64;
            num += d * d;
            den += exact * exact;
        }
    }
    num / den
}

fn main() {
    if let Err(e) = run(parse()) {
        eprintln!("quantize: {}", e);
        process::exit(1);
    }
}

fn run(o: Options) -> gptq::Result<()> {
    let (n, k) = (o.out_features, o.in_features);
    let h = gptq::HEADER_VERSION_NUMBER;
    println!(
        "libgptq {} (bindings from header {}.{}.{})",
        gptq::version(),
        h / 10000,
        h / 100 % 100,
        h % 100
    );

    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let w: Vec<f32> = (0..n * k)
        .map(|_| {
            let v = 0.02 * rng.normal();
            (if rng.uniform() < 0.001 {
                (5.0 + 5.0 * rng.uniform()) * v
            } else {
                v
            }) as f32
        })
        .collect();
    let source = Activations::new(k, &mut rng);
    let calib = source.sample(o.tokens, &mut rng);
    let heldout = source.sample(o.heldout, &mut rng);

    let cfg = Config {
        bits: o.bits,
        group_size: o.group_size,
        act_order: o.act_order,
        sym: o.sym,
        backend: Backend::Auto,
        log_level: LogLevel::Info,
        ..Config::default()
    };
    println!(
        "layer {} x {}, {} calibration tokens on {} threads, {} bits, group {}, {}{}",
        n,
        k,
        o.tokens,
        o.threads,
        cfg.bits,
        cfg.group_size,
        if cfg.sym { "sym" } else { "asym" },
        if cfg.act_order { ", act-order" } else { "" }
    );

    // Sharded calibration: one context per thread (Context is Send), merged.
    let start = Instant::now();
    let per = (o.tokens + o.threads - 1) / o.threads;
    let shards: Vec<gptq::Result<Context>> = thread::scope(|s| {
        let handles: Vec<_> = calib
            .chunks(per * k)
            .map(|chunk| {
                let cfg = Config {
                    log_level: LogLevel::Error,
                    ..cfg.clone()
                };
                s.spawn(move || {
                    let mut ctx = Context::new(n, k, &cfg)?;
                    let rows = chunk.len() / k;
                    ctx.add_batch(chunk, rows, rows as u64)?;
                    Ok(ctx)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("calibration thread panicked"))
            .collect()
    });

    // Progress: a line at each quarter (the closure is FnMut and keeps state).
    let mut next_quarter = 1;
    let callbacks = Callbacks::new()
        .progress(move |done, total| {
            if 4 * done >= next_quarter * total {
                println!(
                    "  quantizing: {:3}% ({}/{} columns)",
                    100 * done / total.max(1),
                    done,
                    total
                );
                while 4 * done >= next_quarter * total {
                    next_quarter += 1;
                }
            }
            true // false would cancel
        })
        .log(|level, message| println!("  [libgptq {:?}] {}", level, message));
    let mut ctx = Context::with_callbacks(n, k, &cfg, callbacks)?;
    for shard in shards {
        ctx.merge(&shard?)?;
    }
    println!(
        "  calibrated: {} samples in {:.3} s",
        ctx.samples(),
        start.elapsed().as_secs_f64()
    );

    let (q, stats) = ctx.quantize(&w)?;
    println!(
        "  GPTQ: loss {:.4}, damp {:.4}, retries {}, rtn fallback {}, dead columns {}, {:.3} s on {:?}",
        stats.loss,
        stats.damp_percent_used,
        stats.damp_retries,
        stats.fell_back_to_rtn,
        stats.dead_columns,
        stats.seconds,
        stats.backend
    );

    // Round-to-nearest is GPTQ with an identity Hessian: U is diagonal, so
    // no error is fed forward.
    let mut rtn_ctx = Context::new(
        n,
        k,
        &Config {
            log_level: LogLevel::Error,
            ..cfg.clone()
        },
    )?;
    let identity: Vec<f64> = (0..k * k)
        .map(|i| if i / k == i % k { 1.0 } else { 0.0 })
        .collect();
    rtn_ctx.import_hessian(&identity, 1)?;
    let (rtn, _) = rtn_ctx.quantize(&w)?;

    let rows = o.heldout;
    let err_gptq = relative_output_error(&heldout, &w, &q.matmul(&heldout, rows, None)?, n, k);
    let err_rtn = relative_output_error(&heldout, &w, &rtn.matmul(&heldout, rows, None)?, n, k);
    println!("held-out relative output error ‖XWᵀ − XQᵀ‖² / ‖XWᵀ‖²:");
    println!("  GPTQ {:.6e}", err_gptq);
    println!(
        "  RTN  {:.6e}   (GPTQ / RTN = {:.3})",
        err_rtn,
        err_gptq / err_rtn
    );

    // Checkpoint tensors; V1 cannot hold a zero of 0 (asymmetric), V2 can.
    let format = if cfg.sym {
        CheckpointFormat::V1
    } else {
        CheckpointFormat::V2
    };
    match q.export(format) {
        Ok(ck) => {
            let s = ck.sizes;
            println!(
                "checkpoint ({:?}): qweight [{}, {}], qzeros [{}, {}], scales [{}, {}], g_idx [{}]",
                format,
                s.qweight_rows,
                s.qweight_cols,
                s.qzeros_rows,
                s.qzeros_cols,
                s.scales_rows,
                s.scales_cols,
                s.g_idx_len
            );
            let info = q.info();
            let back = QTensor::import(n, k, info.bits, info.group_size, format, ck.view())?;
            let same = back.matmul(&heldout[..k], 1, None)? == q.matmul(&heldout[..k], 1, None)?;
            println!("  re-imported tensor multiplies identically: {}", same);
            if !same {
                return Err(gptq::Error::new(
                    gptq::Status::Internal,
                    "re-imported tensor differs",
                ));
            }
        }
        Err(e) => println!("checkpoint export skipped: {}", e),
    }
    Ok(())
}
