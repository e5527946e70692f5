//! `sair-coordinator`: the live coordinator of one pipeline. It joins the mesh, builds the
//! pipeline's state from the StageReports and segment facts the node agents publish, asks the
//! policy every `--interval`, publishes ρ targets on the mesh (as leader) and carries replica
//! counts out through `--actuator`; it serves `/v1/pipelines`, `/v1/decisions`, `/metrics` and
//! `/healthz` (docs/coordinator.md).
//!
//! Configuration: flags > `SAIR_*` > top-level keys of the pipelines file (`--config`) >
//! defaults ([`cli`]). Exit codes (sysexits): 0 after SIGTERM/SIGINT, 64 a bad flag, variable,
//! pipelines file or policy name (the message names it), 69 a listener or the mesh endpoint
//! that cannot bind, 73 a state directory that cannot be written, 70 an internal error.

#![forbid(unsafe_code)]

mod cli;
mod mesh;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use cli::{ActuatorKind, Cli, LoadError};
use sair_actuator::dry_run::DryRun;
use sair_actuator::kubernetes::{
    self, KubernetesActuator, KubernetesStage, LeaderElection, LeaseOptions, lease,
};
use sair_actuator::local::{AgentLink, AgentTrust, LocalActuator, LocalOptions, LocalStage};
use sair_actuator::retry::Backoff;
use sair_actuator::{Actuator, StageRef};
use sair_coordinator::live::api::{self, Shared};
use sair_coordinator::live::config::PipelinesFile;
use sair_coordinator::live::journal::Journal;
use sair_coordinator::live::policy as live_policy;
use sair_coordinator::live::run::{Live, LoopOptions};
use sair_coordinator::policies::UnknownPolicy;
use sair_coordinator::policy::{Policy, StageKind};
use sair_coordinator::sair::selector::llm::LlmConfig;
use sair_service::config::ProcessEnv;
use sair_service::exit::Exit;

const BINARY: &str = "sair-coordinator";

/// Why the coordinator stopped: the exit code and what to print.
type Failure = (Exit, anyhow::Error);

fn usage(e: impl Into<anyhow::Error>) -> Failure {
    (Exit::Usage, e.into())
}

fn main() -> ExitCode {
    let (cli, loaded) = match cli::load(std::env::args_os(), &ProcessEnv) {
        Ok(l) => l,
        Err(LoadError::Config(e)) => return e.report(BINARY),
        Err(LoadError::NotACommand) => {
            eprintln!(
                "{BINARY}: error: `{}` is not a command; sair-coordinator takes options only (see --help)",
                cli::FILE_TABLES
            );
            return Exit::Usage.into();
        }
    };
    sair_service::logging::init_tracing(&cli.log, "info");
    loaded.log_sources();
    match run(cli) {
        Ok(()) => Exit::Ok.into(),
        Err((code, e)) => {
            eprintln!("{BINARY}: error: {e:#}");
            code.into()
        }
    }
}

/// Everything checked before anything binds or starts.
struct Plan {
    file: PipelinesFile,
    /// `--actuator kubernetes`: every stage's `kubernetes` table.
    kube_stages: Vec<(StageRef, KubernetesStage)>,
    mesh: mesh::MeshPlan,
    http: Option<std::net::SocketAddr>,
    policy_dir: Option<PathBuf>,
    decisions_log: Option<Journal>,
    llm: Option<LlmConfig>,
}

