//! `sair-stage`: a synthetic model server for demos, tests and benchmarks. Exit codes: 0 after
//! Ctrl-C/SIGTERM, 64 bad configuration, 69 GPU set-up failed, 71 cannot listen.

#![forbid(unsafe_code)]

use clap::Parser;
use sair_loadgen::stage::{StageArgs, StageError, run};
use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = StageArgs::parse();
    let stage = match args.build() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sair-stage: {e}");
            return ExitCode::from(match e {
                StageError::OutOfRange { .. } => 64,
                StageError::Gpu(_) => 69,
            });
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sair-stage: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
        // Tests and scripts read the bound address (useful with port 0) from this line.
        println!("listening on {}", listener.local_addr()?);
        run(listener, stage, shutdown_signal()).await?;
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sair-stage: {e:#}");
            ExitCode::from(71)
        }
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
