//! `sair-loadgen`: the open-loop load generator's command line. Exit codes: 0 done, 64 bad
//! configuration (the message names the flag), 69 target unreachable (nothing was sent),
//! 74 the report could not be written.

#![forbid(unsafe_code)]

use clap::Parser;
use sair_loadgen::cli::LoadgenArgs;
use sair_loadgen::runner::{RunError, execute};
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = LoadgenArgs::parse();
    let plan = match args.plan() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sair-loadgen: {e}");
            return ExitCode::from(64);
        }
    };
    match run(plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("sair-loadgen: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn run(plan: sair_loadgen::cli::Plan) -> Result<(), (u8, anyhow::Error)> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| (1, anyhow::Error::from(e)))?;
    let progress = !plan.quiet && std::io::stderr().is_terminal();
    let shutdown = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let report = rt
        .block_on(execute(&plan, progress, shutdown))
        .map_err(|e| {
            let code = match e {
                RunError::TooManyArrivals { .. } => 64,
                RunError::Target(_) => 69,
            };
            (code, anyhow::Error::from(e))
        })?;
    if let Some(path) = &plan.out {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| (74, e.into()))?;
        std::fs::write(path, json).map_err(|e| {
            (
                74,
                anyhow::Error::from(e).context(format!("writing --out {}", path.display())),
            )
        })?;
    }
    print!("{}", report.summary());
    // The runtime may still hold connection tasks; do not wait for them.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(())
}
