//! The drivers: the proxy accept loop, the admin server (`sair_service::admin`: `/metrics`,
//! `/healthz`, `/readyz`), discovery and reporting tasks, and the shutdown handshake.
//!
//! Threads: with `--runtime per-core` `run` starts `--worker-threads` − 1 serving threads
//! beside the one it runs on and hands each accepted connection to the least busy
//! (`server/threads.rs`); with `work-stealing` it serves on the caller's runtime only.
//!
//! Shutdown handshake: when the `shutdown` future given to [`Sidecar::run`] completes, the
//! proxy listener is dropped (new connections are refused), `/readyz` turns 503, every open
//! connection — on every serving thread — is told to finish the request it is serving (queued
//! requests included) and then close, and `run` waits for that up to `--drain-timeout`.
//! Background tasks and the admin server are then stopped and `run` returns `Ok(())`.

mod threads;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use metrics_exporter_prometheus::PrometheusHandle;
use sair_service::admin::{self, Admin};
use sair_wire::transport::{Identity, Trust};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::balance::{self, Balancer};
use crate::budget::Budget;
use crate::config::{Config, ConfigError, DEFAULT_MAX_HEADERS, NextTarget};
use crate::context::StageContext;
use crate::edge::Edge;
use crate::metrics::{ErrorSource, StageMetrics};
use crate::report::{self, AgentTarget, ReportBuffer};
use crate::retry::ConnectRetry;
use crate::tally::Tally;
use crate::upstream::UpstreamPool;
use crate::window::{ReportIdentity, ReportWindow, WindowFeed};

