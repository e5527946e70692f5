//! `sair-loadgen`: the open-loop load generator's command line. Exit codes (sysexits, by
//! `sair_service::exit`): 0 done, 64 bad flag, variable or config file (the message names the
//! option), 69 target unreachable (nothing was sent), 70 internal error, 73 `--out` cannot be
//! written (checked before the run), 74 the report could not be written after the run (the
//! summary is on stdout all the same), 75 the run completed but the generator fell behind its
//! schedule (the report says by how much).

#![forbid(unsafe_code)]

use sair_loadgen::cli::{LoadgenArgs, Plan};
use sair_loadgen::runner::{RunError, execute};
use sair_service::config::{ProcessEnv, load};
use sair_service::exit::Exit;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

/// The run completed but the generator could not keep to its schedule (`EX_TEMPFAIL`: the
/// figures are not to be trusted; retry with a lower rate or more CPU).
const FELL_BEHIND: u8 = 75;

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
        Ok(false) => Exit::Ok.into(),
        Ok(true) => ExitCode::from(FELL_BEHIND),
        Err((code, e)) => {
            eprintln!("sair-loadgen: {e:#}");
            code.into()
        }
    }
}

/// Checks before the run that `--out` can be written (opening it without truncating an
/// existing report). Returns whether this check created the file, so that a run that does not
/// happen does not leave an empty one behind.
fn check_out(path: &Path) -> Result<bool, (Exit, anyhow::Error)> {
    let existed = path.exists();
    let cant = |e: std::io::Error| {
        (
            Exit::CantCreate,
            anyhow::Error::from(e).context(format!(
                "--out {} cannot be written (checked before the run; nothing was sent)",
                path.display()
            )),
        )
    };
    if path.is_dir() {
        return Err(cant(std::io::Error::other("it is a directory")));
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(cant)?;
    Ok(!existed)
}

/// Runs the plan; `Ok(true)` when the generator fell behind its schedule.
fn run(plan: Plan) -> Result<bool, (Exit, anyhow::Error)> {
    let created = match &plan.out {
        Some(path) => check_out(path)?,
        None => false,
    };
    let result = measure(&plan);
    if result.is_err()
        && created
        && let Some(path) = &plan.out
    {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn measure(plan: &Plan) -> Result<bool, (Exit, anyhow::Error)> {
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
        .block_on(execute(plan, progress, shutdown))
        .map_err(|e| {
            let code = match e {
                RunError::TooManyArrivals { .. } => Exit::Usage,
                RunError::Target(_) => Exit::Unavailable,
            };
            (code, anyhow::Error::from(e))
        })?;
    // The summary first: it reaches stdout whatever happens to the report file.
    print!("{}", report.summary());
    if let Some(why) = report.behind_reason() {
        eprintln!("sair-loadgen: warning: {why}");
    }
    // The runtime may still hold connection tasks; do not wait for them.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    if let Some(path) = &plan.out {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| (Exit::Internal, e.into()))?;
        std::fs::write(path, json).map_err(|e| {
            (
                Exit::IoErr,
                anyhow::Error::from(e).context(format!(
                    "writing --out {} (the summary above is the run's result)",
                    path.display()
                )),
            )
        })?;
    }
    Ok(report.fell_behind)
}
