//! `sair-node-agent`: parses the command line and runs a subcommand. Exit status: 0 on
//! success, 64 on a bad flag, variable or config file, 69 when `run` cannot start (a socket,
//! TLS material, the shm dir), 1 when a `set-rate`/`status`/`remove` request is refused or
//! fails.

#![forbid(unsafe_code)]

use anyhow::Context;
use sair_node_agent::config::{Cli, Command, RunArgs, parse_listen};
use sair_node_agent::controller::ControllerConfig;
use sair_node_agent::daemon::{self, DaemonConfig, Listeners};
use sair_node_agent::measure::{NvmlMeter, Utilization};
use sair_node_agent::mesh::MeshMember;
use sair_node_agent::target::{ChannelSource, LocalOnly, TargetSource};
use sair_node_agent::{AgentError, ops};
use sair_service::config::{ProcessEnv, load};
use sair_service::exit::Exit;
use std::process::ExitCode;

const BINARY: &str = "sair-node-agent";

fn main() -> ExitCode {
    let loaded = match load::<Cli>(std::env::args_os(), &ProcessEnv) {
        Ok(l) => l,
        Err(e) => return e.report(BINARY),
    };
    let cli = loaded.value;
    sair_service::logging::init_tracing(&cli.log, "info");
    let is_run = matches!(cli.command, Command::Run(_));
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::SetRate(a) => a
            .validate()
            .and_then(|()| {
                if a.create_parents
                    && let Some(parent) = a.shm.shm_dir.parent()
                {
                    std::fs::create_dir_all(parent).map_err(|source| AgentError::Io {
                        op: "create the parents of",
                        path: a.shm.shm_dir.clone(),
                        source,
                    })?;
                }
                ops::set_rate_with(
                    &a.shm.shm_dir,
                    &a.segment,
                    a.rate,
                    a.gpu,
                    a.mode,
                    a.burst.ns(),
                    a.owner_uid.map(|uid| sair_shm::Access::Owner { uid }),
                )
            })
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
        Command::Status(a) => a
            .validate()
            .and_then(|()| ops::status(&a.shm.shm_dir, a.sample()))
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
            eprintln!("{BINARY}: {e:#}");
            let config = e
                .downcast_ref::<AgentError>()
                .is_some_and(AgentError::is_config);
            // A refused or failed request (over-commitment, a bad segment name) keeps exit
            // status 1, which scripts and the agent's tests rely on.
            if config {
                Exit::Usage.into()
            } else if is_run {
                Exit::Unavailable.into()
            } else {
                ExitCode::FAILURE
            }
        }
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
    let mesh_plan = args.mesh.plan()?;
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
    // On the mesh, the leader's ρ targets arrive through a channel; otherwise only set-rate.
    let (targets, target_tx): (Box<dyn TargetSource>, _) = match &mesh_plan {
        Some(_) => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            (Box::new(ChannelSource(rx)), Some(tx))
        }
        None => (Box::new(LocalOnly), None),
    };
    let mesh_node = node.clone();
    let cfg = DaemonConfig {
        shm_dir: args.shm.shm_dir.clone(),
        node,
        period: args.period(),
        gc_idle: args.gc_idle(),
        burst_ns: args.burst.ns(),
        share_headroom: args.share_headroom,
        controller: ControllerConfig::default(),
        max_report_keys: args.max_report_keys,
    };
    let util: Option<Box<dyn Utilization>> = match NvmlMeter::load(args.nvml_lib.as_ref()) {
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
        let mesh = match (&mesh_plan, target_tx) {
            (Some(plan), Some(tx)) => Some(MeshMember::start(
                plan,
                &mesh_node,
                args.nvml_lib.as_ref(),
                tx,
            )?),
            _ => None,
        };
        // One line on stdout with the bound addresses, for scripts and tests.
        let mut bound = Vec::new();
        if let Some(l) = &metrics {
            bound.push(("admin", l.local_addr().context("--metrics-listen address")?));
        }
        if let Some(e) = &reports {
            bound.push(("report", e.local_addr().context("--report-listen address")?));
        }
        if let Some(m) = &mesh {
            bound.push(("mesh", m.addr()));
        }
        sair_service::announce::bound(BINARY, &bound);
        daemon::run(
            cfg,
            Listeners {
                metrics,
                reports,
                mesh,
            },
            util,
            targets,
            handle,
            async {
                sair_service::shutdown::signal().await;
            },
        )
        .await?;
        Ok(())
    })
}
