//! One replica's life: start the model server, wait for its readiness check, start the
//! sidecar in front, wait for its `/readyz`, list it; then watch both processes until told to
//! stop (unlist, wait for upstream sidecars to notice, drain the sidecar, stop the server) or
//! until one dies. A model server that dies is started again behind the sidecar that stays, on
//! the same port, as the kubelet restarts a crashed container in its pod: the requests the
//! sidecar holds reach the new process. A dead sidecar, or a server that cannot come back on
//! its port, restarts the whole replica (unlist, stop the other, start both after a backoff).

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Command;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::{LocalOptions, LocalStage, Placeholders, expand};
use super::endpoints::{ReplicaRecord, ServingSet};
use super::process::{
    Group, ProcId, free_port, http_ok, read_bound_file, stop, stop_adopted, supervised,
};
use crate::metrics::ACTUATOR_RESTARTS_TOTAL;

/// A replica that has served at least this long before it died starts its restart backoff
/// afresh: it was not crash-looping.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Bound on `sair-node-agent set-rate` / `remove`.
const AGENT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Readiness probe: each attempt's bound, and the pause between attempts.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// Everything a stage's replicas are started from, resolved once by `LocalActuator::new`.
#[derive(Debug)]
pub(crate) struct StagePlan {
    pub spec: LocalStage,
    pub options: Arc<LocalOptions>,
    pub program: PathBuf,
    pub sidecar: PathBuf,
    /// `sair-node-agent`, for GPU stages with a shm dir (creates and removes segments).
    pub node_agent: Option<PathBuf>,
    /// The next stage's endpoints file (sidecar `--next file:`).
    pub next_file: Option<PathBuf>,
    pub log_dir: PathBuf,
    pub serving: Arc<ServingSet>,
    pub restarts: AtomicU64,
}

/// Where a replica is in its life (`LocalActuator::replicas`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Processes starting, not yet ready.
    Starting,
    /// Ready and listed in the endpoints file.
    Serving,
    /// Died or failed to start; waiting out the backoff before the next start.
    Restarting,
    /// Unlisted and draining.
    Stopping,
    /// Every process of it has exited.
    Stopped,
}

/// A replica as the supervisor sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaView {
    pub replica: u32,
    pub phase: Phase,
    /// The sidecar's request address while serving.
    pub address: Option<SocketAddr>,
    /// Times it was restarted after dying or failing to start.
    pub restarts: u64,
    /// Why it last failed.
    pub last_error: Option<String>,
    /// Process ids of the current model server and sidecar (for operators and fault tests).
    pub server_pid: Option<u32>,
    pub sidecar_pid: Option<u32>,
}

pub(crate) type SharedView = Arc<Mutex<ReplicaView>>;

pub(crate) fn update(view: &SharedView, f: impl FnOnce(&mut ReplicaView)) {
    // Each update is a field assignment: a poisoned lock still holds a consistent view.
    let mut v = view.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut v);
}

enum Outcome {
    Stopped,
    Failed { reason: String, served: Duration },
}

