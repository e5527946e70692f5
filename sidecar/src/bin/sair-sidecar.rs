//! `sair-sidecar`: parses the configuration, binds, and runs until SIGTERM/SIGINT.
//! Exits 64 on a bad configuration, 1 on a runtime failure, 0 after a clean drain.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use sair_sidecar::{Config, ConfigError, Sidecar, SidecarError};

const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let config = match Config::load(std::env::args_os()) {
        Ok(c) => c,
        Err(ConfigError::Cli(e)) => {
            // --help and --version are not errors.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
        Err(e) => {
            eprintln!("sair-sidecar: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_tracing(config.log_json);
    let sidecar = match Sidecar::new(config.clone()) {
        Ok(s) => s,
        Err(
            e @ (SidecarError::Config(_)
            | SidecarError::Buckets(_)
            | SidecarError::AgentCa { .. }
            | SidecarError::Tls(_)),
        ) => {
            eprintln!("sair-sidecar: invalid configuration: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match serve(config, sidecar) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sair-sidecar: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        fmt.json().init();
    } else {
        fmt.init();
    }
}

fn serve(config: Config, sidecar: Sidecar) -> anyhow::Result<()> {
    let rt = match config.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .context("building the tokio runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding --listen {}", config.listen))?;
        let metrics = tokio::net::TcpListener::bind(config.metrics_listen)
            .await
            .with_context(|| format!("binding --metrics-listen {}", config.metrics_listen))?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: draining"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
            }
        };
        sidecar.run(listener, metrics, shutdown).await?;
        Ok(())
    })
}
