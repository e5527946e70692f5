//! `sair-stage`: a synthetic model server for demos, tests and benchmarks. Once bound it prints
//! one JSON line on stdout, `{"event":"bound","binary":"sair-stage","addresses":{"listen":…}}`
//! (`--listen 127.0.0.1:0` picks a free port), after `--startup` (model loading). Exit codes (sysexits, by `sair_service::exit`):
//! 0 after SIGTERM/SIGINT, 64 bad flag, variable or config file, 69 the GPU set-up failed or
//! the address cannot be bound, 70 internal error.

#![forbid(unsafe_code)]

use sair_loadgen::stage::{StageArgs, StageError, run};
use sair_service::config::{ProcessEnv, load};
use sair_service::exit::Exit;
use std::process::ExitCode;

fn main() -> ExitCode {
    let loaded = match load::<StageArgs>(std::env::args_os(), &ProcessEnv) {
        Ok(l) => l,
        Err(e) => return e.report("sair-stage"),
    };
    let args = loaded.value;
    sair_service::logging::init_tracing(&args.log, "info");
    let stage = match args.build() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sair-stage: {e}");
            return match e {
                StageError::OutOfRange { .. } => Exit::Usage,
                StageError::Gpu(_) => Exit::Unavailable,
            }
            .into();
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sair-stage: cannot start the runtime: {e}");
            return Exit::Internal.into();
        }
    };
    rt.block_on(async {
        // Model loading (`--startup`): nothing listens yet, so a client or a readiness probe
        // sees connection refused, as with a real server that binds after loading. A SIGTERM
        // meanwhile ends the process at once.
        if !args.startup.is_zero() {
            tracing::info!(
                startup_ms = args.startup.as_millis() as u64,
                "loading (--startup)"
            );
            tokio::select! {
                () = tokio::time::sleep(args.startup) => {}
                _ = sair_service::shutdown::signal() => return Exit::Ok,
            }
        }
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("sair-stage: cannot listen on {}: {e}", args.listen);
                return Exit::Unavailable;
            }
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("sair-stage: the listener has no address: {e}");
                return Exit::Internal;
            }
        };
        // Tests and scripts read the bound address (useful with port 0) from this line.
        sair_service::announce::bound("sair-stage", &[("listen", addr)]);
        run(listener, stage, async {
            sair_service::shutdown::signal().await;
        })
        .await;
        Exit::Ok
    })
    .into()
}