/// The replica's task: start (or, with `adopt`, take over the processes an earlier supervisor
/// started), watch, restart with backoff, until `stop` is cancelled.
pub(crate) async fn supervise(
    plan: Arc<StagePlan>,
    replica: u32,
    stop: CancellationToken,
    view: SharedView,
    mut adopt: Option<ReplicaRecord>,
) {
    let stage = &plan.spec.stage;
    let segment = format!("{}.{}.{replica}", stage.pipeline, stage.stage);
    let mut backoff = RestartBackoff::default();
    loop {
        let outcome = match adopt.take() {
            Some(rec) => adopted(&plan, rec, &segment, &stop, &view, &mut backoff).await,
            None => {
                update(&view, |v| v.phase = Phase::Starting);
                run_once(&plan, replica, &segment, &stop, &view, &mut backoff).await
            }
        };
        // Every process of this start has exited (each path stops what it started).
        if let Err(e) = plan.serving.forget(replica) {
            tracing::error!(%stage, replica, error = %e, "cannot update the replica records");
        }
        match outcome {
            Outcome::Stopped => break,
            Outcome::Failed { reason, served } => {
                if let Err(e) = plan.serving.remove(replica) {
                    tracing::error!(%stage, replica, error = %e, "cannot unlist a failed replica");
                }
                let wait = backoff.failed(served, &plan.options);
                count_restart(
                    &plan,
                    replica,
                    &view,
                    &backoff,
                    reason,
                    wait,
                    "replica failed; restarting",
                );
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    if plan.spec.gpu {
        remove_segment(&plan, &segment).await;
    }
    update(&view, |v| {
        v.phase = Phase::Stopped;
        v.address = None;
        v.server_pid = None;
        v.sidecar_pid = None;
    });
    tracing::info!(%stage, replica, "replica stopped");
}

/// A replica's consecutive failures, and the wait before its next start they earn (not
/// `crate::retry::Backoff`, which bounds the attempts of one actuator call).
#[derive(Debug, Default)]
struct RestartBackoff {
    failures: u32,
}

impl RestartBackoff {
    /// Counts a failure after `served` of serving: `restart_initial` doubled per consecutive
    /// failure up to `restart_max`, afresh after a stable spell.
    fn failed(&mut self, served: Duration, o: &LocalOptions) -> Duration {
        if served >= STABLE_AFTER {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        o.restart_initial
            .saturating_mul(1u32 << (self.failures - 1).min(16))
            .min(o.restart_max)
    }
}

/// Counts one restart (metric, stage total, the replica's view) and says why.
fn count_restart(
    plan: &StagePlan,
    replica: u32,
    view: &SharedView,
    backoff: &RestartBackoff,
    reason: String,
    wait: Duration,
    what: &'static str,
) {
    let stage = &plan.spec.stage;
    plan.restarts.fetch_add(1, Ordering::Relaxed);
    metrics::counter!(ACTUATOR_RESTARTS_TOTAL,
        "pipeline" => stage.pipeline.clone(), "stage" => stage.stage.clone())
    .increment(1);
    tracing::warn!(%stage, replica, failures = backoff.failures, %reason,
        restart_in_ms = wait.as_millis() as u64, "{what}");
    update(view, |v| {
        v.phase = Phase::Restarting;
        v.address = None;
        v.restarts += 1;
        v.last_error = Some(reason);
    });
}

/// Counts a model server's death after `served` (`status` says how it ended) as a restart in
/// place, and returns the backoff before its successor starts.
fn server_died(
    plan: &StagePlan,
    replica: u32,
    view: &SharedView,
    backoff: &mut RestartBackoff,
    served: Duration,
    status: &str,
    server_log: &std::path::Path,
) -> Duration {
    let wait = backoff.failed(served, &plan.options);
    let reason = format!(
        "model server exited ({status}); see {}",
        server_log.display()
    );
    count_restart(
        plan,
        replica,
        view,
        backoff,
        reason,
        wait,
        "model server died; restarting it behind its sidecar",
    );
    wait
}

/// The model server's log, appended across its restarts.
fn server_log(plan: &StagePlan, segment: &str) -> PathBuf {
    plan.log_dir.join(format!("{segment}.server.log"))
}

/// How a model server's start ended.
enum ServerStart {
    Ready(tokio::process::Child, Group),
    Stopped,
    Failed(String),
}

/// Starts the model server on `vars.port` and waits for its readiness check. Whatever fails, the
/// process is stopped before this returns.
async fn start_server(
    plan: &StagePlan,
    vars: &Placeholders<'_>,
    record: &mut ReplicaRecord,
    stop_token: &CancellationToken,
    view: &SharedView,
) -> ServerStart {
    let spec = &plan.spec;
    let stage = &spec.stage;
    let o = &plan.options;
    let server_log = server_log(plan, vars.segment);
    let mut cmd = Command::new(&plan.program);
    cmd.args(spec.run.command[1..].iter().map(|a| expand(a, vars)));
    server_env(&mut cmd, plan, vars.segment, vars);
    if let Err(e) = supervised(&mut cmd, &server_log) {
        return ServerStart::Failed(format!("cannot open {}: {e}", server_log.display()));
    }
    let mut server = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ServerStart::Failed(format!("cannot start {}: {e}", plan.program.display()));
        }
    };
    let server_group = Group::of(&server);
    update(view, |v| v.server_pid = server.id());
    record.server = server.id().and_then(ProcId::of);
    record.server_port = vars.port;
    if let Err(e) = plan.serving.record(record.clone()) {
        stop(&mut server, server_group, o.stop_grace, "model server").await;
        return ServerStart::Failed(e.to_string());
    }
    let server_addr = SocketAddr::from(([127, 0, 0, 1], vars.port));
    tracing::info!(%stage, replica = vars.replica, pid = server.id(), %server_addr, "model server started");
    let ready_by = Instant::now() + spec.run.startup_timeout;
    let ready = tokio::select! {
        () = stop_token.cancelled() => None,
        status = server.wait() => Some(Err(format!(
            "model server exited during start-up ({}); see {}",
            describe(status), server_log.display()))),
        ok = wait_ready(server_addr, &spec.run.ready_path, ready_by) => Some(if ok {
            Ok(())
        } else {
            Err(format!("model server not ready on {}{} within {:?}; see {}",
                server_addr, spec.run.ready_path, spec.run.startup_timeout, server_log.display()))
        }),
    };
    match ready {
        Some(Ok(())) => ServerStart::Ready(server, server_group),
        None => {
            stop(&mut server, server_group, o.stop_grace, "model server").await;
            ServerStart::Stopped
        }
        Some(Err(reason)) => {
            stop(&mut server, server_group, o.stop_grace, "model server").await;
            ServerStart::Failed(reason)
        }
    }
}

/// One start of the replica and its watch, until it stops or fails. A model server that dies
/// while its sidecar lives is started again here, in place.
async fn run_once(
    plan: &StagePlan,
    replica: u32,
    segment: &str,
    stop_token: &CancellationToken,
    view: &SharedView,
    backoff: &mut RestartBackoff,
) -> Outcome {
    let failed = |reason: String| Outcome::Failed {
        reason,
        served: Duration::ZERO,
    };
    let spec = &plan.spec;
    let stage = &spec.stage;
    let o = &plan.options;
    if spec.gpu
        && let Err(reason) = ensure_segment(plan, segment).await
    {
        return failed(reason);
    }

    // The model server.
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => return failed(format!("no free port on 127.0.0.1: {e}")),
    };
    let vars = Placeholders {
        port,
        replica,
        segment,
        pipeline: &stage.pipeline,
        stage: &stage.stage,
    };
    let server_log = server_log(plan, segment);
    let mut record = ReplicaRecord {
        replica,
        ..ReplicaRecord::default()
    };
    let (mut server, mut server_group) =
        match start_server(plan, &vars, &mut record, stop_token, view).await {
            ServerStart::Ready(server, group) => (server, group),
            ServerStart::Stopped => return Outcome::Stopped,
            ServerStart::Failed(reason) => return failed(reason),
        };
    let server_addr = SocketAddr::from(([127, 0, 0, 1], port));

    // The sidecar in front of it.
    let sidecar_log = plan.log_dir.join(format!("{segment}.sidecar.log"));
    let mut cmd = Command::new(&plan.sidecar);
    cmd.args(sidecar_args(plan, replica, server_addr));
    strip_sair_env(&mut cmd);
    if let Err(e) = supervised(&mut cmd, &sidecar_log) {
        stop(&mut server, server_group, o.stop_grace, "model server").await;
        return failed(format!("cannot open {}: {e}", sidecar_log.display()));
    }
    // Its stdout (the bound line) goes to a file of its own, truncated per start: a pipe
    // would tie the sidecar to this process, and replicas must outlive it.
    let bound_file = plan.log_dir.join(format!("{segment}.sidecar.out"));
    match std::fs::File::create(&bound_file) {
        Ok(f) => {
            cmd.stdout(f);
        }
        Err(e) => {
            stop(&mut server, server_group, o.stop_grace, "model server").await;
            return failed(format!("cannot create {}: {e}", bound_file.display()));
        }
    }
    let mut sidecar = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            stop(&mut server, server_group, o.stop_grace, "model server").await;
            return failed(format!("cannot start {}: {e}", plan.sidecar.display()));
        }
    };
    let sidecar_group = Group::of(&sidecar);
    update(view, |v| v.sidecar_pid = sidecar.id());
    record.sidecar = sidecar.id().and_then(ProcId::of);
    let sidecar_proc = record.sidecar;
    if let Err(e) = plan.serving.record(record.clone()) {
        stop(&mut sidecar, sidecar_group, o.stop_grace, "sidecar").await;
        stop(&mut server, server_group, o.stop_grace, "model server").await;
        return failed(e.to_string());
    }
    let sidecar_by = Instant::now() + o.sidecar_start_timeout;
    let sidecar_alive = move || sidecar_proc.is_some_and(ProcId::running);
    let started = tokio::select! {
        () = stop_token.cancelled() => None,
        status = sidecar.wait() => Some(Err(format!(
            "sidecar exited during start-up ({}); see {}", describe(status), sidecar_log.display()))),
        status = server.wait() => Some(Err(format!(
            "model server exited while its sidecar started ({}); see {}",
            describe(status), server_log.display()))),
        r = sidecar_ready(&bound_file, sidecar_by, sidecar_alive) => Some(r.map_err(|e| format!(
            "sidecar did not start: {e}; see {}", sidecar_log.display()))),
    };
    let (listen, admin) = match started {
        Some(Ok(addrs)) => addrs,
        other => {
            stop(&mut sidecar, sidecar_group, o.stop_grace, "sidecar").await;
            stop(&mut server, server_group, o.stop_grace, "model server").await;
            return match other {
                Some(Err(reason)) => failed(reason),
                _ => Outcome::Stopped,
            };
        }
    };
    // The record is what a restarted supervisor adopts; an in-place restart of the server
    // rewrites it whole, so it keeps the sidecar's addresses too.
    record.listen = Some(listen);
    record.admin = Some(admin);
    if let Err(e) = plan.serving.record(record.clone()) {
        stop(&mut sidecar, sidecar_group, o.stop_grace, "sidecar").await;
        stop(&mut server, server_group, o.stop_grace, "model server").await;
        return failed(e.to_string());
    }

    enum Event {
        Stop,
        ServerDied(String),
        SidecarDied(String),
    }
    let drain_bound = o.drain_timeout.saturating_add(o.stop_grace);
    loop {
        // Serving: listed only now that both answered their readiness checks.
        if let Err(e) = plan.serving.insert(replica, listen) {
            stop(&mut sidecar, sidecar_group, o.stop_grace, "sidecar").await;
            stop(&mut server, server_group, o.stop_grace, "model server").await;
            return failed(e.to_string());
        }
        let serving_since = Instant::now();
        update(view, |v| {
            v.phase = Phase::Serving;
            v.address = Some(listen);
        });
        tracing::info!(%stage, replica, %listen, "replica serving");

        let event = tokio::select! {
            () = stop_token.cancelled() => Event::Stop,
            status = server.wait() => Event::ServerDied(describe(status)),
            status = sidecar.wait() => Event::SidecarDied(describe(status)),
        };
        // Out of the list first, whatever happened: upstream must stop picking it.
        if let Err(e) = plan.serving.remove(replica) {
            tracing::error!(%stage, replica, error = %e, "cannot unlist a replica");
        }
        update(view, |v| {
            v.phase = Phase::Stopping;
            v.address = None;
        });
        let status = match event {
            Event::Stop => {
                // Upstream sidecars re-read the list every discovery interval; until they
                // have, they may still pick this replica, so it keeps serving that long.
                tokio::time::sleep(o.deregister_delay).await;
                stop(&mut sidecar, sidecar_group, drain_bound, "sidecar").await;
                stop(&mut server, server_group, o.stop_grace, "model server").await;
                return Outcome::Stopped;
            }
            Event::SidecarDied(status) => {
                sidecar_group.signal(nix::sys::signal::Signal::SIGKILL);
                stop(&mut server, server_group, o.stop_grace, "model server").await;
                return Outcome::Failed {
                    reason: format!("sidecar exited ({status}); see {}", sidecar_log.display()),
                    served: serving_since.elapsed(),
                };
            }
            Event::ServerDied(status) => status,
        };

        // The model server died; its sidecar lives and holds what it was sent, retrying the
        // connect (`--connect-retry-for`). Whatever the server forked goes; a new one starts
        // on the same port after the backoff, and those requests reach it.
        server_group.signal(nix::sys::signal::Signal::SIGKILL);
        let wait = server_died(
            plan,
            replica,
            view,
            backoff,
            serving_since.elapsed(),
            &status,
            &server_log,
        );
        let restarted = tokio::select! {
            () = stop_token.cancelled() => ServerStart::Stopped,
            status = sidecar.wait() => ServerStart::Failed(format!(
                "sidecar exited while its model server restarted ({}); see {}",
                describe(status), sidecar_log.display())),
            () = tokio::time::sleep(wait) => {
                start_server(plan, &vars, &mut record, stop_token, view).await
            }
        };
        match restarted {
            ServerStart::Ready(mut s, g) => {
                if let Ok(Some(status)) = sidecar.try_wait() {
                    stop(&mut s, g, o.stop_grace, "model server").await;
                    return failed(format!(
                        "sidecar exited while its model server restarted ({status}); see {}",
                        sidecar_log.display()
                    ));
                }
                (server, server_group) = (s, g);
            }
            ServerStart::Stopped => {
                stop(&mut sidecar, sidecar_group, drain_bound, "sidecar").await;
                return Outcome::Stopped;
            }
            ServerStart::Failed(reason) => {
                // Perhaps its port was taken meanwhile: the whole replica starts afresh.
                stop(&mut sidecar, sidecar_group, o.stop_grace, "sidecar").await;
                return failed(reason);
            }
        }
    }
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("wait failed: {e}"),
    }
}

