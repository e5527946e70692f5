//! Real `sair-node-agent` processes on the gossip mesh, over loopback, with certificates made
//! by `sair certs`: they join from one seed and see each other alive, a killed one is declared
//! dead, one with a certificate from another CA is refused (and counted), the leader's ρ
//! targets reach a segment through the commitment check and a stale epoch is ignored, and bad
//! mesh flags exit 64 naming the flag.
//!
//! Needs `sair` built (`cargo build -p sair-coordinator --bin sair`; CI builds the workspace).
//! Timing: every wait is `assert_eventually!` (patience `SAIR_TEST_PATIENCE_SECONDS`, 30 s by
//! default), so a loaded 2-core machine passes; failure detection takes ≈ 3 s on an idle one.

#![allow(clippy::unwrap_used)] // test helpers: a failed fixture should panic

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sair_mesh::certs::MeshTls;
use sair_mesh::leader::{Decision, Epoch};
use sair_mesh::metrics::MeshMetrics;
use sair_mesh::transport::Transport;
use sair_mesh::transport::quic::QuicTransport;
use sair_mesh::{MemberId, Mesh, MeshConfig, Role};
use sair_tests::{Agent, assert_eventually, run_bounded};
use sair_wire::keys::{self, RhoTarget};

const LIMIT: Duration = Duration::from_secs(60);

fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sair-node-agent"))
}

/// A scratch directory with a cluster CA (`ca/`) and members' certificates (`NAME/`), made by
/// the `sair certs` command.
struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn new(tag: &str) -> Cluster {
        let dir = sair_tests::scratch(&format!("mesh-{tag}"));
        let c = Cluster { dir };
        c.sair(&["certs", "init", "--out", c.ca().to_str().unwrap()]);
        c
    }

    fn sair(&self, args: &[&str]) {
        let mut cmd = Command::new(sair_tests::binary("sair"));
        cmd.args(args);
        let f = run_bounded(cmd, LIMIT);
        assert_eq!(f.code, Some(0), "sair {args:?}: {}", f.stderr);
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca")
    }

    /// Issues `name`'s certificate (once).
    fn member(&self, name: &str) -> (PathBuf, PathBuf) {
        let out = self.dir.join(name);
        let files = (
            out.join(format!("{name}.pem")),
            out.join(format!("{name}.key")),
        );
        if !files.0.exists() {
            self.sair(&[
                "certs",
                "issue",
                "--ca",
                self.ca().to_str().unwrap(),
                "--name",
                name,
                "--out",
                out.to_str().unwrap(),
            ]);
        }
        files
    }

    /// A node agent named `name` on the mesh, joining through `seeds`.
    fn agent(&self, name: &str, seeds: &[SocketAddr]) -> Agent {
        let (cert, key) = self.member(name);
        self.agent_with(name, &cert, &key, seeds)
    }

    /// A node agent trusting this cluster's CA with the given certificate and key.
    fn agent_with(&self, name: &str, cert: &Path, key: &Path, seeds: &[SocketAddr]) -> Agent {
        let mut b = sair_tests::agent()
            .program(agent_bin())
            .name(name)
            .arg("--node")
            .arg(name)
            .arg("--mesh-listen")
            .arg("127.0.0.1:0")
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--ca")
            .arg(self.ca().join("ca.pem"));
        if !seeds.is_empty() {
            let list: Vec<String> = seeds.iter().map(ToString::to_string).collect();
            b = b.arg("--seeds").arg(list.join(","));
        }
        b.run()
    }

    /// The TLS material of `name` (for an in-process member).
    fn tls(&self, name: &str) -> MeshTls {
        let (cert, key) = self.member(name);
        MeshTls::from_files(&cert, &key, &self.ca().join("ca.pem")).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn mesh_addr(a: &Agent) -> SocketAddr {
    a.running.addr("mesh")
}

fn metrics(a: &Agent) -> String {
    sair_tests::http::request(a.admin(), "GET", "/metrics", b"")
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

fn members(a: &Agent, state: &str) -> f64 {
    sample(
        &metrics(a),
        "sair_mesh_members",
        &[&format!("state=\"{state}\"")],
    )
}

#[test]
fn agents_join_from_one_seed_see_each_other_and_detect_a_kill() {
    let c = Cluster::new("join");
    let a = c.agent("agent-a", &[]);
    let seed = mesh_addr(&a);
    let mut b = c.agent("agent-b", &[seed]);
    let mut x = c.agent("agent-c", &[seed]);
    for m in [&a, &b, &x] {
        assert_eventually!(
            members(m, "alive") == 3.0,
            "{} sees 3 alive: {}",
            m.running.proc.name,
            metrics(m)
        );
    }
    tracing::info!("all three alive everywhere; killing agent-c");
    x.running.proc.child.kill().unwrap();
    let _ = x.running.proc.child.wait();
    for m in [&a, &b] {
        assert_eventually!(
            members(m, "alive") == 2.0 && members(m, "dead") == 1.0,
            "{} declares agent-c dead: {}",
            m.running.proc.name,
            metrics(m)
        );
    }
    // The mesh exports its traffic on the agent's /metrics.
    let text = metrics(&a);
    assert!(sample(&text, "sair_mesh_bytes_total", &["direction=\"in\""]) > 0.0);
    assert!(sample(&text, "sair_mesh_rounds_total", &[]) > 0.0);
    // SIGTERM: agent-b leaves the cluster and exits 0; agent-a is alone.
    let status = b.running.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}: {}",
        b.output()
    );
    assert_eventually!(
        members(&a, "alive") == 1.0,
        "agent-a sees agent-b gone: {}",
        metrics(&a)
    );
}

