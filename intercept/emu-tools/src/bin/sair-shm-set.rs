//! `sair-shm-set`: create or update one segment file by hand (benchmarks, `gpu-check.sh`,
//! debugging). The node agent's `set-rate` is the production path; this tool writes raw bucket
//! parameters, or derives them from a share and a measured ns-per-token.
//!
//! Part of `sair-emu-tools`, the fixture crate; no unsafe code.
#![forbid(unsafe_code)]

use clap::Parser;
use sair_shm::{Mode, Params, Segment, bucket_params_for_share, segment_path};
use std::path::PathBuf;
use std::process::ExitCode;

/// Create or update a SAIR shared-memory segment.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Directory of segment files.
    #[arg(long, env = "SAIR_SHM_DIR", default_value = sair_shm::DEFAULT_SHM_DIR)]
    shm_dir: PathBuf,
    /// Segment name (file `<shm-dir>/<segment>.seg`).
    #[arg(long, env = "SAIR_SEGMENT")]
    segment: String,
    /// GPU index recorded in the segment.
    #[arg(long, env = "SAIR_GPU", default_value_t = 0)]
    gpu: u32,
    /// Limit mode: off, cap or share.
    #[arg(long, env = "SAIR_MODE", default_value = "cap")]
    mode: Mode,
    /// Refill rate in tokens per second (ignored with --share).
    #[arg(long, env = "SAIR_REFILL_PER_S", default_value_t = 1_000_000)]
    refill_per_s: u64,
    /// Bucket depth in tokens (ignored with --share).
    #[arg(long, env = "SAIR_BURST_TOKENS", default_value_t = 100_000)]
    burst_tokens: u64,
    /// Tokens per (block × thread).
    #[arg(long, env = "SAIR_COST_SCALE", default_value_t = 1.0)]
    cost_scale: f64,
    /// Target share ρ in (0, 1]; with --ns-per-token, derives refill and burst from it.
    #[arg(long, env = "SAIR_SHARE", default_value_t = 1.0)]
    share: f64,
    /// Device nanoseconds one token costs (measured); enables the ρ → rate mapping.
    #[arg(long, env = "SAIR_NS_PER_TOKEN")]
    ns_per_token: Option<f64>,
    /// Device time an idle segment may save up, in microseconds (with --ns-per-token).
    #[arg(long, env = "SAIR_BURST_US", default_value_t = 5_000)]
    burst_us: u64,
    /// Replace the file (crash-safe) instead of updating it in place.
    #[arg(long, env = "SAIR_RECREATE")]
    recreate: bool,
    /// Only print the segment's parameters and counters; change nothing.
    #[arg(long)]
    show: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sair-shm-set: {e}");
            ExitCode::from(64)
        }
    }
}

fn run(a: &Args) -> Result<(), sair_shm::ShmError> {
    let path = segment_path(&a.shm_dir, &a.segment)?;
    if a.show {
        print(&Segment::open(&path)?);
        return Ok(());
    }
    let params = match a.ns_per_token {
        Some(ns) => Params {
            cost_scale: a.cost_scale,
            ..bucket_params_for_share(a.share, ns, a.burst_us * 1_000, a.mode)?
        },
        None => Params {
            mode: a.mode,
            refill_per_s: a.refill_per_s,
            burst: a.burst_tokens,
            cost_scale: a.cost_scale,
            target_share: a.share,
        },
    };
    let seg = match Segment::open(&path) {
        Ok(seg) if !a.recreate => {
            seg.set_params(&params)?;
            seg.set_gpu(a.gpu);
            seg
        }
        _ => Segment::create(&path, a.gpu, &params)?,
    };
    print(&seg);
    Ok(())
}

fn print(seg: &Segment) {
    let path = seg.path();
    let p = seg.params();
    let c = seg.counters();
    println!(
        "{} mode={} refill_per_s={} burst={} cost_scale={} share={} launches={} throttled={} tokens={}",
        path.display(),
        p.mode.as_str(),
        p.refill_per_s,
        p.burst,
        p.cost_scale,
        p.target_share,
        c.launches,
        c.throttled_launches,
        c.tokens_consumed
    );
}