/// Polls `GET path` until it answers 200 or `deadline` passes.
async fn wait_ready(addr: SocketAddr, path: &str, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if http_ok(addr, path, PROBE_TIMEOUT.min(left)).await {
            return true;
        }
        if Instant::now() + PROBE_EVERY >= deadline {
            return false;
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// The sidecar's bound line, then its `/readyz` on the admin address: its request and admin
/// addresses.
async fn sidecar_ready(
    bound_file: &std::path::Path,
    deadline: Instant,
    alive: impl FnMut() -> bool,
) -> Result<(SocketAddr, SocketAddr), String> {
    let addrs = read_bound_file(bound_file, deadline, alive).await?;
    let find = |role: &str| addrs.iter().find(|(r, _)| r == role).map(|(_, a)| *a);
    let (Some(listen), Some(admin)) = (find("listen"), find("admin")) else {
        return Err(format!("bound line lacks listen/admin: {addrs:?}"));
    };
    if wait_ready(admin, "/readyz", deadline).await {
        Ok((listen, admin))
    } else {
        Err(format!("{admin}/readyz did not answer 200 in time"))
    }
}

/// How often an adopted replica's processes are checked (they are not this process's
/// children, so nothing signals their exit).
const ADOPTED_POLL: Duration = Duration::from_millis(250);

/// Takes over a replica an earlier supervisor started: checks that both processes still answer
/// their readiness checks, keeps it listed, and watches it until told to stop (the same order
/// as a replica of its own) or until a process dies. A dead model server is started again
/// behind the adopted sidecar, on its port, as for a replica of its own; that server is then
/// this supervisor's child.
async fn adopted(
    plan: &StagePlan,
    mut rec: ReplicaRecord,
    segment: &str,
    stop_token: &CancellationToken,
    view: &SharedView,
    backoff: &mut RestartBackoff,
) -> Outcome {
    let stage = &plan.spec.stage;
    let o = &plan.options;
    let replica = rec.replica;
    let (Some(adopted_server), Some(sidecar), Some(listen), Some(admin)) =
        (rec.server, rec.sidecar, rec.listen, rec.admin)
    else {
        // `LocalActuator::new` adopts only complete records; anything else is stopped there.
        return Outcome::Failed {
            reason: "incomplete replica record".into(),
            served: Duration::ZERO,
        };
    };
    let drain_bound = o.drain_timeout.saturating_add(o.stop_grace);
    // The model server: the adopted process until it dies, then one of this supervisor's.
    let mut own: Option<(tokio::process::Child, Group)> = None;
    let stop_server = |own: Option<(tokio::process::Child, Group)>| async move {
        match own {
            Some((mut child, group)) => {
                stop(&mut child, group, o.stop_grace, "model server").await;
            }
            None => stop_adopted(adopted_server, o.stop_grace, "model server").await,
        }
    };
    let server_addr = SocketAddr::from(([127, 0, 0, 1], rec.server_port));
    let by = Instant::now() + o.sidecar_start_timeout;
    let ready = wait_ready(admin, "/readyz", by).await
        && wait_ready(server_addr, &plan.spec.run.ready_path, by).await;
    if !ready {
        if let Err(e) = plan.serving.remove(replica) {
            tracing::error!(%stage, replica, error = %e, "cannot unlist a replica");
        }
        stop_adopted(sidecar, drain_bound, "sidecar").await;
        stop_server(own).await;
        return Outcome::Failed {
            reason: "an adopted replica did not answer its readiness checks".into(),
            served: Duration::ZERO,
        };
    }
    update(view, |v| {
        v.server_pid = Some(adopted_server.pid);
        v.sidecar_pid = Some(sidecar.pid);
    });
    tracing::info!(%stage, replica, %listen, "adopted a running replica");
    let server_log = server_log(plan, segment);
    let vars = Placeholders {
        port: rec.server_port,
        replica,
        segment,
        pipeline: &stage.pipeline,
        stage: &stage.stage,
    };
    enum Died {
        Server(String),
        Sidecar,
    }
    loop {
        if let Err(e) = plan.serving.insert(replica, listen) {
            stop_adopted(sidecar, drain_bound, "sidecar").await;
            stop_server(own).await;
            return Outcome::Failed {
                reason: e.to_string(),
                served: Duration::ZERO,
            };
        }
        update(view, |v| {
            v.phase = Phase::Serving;
            v.address = Some(listen);
        });
        let since = Instant::now();
        // Adopted processes are not this process's children: nothing signals their exit, so
        // they are polled.
        let died = loop {
            let server_exited = match own.as_mut() {
                Some((child, _)) => tokio::select! {
                    () = stop_token.cancelled() => break None,
                    status = child.wait() => Some(describe(status)),
                    () = tokio::time::sleep(ADOPTED_POLL) => None,
                },
                None => tokio::select! {
                    () = stop_token.cancelled() => break None,
                    () = tokio::time::sleep(ADOPTED_POLL) => {
                        (!adopted_server.running()).then(|| "the adopted process exited".to_owned())
                    }
                },
            };
            if let Some(status) = server_exited {
                break Some(Died::Server(status));
            }
            if !sidecar.running() {
                break Some(Died::Sidecar);
            }
        };
        if let Err(e) = plan.serving.remove(replica) {
            tracing::error!(%stage, replica, error = %e, "cannot unlist a replica");
        }
        update(view, |v| {
            v.phase = Phase::Stopping;
            v.address = None;
        });
        let status = match died {
            None => {
                tokio::time::sleep(o.deregister_delay).await;
                stop_adopted(sidecar, drain_bound, "sidecar").await;
                stop_server(own).await;
                return Outcome::Stopped;
            }
            Some(Died::Sidecar) => {
                stop_adopted(sidecar, o.stop_grace, "sidecar").await;
                stop_server(own).await;
                return Outcome::Failed {
                    reason: "sidecar of the adopted replica exited".into(),
                    served: since.elapsed(),
                };
            }
            Some(Died::Server(status)) => status,
        };
        // As in `run_once`: whatever the server forked goes, and a new one starts on its port
        // behind the sidecar that stays.
        match own.take() {
            Some((_, group)) => group.signal(nix::sys::signal::Signal::SIGKILL),
            None => adopted_server
                .group()
                .signal(nix::sys::signal::Signal::SIGKILL),
        }
        let wait = server_died(
            plan,
            replica,
            view,
            backoff,
            since.elapsed(),
            &status,
            &server_log,
        );
        let restarted = tokio::select! {
            () = stop_token.cancelled() => ServerStart::Stopped,
            () = tokio::time::sleep(wait) => {
                start_server(plan, &vars, &mut rec, stop_token, view).await
            }
        };
        match restarted {
            ServerStart::Ready(mut child, group) => {
                if !sidecar.running() {
                    stop(&mut child, group, o.stop_grace, "model server").await;
                    return Outcome::Failed {
                        reason: "sidecar of the adopted replica exited while its model server \
                                 restarted"
                            .into(),
                        served: Duration::ZERO,
                    };
                }
                own = Some((child, group));
            }
            ServerStart::Stopped => {
                stop_adopted(sidecar, drain_bound, "sidecar").await;
                return Outcome::Stopped;
            }
            ServerStart::Failed(reason) => {
                stop_adopted(sidecar, o.stop_grace, "sidecar").await;
                return Outcome::Failed {
                    reason,
                    served: Duration::ZERO,
                };
            }
        }
    }
}

fn sidecar_args(plan: &StagePlan, replica: u32, upstream: SocketAddr) -> Vec<String> {
    let spec = &plan.spec;
    let run = &spec.run;
    let o = &plan.options;
    let mut a: Vec<String> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--metrics-listen".into(),
        "127.0.0.1:0".into(),
        "--upstream".into(),
        format!("http://{upstream}"),
        "--pipeline".into(),
        spec.stage.pipeline.clone(),
        "--stage".into(),
        spec.stage.stage.clone(),
        "--replica".into(),
        replica.to_string(),
        "--max-concurrency".into(),
        run.max_concurrency.unwrap_or(spec.concurrency).to_string(),
        "--drain-timeout".into(),
        sair_service::duration::format_duration(o.drain_timeout),
    ];
    if let Some(c) = run.queue_capacity {
        a.extend(["--queue-capacity".into(), c.to_string()]);
    }
    if let Some(t) = run.queue_timeout {
        a.extend([
            "--queue-timeout".into(),
            sair_service::duration::format_duration(t),
        ]);
    }
    if let (Some(file), Some(next)) = (&plan.next_file, &spec.next) {
        a.extend([
            "--next".into(),
            format!("file:{}", file.display()),
            "--next-stage".into(),
            next.clone(),
        ]);
    }
    if let Some(agent) = &o.agent {
        a.extend(["--agent".into(), agent.addr.clone()]);
        match &agent.trust {
            super::config::AgentTrust::Ca(ca) => {
                a.extend(["--agent-ca".into(), ca.display().to_string()]);
            }
            super::config::AgentTrust::InsecureSkipVerify => {
                a.push("--agent-insecure-skip-verify".into());
            }
        }
        if let Some(name) = &agent.server_name {
            a.extend(["--agent-server-name".into(), name.clone()]);
        }
    }
    a.extend(run.sidecar_args.iter().cloned());
    a
}

/// The sidecar and the node agent read `SAIR_*` variables as configuration: one meant for the
/// coordinator (`SAIR_CONFIG`, `SAIR_LISTEN`, …) must not reach them.
fn strip_sair_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SAIR_") {
            cmd.env_remove(&key);
        }
    }
}

