//! `sair-node-agent`: parses the command line and runs a subcommand. Exit status: 0 on
//! success, 64 on a bad configuration, 1 when a request is refused or fails.

#![forbid(unsafe_code)]

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use sair_node_agent::config::{Cli, Command, FileConfig, RunArgs, parse_listen};
use sair_node_agent::controller::ControllerConfig;
use sair_node_agent::daemon::{self, DaemonConfig, Listeners};
use sair_node_agent::measure::{NvmlUtilization, Utilization};
use sair_node_agent::target::LocalOnly;
use sair_node_agent::{AgentError, ops};
use std::process::ExitCode;
use std::time::Duration;

const EX_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|c| (m, c)));
    let (matches, mut cli) = match parsed {
        Ok(p) => p,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EX_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // `run --config FILE`: the file fills in what no flag or SAIR_* variable gave.
    if let (Command::Run(args), Some(sub)) = (&mut cli.command, matches.subcommand_matches("run"))
        && let Some(path) = args.config.clone()
    {
        match FileConfig::load(&path) {
            Ok(file) => args.merge_file(file, |id| {
                matches!(
                    sub.value_source(id),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                )
            }),
            Err(e) => {
                eprintln!("sair-node-agent: {e}");
                return ExitCode::from(EX_CONFIG);
            }
        }
    }
    init_tracing(cli.log_json);
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::SetRate(a) => ops::set_rate(
            &a.shm.shm_dir,
            &a.segment,
            a.rate,
            a.gpu,
            a.mode,
            a.burst_us.saturating_mul(1000),
        )
        .map_err(anyhow::Error::from)
        .and_then(|o| {
            if a.json {
                println!("{}", serde_json::to_string(&o)?);
            } else {
                println!(
                    "segment {} on GPU {}: {} rate {} ({} tokens/s, burst {}){}",
                    o.segment,
                    o.gpu,
                    o.mode,
                    o.rate,
                    o.refill_per_s,
                    o.burst,
                    if o.created { ", created" } else { "" }
                );
            }
            Ok(())
        }),
        Command::Status(a) => ops::status(&a.shm.shm_dir, Duration::from_millis(a.sample_ms))
            .map_err(anyhow::Error::from)
            .and_then(|rows| {
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    print!("{}", ops::format_table(&rows));
                }
                Ok(())
            }),
        Command::Remove(a) => ops::remove(&a.shm.shm_dir, &a.segment).map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sair-node-agent: {e:#}");
            let config = e
                .downcast_ref::<AgentError>()
                .is_some_and(AgentError::is_config);
            ExitCode::from(if config { EX_CONFIG } else { 1 })
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

fn tls_identity(args: &RunArgs) -> anyhow::Result<sair_wire::transport::Identity> {
    use sair_wire::transport::Identity;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        return Ok(Identity::from_pem_files(cert, key)?);
    }
    let cert = args.tls_dir.join("agent-cert.pem");
    let key = args.tls_dir.join("agent-key.pem");
    if !(cert.exists() && key.exists()) {
        std::fs::create_dir_all(&args.tls_dir)
            .with_context(|| format!("creating {}", args.tls_dir.display()))?;
        let names = vec!["localhost".to_owned(), "sair-node-agent".to_owned()];
        let c = rcgen::generate_simple_self_signed(names).context("generating a certificate")?;
        std::fs::write(&key, c.key_pair.serialize_pem())
            .with_context(|| format!("writing {}", key.display()))?;
        std::fs::write(&cert, c.cert.pem())
            .with_context(|| format!("writing {}", cert.display()))?;
        tracing::info!(cert = %cert.display(), "generated a self-signed report identity");
    }
    Ok(Identity::from_pem_files(&cert, &key)?)
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    args.validate()?;
    let metrics_addr = parse_listen("--metrics-listen", &args.metrics_listen)?;
    let report_addr = parse_listen("--report-listen", &args.report_listen)?;
    let node = args
        .node_name
        .clone()
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cfg = DaemonConfig {
        shm_dir: args.shm.shm_dir.clone(),
        node,
        period: Duration::from_millis(args.control_period_ms),
        gc_idle: Duration::from_secs(args.gc_idle_seconds),
        burst_ns: args.burst_us.saturating_mul(1000),
        share_headroom: args.share_headroom,
        controller: ControllerConfig::default(),
        max_report_keys: args.max_report_keys,
    };
    let util: Option<Box<dyn Utilization>> = match NvmlUtilization::load(args.nvml_lib.as_ref()) {
        Ok(u) => Some(Box::new(u)),
        Err(e) => {
            tracing::warn!(error = %e, "NVML unavailable: rates are held, not controlled");
            None
        }
    };
    let handle = sair_node_agent::metrics::install().map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let metrics = match metrics_addr {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a)
                    .await
                    .with_context(|| format!("binding --metrics-listen {a}"))?,
            ),
            None => None,
        };
        let reports = match report_addr {
            Some(a) => {
                let id = tls_identity(&args)?;
                let sc = sair_wire::transport::server_config(&id, None)?;
                Some(sair_wire::transport::server_endpoint(a, sc)?)
            }
            None => None,
        };
        // One line on stdout with the bound addresses, for scripts and tests.
        println!(
            "{}",
            serde_json::json!({
                "metrics": metrics.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.to_string()),
                "reports": reports.as_ref().and_then(|e| e.local_addr().ok()).map(|a| a.to_string()),
            })
        );
        daemon::run(
            cfg,
            Listeners { metrics, reports },
            util,
            Box::new(LocalOnly),
            handle,
            shutdown_signal(),
        )
        .await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; only Ctrl-C stops the agent");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