fn check(cli: &Cli) -> Result<Plan, Failure> {
    let file = PipelinesFile::load(&cli.config)
        .map_err(|e| usage(anyhow!(e).context("bad --config (pipelines file), nothing started")))?;
    let mesh = cli.mesh.plan().map_err(|(exit, e)| (exit, anyhow!(e)))?;
    let http = match cli.http_listen.trim() {
        "" | "none" => None,
        s => Some(
            s.parse()
                .map_err(|e| usage(anyhow!("--http-listen {s:?} is not an address: {e}")))?,
        ),
    };
    if cli.local.agent_report.is_some()
        && cli.local.agent_ca.is_none()
        && !cli.local.agent_insecure_skip_verify
    {
        return Err(usage(anyhow!(
            "--agent-report needs --agent-ca FILE (the agent's report certificate) or \
             --agent-insecure-skip-verify (loopback demos only)"
        )));
    }
    if cli.actuator != ActuatorKind::Local {
        let local_only = [
            ("--work-dir", cli.local.work_dir.is_some()),
            ("--bin-dir", cli.local.bin_dir.is_some()),
            ("--agent-report", cli.local.agent_report.is_some()),
            ("--shm-dir", cli.local.shm_dir.is_some()),
            ("--intercept-lib", cli.local.intercept_lib.is_some()),
        ];
        if let Some((flag, _)) = local_only.iter().find(|(_, given)| *given) {
            return Err(usage(anyhow!(
                "{flag} is an option of --actuator local, not of --actuator {:?}",
                cli.actuator
            )));
        }
    }
    let kube_stages = match cli.actuator {
        ActuatorKind::Kubernetes => kube_stages(&file)?,
        _ => Vec::new(),
    };
    let llm = cli.llm_url.as_deref().map(|url| {
        LlmConfig::new(
            url,
            &cli.llm_model,
            cli.llm_api_key_env.as_deref(),
            &ProcessEnv,
        )
    });
    // The policy name, against this pipeline, before anything starts (no state opened yet).
    let interval_s = cli.interval.as_secs_f64();
    live_policy::build(&cli.policy, &file, &file.context(interval_s, 1, None, None))
        .map_err(|e| usage(anyhow!(e)))?;
    let (policy_dir, decisions_log) = match &cli.state_dir {
        Some(dir) => {
            let policy_dir = dir.join(file.pipeline()).join(&cli.policy);
            std::fs::create_dir_all(&policy_dir)
                .and_then(|()| writable(dir))
                .map_err(|e| {
                    (
                        Exit::CantCreate,
                        anyhow!("--state-dir {}: cannot be written: {e}", dir.display()),
                    )
                })?;
            let journal = Journal::new(dir.join("decisions.jsonl"), cli.decisions_log_max_mib);
            (Some(policy_dir), journal)
        }
        None => (None, None),
    };
    Ok(Plan {
        file,
        kube_stages,
        mesh,
        http,
        policy_dir,
        decisions_log,
        llm,
    })
}

/// Checks that files can be created in `dir` (a read-only mount fails here, not mid-run).
fn writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(".sair-coordinator-write-test");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// Every stage's `kubernetes` table (`--actuator kubernetes` needs one per stage).
fn kube_stages(file: &PipelinesFile) -> Result<Vec<(StageRef, KubernetesStage)>, Failure> {
    let mut out = Vec::new();
    for (i, s) in file.scenario.stages.iter().enumerate() {
        let at = format!("{}: `pipeline.stages[{i}].kubernetes`", file.path.display());
        let Some(table) = file.runs[i].kubernetes.clone() else {
            return Err(usage(anyhow!(
                "{at}: stage {} has no kubernetes table (namespace, deployment), which --actuator kubernetes needs",
                s.name
            )));
        };
        let t: KubernetesStage = table
            .try_into()
            .map_err(|e: toml::de::Error| usage(anyhow!("{at}: {}", e.message())))?;
        t.validate().map_err(|e| usage(anyhow!("{at}: {e}")))?;
        out.push((StageRef::new(file.pipeline(), s.name.clone()), t));
    }
    Ok(out)
}