/// The model server inherits the supervisor's environment minus what the supervisor decides
/// per replica (segment variables) and `sair-stage`'s own configuration variables, then gets
/// the stage's `env` and, for a GPU stage, its segment and the interception library.
fn server_env(cmd: &mut Command, plan: &StagePlan, segment: &str, vars: &Placeholders<'_>) {
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("SAIR_STAGE_")
            || matches!(
                &*k,
                "SAIR_SEGMENT" | "SAIR_SHM_DIR" | "SAIR_SHM_PATH" | "SAIR_CONFIG"
            )
        {
            cmd.env_remove(&key);
        }
    }
    for (k, v) in &plan.spec.run.env {
        cmd.env(k, expand(v, vars));
    }
    if plan.spec.gpu {
        cmd.env("SAIR_SEGMENT", segment);
        if let Some(dir) = &plan.options.shm_dir {
            cmd.env("SAIR_SHM_DIR", dir);
        }
        if let Some(lib) = &plan.options.intercept_lib {
            // Keep a preload the stage asked for, after ours.
            let preload = match plan.spec.run.env.get("LD_PRELOAD") {
                Some(theirs) if !theirs.is_empty() => {
                    format!("{}:{}", lib.display(), expand(theirs, vars))
                }
                _ => lib.display().to_string(),
            };
            cmd.env("LD_PRELOAD", preload);
        }
    }
}

