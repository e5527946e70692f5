//! `sair-coordinator` as a process: bad configurations exit 64 naming the problem before
//! anything starts, and on a mesh with one real `sair-node-agent` it serves its API with the
//! contract's shape, holds (and says why) while no stage reports, publishes its ρ targets so
//! that the agent applies them to the stage's segment, and stops cleanly on SIGTERM.
//!
//! Needs the workspace binaries (`sair-node-agent`): `cargo build --workspace` first, as
//! scripts/test.sh does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sair_tests::{Launch, Role, Running, assert_eventually, run_bounded};

const LIMIT: Duration = Duration::from_secs(60);

fn coordinator_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sair-coordinator"))
}

const PIPELINE: &str = r#"
[pipeline]
name = "ic"
slo_p99_ms = 100

[[pipeline.stages]]
name = "pre"
kind = "cpu"
min_replicas = 1
max_replicas = 4
replicas = 1
[pipeline.stages.run]
command = ["sair-stage", "--cpu-ms", "1", "--listen", "127.0.0.1:{port}"]

[[pipeline.stages]]
name = "infer"
kind = "gpu"
min_replicas = 1
max_replicas = 2
replicas = 1
rho = 0.4
[pipeline.stages.run]
command = ["sair-stage", "--cpu-ms", "1", "--listen", "127.0.0.1:{port}"]

[cost]
cpu_replica = 0.048
gpu = 1.10
gpus = 1
"#;

/// A scratch directory with a pipelines file, a cluster CA and members' certificates.
struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn new(tag: &str) -> Cluster {
        let dir = sair_tests::scratch(&format!("coord-{tag}"));
        std::fs::write(dir.join("pipelines.toml"), PIPELINE).expect("write pipelines file");
        let c = Cluster { dir };
        c.sair(&["certs", "init", "--out", &c.path("ca")]);
        c
    }

    fn path(&self, p: &str) -> String {
        self.dir.join(p).to_string_lossy().into_owned()
    }

    fn sair(&self, args: &[&str]) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sair"));
        cmd.args(args);
        let f = run_bounded(cmd, LIMIT);
        assert_eq!(f.code, Some(0), "sair {args:?}: {}", f.stderr);
    }

    /// `name`'s certificate and key, issued once.
    fn member(&self, name: &str) -> [String; 2] {
        let out = self.dir.join(name);
        if !out.exists() {
            self.sair(&[
                "certs",
                "issue",
                "--ca",
                &self.path("ca"),
                "--name",
                name,
                "--out",
                &out.to_string_lossy(),
            ]);
        }
        [
            out.join(format!("{name}.pem"))
                .to_string_lossy()
                .into_owned(),
            out.join(format!("{name}.key"))
                .to_string_lossy()
                .into_owned(),
        ]
    }

    /// The mesh flags of member `name`.
    fn mesh_args(&self, name: &str, seeds: &[String]) -> Vec<String> {
        let [cert, key] = self.member(name);
        let mut v = vec![
            "--node".into(),
            name.into(),
            "--cert".into(),
            cert,
            "--key".into(),
            key,
            "--ca".into(),
            self.path("ca/ca.pem"),
        ];
        if !seeds.is_empty() {
            v.push("--seeds".into());
            v.push(seeds.join(","));
        }
        v
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs the coordinator with `args` to completion.
fn coordinator(args: &[&str]) -> sair_tests::Finished {
    let mut cmd = Command::new(coordinator_bin());
    cmd.args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SAIR_") {
            cmd.env_remove(k);
        }
    }
    run_bounded(cmd, LIMIT)
}

fn expect_usage(args: &[&str], needle: &str) {
    let f = coordinator(args);
    tracing::info!(?args, stderr = %f.stderr, "refused");
    assert_eq!(f.code, Some(64), "{args:?} should exit 64: {}", f.stderr);
    assert!(
        f.stderr.contains(needle),
        "{args:?}: the error should name {needle:?}: {}",
        f.stderr
    );
    assert!(f.stdout.is_empty(), "nothing may start: {}", f.stdout);
}

