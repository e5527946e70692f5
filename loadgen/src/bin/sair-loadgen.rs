//! `sair-loadgen`: the open-loop load generator's command line. Exit codes (sysexits, by
//! `sair_service::exit`): 0 done, 64 bad flag, variable or config file (the message names the
//! option), 69 target unreachable (nothing was sent), 70 internal error, 74 the report could
//! not be written.

#![forbid(unsafe_code)]

use sair_loadgen::cli::{LoadgenArgs, Plan};
use sair_loadgen::runner::{RunError, execute};
use sair_service::config::{ProcessEnv, load};
use sair_service::exit::Exit;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let loaded = match load::<LoadgenArgs>(std::env::args_os(), &ProcessEnv) {
        Ok(l) => l,
        Err(e) => return e.report("sair-loadgen"),
    };
    sair_service::logging::init_tracing(&loaded.value.log, "warn");
    loaded.log_sources();
    let plan = match loaded.value.plan() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sair-loadgen: {e}");
            return Exit::Usage.into();
        }
    };
    match run(plan) {
        Ok(()) => Exit::Ok.into(),
        Err((code, e)) => {
            eprintln!("sair-loadgen: {e:#}");
            code.into()
        }
    }
}

fn run(plan: Plan) -> Result<(), (Exit, anyhow::Error)> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| {
        (
            Exit::Internal,
            anyhow::Error::from(e).context("cannot start the runtime"),
        )
    })?;
    let progress = !plan.quiet && std::io::stderr().is_terminal();
    let shutdown = async {
        sair_service::shutdown::signal().await;
    };
    let report = rt
        .block_on(execute(&plan, progress, shutdown))
        .map_err(|e| {
            let code = match e {
                RunError::TooManyArrivals { .. } => Exit::Usage,
                RunError::Target(_) => Exit::Unavailable,
            };
            (code, anyhow::Error::from(e))
        })?;
    if let Some(path) = &plan.out {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| (Exit::Internal, e.into()))?;
        std::fs::write(path, json).map_err(|e| {
            (
                Exit::IoErr,
                anyhow::Error::from(e).context(format!("writing --out {}", path.display())),
            )
        })?;
    }
    print!("{}", report.summary());
    // The runtime may still hold connection tasks; do not wait for them.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(())
}