use self::threads::{Protocols, Serve, Threads, Worker};

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("histogram buckets rejected by the exporter: {0}")]
    Buckets(#[from] metrics_exporter_prometheus::BuildError),
    #[error("agent TLS material: {0}")]
    Tls(#[from] sair_wire::transport::TransportError),
    #[error("could not read the agent CA file {path}: {why}")]
    AgentCa { path: String, why: String },
    /// A serving thread or its runtime could not be started (`--worker-threads`).
    #[error("could not start serving thread {index}: {source}")]
    Thread {
        index: usize,
        #[source]
        source: std::io::Error,
    },
}

/// One configured sidecar, ready to [`run`](Sidecar::run).
#[derive(Debug)]
pub struct Sidecar {
    config: Config,
    ctx: StageContext,
    handle: PrometheusHandle,
    next: Option<NextTarget>,
    agent: Option<AgentTarget>,
    buffer: Option<Arc<ReportBuffer>>,
    /// The connection gauge and the limit-wait counter (the accept loop's metrics).
    metrics: StageMetrics,
}

impl Sidecar {
    /// Validates `config` and builds everything that does not need a runtime or a socket.
    pub fn new(config: Config) -> Result<Self, SidecarError> {
        config.validate()?;
        let (metrics, handle) = StageMetrics::new(
            &config.pipeline,
            &config.stage,
            &config.histogram_buckets_seconds,
        )?;
        let window = Arc::new(WindowFeed::new(ReportWindow::new(
            ReportIdentity {
                pipeline: config.pipeline.clone(),
                stage: config.stage.clone(),
                replica: config.replica_id(),
                max_concurrency: config.max_concurrency,
            },
            Instant::now(),
        )));
        let admission = Admission::new(
            config.max_concurrency,
            config.queue_capacity,
            config.queue_timeout(),
            metrics.clone(),
            window.clone(),
        );
        let next = config.next_target()?;
        let upstream: http::Uri = config
            .upstream
            .parse()
            .map_err(|_| ConfigError::BadUpstream(config.upstream.clone()))?;
        let upstream = upstream
            .authority()
            .cloned()
            .ok_or_else(|| ConfigError::BadUpstream(config.upstream.clone()))?;
        let agent = match &config.agent {
            None => None,
            Some(address) => Some(agent_target(&config, address)?),
        };
        if let Some(a) = &agent {
            a.client_config()?;
        }
        let buffer = agent
            .as_ref()
            .map(|_| ReportBuffer::new(config.report_buffer, metrics.reports_dropped.clone()));
        let budget = Budget::new(config.max_buffered_bytes());
        let ctx = StageContext {
            stage: config.stage.as_str().into(),
            next_stage: config.next_stage.as_str().into(),
            pool: Arc::new(
                UpstreamPool::new(upstream, config.max_body_bytes, config.upstream_timeout())
                    .with_budget(budget.clone())
                    .with_connect_retry(ConnectRetry::new(
                        config.connect_retry_window(),
                        metrics.connect_retries_upstream.clone(),
                        ErrorSource::Upstream,
                    )),
            ),
            next_retry: ConnectRetry::new(
                config.connect_retry_window(),
                metrics.connect_retries_downstream.clone(),
                ErrorSource::Downstream,
            ),
            tally: Tally::new(metrics.clone(), window.clone()),
            window,
            admission,
            balancer: next.as_ref().map(|_| Balancer::new()),
            upstream_protocol: config.upstream_protocol,
            upstream_max_headers: config.upstream_max_headers,
            max_body_bytes: config.max_body_bytes,
            budget,
            body_timeout: config.body_read_timeout,
            retry_after: StageContext::retry_after(config.retry_after_seconds),
        };
        Ok(Sidecar {
            config,
            ctx,
            handle,
            next,
            agent,
            buffer,
            metrics,
        })
    }

    /// This sidecar's Prometheus handle (what `/metrics` renders).
    pub fn metrics_handle(&self) -> PrometheusHandle {
        self.handle.clone()
    }

    /// Serves requests on `listener` and the admin endpoints on `admin_listener` until
    /// `shutdown` completes, then drains (see the module docs).
    pub async fn run(
        self,
        listener: TcpListener,
        admin_listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), SidecarError> {
        let stop = CancellationToken::new();
        let ready = Arc::new(AtomicBool::new(true));
        let mut tasks = tokio::task::JoinSet::new();
        if let (Some(target), Some(balancer)) = (self.next.clone(), self.ctx.balancer.clone()) {
            tasks.spawn(balance::discover(
                target,
                balancer,
                self.config.discovery_interval(),
                stop.clone(),
            ));
        }
        tasks.spawn(report::tick(
            self.ctx.window.clone(),
            self.ctx.admission.clone(),
            self.buffer.clone(),
            self.config.report_interval(),
            stop.clone(),
        ));
        if let (Some(agent), Some(buffer)) = (self.agent.clone(), self.buffer.clone()) {
            tasks.spawn(report::send_loop(agent, buffer, stop.clone()));
        }
        // The other serving threads (--runtime per-core): each its own runtime, its own
        // upstream pool and the shared rest of the request path.
        let stop_serving = CancellationToken::new();
        let mut pools = vec![self.ctx.pool.clone()];
        let protocols = Arc::new(self.protocols());
        let mut workers = Vec::new();
        for index in 1..=self.config.extra_serving_threads() {
            let ctx = self.ctx.for_thread();
            pools.push(ctx.pool.clone());
            let serve = Serve {
                protocols: protocols.clone(),
                service: Edge::new(&ctx),
                stop: stop_serving.clone(),
                gauge: self.metrics.connections.clone(),
                open: Arc::default(),
            };
            let worker = Worker::start(
                index,
                serve,
                stop_serving.clone(),
                self.config.drain_timeout(),
            )
            .map_err(|source| {
                // Those already started stop at once (they have no connections yet).
                stop_serving.cancel();
                SidecarError::Thread { index, source }
            })?;
            workers.push(worker);
        }
        tasks.spawn(upkeep(self.handle.clone(), pools, stop.clone()));
        let handle = self.handle.clone();
        let draining = ready.clone();
        let admin = Admin::new(move || handle.render()).readiness(move || {
            if draining.load(Ordering::Acquire) {
                Ok(())
            } else {
                Err("draining".to_owned())
            }
        });
        tasks.spawn(admin::run(
            admin_listener,
            admin,
            stop.clone().cancelled_owned(),
        ));

        let local = Serve {
            protocols,
            service: Edge::new(&self.ctx),
            stop: stop_serving.clone(),
            gauge: self.metrics.connections.clone(),
            open: Arc::default(),
        };
        let threads = Threads {
            local: local.open.clone(),
            workers,
        };
        let graceful = GracefulShutdown::new();
        tracing::info!(
            listen = ?listener.local_addr().ok(),
            stage = %self.config.stage,
            upstream = %self.config.upstream,
            threads = threads.workers.len() + 1,
            "sidecar serving"
        );
        // At the limit the loop stops accepting: new connections wait in the kernel's listen
        // backlog (as behind any saturated server) instead of being accepted and reset, and
        // are served as soon as a connection closes. Slow clients cannot hold connections for
        // long: heads are cut at --header-read-timeout, bodies at --body-read-timeout.
        let limit = self.config.connection_limit();
        let open = limit.map(|n| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))));
        tracing::debug!(?limit, "connection limit");
        tokio::pin!(shutdown);
        loop {
            let permit = match &open {
                None => None,
                Some(sem) => match sem.clone().try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        self.metrics.connections_waited.increment(1);
                        tracing::debug!(
                            "connection limit reached; waiting for a connection to close"
                        );
                        tokio::select! {
                            p = sem.clone().acquire_owned() => p.ok(),
                            () = &mut shutdown => break,
                        }
                    }
                },
            };
            // Accept errors (out of file descriptors and the like) back off inside `accept`.
            let (stream, peer) = tokio::select! {
                accepted = sair_service::accept::accept(&listener) => accepted,
                () = &mut shutdown => break,
            };
            if let Some((stream, counted)) = threads.place(stream, peer, permit) {
                local.spawn(stream, peer, counted, &graceful);
            }
        }
        drop(listener);
        ready.store(false, Ordering::Release);
        tracing::info!(
            inflight = self.ctx.admission.inflight(),
            queued = self.ctx.admission.queue_depth(),
            "draining"
        );
        // The other threads drain their own connections meanwhile, each within the timeout.
        stop_serving.cancel();
        let (drained, ()) = tokio::join!(
            tokio::time::timeout(self.config.drain_timeout(), graceful.shutdown()),
            threads.stopped(),
        );
        if drained.is_err() {
            tracing::warn!(
                inflight = self.ctx.admission.inflight(),
                "drain timeout reached; abandoning remaining requests"
            );
        }
        stop.cancel();
        while tasks.join_next().await.is_some() {}
        tracing::info!("sidecar stopped");
        Ok(())
    }
}