#[test]
fn bad_configuration_exits_64_naming_the_problem_before_anything_starts() {
    let dir = sair_tests::scratch("coord-bad");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p.to_string_lossy().into_owned()
    };
    let good = write("good.toml", PIPELINE);
    let min_max = write(
        "min-max.toml",
        &PIPELINE.replace("max_replicas = 4", "max_replicas = 0"),
    );
    let over = write(
        "over.toml",
        &PIPELINE.replace("rho = 0.4", "rho = 0.6").replace(
            "max_replicas = 2\nreplicas = 1",
            "max_replicas = 2\nreplicas = 2",
        ),
    );
    let typo = write(
        "typo.toml",
        &PIPELINE.replace("min_replicas = 1", "min_replica = 1"),
    );
    let mesh = [
        "--mesh-listen",
        "127.0.0.1:0",
        "--cert",
        "c.pem",
        "--key",
        "c.key",
        "--ca",
        "ca.pem",
        "--node",
        "c",
    ];
    let with = |config: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["--config", config, "--actuator", "dry-run"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        v.extend(mesh.iter().map(|s| (*s).to_owned()));
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (with(&min_max, &[]), "pipeline.stages[0].min_replicas"),
        (with(&over, &[]), "GPU shares"),
        (with(&typo, &[]), "min_replica"),
        (with("/nonexistent/p.toml", &[]), "/nonexistent/p.toml"),
        (with(&good, &["--policy", "nope"]), "unknown policy `nope`"),
        (with(&good, &["--interval", "0s"]), "--interval"),
        (with(&good, &["--stale-windows", "0"]), "--stale-windows"),
        (
            with(&good, &["--decisions-log-max-mib", "10241"]),
            "--decisions-log-max-mib",
        ),
        (
            with(&good, &[])
                .into_iter()
                .map(|a| {
                    if a == "dry-run" {
                        "kubernetes".into()
                    } else {
                        a
                    }
                })
                .collect(),
            "has no kubernetes table",
        ),
        (
            with(&good, &["--agent-report", "127.0.0.1:1"]),
            "--agent-ca",
        ),
        (
            vec![
                "--config".into(),
                good.clone(),
                "--actuator".into(),
                "dry-run".into(),
            ],
            "--mesh-listen",
        ),
    ];
    for (args, needle) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        expect_usage(&args, needle);
    }
    // An option given as a top-level key of the pipelines file is checked like its flag.
    let keyed = write("keyed.toml", &format!("interval = \"2h\"\n{PIPELINE}"));
    expect_usage(
        &with(&keyed, &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "interval",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn get_json(addr: std::net::SocketAddr, path: &str) -> Option<serde_json::Value> {
    let r = sair_tests::http::request(addr, "GET", path, b"").ok()?;
    serde_json::from_slice(&r.body).ok()
}

fn metrics(addr: std::net::SocketAddr) -> String {
    sair_tests::http::request(addr, "GET", "/metrics", b"")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .unwrap_or_default()
}

/// The sum of the samples of `family` whose labels contain every one of `labels`.
fn sample(text: &str, family: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let base = name.split('{').next()?;
            (base == family && labels.iter().all(|x| name.contains(x)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// The value of the one sample of `family` whose labels are exactly `labels` (in any order), in
/// the Prometheus text format; `None` if there is none, or more than one.
fn exact(text: &str, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    want.sort();
    let found: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, rest) = series.split_once('{').unwrap_or((series, "}"));
            let mut got: Vec<String> = rest
                .strip_suffix('}')?
                .split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            got.sort();
            (name == family && got == want)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .collect();
    (found.len() == 1).then(|| found[0])
}

/// The target ρ of `segment` as the agent's `status` reads it from the segment file.
fn segment_target(shm: &Path, segment: &str) -> Option<f64> {
    let mut cmd = Command::new(sair_tests::binary("sair-node-agent"));
    cmd.args(["status", "--json", "--shm-dir"]).arg(shm);
    let f = run_bounded(cmd, LIMIT);
    let rows: serde_json::Value = serde_json::from_str(&f.stdout).ok()?;
    rows.as_array()?
        .iter()
        .find(|r| r["segment"] == segment)
        .and_then(|r| r["target"].as_f64())
}

#[test]
fn on_a_mesh_with_an_agent_it_serves_the_api_holds_on_stale_data_and_its_rho_reaches_the_segment() {
    let c = Cluster::new("mesh");
    let agent = sair_tests::agent()
        .name("agent-a")
        .args(c.mesh_args("agent-a", &[]))
        .arg("--mesh-listen")
        .arg("127.0.0.1:0")
        .run();
    let agent_mesh = agent.running.addr("mesh").to_string();
    // A segment of the GPU stage on the agent's node, as the local actuator would create it.
    let mut cmd = Command::new(sair_tests::binary("sair-node-agent"));
    cmd.args([
        "set-rate",
        "--segment",
        "ic.infer.0",
        "--rate",
        "1",
        "--gpu",
        "0",
    ])
    .arg("--mode")
    .arg("share")
    .arg("--shm-dir")
    .arg(agent.shm_dir());
    let f = run_bounded(cmd, LIMIT);
    assert_eq!(f.code, Some(0), "set-rate: {}", f.stderr);

    let state = c.dir.join("state");
    let mut coord: Running = Launch::program(coordinator_bin())
        .name("coordinator")
        .args([
            "--config",
            &c.path("pipelines.toml"),
            "--actuator",
            "dry-run",
            "--policy",
            "threshold",
            "--interval",
            "1s",
            "--state-dir",
            &state.to_string_lossy(),
        ])
        .args(c.mesh_args("coord-a", &[agent_mesh]))
        .role(Role::tcp("http", "--http-listen"))
        .role(Role::udp("mesh", "--mesh-listen"))
        .run();
    let http = coord.addr("http");
    tracing::info!(%http, "coordinator up");

    // The API, in the contract's shape; every stage stale (no sidecar reports).
    assert_eventually!(
        get_json(http, "/v1/pipelines").is_some_and(|v| v["pipelines"][0]["stages"]
            .as_array()
            .is_some_and(|s| s.len() == 2)),
        "GET /v1/pipelines answers with both stages"
    );
    let v = get_json(http, "/v1/pipelines").expect("pipelines");
    let p = &v["pipelines"][0];
    assert_eq!(p["name"], "ic");
    assert_eq!(p["slo_p99_s"], 0.1);
    assert_eq!(p["stale"], true);
    for k in [
        "e2e_p99_s",
        "e2e_p50_s",
        "arrival_rate",
        "cost_per_hour",
        "bottleneck",
    ] {
        assert!(p.get(k).is_some(), "pipeline lacks {k}: {p}");
    }
    let infer = &p["stages"][1];
    assert_eq!(infer["name"], "infer");
    assert_eq!(infer["kind"], "gpu");
    assert_eq!(infer["replicas_desired"], 1);
    assert_eq!(infer["rho"], 0.4);
    assert_eq!(infer["stale"], true);
    for k in [
        "replicas",
        "rho_measured",
        "arrival_rate",
        "queue_wait_p99_s",
        "service_p99_s",
        "busy_fraction",
    ] {
        assert!(infer.get(k).is_some(), "stage lacks {k}: {infer}");
    }

    // Decisions: holds that say why, never a policy decision on stale data.
    assert_eventually!(
        get_json(http, "/v1/decisions?limit=5")
            .and_then(|v| v["decisions"].as_array().map(Vec::len))
            .is_some_and(|n| n >= 2),
        "the coordinator records decisions every interval"
    );
    let v = get_json(http, "/v1/decisions?limit=1").expect("decisions");
    let d = &v["decisions"].as_array().expect("array")[0];
    tracing::info!(%d, "latest decision");
    assert_eq!(d["source"], "fallback");
    assert!(
        d["rationale"]
            .as_str()
            .is_some_and(|r| r.contains("no fresh report") && r.contains("infer")),
        "{d}"
    );
    for k in [
        "time",
        "state",
        "action",
        "bottleneck",
        "candidates",
        "reward",
    ] {
        assert!(d.get(k).is_some(), "decision lacks {k}: {d}");
    }
    assert_eq!(d["action"]["replicas"], serde_json::json!([1, 1]));

    // ρ of the GPU stage travels on the mesh, the agent admits it and writes it into the
    // stage's segment.
    assert_eventually!(
        segment_target(agent.shm_dir(), "ic.infer.0").is_some_and(|t| (t - 0.4).abs() < 1e-9),
        "the agent applies ρ = 0.4 to segment ic.infer.0 (now {:?})",
        segment_target(agent.shm_dir(), "ic.infer.0")
    );
    assert!(
        sample(
            &metrics(agent.admin()),
            "sair_agent_mesh_decisions_total",
            &["admitted"]
        ) >= 1.0
    );
    let m = metrics(http);
    assert!(sample(&m, "sair_coordinator_leader", &[]) == 1.0, "{m}");
    assert!(sample(&m, "sair_coordinator_stale_holds_total", &[]) >= 1.0);
    assert!(sample(&m, "sair_coordinator_rho_published_total", &[]) >= 1.0);
    assert!(sample(&m, "sair_coordinator_decisions_total", &["fallback"]) >= 1.0);
    // The dashboard's allocation series (docs/kubernetes.md, "Watch"): the starting allocation
    // (pre 1 CPU replica, infer 1 replica at ρ 0.4), served in full by the dry run; cost
    // 1 × 0.048 + 1 × 0.4 × 1.10 per hour. CPU stages have no ρ series.
    let ic = ("pipeline", "ic");
    for (family, stage, want) in [
        ("sair_coordinator_replicas", "pre", 1.0),
        ("sair_coordinator_replicas", "infer", 1.0),
        ("sair_coordinator_replicas_serving", "pre", 1.0),
        ("sair_coordinator_replicas_serving", "infer", 1.0),
        ("sair_coordinator_rho", "infer", 0.4),
    ] {
        let got = exact(&m, family, &[ic, ("stage", stage)]);
        assert_eq!(got, Some(want), "{family}{{stage={stage}}}: {m}");
    }
    assert_eq!(
        exact(&m, "sair_coordinator_rho", &[ic, ("stage", "pre")]),
        None
    );
    let cost = exact(&m, "sair_coordinator_effective_cost_per_hour", &[ic]).unwrap_or(-1.0);
    assert!(
        (cost - (0.048 + 0.4 * 1.10)).abs() < 1e-9,
        "cost {cost}: {m}"
    );
    for family in [
        "sair_coordinator_replicas",
        "sair_coordinator_replicas_serving",
        "sair_coordinator_rho",
        "sair_coordinator_effective_cost_per_hour",
    ] {
        assert!(
            m.contains(&format!("# TYPE {family} gauge")),
            "{family} is a gauge: {m}"
        );
    }
    let health = sair_tests::http::request(http, "GET", "/healthz", b"").expect("healthz");
    assert_eq!(health.status, 200);
    let bad = sair_tests::http::request(http, "GET", "/v1/decisions?limit=x", b"").expect("400");
    assert_eq!(bad.status, 400);

    // SIGTERM: exit 0, the decisions log written.
    let status = coord
        .terminate(LIMIT)
        .expect("the coordinator exits on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", coord.output());
    let log = std::fs::read_to_string(state.join("decisions.jsonl")).expect("decisions.jsonl");
    assert!(log.lines().count() >= 2, "{log}");
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object a line");
        assert_eq!(v["pipeline"], "ic");
    }
}

/// An in-process mesh member that publishes the StageReports a sidecar fleet would (through
/// its agent): windows of 0.5 s, `infer` saturated, until the returned guard drops.
struct Feeder {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: std::net::SocketAddr,
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn feeder(c: &Cluster) -> Feeder {
    use sair_mesh::certs::MeshTls;
    use sair_mesh::metrics::MeshMetrics;
    use sair_mesh::transport::Transport;
    use sair_mesh::transport::quic::QuicTransport;
    use sair_mesh::{MemberId, Mesh, MeshConfig, Role as MeshRole};
    use sair_wire::histogram::LatencyHistogram;
    use sair_wire::{Percentiles, StageReport, keys};

    let [cert, key] = c.member("feeder");
    let tls = MeshTls::from_files(
        Path::new(&cert),
        Path::new(&key),
        Path::new(&c.path("ca/ca.pem")),
    )
    .expect("feeder TLS");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let (transport, inbound) = QuicTransport::bind(
                "127.0.0.1:0".parse().expect("addr"),
                &tls,
                MeshMetrics::noop(),
            )
            .expect("bind");
            let addr = transport.local_addr();
            let id = MemberId::try_new("feeder", MeshRole::Agent, addr, 1).expect("id");
            let mesh = Mesh::start(
                id,
                MeshConfig::default(),
                transport,
                inbound,
                &[],
                MeshMetrics::noop(),
            );
            let _ = tx.send(addr);
            let mut end_ms = 1_000u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                end_ms += 500;
                for (stage, wait_s, busy) in [("pre", 0.001, 0.2), ("infer", 0.08, 0.97)] {
                    let hist = |s: f64, n: u64| {
                        let mut h = LatencyHistogram::new();
                        h.record_n(s, n);
                        h
                    };
                    let r = StageReport {
                        pipeline: "ic".into(),
                        stage: stage.into(),
                        replica: "r0".into(),
                        window_end_unix_ms: end_ms,
                        window_seconds: 0.5,
                        arrivals: 40,
                        completions: 40,
                        rejections: 0,
                        errors: 0,
                        queue_wait: Percentiles::default(),
                        service: Percentiles::default(),
                        mean_inflight: busy,
                        queue_depth: if stage == "infer" { 6 } else { 0 },
                        busy_fraction: busy,
                        max_concurrency: 1,
                        queue_wait_hist: hist(wait_s, 40),
                        service_hist: hist(0.012, 40),
                        e2e_hist: if stage == "pre" {
                            hist(0.12, 40)
                        } else {
                            LatencyHistogram::new()
                        },
                    };
                    let _ = mesh.set(&keys::report_key(&r), keys::encode(&r)).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            mesh.shutdown().await;
        });
    });
    let addr = rx.recv_timeout(LIMIT).expect("the feeder binds");
    Feeder {
        stop,
        thread: Some(thread),
        addr,
    }
}

fn start_coordinator(c: &Cluster, state: &Path, seed: std::net::SocketAddr) -> Running {
    Launch::program(coordinator_bin())
        .name("coordinator")
        .args([
            "--config",
            &c.path("pipelines.toml"),
            "--actuator",
            "dry-run",
            "--policy",
            "sair",
            "--interval",
            "2s",
            "--state-dir",
            &state.to_string_lossy(),
        ])
        .args(c.mesh_args("coord-a", &[seed.to_string()]))
        .role(Role::tcp("http", "--http-listen"))
        .role(Role::udp("mesh", "--mesh-listen"))
        .run()
}

/// `kept=N` of the policy's "experience store opened" log line, ANSI colours removed.
fn kept(output: &str) -> Option<u64> {
    let mut plain = String::with_capacity(output.len());
    let mut chars = output.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(ch);
        }
    }
    let line = plain
        .lines()
        .find(|l| l.contains("experience store opened"))?;
    let at = line.find("kept=")? + "kept=".len();
    line[at..]
        .split(|ch: char| !ch.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn with_reports_on_the_mesh_sair_decides_and_a_restart_resumes_its_experience() {
    let c = Cluster::new("sair");
    let feed = feeder(&c);
    let state = c.dir.join("state");
    let mut coord = start_coordinator(&c, &state, feed.addr);
    let http = coord.addr("http");
    let decided = |v: &serde_json::Value| {
        v["decisions"].as_array().is_some_and(|d| {
            d.iter()
                .any(|x| x["source"] != "fallback" && x["source"] != "none")
                && d.iter().any(|x| x["reward"].is_number())
        })
    };
    assert_eventually!(
        get_json(http, "/v1/decisions?limit=100").is_some_and(|v| decided(&v)),
        "sair decides on the fed reports and scores a decision: {:?}",
        get_json(http, "/v1/decisions?limit=3")
    );
    let v = get_json(http, "/v1/pipelines").expect("pipelines");
    let p = &v["pipelines"][0];
    tracing::info!(%p, "observed");
    assert_eq!(p["stale"], false, "{p}");
    // 40 arrivals per 0.5 s window: 80 per second, from counts over window time.
    let rate = p["stages"][1]["arrival_rate"].as_f64().unwrap_or(0.0);
    assert!((rate - 80.0).abs() < 1e-6, "{p}");
    // The e2e P99 is the merged histogram's (120 ms, within the 2.5 % bucket error).
    let e2e = p["e2e_p99_s"].as_f64().unwrap_or(0.0);
    assert!((e2e - 0.12).abs() / 0.12 < 0.03, "{p}");
    let status = coord.terminate(LIMIT).expect("exits on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", coord.output());
    assert_eq!(
        kept(&coord.output()),
        Some(0),
        "a fresh store: {}",
        coord.output()
    );

    // A restart with the same --state-dir reopens the experience and decides again.
    let mut again = start_coordinator(&c, &state, feed.addr);
    assert_eventually!(
        kept(&again.output()).is_some(),
        "the restarted coordinator opens its store"
    );
    let n = kept(&again.output()).unwrap_or(0);
    assert!(
        n >= 1,
        "the restarted coordinator kept {n} episodes: {}",
        again.output()
    );
    let http = again.addr("http");
    assert_eventually!(
        get_json(http, "/v1/decisions?limit=100").is_some_and(|v| v["decisions"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x["source"] != "fallback"))),
        "the restarted coordinator decides again"
    );
    let status = again.terminate(LIMIT).expect("exits on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", again.output());
}