/// The local supervisor of the pipelines file's stages (each stage's `run` table).
fn local_actuator(cli: &Cli, file: &PipelinesFile) -> Result<LocalActuator, Failure> {
    let stages = &file.scenario.stages;
    let mut local = Vec::with_capacity(stages.len());
    for (i, s) in stages.iter().enumerate() {
        let Some(run) = file.runs[i].local.clone() else {
            return Err(usage(anyhow!(
                "{}: `pipeline.stages[{i}].run`: stage {} has no run table, which --actuator local needs",
                file.path.display(),
                s.name
            )));
        };
        let run = run.try_into().map_err(|e: toml::de::Error| {
            usage(anyhow!(
                "{}: `pipeline.stages[{i}].run`: {}",
                file.path.display(),
                e.message()
            ))
        })?;
        local.push(LocalStage {
            stage: StageRef::new(file.pipeline(), s.name.clone()),
            gpu: s.kind == StageKind::Gpu,
            concurrency: s.concurrency,
            next: stages.get(i + 1).map(|n| n.name.clone()),
            run,
        });
    }
    let work_dir = match (&cli.local.work_dir, &cli.state_dir) {
        (Some(w), _) => w.clone(),
        (None, Some(s)) => s.join("local"),
        (None, None) => {
            std::env::temp_dir().join(format!("sair-coordinator-{}", std::process::id()))
        }
    };
    let mut options = LocalOptions::new(work_dir);
    options.bin_dir = cli.local.bin_dir.clone();
    options.shm_dir = cli.local.shm_dir.clone();
    options.intercept_lib = cli.local.intercept_lib.clone();
    options.agent = cli.local.agent_report.as_ref().map(|addr| AgentLink {
        addr: addr.clone(),
        trust: match &cli.local.agent_ca {
            Some(ca) => AgentTrust::Ca(ca.clone()),
            None => AgentTrust::InsecureSkipVerify,
        },
        server_name: None,
    });
    LocalActuator::new(options, local).map_err(|e| {
        let code = if e.is_retryable() {
            Exit::CantCreate
        } else {
            Exit::Usage
        };
        (code, anyhow!(e).context("--actuator local cannot start"))
    })
}

fn build_policy(cli: &Cli, plan: &Plan) -> Result<Box<dyn Policy>, Failure> {
    let ctx = plan.file.context(
        cli.interval.as_secs_f64(),
        1,
        plan.policy_dir.clone(),
        plan.llm.clone(),
    );
    live_policy::build(&cli.policy, &plan.file, &ctx).map_err(|e| match e {
        // The name was checked: what is left is a store that cannot be opened.
        UnknownPolicy::Failed { .. } => (Exit::CantCreate, anyhow!(e)),
        UnknownPolicy::Unknown { .. } => usage(anyhow!(e)),
    })
}

