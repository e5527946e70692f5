//! `sair-stage`, a SYNTHETIC model server for demos, tests and benchmarks: every request costs
//! a controlled amount of real CPU computation (see [`crate::cpu`]) and, optionally, real CUDA
//! driver API kernel launches (see [`crate::cuda`]), behind `--concurrency` worker slots.
//!
//! Responses carry the server-side timing, so clients can check the cost without network
//! noise: `x-sair-stage-queue-ms` (wait for a worker slot), `x-sair-stage-service-ms` (work,
//! wall clock), `x-sair-stage-cpu-ms` (CPU time the work used), `x-sair-stage-gpu-ms` (the GPU
//! part, with GPU work), and with `--server-timing NAME` also `Server-Timing: NAME-queue;dur=..,
//! NAME-service;dur=..` in the sidecar's format. `GET /healthz` answers `ok` at once.

use crate::cpu::Burner;
use crate::cuda::{Gpu, GpuError};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Header: milliseconds spent waiting for a worker slot.
pub const QUEUE_HEADER: &str = "x-sair-stage-queue-ms";
/// Header: milliseconds of work (CPU + GPU), wall clock, measured in the server.
pub const SERVICE_HEADER: &str = "x-sair-stage-service-ms";
/// Header: CPU time the work consumed on its worker thread, in milliseconds.
pub const CPU_HEADER: &str = "x-sair-stage-cpu-ms";
/// Header: milliseconds of the GPU part alone.
pub const GPU_HEADER: &str = "x-sair-stage-gpu-ms";

/// Service-time distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dist {
    /// Every request costs exactly `--cpu-ms`.
    Const,
    /// Exponential with mean `--cpu-ms` (coefficient of variation 1; `--cv` is ignored).
    Exp,
    /// Log-normal with mean `--cpu-ms` and coefficient of variation `--cv`.
    Lognormal,
}

/// sair-stage: a SYNTHETIC model server for demos, tests and benchmarks (not a real model).
/// Each request burns `--cpu-ms` of real, calibrated CPU computation and optionally launches
/// real CUDA kernels through libcuda.so.1 (a GPU, or the SAIR emulator), behind
/// `--concurrency` worker slots, so an autoscaler sees a server whose cost is known.
#[derive(Debug, Clone, Parser)]
#[command(name = "sair-stage", version, allow_negative_numbers = true)]
pub struct StageArgs {
    /// TOML file of options (keys are the long flag names with `_` for `-`); flags and
    /// variables override it.
    #[arg(long, env = "SAIR_STAGE_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Logging (stderr).
    #[command(flatten)]
    pub log: sair_service::logging::LogArgs,
    /// Address to listen on (port 0: any free port; the bound line on stdout names it).
    #[arg(long, env = "SAIR_STAGE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Mean CPU time per request, in milliseconds of thread CPU time.
    #[arg(long, env = "SAIR_STAGE_CPU_MS", default_value_t = 10.0)]
    pub cpu_ms: f64,
    /// Distribution of the per-request CPU time.
    #[arg(long, env = "SAIR_STAGE_DIST", value_enum, default_value_t = Dist::Const)]
    pub dist: Dist,
    /// Coefficient of variation for `--dist lognormal`.
    #[arg(long, env = "SAIR_STAGE_CV", default_value_t = 0.5)]
    pub cv: f64,
    /// Worker slots: requests served at once; the rest wait in a FIFO queue.
    #[arg(long, env = "SAIR_STAGE_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    /// Response body size in bytes (ignored with --echo).
    #[arg(long, env = "SAIR_STAGE_RESPONSE_SIZE", default_value_t = 2)]
    pub response_size: usize,
    /// Answer with the request body.
    #[arg(long, env = "SAIR_STAGE_ECHO")]
    pub echo: bool,
    /// Seed of the service-time draws.
    #[arg(long, env = "SAIR_STAGE_SEED", default_value_t = 1)]
    pub seed: u64,
    /// CUDA kernels launched per request (0: no GPU work, libcuda is not loaded).
    #[arg(long, env = "SAIR_STAGE_GPU_KERNELS", default_value_t = 0)]
    pub gpu_kernels: u32,
    /// Blocks per kernel (grid size).
    #[arg(long, env = "SAIR_STAGE_KERNEL_BLOCKS", default_value_t = 1)]
    pub kernel_blocks: u32,
    /// Threads per block.
    #[arg(long, env = "SAIR_STAGE_THREADS_PER_BLOCK", default_value_t = 128)]
    pub threads_per_block: u32,
    /// Loop iterations per GPU thread (real GPUs only; the emulator's cost is per block).
    #[arg(long, env = "SAIR_STAGE_KERNEL_ITERS", default_value_t = 1000)]
    pub kernel_iters: u32,
    /// Also emit `Server-Timing: NAME-queue;dur=..,NAME-service;dur=..`.
    #[arg(long, env = "SAIR_STAGE_SERVER_TIMING")]
    pub server_timing: Option<String>,
    /// Model loading: wait this long after start-up before listening (so neither requests nor
    /// `/healthz` are answered until then), as a real model server loading weights does.
    /// 0s to 1h.
    #[arg(long, env = "SAIR_STAGE_STARTUP", default_value = "0s", value_parser = crate::cli::parse_duration)]
    pub startup: std::time::Duration,
}