#[test]
fn a_member_with_a_certificate_from_another_ca_is_refused_and_counted() {
    let c = Cluster::new("foreign");
    let other = Cluster::new("foreign-ca");
    let a = c.agent("agent-a", &[]);
    let b = c.agent("agent-b", &[mesh_addr(&a)]);
    // Trusts the cluster's CA (its certificate is public) but holds a certificate signed by
    // another CA: a stranger to the cluster.
    let (cert, key) = other.member("agent-x");
    let x = c.agent_with("agent-x", &cert, &key, &[mesh_addr(&a)]);
    assert_eventually!(
        sample(&metrics(&a), "sair_mesh_tls_refused_total", &[]) >= 1.0,
        "agent-a refuses agent-x's certificate: {}",
        metrics(&a)
    );
    assert_eventually!(
        members(&a, "alive") == 2.0 && members(&b, "alive") == 2.0,
        "a and b see each other: {}",
        metrics(&b)
    );
    // A few more rounds: the stranger never gets in, and learns nobody.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(members(&a, "alive"), 2.0, "{}", metrics(&a));
    assert_eq!(members(&b, "alive"), 2.0, "{}", metrics(&b));
    assert_eq!(members(&x, "alive"), 1.0, "{}", metrics(&x));
    // A member of another cluster altogether refuses the cluster's certificate when it dials.
    let y = other.agent("agent-y", &[mesh_addr(&a)]);
    assert_eventually!(
        sample(
            &metrics(&y),
            "sair_mesh_tls_refused_total",
            &["side=\"client\""]
        ) >= 1.0,
        "agent-y refuses agent-a's certificate: {}",
        metrics(&y)
    );
    assert_eq!(members(&y, "alive"), 1.0, "{}", metrics(&y));
    assert_eq!(members(&a, "alive"), 2.0, "{}", metrics(&a));
}

fn status_target(shm: &Path, segment: &str) -> Option<f64> {
    let mut cmd = Command::new(agent_bin());
    cmd.args(["status", "--json", "--sample", "10ms", "--shm-dir"])
        .arg(shm)
        .env_remove("SAIR_CONFIG");
    let f = run_bounded(cmd, LIMIT);
    assert_eq!(f.code, Some(0), "status: {}", f.stderr);
    let rows: serde_json::Value = serde_json::from_str(&f.stdout).unwrap();
    rows.as_array()?
        .iter()
        .find(|r| r["segment"] == segment)
        .and_then(|r| r["target"].as_f64())
}

