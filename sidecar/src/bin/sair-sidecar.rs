//! `sair-sidecar`: loads the configuration, binds, announces the bound addresses and runs
//! until SIGTERM/SIGINT. Exit status: 0 after a clean drain (and for `--help`), 64 on a bad
//! flag, variable, file or value, 69 when a listener cannot be bound or TLS material cannot be
//! read, 70 on an internal error.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use sair_service::Exit;
use sair_sidecar::config::RuntimeModel;
use sair_sidecar::{Config, ConfigError, Sidecar, SidecarError};

const BINARY: &str = "sair-sidecar";

fn main() -> ExitCode {
    let config = match Config::load(std::env::args_os()) {
        Ok(c) => c,
        // `--help` and `--version` exit 0; every other load error 64.
        Err(ConfigError::Load(e)) => return e.report(BINARY),
        Err(e) => {
            eprintln!("{BINARY}: {e}");
            return Exit::Usage.into();
        }
    };
    sair_service::logging::init_tracing(&config.log, "info");
    let sidecar = match Sidecar::new(config.clone()) {
        Ok(s) => s,
        // TLS material that cannot be read is an unavailable dependency (docs/configuration.md).
        Err(e @ (SidecarError::Tls(_) | SidecarError::AgentCa { .. })) => {
            eprintln!("{BINARY}: {e}");
            return Exit::Unavailable.into();
        }
        Err(e @ (SidecarError::Config(_) | SidecarError::Buckets(_))) => {
            eprintln!("{BINARY}: invalid configuration: {e}");
            return Exit::Usage.into();
        }
        // Only `run` starts threads.
        Err(e @ SidecarError::Thread { .. }) => {
            eprintln!("{BINARY}: {e}");
            return Exit::Internal.into();
        }
    };
    match serve(config, sidecar) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Bind(e)) => {
            eprintln!("{BINARY}: {e:#}");
            Exit::Unavailable.into()
        }
        Err(Failure::Internal(e)) => {
            eprintln!("{BINARY}: {e:#}");
            Exit::Internal.into()
        }
    }
}

/// Why serving stopped with an error, by exit code.
enum Failure {
    /// A listener could not be bound (address in use, not ours): 69.
    Bind(anyhow::Error),
    /// Anything else: 70.
    Internal(anyhow::Error),
}

fn serve(config: Config, sidecar: Sidecar) -> Result<(), Failure> {
    // per-core: this thread's own current-thread runtime (`run` starts the other serving
    // threads); work-stealing: one multi-thread runtime, or a current-thread one for 1.
    let rt = match (config.runtime, config.serving_threads()) {
        (RuntimeModel::PerCore, _) | (RuntimeModel::WorkStealing, 1) => {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        (RuntimeModel::WorkStealing, n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .context("building the tokio runtime")
    .map_err(Failure::Internal)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding --listen {}", config.listen))
            .map_err(Failure::Bind)?;
        let admin = tokio::net::TcpListener::bind(config.metrics_listen)
            .await
            .with_context(|| format!("binding --metrics-listen {}", config.metrics_listen))
            .map_err(Failure::Bind)?;
        let addrs = [
            ("listen", listener.local_addr()),
            ("admin", admin.local_addr()),
        ];
        let mut bound = Vec::with_capacity(addrs.len());
        for (role, addr) in addrs {
            let addr = addr
                .with_context(|| format!("reading the {role} address"))
                .map_err(Failure::Internal)?;
            bound.push((role, addr));
        }
        sair_service::announce::bound(BINARY, &bound);
        let shutdown = async {
            sair_service::shutdown::signal().await;
        };
        sidecar
            .run(listener, admin, shutdown)
            .await
            .context("serving")
            .map_err(Failure::Internal)
    })
}