/// Longest `--startup`: an hour is longer than any model load we mean to imitate, and a bound
/// keeps a typo (`--startup 300m`) from hanging a test run for days.
pub const MAX_STARTUP: std::time::Duration = std::time::Duration::from_secs(3600);

/// A `sair-stage` configuration error.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A flag is out of range.
    #[error("--{flag} {reason}")]
    OutOfRange {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// GPU work was asked for but the driver could not be set up.
    #[error("GPU set-up failed: {0}")]
    Gpu(#[from] GpuError),
}

#[derive(Debug)]
enum Sampler {
    Const(f64),
    Exp(Exp<f64>, f64),
    LogNormal(LogNormal<f64>, f64),
}

impl Sampler {
    fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Sampler::Const(ms) => *ms,
            // Draws are capped at 50× the mean so one request cannot hold a slot for minutes.
            Sampler::Exp(d, mean) => d.sample(rng).min(50.0 * mean),
            Sampler::LogNormal(d, mean) => d.sample(rng).min(50.0 * mean),
        }
    }
}

/// A validated, ready server state (CPU calibrated, GPU opened).
#[derive(Debug)]
pub struct Stage {
    slots: Semaphore,
    sampler: Sampler,
    rng: Mutex<ChaCha8Rng>,
    burner: Burner,
    gpu: Option<Gpu>,
    echo: bool,
    body: Bytes,
    timing_name: Option<String>,
}