impl Sidecar {
    /// The HTTP/1 and h2 server settings every connection is served with.
    fn protocols(&self) -> Protocols {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        // `validate` keeps --max-header-bytes at or above hyper's 8 KiB minimum (below it
        // `max_buf_size` panics), so the limit is honoured as given.
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.header_read_timeout())
            .max_buf_size(self.config.max_header_bytes);
        if self.config.max_headers != DEFAULT_MAX_HEADERS {
            // Any explicit count makes hyper parse headers into a heap array per request;
            // the default keeps its stack array.
            http1.max_headers(self.config.max_headers);
        }
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.config.max_header_bytes).unwrap_or(u32::MAX));
        Protocols {
            http1,
            http2,
            first_bytes_timeout: self.config.header_read_timeout(),
        }
    }
}

fn agent_target(config: &Config, address: &str) -> Result<AgentTarget, SidecarError> {
    let trust = if let Some(path) = &config.agent_ca {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let roots = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| SidecarError::AgentCa {
                path: path.display().to_string(),
                why: e.to_string(),
            })?;
        Trust::Roots(roots)
    } else {
        Trust::InsecureSkipVerify
    };
    let identity = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => Some(Identity::from_pem_files(c, k)?),
        _ => None,
    };
    Ok(AgentTarget {
        address: address.to_owned(),
        server_name: config.agent_server_name.clone(),
        trust,
        identity,
    })
}

/// Drains recorded histogram samples into their buckets every few seconds, so memory stays
/// bounded even when nobody scrapes `/metrics` (a recorder that is not installed globally gets
/// no upkeep thread from the exporter).
///
/// Also drops upstream connections idle for longer than the pool's idle timeout, in every
/// serving thread's pool.
async fn upkeep(handle: PrometheusHandle, pools: Vec<Arc<UpstreamPool>>, stop: CancellationToken) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = every.tick() => {
                handle.run_upkeep();
                for pool in &pools {
                    pool.evict_idle();
                }
            }
            _ = stop.cancelled() => return,
        }
    }
}
