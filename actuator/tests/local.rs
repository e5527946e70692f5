//! The local supervisor with real processes: `sair-stage` model servers behind `sair-sidecar`s,
//! both from the workspace target dir (`cargo build -p sair-sidecar -p sair-loadgen` first).
//! Every wait is bounded by `sair_tests::patience()`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sair_actuator::local::{LocalActuator, LocalOptions, LocalStage, LocalStageRun, Phase};
use sair_actuator::{Actuator, ActuatorError, ReplicaStatus, StageRef};

fn options(tag: &str) -> LocalOptions {
    let mut o = LocalOptions::new(sair_tests::scratch(tag));
    o.bin_dir = Some(sair_tests::binary::target_dir());
    o.deregister_delay = Duration::from_millis(1500);
    o.drain_timeout = Duration::from_secs(3);
    o.stop_grace = Duration::from_secs(3);
    o.restart_initial = Duration::from_millis(200);
    o
}

fn run(extra: &[&str]) -> LocalStageRun {
    let mut command: Vec<String> = [
        "sair-stage",
        "--cpu-ms",
        "1",
        "--listen",
        "127.0.0.1:{port}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    command.extend(extra.iter().map(|s| s.to_string()));
    toml::from_str::<LocalStageRun>(&format!("command = {command:?}\nstartup_timeout = \"30s\""))
        .expect("a valid run table")
}

fn stage(pipeline: &str, name: &str, next: Option<&str>, run: LocalStageRun) -> LocalStage {
    LocalStage {
        stage: StageRef::new(pipeline, name),
        gpu: false,
        concurrency: 2,
        next: next.map(str::to_owned),
        run,
    }
}

/// The endpoints file's entries.
fn listed(path: &Path) -> Vec<SocketAddr> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

async fn status(a: &mut LocalActuator, s: &StageRef) -> ReplicaStatus {
    a.status(s).await.expect("a configured stage")
}

/// Polls until `cond` holds, within the harness's patience.
async fn eventually<F: FnMut(&mut LocalActuator) -> bool>(
    a: &mut LocalActuator,
    what: &str,
    mut cond: F,
) {
    let deadline = Instant::now() + sair_tests::patience();
    while !cond(a) {
        assert!(
            Instant::now() < deadline,
            "not within {:?}: {what}",
            sair_tests::patience()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `pid` runs: it exists and is not a zombie (a process whose supervisor was killed is
/// reaped by whoever adopted it, possibly later than it exits).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
    }
}

fn get(addr: SocketAddr) -> Option<u16> {
    sair_tests::http::request(addr, "POST", "/", b"x")
        .ok()
        .map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_1_2_1_lists_only_ready_replicas_and_unlists_before_stopping() {
    let pre = StageRef::new("p", "pre");
    let post = StageRef::new("p", "post");
    let mut a = LocalActuator::new(
        options("act-scale"),
        vec![
            // The entry stage loads for 1.5 s: listed only once ready.
            stage("p", "pre", Some("post"), run(&["--startup", "1500ms"])),
            stage("p", "post", None, run(&[])),
        ],
    )
    .expect("valid stages");
    let file = a.endpoints_file(&pre).expect("a file").to_path_buf();
    assert!(
        listed(&file).is_empty(),
        "written empty before anything starts"
    );

    a.scale(&post, 1).await.expect("scale post");
    a.scale(&pre, 1).await.expect("scale pre");
    let s = status(&mut a, &pre).await;
    assert_eq!(
        (s.desired, s.serving),
        (1, 0),
        "loading: desired but not serving"
    );
    let t0 = Instant::now();
    eventually(&mut a, "pre serving", |a| {
        a.replicas(&pre).iter().any(|r| r.phase == Phase::Serving)
    })
    .await;
    assert!(
        t0.elapsed() >= Duration::from_millis(1400),
        "served before --startup elapsed"
    );
    eventually(&mut a, "post serving", |a| {
        a.replicas(&post).iter().any(|r| r.phase == Phase::Serving)
    })
    .await;
    assert_eq!(
        status(&mut a, &pre).await,
        ReplicaStatus {
            desired: 1,
            serving: 1
        }
    );
    let first = listed(&file);
    assert_eq!(first.len(), 1);
    // Through the chain: pre's sidecar calls post through post's endpoints file.
    let mut ok = false;
    for _ in 0..50 {
        if get(first[0]) == Some(200) {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "a request through pre → post answered 200");

    a.scale(&pre, 2).await.expect("scale up");
    assert_eq!(status(&mut a, &pre).await.desired, 2);
    eventually(&mut a, "two listed", |a| {
        a.endpoints_file(&pre).map(listed).map(|l| l.len()) == Some(2)
    })
    .await;
    assert_eq!(
        status(&mut a, &pre).await,
        ReplicaStatus {
            desired: 2,
            serving: 2
        }
    );
    let views = a.replicas(&pre);
    let newest = views
        .iter()
        .max_by_key(|r| r.replica)
        .expect("two replicas")
        .clone();
    let removed = newest.address.expect("serving has an address");

    a.scale(&pre, 1).await.expect("scale down");
    // Out of the list the moment scale returns...
    assert_eq!(listed(&file), vec![first[0]]);
    assert_eq!(
        status(&mut a, &pre).await,
        ReplicaStatus {
            desired: 1,
            serving: 1
        }
    );
    // ...while it still serves during the deregistration delay (upstream may still pick it).
    assert_eq!(
        get(removed),
        Some(200),
        "drains after leaving the list, not before"
    );
    // Then it stops: its processes exit.
    let pids = [newest.server_pid, newest.sidecar_pid];
    let deadline = Instant::now() + sair_tests::patience();
    while pids.iter().flatten().any(|&p| alive(p)) {
        assert!(
            Instant::now() < deadline,
            "the removed replica's processes did not exit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        get(first[0]),
        Some(200),
        "the remaining replica still serves"
    );
    Box::new(a).shutdown().await;
}

/// A SIGKILLed model server is started again behind the sidecar that stays, on the same port,
/// as the kubelet restarts a crashed container in its pod: a request sent to the sidecar while
/// the server is down is held and answered by the new server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_model_server_is_restarted_behind_its_sidecar_and_counted() {
    let s = StageRef::new("p", "s");
    let mut a = LocalActuator::new(
        options("act-restart"),
        vec![stage("p", "s", None, run(&[]))],
    )
    .expect("valid");
    a.scale(&s, 1).await.expect("scale");
    eventually(&mut a, "serving", |a| {
        a.replicas(&s).iter().any(|r| r.phase == Phase::Serving)
    })
    .await;
    let before = a.replicas(&s)[0].clone();
    let pid = before.server_pid.expect("a model server pid");
    let address = before.address.expect("a serving address");
    tracing::info!(pid, "killing the model server");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    // Once the supervisor has seen the death, nothing listens behind the sidecar: a request
    // now waits in the sidecar (its connect retries) for the server that replaces it.
    eventually(&mut a, "the death seen", |a| {
        a.replicas(&s)
            .first()
            .is_some_and(|r| r.phase != Phase::Serving || r.restarts == 1)
    })
    .await;
    let held = tokio::task::spawn_blocking(move || get(address));
    eventually(&mut a, "restarted", |a| {
        a.replicas(&s).first().is_some_and(|r| {
            r.restarts == 1 && r.phase == Phase::Serving && r.server_pid != Some(pid)
        })
    })
    .await;
    assert_eq!(
        held.await.expect("the request's thread"),
        Some(200),
        "a request sent while the server was down is answered by its successor"
    );
    assert_eq!(a.restarts(&s), 1);
    let after = a.replicas(&s)[0].clone();
    assert!(
        after
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("model server exited")),
        "{after:?}"
    );
    assert_eq!(
        (after.sidecar_pid, after.address),
        (before.sidecar_pid, before.address),
        "the sidecar stays, at its address"
    );
    assert!(
        before.sidecar_pid.is_some_and(alive),
        "the sidecar still runs"
    );
    assert_eq!(
        status(&mut a, &s).await,
        ReplicaStatus {
            desired: 1,
            serving: 1
        }
    );
    let file = a.endpoints_file(&s).expect("file").to_path_buf();
    assert_eq!(listed(&file), vec![address], "relisted");
    assert_eq!(get(address), Some(200));
    let server = after.server_pid.expect("the new server's pid");
    Box::new(a).shutdown().await;
    for p in [Some(server), before.sidecar_pid].into_iter().flatten() {
        assert!(!alive(p), "pid {p} still running after shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_nothing_running() {
    let s = StageRef::new("p", "s");
    let mut a = LocalActuator::new(
        options("act-shutdown"),
        vec![stage("p", "s", None, run(&[]))],
    )
    .expect("valid");
    a.scale(&s, 2).await.expect("scale");
    eventually(&mut a, "two serving", |a| {
        a.replicas(&s)
            .iter()
            .filter(|r| r.phase == Phase::Serving)
            .count()
            == 2
    })
    .await;
    let pids: Vec<u32> = a
        .replicas(&s)
        .iter()
        .flat_map(|r| [r.server_pid, r.sidecar_pid])
        .flatten()
        .collect();
    assert_eq!(pids.len(), 4);
    let file = a.endpoints_file(&s).expect("file").to_path_buf();
    let t0 = Instant::now();
    Box::new(a).shutdown().await;
    tracing::info!(took_ms = t0.elapsed().as_millis() as u64, "shutdown");
    for p in pids {
        assert!(!alive(p), "pid {p} still running after shutdown");
    }
    assert!(listed(&file).is_empty(), "the list is emptied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_command_is_a_clear_error() {
    let missing = LocalActuator::new(
        options("act-bad"),
        vec![stage("p", "s", None, {
            let mut r = run(&[]);
            r.command[0] = "no-such-model-server".into();
            r
        })],
    )
    .expect_err("the program does not exist");
    assert!(
        matches!(missing, ActuatorError::ProgramNotFound { .. }),
        "{missing}"
    );
    assert!(
        missing.to_string().contains("no-such-model-server"),
        "{missing}"
    );

    // A program that exists but exits at once (a bad flag): retried, never listed, and the
    // reason is visible.
    let s = StageRef::new("p", "s");
    let mut a = LocalActuator::new(
        options("act-bad2"),
        vec![stage("p", "s", None, run(&["--no-such-flag"]))],
    )
    .expect("valid config");
    a.scale(&s, 1).await.expect("scale starts");
    eventually(&mut a, "a failed start recorded", |a| {
        a.replicas(&s).first().is_some_and(|r| r.restarts >= 1)
    })
    .await;
    let r = a.replicas(&s)[0].clone();
    let why = r.last_error.unwrap_or_default();
    assert!(
        why.contains("exited during start-up") && why.contains(".server.log"),
        "{why}"
    );
    assert_eq!(
        status(&mut a, &s).await,
        ReplicaStatus {
            desired: 1,
            serving: 0
        }
    );
    let err = a.scale(&s, 1000).await.expect_err("over the guard");
    assert!(
        matches!(err, ActuatorError::TooManyReplicas { .. }),
        "{err}"
    );
    let err = a
        .status(&StageRef::new("p", "nope"))
        .await
        .expect_err("unknown");
    assert!(matches!(err, ActuatorError::UnknownStage { .. }), "{err}");
    Box::new(a).shutdown().await;
}

/// The replica records file is outside input: an id at the top of the range is refused with
/// the file named, instead of overflowing the next id (a panic) or reusing one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_records_file_with_the_last_id_is_refused_not_a_panic() {
    let o = options("act-ids");
    let records = o.work_dir.join("p.s.replicas.json");
    std::fs::write(
        &records,
        format!(
            r#"{{"version":1,"replicas":[{{"replica":{},"server":null,"server_port":1,"sidecar":null,"listen":null,"admin":null}}]}}"#,
            u32::MAX
        ),
    )
    .expect("write the records file");
    let s = StageRef::new("p", "s");
    let mut a = LocalActuator::new(o, vec![stage("p", "s", None, run(&["--no-such-flag"]))])
        .expect("valid config");
    let err = a.scale(&s, 1).await.expect_err("no id is left");
    assert!(
        matches!(err, ActuatorError::InvalidConfig { .. })
            && err.to_string().contains("p.s.replicas.json"),
        "{err}"
    );
    assert!(a.replicas(&s).is_empty(), "nothing started");
    Box::new(a).shutdown().await;
}

/// The supervisor half of `a_restarted_supervisor_adopts_the_replicas_left_running`: run only
/// when that test starts this executable again with `SAIR_ACT_CHILD_DIR` set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started by a_restarted_supervisor_adopts_the_replicas_left_running"]
async fn child_supervisor() {
    let Some(dir) = std::env::var_os("SAIR_ACT_CHILD_DIR").map(PathBuf::from) else {
        return;
    };
    let s = StageRef::new("p", "s");
    let mut a = LocalActuator::new(child_options(&dir), vec![stage("p", "s", None, run(&[]))])
        .expect("valid");
    a.scale(&s, 2).await.expect("scale");
    eventually(&mut a, "two serving", |a| {
        a.replicas(&s)
            .iter()
            .filter(|r| r.phase == Phase::Serving)
            .count()
            == 2
    })
    .await;
    let pids: Vec<String> = a
        .replicas(&s)
        .iter()
        .flat_map(|r| [r.server_pid, r.sidecar_pid])
        .flatten()
        .map(|p| p.to_string())
        .collect();
    std::fs::write(dir.join("pids.tmp"), pids.join("\n")).expect("write pids");
    std::fs::rename(dir.join("pids.tmp"), dir.join("pids")).expect("publish pids");
    // Wait to be killed (bounded, in case the parent died first).
    tokio::time::sleep(Duration::from_secs(120)).await;
}

fn child_options(dir: &Path) -> LocalOptions {
    let mut o = LocalOptions::new(dir);
    o.bin_dir = Some(sair_tests::binary::target_dir());
    o.deregister_delay = Duration::from_millis(500);
    o.drain_timeout = Duration::from_secs(3);
    o.stop_grace = Duration::from_secs(3);
    o
}

/// Team rule: replicas outlive a crashed coordinator (as Pods outlive a crashed controller),
/// and a restarted one adopts them without emptying the list, scales them, restarts a dead
/// model server behind its adopted sidecar, and shuts them down.
#[test]
fn a_restarted_supervisor_adopts_the_replicas_left_running() {
    let dir = sair_tests::scratch("act-adopt");
    let exe = std::env::current_exe().expect("test executable");
    let mut child = std::process::Command::new(exe)
        .args(["child_supervisor", "--exact", "--ignored", "--nocapture"])
        .env("SAIR_ACT_CHILD_DIR", &dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the supervisor process");
    let deadline = Instant::now() + sair_tests::patience();
    let pids: Vec<u32> = loop {
        if let Ok(text) = std::fs::read_to_string(dir.join("pids")) {
            break text.lines().filter_map(|l| l.parse().ok()).collect();
        }
        if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            panic!("the supervisor process did not get two replicas serving");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(pids.len(), 4);
    // Whatever happens below, no process of this test outlives it.
    struct KillAll(Vec<u32>);
    impl Drop for KillAll {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*p as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let _guard = KillAll(pids.clone());
    let file = dir.join("p.s.endpoints");
    let listed_before = listed(&file);
    assert_eq!(listed_before.len(), 2);
    tracing::info!(?pids, "SIGKILL to the supervisor");
    child.kill().expect("SIGKILL the supervisor");
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(1000));
    for &p in &pids {
        assert!(alive(p), "pid {p} died with its supervisor");
    }
    for a in &listed_before {
        assert_eq!(get(*a), Some(200), "{a} serves without a supervisor");
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let s = StageRef::new("p", "s");
        let mut a = LocalActuator::new(child_options(&dir), vec![stage("p", "s", None, run(&[]))])
            .expect("valid");
        // Never emptied on start: the list is rewritten from the adopted replicas.
        assert_eq!(listed(&file), listed_before);
        assert_eq!(
            status(&mut a, &s).await,
            ReplicaStatus {
                desired: 2,
                serving: 2
            }
        );
        let views = a.replicas(&s);
        let mut adopted: Vec<u32> = views
            .iter()
            .flat_map(|r| [r.server_pid, r.sidecar_pid])
            .flatten()
            .collect();
        adopted.sort_unstable();
        let mut expected = pids.clone();
        expected.sort_unstable();
        assert_eq!(adopted, expected, "the same processes, not new ones");
        a.scale(&s, 1).await.expect("scale down an adopted replica");
        assert_eq!(listed(&file).len(), 1);
        let deadline = Instant::now() + sair_tests::patience();
        while pids.iter().filter(|&&p| alive(p)).count() > 2 {
            assert!(
                Instant::now() < deadline,
                "the removed adopted replica kept running"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // The adopted model server dies: a new one starts behind the adopted sidecar, which
        // stays at its address.
        let kept = a.replicas(&s)[0].clone();
        let old_server = kept.server_pid.expect("the adopted server's pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(old_server as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the adopted server");
        eventually(&mut a, "the adopted server replaced", |a| {
            a.replicas(&s).first().is_some_and(|r| {
                r.restarts == 1 && r.phase == Phase::Serving && r.server_pid != Some(old_server)
            })
        })
        .await;
        let after = a.replicas(&s)[0].clone();
        assert_eq!(
            (after.sidecar_pid, after.address),
            (kept.sidecar_pid, kept.address),
            "the adopted sidecar stays"
        );
        let address = after.address.expect("serving");
        assert_eq!(listed(&file), vec![address]);
        assert_eq!(
            tokio::task::spawn_blocking(move || get(address))
                .await
                .expect("request"),
            Some(200)
        );
        let new_server = after.server_pid.expect("the new server's pid");
        Box::new(a).shutdown().await;
        assert!(
            !alive(new_server),
            "the new server still runs after shutdown"
        );
    });
    for &p in &pids {
        assert!(!alive(p), "pid {p} still running after shutdown");
    }
    assert!(listed(&file).is_empty());
}

/// A GPU stage on the GPU emulator through the real interception library: the segment
/// `<pipeline>.<stage>.<replica>` is created (mode off) before the replica starts, the model
/// server's launches are charged to it (`LD_PRELOAD`, `SAIR_SEGMENT`, `SAIR_SHM_DIR`), and it
/// is removed when the replica stops for good. Needs `cargo build -p sair-intercept
/// -p sair-emu-cuda -p sair-node-agent` (the workspace build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_replica_gets_its_segment_and_the_interception_library() {
    let g = StageRef::new("p", "g");
    let mut o = options("act-gpu");
    let shm = o.work_dir.join("shm");
    let drivers =
        sair_tests::emulator::driver_dir(&o.work_dir.join("drivers")).expect("driver dir");
    o.shm_dir = Some(shm.clone());
    o.intercept_lib = Some(sair_tests::binary("libsair_intercept.so"));
    let mut r = run(&[
        "--gpu-kernels",
        "2",
        "--kernel-blocks",
        "100",
        "--concurrency",
        "1",
    ]);
    r.command[2] = "0".into(); // --cpu-ms 0: GPU work only
    r.env
        .insert("LD_LIBRARY_PATH".into(), drivers.display().to_string());
    r.env.insert(
        "SAIR_EMU_STATE".into(),
        o.work_dir.join("emu.state").display().to_string(),
    );
    let mut spec = stage("p", "g", None, r);
    spec.gpu = true;
    let mut a = LocalActuator::new(o, vec![spec]).expect("valid");
    a.scale(&g, 1).await.expect("scale");
    eventually(&mut a, "serving", |a| {
        a.replicas(&g).iter().any(|r| r.phase == Phase::Serving)
    })
    .await;
    let seg = shm.join("p.g.0.seg");
    assert!(seg.exists(), "segment {} not created", seg.display());
    let addr = a.replicas(&g)[0].address.expect("address");
    for _ in 0..5 {
        assert_eq!(get(addr), Some(200));
    }
    // Launches counter: offset 160 of the segment (docs/gpu.md), little-endian u64.
    let bytes = std::fs::read(&seg).expect("read the segment");
    let launches = u64::from_le_bytes(bytes[160..168].try_into().expect("8 bytes"));
    assert!(
        launches >= 10,
        "launches charged to the segment: {launches}"
    );
    Box::new(a).shutdown().await;
    assert!(!seg.exists(), "the segment outlived its replica");
}
