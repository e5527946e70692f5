use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::sair::candidates::MoveKind;

fn ep(i: usize, pad: usize) -> Episode {
    let p = Point {
        p99_s: 0.05,
        cost_per_hour: 1.0,
    };
    Episode {
        t_s: i as f64,
        features: vec![0.25; pad],
        kind: MoveKind::Hold,
        stage: None,
        label: format!("episode {i}"),
        source: Source::Model,
        bottleneck: Some(1),
        candidates: vec![],
        action: Action {
            replicas: vec![1, 2],
            rho: vec![1.0, 0.5],
            shares: Vec::new(),
        },
        before: p,
        predicted: p,
        predicted_reward: 1.5,
        realised: p,
        reward: 1.5,
        surprisal: i as f64,
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sair-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn append_sync_reopen() {
    let d = tmp("reopen");
    let (mut s, rec) = Store::open(&d, 100).unwrap();
    assert_eq!(rec, Recovery::default());
    for i in 0..10 {
        s.append(ep(i, 4)).unwrap();
    }
    s.sync().unwrap();
    drop(s);
    let (s, rec) = Store::open(&d, 100).unwrap();
    assert_eq!(rec.kept, 10);
    assert_eq!(rec.dropped_bytes, 0);
    assert_eq!(s.episodes()[9], ep(9, 4));
}

#[test]
fn torn_tail_is_truncated_and_reported() {
    let d = tmp("torn");
    let (mut s, _) = Store::open(&d, 100).unwrap();
    for i in 0..5 {
        s.append(ep(i, 4)).unwrap();
    }
    s.sync().unwrap();
    let path = s.path();
    drop(s);
    let good_len = std::fs::metadata(&path).unwrap().len();
    let half = encode_record(&ep(5, 4)).unwrap();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&half[..half.len() / 2]).unwrap();
    drop(f);
    let (mut s, rec) = Store::open(&d, 100).unwrap();
    assert_eq!(rec.kept, 5);
    assert!(rec.dropped_bytes > 0);
    assert!(rec.reason.unwrap().contains("torn"));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
    s.append(ep(5, 4)).unwrap();
    s.sync().unwrap();
    drop(s);
    assert_eq!(Store::open(&d, 100).unwrap().0.episodes().len(), 6);
}

#[test]
fn corruption_in_the_middle_keeps_the_valid_prefix() {
    let d = tmp("corrupt");
    let (mut s, _) = Store::open(&d, 100).unwrap();
    for i in 0..6 {
        s.append(ep(i, 4)).unwrap();
    }
    s.sync().unwrap();
    let path = s.path();
    drop(s);
    let mut bytes = std::fs::read(&path).unwrap();
    let rec_len = encode_record(&ep(0, 4)).unwrap().len();
    // Flip a payload byte of the third record.
    let at = MAGIC.len() + 2 * rec_len + 20;
    bytes[at] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let (s, rec) = Store::open(&d, 100).unwrap();
    assert_eq!(rec.kept, 2);
    assert!(rec.reason.unwrap().contains("checksum"));
    assert!(d.join("experience.log.corrupt").exists());
    assert_eq!(s.episodes().len(), 2);
    // Garbage where the magic should be: start empty, keep the bytes aside.
    std::fs::write(&path, b"garbage!garbage").unwrap();
    let (s, rec) = Store::open(&d, 100).unwrap();
    assert_eq!(s.episodes().len(), 0);
    assert_eq!(rec.dropped_bytes, 15);
}

#[test]
fn compaction_bounds_the_store_and_keeps_surprising_old_episodes() {
    let d = tmp("compact");
    let (mut s, _) = Store::open(&d, 16).unwrap();
    for i in 0..17 {
        let mut e = ep(i, 2);
        // Old episodes 0..=8: episode 3 is the most surprising.
        e.surprisal = if i == 3 { 100.0 } else { 1.0 };
        s.append(e).unwrap();
    }
    assert_eq!(s.episodes().len(), 8 + 4);
    assert!(s.episodes().iter().any(|e| e.t_s == 3.0));
    assert_eq!(s.episodes().last().unwrap().t_s, 16.0);
    drop(s);
    assert_eq!(Store::open(&d, 16).unwrap().0.episodes().len(), 12);
}

/// The child half of the kill -9 test: when `SAIR_STORE_CHILD_DIR` names a directory, append
/// and sync episodes until killed. Without it, it is an ordinary short write-and-read test.
#[test]
fn kill9_child_writer() {
    match std::env::var("SAIR_STORE_CHILD_DIR") {
        Ok(dir) => {
            let (mut s, _) = Store::open(Path::new(&dir), 1_000_000).unwrap();
            let mut i = s.episodes().len();
            let started = Instant::now();
            // Bounded in time in case the parent dies before killing us.
            while started.elapsed() < Duration::from_secs(60) {
                s.append(ep(i, 2000)).unwrap();
                s.sync().unwrap();
                i += 1;
            }
        }
        Err(_) => {
            let d = tmp("child-plain");
            let (mut s, _) = Store::open(&d, 100).unwrap();
            s.append(ep(0, 2000)).unwrap();
            s.sync().unwrap();
            drop(s);
            assert_eq!(Store::open(&d, 100).unwrap().0.episodes().len(), 1);
        }
    }
}

#[test]
fn kill9_mid_write_then_recovery() {
    let d = tmp("kill9");
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join(FILE);
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sair::store::tests::kill9_child_writer",
                "--nocapture",
            ])
            .env("SAIR_STORE_CHILD_DIR", &d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let before = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(60);
        // Let it write a good number of records, then SIGKILL it mid-stream.
        while std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) < before + 400_000 {
            assert!(Instant::now() < deadline, "child writer made no progress");
            assert!(
                child.try_wait().unwrap().is_none(),
                "child writer exited early"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let (s, rec) = Store::open(&d, 1_000_000).unwrap();
        tracing::info!(
            round,
            kept = rec.kept,
            dropped = rec.dropped_bytes,
            "recovered"
        );
        assert!(rec.kept > 0);
        // Every kept record is intact and in order: t_s = 0, 1, 2, ...
        for (i, e) in s.episodes().iter().enumerate() {
            assert_eq!(e.t_s, i as f64);
            assert_eq!(e.features.len(), 2000);
        }
        let (valid, len, _) = scan(&std::fs::read(&path).unwrap()[MAGIC.len()..]);
        assert_eq!(valid.len(), rec.kept);
        assert_eq!(
            len as u64 + MAGIC.len() as u64,
            std::fs::metadata(&path).unwrap().len()
        );
    }
}
