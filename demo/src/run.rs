//! One demo run, start to end: check, start (agent, coordinator, load), watch, stop, report.
//!
//! Shutdown handshake: SIGINT and SIGTERM handlers are installed before the first child
//! starts; a signal only flips a flag, and the run then stops what it started in the reverse
//! order of dependence (load generator, coordinator — which stops its replicas — then the
//! agent), each with SIGTERM and a grace period before SIGKILL. The demo is also the child
//! subreaper of everything below it, so a replica orphaned by a killed coordinator is
//! re-parented to the demo and stopped at the end too: nothing is left running.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::watch;

use crate::api::{self, DecisionLine, Decisions, Pipelines};
use crate::bins::{Bins, EMU_NVML};
use crate::child::{self, Role, Running, Spec, Supervised};
use crate::report::{self, Inputs, Results};
use crate::series::Sample;
use crate::view::{Frame, View};
use crate::{DemoArgs, DemoError, Pattern, pipeline};

/// How long a process may take to print its bound line.
const START_PATIENCE: Duration = Duration::from_secs(30);
/// How long the coordinator may take to have every stage serving.
const READY_PATIENCE: Duration = Duration::from_secs(90);
/// SIGTERM → SIGKILL grace; the coordinator's includes draining its replicas.
const GRACE: Duration = Duration::from_secs(10);
const COORDINATOR_GRACE: Duration = Duration::from_secs(30);
/// From every stage serving to the load: longer than the sidecars' discovery interval (1 s).
const SETTLE: Duration = Duration::from_secs(2);
/// How often the coordinator is polled and the view redrawn.
const TICK: Duration = Duration::from_secs(1);
/// Per request to the coordinator's API.
const API_TIMEOUT: Duration = Duration::from_secs(3);
/// Names on the mesh (and of the certificates).
const AGENT_NODE: &str = "demo-node";
const COORDINATOR_NODE: &str = "demo-coordinator";
/// Marks a working folder as the demo's own, so that a rerun may replace it.
const MARKER: &str = ".sair-demo";