fn decisions(a: &Agent, outcome: &str) -> f64 {
    sample(
        &metrics(a),
        "sair_agent_mesh_decisions_total",
        &[&format!("outcome=\"{outcome}\"")],
    )
}

#[test]
fn the_leaders_rho_reaches_a_segment_and_a_stale_epoch_is_ignored() {
    let c = Cluster::new("rho");
    let a = c.agent("agent-a", &[]);
    let segment = "demo.infer.pod-1";
    let mut cmd = Command::new(agent_bin());
    cmd.args([
        "set-rate",
        "--segment",
        segment,
        "--rate",
        "0.5",
        "--shm-dir",
    ])
    .arg(a.shm_dir());
    let f = run_bounded(cmd, LIMIT);
    assert_eq!(f.code, Some(0), "set-rate: {}", f.stderr);
    // Another segment on the same GPU: the leader's ρ still goes through Σρ ≤ 1.
    let mut cmd = Command::new(agent_bin());
    cmd.args([
        "set-rate",
        "--segment",
        "other",
        "--rate",
        "0.4",
        "--shm-dir",
    ])
    .arg(a.shm_dir());
    assert_eq!(run_bounded(cmd, LIMIT).code, Some(0));

    // A coordinator member in this process, the only one, hence the leader.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tls = c.tls("coord-1");
    let leader = rt.block_on(async {
        let (t, inbound) =
            QuicTransport::bind("127.0.0.1:0".parse().unwrap(), &tls, MeshMetrics::noop()).unwrap();
        let id = MemberId::try_new("coord-1", Role::Coordinator, t.local_addr(), 1).unwrap();
        Mesh::start(
            id,
            MeshConfig::default(),
            t,
            inbound,
            &[mesh_addr(&a)],
            MeshMetrics::noop(),
        )
    });
    assert_eventually!(
        members(&a, "alive") == 2.0,
        "the agent sees the coordinator: {}",
        metrics(&a)
    );
    let key = keys::rho_key("demo", "infer");
    let decide = |rho: f64| {
        rt.block_on(leader.decide(&key, keys::encode(&RhoTarget { rho })))
            .unwrap()
    };
    // Too much for the GPU (0.7 + 0.4 > 1): refused by the commitment check, nothing changes.
    assert_eventually!(decide(0.7).and_then(Result::ok).is_some(), "coord-1 leads");
    assert_eventually!(
        decisions(&a, "admitted") >= 1.0
            && sample(&metrics(&a), "sair_agent_targets_refused_total", &[]) >= 1.0,
        "the over-committing decision is admitted, then refused: {}",
        metrics(&a)
    );
    assert_eq!(status_target(a.shm_dir(), segment), Some(0.5));

    // Within the GPU: applied.
    let epoch = decide(0.3).unwrap().unwrap();
    assert_eventually!(
        status_target(a.shm_dir(), segment) == Some(0.3),
        "ρ 0.3 reaches {segment}: {:?}",
        status_target(a.shm_dir(), segment)
    );

    // A decision of an older epoch (a deposed leader's, replayed): ignored.
    let stale = Decision {
        epoch: Epoch {
            term: epoch.term - 1,
            leader: epoch.leader.clone(),
        },
        body: keys::encode(&RhoTarget { rho: 0.1 }),
    };
    rt.block_on(leader.set(&key, stale.to_bytes()))
        .unwrap()
        .unwrap();
    assert_eventually!(
        decisions(&a, "stale") >= 1.0,
        "the stale decision is seen and ignored: {}",
        metrics(&a)
    );
    assert_eq!(status_target(a.shm_dir(), segment), Some(0.3));
    rt.block_on(leader.shutdown());
}