/// Creates the replica's segment, mode `off` (counted, not limited), unless it exists: the
/// node agent applies a stage's ρ only to segments that exist, and a new segment picks up the
/// stage's admitted ρ on the agent's next period. A segment left from an earlier start of this
/// replica keeps the rate the agent gave it.
async fn ensure_segment(plan: &StagePlan, segment: &str) -> Result<(), String> {
    let (Some(dir), Some(agent)) = (&plan.options.shm_dir, &plan.node_agent) else {
        return Ok(()); // no shm dir: the replica runs unmanaged (docs/actuator.md)
    };
    if dir.join(format!("{segment}.seg")).exists() {
        return Ok(());
    }
    let gpu = plan.spec.run.gpu.to_string();
    let args = [
        OsStr::new("set-rate"),
        OsStr::new("--shm-dir"),
        dir.as_os_str(),
        OsStr::new("--segment"),
        OsStr::new(segment),
        OsStr::new("--rate"),
        OsStr::new("1"),
        OsStr::new("--mode"),
        OsStr::new("off"),
        OsStr::new("--gpu"),
        OsStr::new(&gpu),
        OsStr::new("--create-parents"),
    ];
    agent_command(agent, &args)
        .await
        .map_err(|e| format!("cannot create segment {segment}: {e}"))
}

/// Removes the replica's segment once its processes are gone, so its share stops counting
/// towards the GPU's Σρ at once rather than after the agent's idle GC.
async fn remove_segment(plan: &StagePlan, segment: &str) {
    let (Some(dir), Some(agent)) = (&plan.options.shm_dir, &plan.node_agent) else {
        return;
    };
    if !dir.join(format!("{segment}.seg")).exists() {
        return;
    }
    let args = [
        OsStr::new("remove"),
        OsStr::new("--shm-dir"),
        dir.as_os_str(),
        OsStr::new("--segment"),
        OsStr::new(segment),
    ];
    if let Err(e) = agent_command(agent, &args).await {
        tracing::warn!(segment, error = %e, "cannot remove segment; the agent's GC will");
    }
}

async fn agent_command(program: &std::path::Path, args: &[&OsStr]) -> Result<(), String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    strip_sair_env(&mut cmd);
    match tokio::time::timeout(AGENT_COMMAND_TIMEOUT, cmd.output()).await {
        Err(_) => Err(format!("{} timed out", program.display())),
        Ok(Err(e)) => Err(format!("cannot run {}: {e}", program.display())),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(format!(
            "{} {}: {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}