fn run(cli: Cli) -> Result<(), Failure> {
    let plan = check(&cli)?;
    let tls = plan.mesh.tls().map_err(|e| usage(anyhow!(e)))?;
    // A histogram, not the exporter's default summary: buckets aggregate across coordinators
    // and restarts (DESIGN: histograms rather than summaries).
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(
                sair_coordinator::live::metrics::DECISION_SECONDS.to_owned(),
            ),
            sair_coordinator::live::metrics::DECISION_BUCKETS,
        )
        .map_err(|e| (Exit::Internal, anyhow!("metrics buckets: {e}")))?
        .install_recorder()
        .map_err(|e| (Exit::Internal, anyhow!("metrics recorder: {e}")))?;
    sair_coordinator::live::metrics::describe();
    sair_actuator::metrics::describe();
    sair_service::metrics::describe();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| (Exit::Internal, anyhow!(e).context("starting the runtime")))?;
    rt.block_on(async move {
        let http = match plan.http {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a)
                    .await
                    .with_context(|| format!("binding --http-listen {a}"))
                    .map_err(|e| (Exit::Unavailable, e))?,
            ),
            None => None,
        };
        // Under the Lease the mesh's claimant is the Lease holder (the live loop hands it the
        // Lease's state every poll); until then this coordinator does not claim by name.
        let candidacy = match cli.actuator {
            ActuatorKind::Kubernetes => sair_mesh::Candidacy::NotHolder,
            ActuatorKind::Local | ActuatorKind::DryRun => sair_mesh::Candidacy::LowestName,
        };
        let mesh = plan
            .mesh
            .start(&tls, candidacy)
            .map_err(|e| (Exit::Unavailable, anyhow!(e)))?;
        let stages = &plan.file.scenario.stages;
        let mut election = None;
        let actuator: Box<dyn Actuator> = match cli.actuator {
            ActuatorKind::Local => Box::new(local_actuator(&cli, &plan.file)?),
            ActuatorKind::Kubernetes => {
                let k = &cli.kube;
                let (client, ns) = kubernetes::connect(k.kubeconfig.as_deref())
                    .await
                    .map_err(|e| usage(anyhow!(e).context("--actuator kubernetes: no cluster")))?;
                let cfg = lease::LeaseConfig::try_new(&plan.mesh.node, k.lease_duration)
                    .map_err(|e| usage(anyhow!(e).context("--lease-duration / --node")))?;
                let options = LeaseOptions::try_new(
                    k.lease_namespace.clone().unwrap_or(ns),
                    k.lease_name.clone(),
                    cfg,
                )
                .map_err(|e| usage(anyhow!(e).context("--lease-namespace / --lease-name")))?;
                let e = LeaderElection::spawn(client.clone(), options);
                let watch = e.watch();
                election = Some(e);
                let a = KubernetesActuator::new(client, plan.kube_stages.clone())
                    .map_err(|e| usage(anyhow!(e)))?;
                Box::new(a.gated_by(watch))
            }
            ActuatorKind::DryRun => Box::new(DryRun::with_stages(stages.iter().map(|s| {
                (
                    StageRef::new(plan.file.pipeline(), s.name.clone()),
                    s.initial_replicas,
                )
            }))),
        };
        let policy = build_policy(&cli, &plan)?;
        let mut bound = vec![("mesh", mesh.addr())];
        if let Some(l) = &http {
            bound.push((
                "http",
                l.local_addr()
                    .context("--http-listen address")
                    .map_err(|e| (Exit::Internal, e))?,
            ));
        }
        let history = usize::try_from(cli.decision_history).unwrap_or(usize::MAX);
        let shared = Shared::new(history);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = http.map(|listener| {
            let admin = sair_service::admin::Admin::new(move || handle.render());
            let mut stop = stop_rx.clone();
            tokio::spawn(api::serve(listener, Arc::clone(&shared), admin, async move {
                let _ = stop.wait_for(|s| *s).await;
            }))
        });
        tracing::info!(
            pipeline = plan.file.pipeline(),
            policy = %cli.policy,
            actuator = actuator.name(),
            interval = ?cli.interval,
            node = %plan.mesh.node,
            "coordinator starting"
        );
        sair_service::announce::bound(BINARY, &bound);
        let gate = election.as_ref().map(|e| {
            let watch = e.watch();
            Box::new(move || watch.held_term()) as sair_coordinator::live::run::Gate
        });
        let mut live = Live::new(
            plan.file,
            &plan.mesh.node,
            policy,
            actuator,
            mesh,
            Arc::clone(&shared),
            LoopOptions {
                interval: cli.interval,
                stale_windows: f64::from(cli.stale_windows),
                decisions_log: plan.decisions_log,
                backoff: Backoff::default(),
            },
        );
        if let Some(gate) = gate {
            live = live.gated_by(gate);
        }
        let result = live
            .run(async {
                let sig = sair_service::shutdown::signal().await;
                tracing::info!(signal = ?sig, "stopping: writing the last record, stopping replicas, leaving the mesh");
            })
            .await;
        // After the actuator's shutdown (inside run): release the Lease.
        if let Some(e) = election {
            e.shutdown().await;
        }
        let _ = stop_tx.send(true);
        if let Some(s) = server
            && let Err(e) = s.await
        {
            tracing::warn!(error = %e, "the API server ended abnormally");
        }
        result.map_err(|e| (Exit::Internal, anyhow!(e)))
    })
}

#[cfg(test)]
mod tests;