#[test]
fn bad_mesh_flags_exit_64_naming_the_flag() {
    let c = Cluster::new("flags");
    let (cert, key) = c.member("n1");
    let ca = c.ca().join("ca.pem");
    let missing = c.dir.join("missing.pem");
    let junk = c.dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let p = |p: &Path| p.to_str().unwrap().to_owned();
    let good = |listen: &str, seeds: &str, cert: &str, key: &str, ca: &str| {
        vec![
            "--mesh-listen".to_owned(),
            listen.to_owned(),
            "--seeds".to_owned(),
            seeds.to_owned(),
            "--cert".to_owned(),
            cert.to_owned(),
            "--key".to_owned(),
            key.to_owned(),
            "--ca".to_owned(),
            ca.to_owned(),
        ]
    };
    let cases = [
        (
            good(
                "not-an-address",
                "127.0.0.1:7946",
                &p(&cert),
                &p(&key),
                &p(&ca),
            ),
            "--mesh-listen",
        ),
        (
            good("127.0.0.1:0", "nowhere", &p(&cert), &p(&key), &p(&ca)),
            "--seeds",
        ),
        (
            good(
                "127.0.0.1:0",
                "127.0.0.1:7946",
                &p(&missing),
                &p(&key),
                &p(&ca),
            ),
            "--cert",
        ),
        (
            good(
                "127.0.0.1:0",
                "127.0.0.1:7946",
                &p(&cert),
                &p(&missing),
                &p(&ca),
            ),
            "--key",
        ),
        (
            good(
                "127.0.0.1:0",
                "127.0.0.1:7946",
                &p(&cert),
                &p(&key),
                &p(&junk),
            ),
            "--ca",
        ),
        (vec!["--seeds".into(), "127.0.0.1:7946".into()], "--seeds"),
    ];
    for (args, flag) in cases {
        let shm = c.dir.join("shm");
        let mut cmd = Command::new(agent_bin());
        cmd.arg("run")
            .args(["--metrics-listen", "127.0.0.1:0", "--report-listen", "none"])
            .arg("--shm-dir")
            .arg(&shm)
            .args(&args);
        let f = run_bounded(cmd, LIMIT);
        assert_eq!(f.code, Some(64), "{args:?}: {}", f.stderr);
        assert!(f.stderr.contains(flag), "{flag} in {:?}", f.stderr);
    }
}

#[test]
fn without_mesh_flags_there_is_no_mesh() {
    let a = sair_tests::agent().program(agent_bin()).run();
    assert!(
        a.running.bound.get("mesh").is_none(),
        "{:?}",
        a.running.bound
    );
    assert!(!metrics(&a).contains("sair_mesh_members"));
}

/// A report as a sidecar sends it, its histograms as large as they get (a sample in every
/// bucket, counts of 2^33), so that publishing it shows the largest report fits a mesh value.
fn report(replica: &str) -> sair_wire::StageReport {
    let mut full = sair_wire::LatencyHistogram::new();
    for index in 0..=sair_wire::histogram::BUCKETS {
        let (lo, hi) = sair_wire::LatencyHistogram::bucket_bounds(index);
        let mid = if hi.is_finite() {
            (lo * hi).sqrt()
        } else {
            lo * 2.0
        };
        full.record_n(mid, 1 << 33);
    }
    sair_wire::StageReport {
        pipeline: "pipe".into(),
        stage: "infer".into(),
        replica: replica.into(),
        window_seconds: 1.0,
        arrivals: 42,
        completions: 40,
        busy_fraction: 0.5,
        queue_wait_hist: full.clone(),
        service_hist: full.clone(),
        e2e_hist: full,
        ..sair_wire::StageReport::default()
    }
}