impl StageArgs {
    /// Validates the flags, calibrates the CPU loop and opens the GPU if asked.
    pub fn build(&self) -> Result<Stage, StageError> {
        let range = |flag, reason| Err(StageError::OutOfRange { flag, reason });
        if !self.cpu_ms.is_finite() || self.cpu_ms < 0.0 {
            return range("cpu-ms", "must be a finite number >= 0");
        }
        if !self.cv.is_finite() || self.cv < 0.0 {
            return range("cv", "must be a finite number >= 0");
        }
        if self.startup > MAX_STARTUP {
            return range("startup", "must be at most 1h");
        }
        if self.concurrency == 0 || self.concurrency > 4096 {
            return range("concurrency", "must be between 1 and 4096");
        }
        if self.gpu_kernels > 0 && (self.kernel_blocks == 0 || self.threads_per_block == 0) {
            return range("kernel-blocks", "and --threads-per-block must be > 0");
        }
        let sampler = match self.dist {
            _ if self.cpu_ms == 0.0 => Sampler::Const(0.0),
            Dist::Const => Sampler::Const(self.cpu_ms),
            Dist::Exp => match Exp::new(1.0 / self.cpu_ms) {
                Ok(d) => Sampler::Exp(d, self.cpu_ms),
                Err(_) => return range("cpu-ms", "is not a valid exponential mean"),
            },
            Dist::Lognormal => match LogNormal::from_mean_cv(self.cpu_ms, self.cv) {
                Ok(d) => Sampler::LogNormal(d, self.cpu_ms),
                Err(_) => return range("cv", "is not a valid log-normal coefficient of variation"),
            },
        };
        let gpu = if self.gpu_kernels > 0 {
            Some(Gpu::open(
                self.gpu_kernels,
                self.kernel_blocks,
                self.threads_per_block,
                self.kernel_iters,
            )?)
        } else {
            None
        };
        let burner = Burner::calibrate();
        tracing::info!(
            iters_per_ms = burner.iters_per_ms,
            chunk = burner.chunk_iters,
            "CPU loop calibrated"
        );
        Ok(Stage {
            slots: Semaphore::new(self.concurrency),
            sampler,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(self.seed)),
            burner,
            gpu,
            echo: self.echo,
            body: Bytes::from(vec![b'x'; self.response_size]),
            timing_name: self.server_timing.clone(),
        })
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn text(status: http::StatusCode, body: &'static str) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

/// What one request's work took.
#[derive(Debug, Clone, Copy)]
struct Work {
    service_ms: f64,
    cpu_ms: f64,
    gpu_ms: f64,
}

impl Stage {
    fn work(&self, cpu_ms: f64) -> Result<Work, GpuError> {
        let t0 = Instant::now();
        let c0 = crate::cpu::thread_cpu_ns();
        self.burner.burn(cpu_ms);
        let used_ns = crate::cpu::thread_cpu_ns().saturating_sub(c0);
        let t1 = Instant::now();
        if let Some(gpu) = &self.gpu {
            gpu.run()?;
        }
        Ok(Work {
            service_ms: ms(t0.elapsed()),
            cpu_ms: used_ns as f64 / 1e6,
            gpu_ms: ms(t1.elapsed()),
        })
    }

    async fn handle(
        self: Arc<Self>,
        req: http::Request<Incoming>,
    ) -> Result<http::Response<Full<Bytes>>, Infallible> {
        if req.uri().path() == "/healthz" {
            return Ok(text(http::StatusCode::OK, "ok\n"));
        }
        let arrived = Instant::now();
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return Ok(text(http::StatusCode::BAD_REQUEST, "bad request body\n")),
        };
        let Ok(permit) = self.slots.acquire().await else {
            return Ok(text(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "shutting down\n",
            ));
        };
        let queue_ms = ms(arrived.elapsed());
        let cpu_ms = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            self.sampler.sample(&mut rng)
        };
        let work = if cpu_ms > 0.0 || self.gpu.is_some() {
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.work(cpu_ms)).await {
                Ok(Ok(w)) => w,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "GPU work failed");
                    return Ok(text(
                        http::StatusCode::INTERNAL_SERVER_ERROR,
                        "GPU work failed\n",
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "worker task failed");
                    return Ok(text(
                        http::StatusCode::INTERNAL_SERVER_ERROR,
                        "worker failed\n",
                    ));
                }
            }
        } else {
            Work {
                service_ms: 0.0,
                cpu_ms: 0.0,
                gpu_ms: 0.0,
            }
        };
        drop(permit);
        let mut resp =
            http::Response::new(Full::new(if self.echo { body } else { self.body.clone() }));
        let h = resp.headers_mut();
        let num = |v: f64| http::HeaderValue::from_str(&format!("{v:.3}")).ok();
        if let Some(v) = num(queue_ms) {
            h.insert(QUEUE_HEADER, v);
        }
        if let Some(v) = num(work.service_ms) {
            h.insert(SERVICE_HEADER, v);
        }
        if let Some(v) = num(work.cpu_ms) {
            h.insert(CPU_HEADER, v);
        }
        if self.gpu.is_some()
            && let Some(v) = num(work.gpu_ms)
        {
            h.insert(GPU_HEADER, v);
        }
        if let Some(name) = &self.timing_name {
            let st = format!(
                "{name}-queue;dur={queue_ms:.3}, {name}-service;dur={:.3}",
                work.service_ms
            );
            if let Ok(v) = http::HeaderValue::from_str(&st) {
                h.insert("server-timing", v);
            }
        }
        Ok(resp)
    }
}

/// Serves `stage` on `listener` until `shutdown` completes; connections in progress are then
/// closed gracefully (each finishes its current request). Accept errors are retried with
/// backoff by `sair_service::accept`, never returned.
pub async fn run(listener: TcpListener, stage: Stage, shutdown: impl Future<Output = ()>) {
    let stage = Arc::new(stage);
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = sair_service::accept::accept(&listener) => accepted,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let stage = stage.clone();
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| stage.clone().handle(req));
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = closing.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    // Tell connections to finish; the receivers see the change even if already waiting.
    let _ = closing_tx.send(true);
}

#[cfg(test)]
mod tests;