/// Runs the demo; returns the path of `report.html`. `verbose` (`-v`) copies every child's
/// output to the terminal as well as to its log file.
pub fn run(args: DemoArgs, verbose: u8) -> Result<PathBuf, DemoError> {
    args.validate()?;
    // Before anything starts: the report folder must be writable, the binaries present and
    // the pipelines file readable.
    prepare_out(&args.out)?;
    let bins = Bins::beside_current_exe()?;
    let text = match &args.pipeline {
        None => pipeline::SHIPPED.to_string(),
        Some(p) => std::fs::read_to_string(p).map_err(|source| DemoError::Pipeline {
            path: p.clone(),
            source,
        })?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(DemoError::Runtime)?;
    rt.block_on(Demo::new(args, bins, verbose > 0, text)?.run())
}

/// Creates `out` and proves a file can be written there.
fn prepare_out(out: &Path) -> Result<(), DemoError> {
    let err = |source| DemoError::Out {
        path: out.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(out).map_err(err)?;
    let probe = out.join(".sair-demo-probe");
    std::fs::write(&probe, b"probe").map_err(err)?;
    std::fs::remove_file(&probe).map_err(err)?;
    Ok(())
}

/// The processes of a run, for teardown whatever happened.
#[derive(Debug, Default)]
struct Procs {
    agent: Option<Supervised>,
    coordinator: Option<Supervised>,
    loadgen: Option<Running>,
}

/// What the watched part of the run produced.
#[derive(Debug, Default)]
struct Watched {
    samples: Vec<Sample>,
    decisions: Vec<serde_json::Value>,
    events: Vec<(f64, String)>,
    interrupted: bool,
    loaded: bool,
}

#[derive(Debug)]
struct Demo {
    args: DemoArgs,
    bins: Bins,
    echo: bool,
    out: PathBuf,
    work: PathBuf,
    logs: PathBuf,
    pipeline_text: String,
    pipeline_name: String,
    slo_p99_s: Option<f64>,
}

impl Demo {
    fn new(args: DemoArgs, bins: Bins, echo: bool, raw_text: String) -> Result<Self, DemoError> {
        let out = args.out.clone();
        let work = out.join("run");
        let logs = out.join("logs");
        let pipeline_text = pipeline::render(&raw_text, &work, bins.dir());
        Ok(Demo {
            pipeline_name: pipeline::name(&pipeline_text).unwrap_or_else(|| "pipeline".into()),
            slo_p99_s: pipeline::slo_p99_s(&pipeline_text),
            args,
            bins,
            echo,
            out,
            work,
            logs,
            pipeline_text,
        })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.work.join(rel)
    }

    /// Fresh working folders, the emulator's driver links, certificates and the pipelines file.
    fn prepare(&self) -> Result<(), DemoError> {
        if self.work.exists() {
            if !self.work.join(MARKER).exists() {
                return Err(DemoError::Out {
                    path: self.work.clone(),
                    source: std::io::Error::other(
                        "exists and is not a sair demo working folder; choose another --out",
                    ),
                });
            }
            std::fs::remove_dir_all(&self.work)
                .map_err(DemoError::io("old working folder", &self.work))?;
        }
        for d in ["", "lib", "shm", "tls", "state"] {
            let p = self.path(d);
            std::fs::create_dir_all(&p).map_err(DemoError::io("working folder", &p))?;
        }
        std::fs::create_dir_all(&self.logs).map_err(DemoError::io("logs folder", &self.logs))?;
        for entry in std::fs::read_dir(&self.logs)
            .map_err(DemoError::io("logs folder", &self.logs))?
            .flatten()
        {
            // Logs of a previous run in the same folder would be appended to otherwise.
            if entry.path().extension().is_some_and(|e| e == "log") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        std::fs::write(self.path(MARKER), b"sair demo working folder\n")
            .map_err(DemoError::io("working folder", self.path(MARKER)))?;
        // The GPU emulator as the driver a CUDA program (and NVML) finds by soname.
        for (lib, link) in [
            ("libsair_emu_cuda.so", "libcuda.so.1"),
            (EMU_NVML, "libnvidia-ml.so.1"),
        ] {
            let dst = self.path("lib").join(link);
            std::os::unix::fs::symlink(self.bins.path(lib), &dst)
                .map_err(DemoError::io("driver link", &dst))?;
        }
        let ca = self.path("ca");
        let certs = |source| DemoError::Certs {
            dir: ca.clone(),
            source,
        };
        sair_mesh::certs::init_ca(&ca).map_err(certs)?;
        for node in [AGENT_NODE, COORDINATOR_NODE] {
            sair_mesh::certs::issue(&ca, node, &self.path("certs")).map_err(certs)?;
        }
        let p = self.out.join("pipeline.toml");
        std::fs::write(&p, &self.pipeline_text).map_err(DemoError::io("pipelines file", &p))?;
        Ok(())
    }

    fn spec(&self, name: &'static str, program: &str) -> Spec {
        Spec {
            name,
            program: self.bins.path(program),
            args: Vec::new(),
            env: vec![
                // Every emulated GPU user shares one device time line per run.
                ("SAIR_EMU_STATE".into(), self.path("emu.state").into()),
                (
                    "RUST_LOG".into(),
                    std::env::var_os("RUST_LOG").unwrap_or_else(|| "info".into()),
                ),
            ],
            roles: Vec::new(),
            log: self.logs.join(format!("{name}.log")),
            echo: self.echo,
        }
    }

    fn member_args(&self, node: &str) -> Vec<OsString> {
        let certs = self.path("certs");
        vec![
            "--node".into(),
            node.into(),
            "--cert".into(),
            certs.join(format!("{node}.pem")).into(),
            "--key".into(),
            certs.join(format!("{node}.key")).into(),
            "--ca".into(),
            self.path("ca").join("ca.pem").into(),
        ]
    }

    fn agent_spec(&self) -> Spec {
        let mut s = self.spec("agent", "sair-node-agent");
        s.args = vec![
            "run".into(),
            "--shm-dir".into(),
            self.path("shm").into(),
            "--tls-dir".into(),
            self.path("tls").into(),
            "--nvml-lib".into(),
            self.path("lib").join("libnvidia-ml.so.1").into(),
        ];
        s.args.extend(self.member_args(AGENT_NODE));
        s.roles = vec![
            Role {
                flag: "--metrics-listen",
                name: "admin",
            },
            Role {
                flag: "--report-listen",
                name: "report",
            },
            Role {
                flag: "--mesh-listen",
                name: "mesh",
            },
        ];
        s
    }

    fn coordinator_spec(&self, agent_mesh: SocketAddr, agent_report: SocketAddr) -> Spec {
        let mut s = self.spec("coordinator", "sair-coordinator");
        s.args = vec![
            "--config".into(),
            self.out.join("pipeline.toml").into(),
            "--interval".into(),
            sair_service::duration::format_duration(self.args.interval).into(),
            "--policy".into(),
            self.args.policy.clone().into(),
            "--actuator".into(),
            "local".into(),
            "--state-dir".into(),
            self.path("state").into(),
            "--seeds".into(),
            agent_mesh.to_string().into(),
            "--work-dir".into(),
            self.path("local").into(),
            "--agent-report".into(),
            agent_report.to_string().into(),
            "--agent-ca".into(),
            self.path("tls").join("agent-cert.pem").into(),
            "--shm-dir".into(),
            self.path("shm").into(),
            "--intercept-lib".into(),
            self.bins.path("libsair_intercept.so").into(),
        ];
        s.args.extend(self.member_args(COORDINATOR_NODE));
        if let Some(url) = &self.args.llm_url {
            s.args.push("--llm-url".into());
            s.args.push(url.into());
        }
        s.roles = vec![
            Role {
                flag: "--http-listen",
                name: "http",
            },
            Role {
                flag: "--mesh-listen",
                name: "mesh",
            },
        ];
        s
    }

    /// `sair-loadgen`'s pattern flags for `--pattern`, and the burst windows.
    fn pattern_args(&self) -> (Vec<String>, Vec<[f64; 2]>) {
        let d = self.args.duration.as_secs_f64();
        let (rate, peak) = (self.args.rate.to_string(), self.args.peak.to_string());
        let p = self.args.pattern;
        let mut a = vec![
            "--pattern".to_string(),
            p.as_str().to_string(),
            "--rate".into(),
            rate,
        ];
        let mut bursts = Vec::new();
        match p {
            Pattern::Poisson => {}
            Pattern::Burst => {
                // One burst from half-way for a fifth of the run: the first half shows the
                // starting allocation at the base rate, the last 30 % the scale-down.
                let (every, len) = (d * 0.5, d * 0.2);
                a.extend([
                    "--peak".into(),
                    peak,
                    "--burst-every".into(),
                    format!("{every:.3}"),
                    "--burst-len".into(),
                    format!("{len:.3}"),
                ]);
                bursts = report::burst_windows(every, len, d);
            }
            Pattern::Ramp => a.extend(["--peak".into(), peak]),
            Pattern::Sine => {
                a.extend(["--peak".into(), peak, "--period".into(), format!("{d:.3}")])
            }
            Pattern::Step => {
                a.extend([
                    "--peak".into(),
                    peak,
                    "--step-at".into(),
                    format!("{:.3}", d / 3.0),
                ]);
            }
        }
        (a, bursts)
    }

    fn loadgen_spec(&self, target: &Path) -> Spec {
        let mut s = self.spec("loadgen", "sair-loadgen");
        let (pattern, _) = self.pattern_args();
        s.args = vec![
            "--target".into(),
            format!("file:{}", target.display()).into(),
            "--duration".into(),
            sair_service::duration::format_duration(self.args.duration).into(),
            // A client's patience, not a bound on the pipeline: while a replica restarts, its
            // upstream sidecar holds requests that reached no process (--connect-retry-for,
            // 10 s) rather than failing them, and a client with a 5 s timeout would give up on
            // requests the pipeline still answers. Enough connections that held requests do
            // not make the open-loop generator drop new ones.
            "--timeout".into(),
            "30s".into(),
            "--connections".into(),
            "256".into(),
            "--out".into(),
            self.out.join("loadgen.json").into(),
            "--quiet".into(),
        ];
        s.args.extend(pattern.into_iter().map(OsString::from));
        if let Some(slo) = self.slo_p99_s.filter(|_| self.loadgen_counts_late()) {
            s.args.push("--slo".into());
            s.args.push(format!("{}ms", (slo * 1e3).round()).into());
        }
        s
    }

    /// Whether this `sair-loadgen` counts requests over an SLO (`--slo`, the report's `late`).
    fn loadgen_counts_late(&self) -> bool {
        std::process::Command::new(self.bins.path("sair-loadgen"))
            .arg("--help")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--slo"))
    }

    /// The endpoints file the local actuator writes for the entry stage (what the load
    /// generator targets).
    fn entry_endpoints(&self, first_stage: &str) -> PathBuf {
        self.path("local")
            .join(format!("{}.{first_stage}.endpoints", self.pipeline_name))
    }

    fn write_pids(&self, procs: &Procs) {
        let mut m = serde_json::Map::new();
        m.insert("demo".into(), std::process::id().into());
        if let Some(a) = &procs.agent {
            m.insert("agent".into(), a.running.pid.into());
        }
        if let Some(c) = &procs.coordinator {
            m.insert("coordinator".into(), c.running.pid.into());
            if let Some(h) = c.addr("http") {
                m.insert("coordinator_http".into(), h.to_string().into());
            }
        }
        if let Some(a) = &procs.agent
            && let Some(h) = a.addr("admin")
        {
            m.insert("agent_admin".into(), h.to_string().into());
        }
        if let Some(l) = &procs.loadgen {
            m.insert("loadgen".into(), l.pid.into());
        }
        m.insert(
            "shm_dir".into(),
            self.path("shm").display().to_string().into(),
        );
        let path = self.out.join("pids.json");
        let tmp = self.out.join("pids.json.tmp");
        // Written whole then renamed, so a reader never sees half a file.
        let r = std::fs::write(&tmp, serde_json::Value::Object(m).to_string())
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = r {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the pids file");
        }
    }

    async fn run(self) -> Result<PathBuf, DemoError> {
        // Orphans (a killed coordinator's replicas) become ours, so teardown can stop them.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!(error = %e, "cannot become a child subreaper; replicas of a killed coordinator may outlive the demo");
        }
        let stop = install_signals()?;
        self.prepare()?;
        let mut procs = Procs::default();
        let started = Instant::now();
        let watched = self.body(&mut procs, stop).await;
        let restarts: BTreeMap<String, u32> = [
            ("agent", procs.agent.as_ref().map_or(0, |s| s.restarts)),
            (
                "coordinator",
                procs.coordinator.as_ref().map_or(0, |s| s.restarts),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        // Decisions first: the coordinator must still run to answer.
        let mut watched = watched;
        if let Ok(w) = watched.as_mut()
            && let Some(http) = procs.coordinator.as_ref().and_then(|c| c.addr("http"))
            && let Ok(d) =
                api::get_json::<Decisions>(http, "/v1/decisions?limit=100000", API_TIMEOUT).await
        {
            merge_decisions(&mut w.decisions, d.decisions);
        }
        self.teardown(&mut procs).await;
        let w = watched?;
        if !w.loaded {
            println!(
                "stopped before the load started; nothing to report (logs in {})",
                self.logs.display()
            );
            return Ok(self.logs.clone());
        }
        let loadgen: serde_json::Value = std::fs::read(self.out.join("loadgen.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        let (_, bursts) = self.pattern_args();
        let mut results = Results {
            policy: self.args.policy.clone(),
            pattern: self.args.pattern.as_str().into(),
            pipeline: self.pipeline_name.clone(),
            duration_s: self.args.duration.as_secs_f64(),
            interval_s: self.args.interval.as_secs_f64(),
            slo_p99_ms: self.slo_p99_s.map(|s| s * 1e3),
            bursts,
            decisions: w.decisions.len(),
            restarts,
            interrupted: w.interrupted,
            loadgen_report: "loadgen.json".into(),
            ..Results::default()
        };
        report::fill(&mut results, &loadgen, &w.samples);
        let html = report::write(
            &self.out,
            &Inputs {
                results: results.clone(),
                loadgen: &loadgen,
                samples: &w.samples,
                decisions: &w.decisions,
                events: &w.events,
            },
        )?;
        let p = |v: Option<f64>| v.map_or_else(|| "–".into(), |x| format!("{x:.1} ms"));
        println!(
            "\n{} in {:.0} s: P99 {} (P50 {}), {} of {} requests completed, {} decisions, ${:.5} per 1k requests",
            if w.interrupted {
                "stopped early"
            } else {
                "done"
            },
            started.elapsed().as_secs_f64(),
            p(results.p99_ms),
            p(results.p50_ms),
            results.completed,
            results.scheduled,
            results.decisions,
            results.cost_per_1k.unwrap_or(f64::NAN),
        );
        println!("report: {}", html.display());
        Ok(html)
    }

    /// Starts everything and watches the load; every process it started is in `procs`.
    async fn body(
        &self,
        procs: &mut Procs,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Watched, DemoError> {
        let tty = std::io::stdout().is_terminal() && !self.args.plain;
        let mut view = View::new(tty, self.args.interval.as_secs_f64().max(5.0));
        let mut w = Watched::default();
        view.note(&format!(
            "starting a node agent, the coordinator (policy {}) and its replicas on loopback; logs in {}",
            self.args.policy,
            self.logs.display()
        ));
        procs.agent = Some(Supervised::start(self.agent_spec(), START_PATIENCE).await?);
        self.write_pids(procs);
        let (agent_mesh, agent_report) = {
            let a = procs.agent.as_ref().ok_or_else(|| internal("agent"))?;
            (
                a.addr("mesh").ok_or_else(|| internal("agent mesh"))?,
                a.addr("report").ok_or_else(|| internal("agent report"))?,
            )
        };
        // The sidecars the coordinator starts trust the certificate the agent writes at start.
        let cert = self.path("tls").join("agent-cert.pem");
        let deadline = Instant::now() + START_PATIENCE;
        while !cert.is_file() {
            if Instant::now() > deadline {
                return Err(DemoError::Start {
                    name: "agent".into(),
                    why: format!("{} did not appear", cert.display()),
                    log: self.logs.join("agent.log"),
                    usage: false,
                });
            }
            wait_or_stop(&mut stop, Duration::from_millis(100)).await;
        }
        procs.coordinator = Some(
            Supervised::start(
                self.coordinator_spec(agent_mesh, agent_report),
                START_PATIENCE,
            )
            .await?,
        );
        self.write_pids(procs);
        let http = procs
            .coordinator
            .as_ref()
            .and_then(|c| c.addr("http"))
            .ok_or_else(|| internal("coordinator http"))?;

        // Ready: every stage has a serving replica and the entry stage's endpoints are listed.
        let deadline = Instant::now() + READY_PATIENCE;
        let entry = loop {
            if *stop.borrow() {
                w.interrupted = true;
                return Ok(w);
            }
            self.supervise(procs, &mut w, &mut view, -1.0).await;
            if let Ok(p) = api::get_json::<Pipelines>(http, "/v1/pipelines", API_TIMEOUT).await
                && let Some(pv) = p.pipelines.first()
                && !pv.stages.is_empty()
                && pv.stages.iter().all(|s| s.replicas.unwrap_or(0) >= 1)
            {
                let entry = self.entry_endpoints(&pv.stages[0].name);
                // The file starts with a `#` header; an entry is any other non-empty line.
                let listed = std::fs::read_to_string(&entry).is_ok_and(|t| {
                    t.lines()
                        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                });
                if listed {
                    break entry;
                }
            }
            if Instant::now() > deadline {
                return Err(DemoError::Start {
                    name: "the pipeline".into(),
                    why: format!("not every stage had a serving replica within {READY_PATIENCE:?}"),
                    log: self.logs.join("coordinator.log"),
                    usage: false,
                });
            }
            wait_or_stop(&mut stop, Duration::from_millis(250)).await;
        };

        // Upstream sidecars re-read their next stage's endpoints file every second
        // (`--discovery-interval`): give them that long to see the replicas just listed, or the
        // first requests find no next hop.
        wait_or_stop(&mut stop, SETTLE).await;
        procs.loadgen = Some(
            self.loadgen_spec(&entry)
                .start(&BTreeMap::new(), START_PATIENCE)
                .await?,
        );
        self.write_pids(procs);
        w.loaded = true;
        let t0 = Instant::now();
        view.note(&format!(
            "load started: {} at {}/s{} for {}",
            self.args.pattern.as_str(),
            self.args.rate,
            if self.args.pattern == Pattern::Poisson {
                String::new()
            } else {
                format!(" (peak {}/s)", self.args.peak)
            },
            sair_service::duration::format_duration(self.args.duration)
        ));
        let mut last_decision = None;
        let mut last_event: Option<String> = None;
        loop {
            let t = t0.elapsed().as_secs_f64();
            if *stop.borrow() {
                w.interrupted = true;
                break;
            }
            if let Some(e) = self.supervise(procs, &mut w, &mut view, t).await {
                last_event = Some(e);
            }
            if let Some(l) = procs.loadgen.as_mut()
                && let Ok(Some(status)) = l.child.try_wait()
            {
                if !status.success() {
                    let msg = format!(
                        "sair-loadgen ended with {status} (its log: {})",
                        self.logs.join("loadgen.log").display()
                    );
                    view.note(&msg);
                    w.events.push((t, msg));
                }
                break;
            }
            let http = procs.coordinator.as_ref().and_then(|c| c.addr("http"));
            let mut pipeline = None;
            if let Some(http) = http {
                match api::get_json::<Pipelines>(http, "/v1/pipelines", API_TIMEOUT).await {
                    Ok(p) => pipeline = p.pipelines.into_iter().next(),
                    Err(e) => tracing::debug!(error = %e, "poll /v1/pipelines"),
                }
                match api::get_json::<Decisions>(http, "/v1/decisions?limit=100", API_TIMEOUT).await
                {
                    Ok(d) => {
                        merge_decisions(&mut w.decisions, d.decisions);
                        last_decision = w.decisions.last().map(DecisionLine::of);
                    }
                    Err(e) => tracing::debug!(error = %e, "poll /v1/decisions"),
                }
            }
            if let Some(p) = &pipeline {
                w.samples.push(Sample::of(t, p));
            }
            view.show(&Frame {
                policy: &self.args.policy,
                pattern: self.args.pattern.as_str(),
                t_s: t,
                duration_s: self.args.duration.as_secs_f64(),
                pipeline: pipeline.as_ref(),
                last_decision: last_decision.clone(),
                decisions: w.decisions.len(),
                event: last_event.as_deref(),
                out: &self.out.display().to_string(),
            });
            wait_or_stop(&mut stop, TICK).await;
        }
        Ok(w)
    }

    /// Restarts a dead agent or coordinator; returns what happened.
    async fn supervise(
        &self,
        procs: &mut Procs,
        w: &mut Watched,
        view: &mut View,
        t: f64,
    ) -> Option<String> {
        let mut last = None;
        for s in [procs.agent.as_mut(), procs.coordinator.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(event) = s.check(START_PATIENCE).await {
                tracing::warn!(%event, "supervisor");
                view.note(&format!("supervisor: {event}"));
                w.events.push((t, event.clone()));
                last = Some(event);
            }
        }
        if last.is_some() {
            self.write_pids(procs);
        }
        last
    }

    /// Stops everything: load, coordinator (and its replicas), agent, then any orphan.
    async fn teardown(&self, procs: &mut Procs) {
        if let Some(l) = procs.loadgen.as_mut() {
            // SIGTERM makes sair-loadgen stop sending and write its report for the time run.
            let how = child::stop(&mut l.child, "loadgen", GRACE + Duration::from_secs(6)).await;
            tracing::info!(how, "loadgen");
        }
        if let Some(c) = procs.coordinator.as_mut() {
            let how = child::stop(&mut c.running.child, "coordinator", COORDINATOR_GRACE).await;
            tracing::info!(how, "coordinator");
        }
        if let Some(a) = procs.agent.as_mut() {
            let how = child::stop(&mut a.running.child, "agent", GRACE).await;
            tracing::info!(how, "agent");
        }
        reap_orphans(GRACE).await;
    }
}

fn internal(what: &str) -> DemoError {
    DemoError::Start {
        name: what.into(),
        why: "its bound line lacked an address".into(),
        log: PathBuf::new(),
        usage: false,
    }
}

/// Merges a poll of `/v1/decisions` into what was seen: a record is identified by its time,
/// decision number and source, not by its whole JSON, because the coordinator fills a
/// record's `reward` in one interval later; the later copy replaces the earlier one in place.
fn merge_decisions(into: &mut Vec<serde_json::Value>, new: Vec<serde_json::Value>) {
    fn key(d: &serde_json::Value) -> String {
        format!("{}|{}|{}", d["time"], d["decision"], d["source"])
    }
    let mut at: HashMap<String, usize> =
        into.iter().enumerate().map(|(i, d)| (key(d), i)).collect();
    for d in new {
        match at.get(&key(&d)) {
            Some(&i) => into[i] = d,
            None => {
                at.insert(key(&d), into.len());
                into.push(d);
            }
        }
    }
}

/// SIGINT/SIGTERM flip the returned flag (installed now, before any child starts).
fn install_signals() -> Result<watch::Receiver<bool>, DemoError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(DemoError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DemoError::Runtime)?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("sair demo: stopping everything it started…");
        let _ = tx.send(true);
        // A second signal while stopping: the user insists; teardown still runs (children
        // are killed on drop if it is cut short).
    });
    Ok(rx)
}

async fn wait_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) {
    let _ = tokio::time::timeout(d, stop.changed()).await;
}

/// Processes re-parented to the demo (it is their subreaper): replicas of a coordinator that
/// was killed. SIGTERM, up to `grace`, SIGKILL; each is reaped.
async fn reap_orphans(grace: Duration) {
    let me = std::process::id();
    let orphans = children_of(me);
    if orphans.is_empty() {
        return;
    }
    tracing::info!(count = orphans.len(), "stopping orphaned processes");
    for &pid in &orphans {
        child::signal(pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    let mut left: Vec<u32> = orphans;
    while !left.is_empty() {
        left.retain(|&pid| !reaped(pid));
        if Instant::now() > deadline {
            for &pid in &left {
                child::signal(pid, Signal::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            left.retain(|&pid| !reaped(pid));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for `pid` without blocking; true once it is gone.
fn reaped(pid: u32) -> bool {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let Ok(raw) = i32::try_from(pid) else {
        return true;
    };
    match waitpid(nix::unistd::Pid::from_raw(raw), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => false,
        Ok(_) => true,
        // ECHILD: not our child (any more).
        Err(_) => true,
    }
}

/// Pids whose parent is `parent`, from /proc.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| ppid_of(*pid) == Some(parent))
        .collect()
}

/// The parent of `pid` from /proc/PID/stat (the field after the parenthesised command).
pub fn ppid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod merge_tests {
    use super::merge_decisions;
    use serde_json::json;

    #[test]
    fn a_record_polled_again_with_its_reward_replaces_the_first_copy() {
        let mut seen = Vec::new();
        let hold = json!({"time": 2.0, "decision": null, "source": "fallback", "reward": null});
        let first = json!({"time": 9.0, "decision": 0, "source": "model", "reward": null});
        merge_decisions(&mut seen, vec![hold.clone(), first]);
        let rewarded = json!({"time": 9.0, "decision": 0, "source": "model", "reward": 1.5});
        let next = json!({"time": 12.0, "decision": 1, "source": "model", "reward": null});
        merge_decisions(
            &mut seen,
            vec![hold.clone(), rewarded.clone(), next.clone()],
        );
        assert_eq!(seen, vec![hold, rewarded, next]);
    }
}