/// Sends `r` to the agent's report endpoint as a sidecar does.
async fn send_report(agent: &Agent, r: sair_wire::StageReport) {
    use quinn::rustls::pki_types::CertificateDer;
    use quinn::rustls::pki_types::pem::PemObject;
    use sair_wire::transport::{Trust, client_config, client_endpoint};
    use sair_wire::{Envelope, MAX_FRAME_BYTES, Message};
    let cert = CertificateDer::from_pem_file(agent.cert()).unwrap();
    let cfg = client_config(&Trust::Roots(vec![cert]), None).unwrap();
    let ep = client_endpoint(agent.report(), cfg).unwrap();
    let conn = ep
        .connect(agent.report(), "localhost")
        .unwrap()
        .await
        .unwrap();
    let mut s = conn.open_uni().await.unwrap();
    sair_wire::frame::write(
        &mut s,
        &Envelope::new(Message::StageReport(r)),
        MAX_FRAME_BYTES,
    )
    .await
    .unwrap();
    s.finish().unwrap();
    let _ = s.stopped().await;
    conn.close(0u32.into(), b"done");
    ep.wait_idle().await;
}

#[test]
fn gpus_segments_and_reports_are_published_as_mesh_keys() {
    let c = Cluster::new("publish");
    let lib = sair_tests::emulator::driver_dir(&c.dir.join("lib")).unwrap();
    let (cert, key) = c.member("agent-a");
    let a = sair_tests::agent()
        .program(agent_bin())
        .name("agent-a")
        .node_name("agent-a")
        .nvml_lib(lib.join("libnvidia-ml.so.1"))
        .env("SAIR_EMU_STATE", c.dir.join("emu.state"))
        .env("SAIR_EMU_GPUS", "2")
        .env("LD_LIBRARY_PATH", &lib)
        .args(["--mesh-listen", "127.0.0.1:0", "--cert"])
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg("--ca")
        .arg(c.ca().join("ca.pem"))
        .run();
    let mut cmd = Command::new(agent_bin());
    cmd.args([
        "set-rate",
        "--segment",
        "demo.infer.pod-1",
        "--rate",
        "0.25",
    ])
    .args(["--gpu", "1", "--shm-dir"])
    .arg(a.shm_dir());
    assert_eq!(run_bounded(cmd, LIMIT).code, Some(0));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(send_report(&a, report("r1")));
    // Another member reads what agent-a publishes.
    let tls = c.tls("probe");
    let probe = rt.block_on(async {
        let (t, inbound) =
            QuicTransport::bind("127.0.0.1:0".parse().unwrap(), &tls, MeshMetrics::noop()).unwrap();
        let id = MemberId::try_new("probe", Role::Agent, t.local_addr(), 1).unwrap();
        Mesh::start(
            id,
            MeshConfig::default(),
            t,
            inbound,
            &[mesh_addr(&a)],
            MeshMetrics::noop(),
        )
    });
    let get = |key: &str| rt.block_on(probe.get("agent-a", key)).unwrap();
    assert_eventually!(
        get("gpu/1").is_some()
            && get("seg/demo.infer.pod-1").is_some()
            && get("report/pipe/infer/r1").is_some(),
        "agent-a's keys reach the probe: {:?}",
        rt.block_on(probe.scan(""))
            .unwrap()
            .iter()
            .map(|(m, k, _)| format!("{m}:{k}"))
            .collect::<Vec<_>>()
    );
    let gpu: keys::GpuFacts = keys::decode(&get("gpu/1").unwrap()).unwrap();
    assert_eq!(gpu.count, 2, "{gpu:?}");
    let seg: keys::SegmentFacts = keys::decode(&get("seg/demo.infer.pod-1").unwrap()).unwrap();
    assert_eq!(
        (seg.gpu, seg.mode.as_str(), seg.target),
        (1, "cap", 0.25),
        "{seg:?}"
    );
    let r: sair_wire::StageReport = keys::decode(&get("report/pipe/infer/r1").unwrap()).unwrap();
    assert_eq!(r, report("r1"));
    // A segment removed on the node is removed from the mesh.
    let mut cmd = Command::new(agent_bin());
    cmd.args(["remove", "--segment", "demo.infer.pod-1", "--shm-dir"])
        .arg(a.shm_dir());
    assert_eq!(run_bounded(cmd, LIMIT).code, Some(0));
    assert_eventually!(
        get("seg/demo.infer.pod-1").is_none(),
        "the removed segment's key is deleted"
    );
    rt.block_on(probe.shutdown());
}
