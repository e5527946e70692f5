use super::*;
use crate::commit::CommitError;

fn dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "sair-agent-ops-{tag}-{}-{}",
        std::process::id(),
        sair_shm::clock::monotonic_ns()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const BURST: u64 = DEFAULT_BURST_NS;

fn write_share_bits(dir: &Path, name: &str, share: f64) {
    let seg = Segment::open(&segments::path_of(dir, name).unwrap()).unwrap();
    seg.layout()
        .control
        .target_share_bits
        .store(share.to_bits(), Relaxed);
}

/// Issue 14: NaN written into `target_share` let two `set-rate 0.9` on one GPU both pass.
#[test]
fn nan_share_counts_as_fully_committed() {
    let d = dir("nan");
    set_rate(&d, "a", 0.9, Some(0), Mode::Cap, BURST).unwrap();
    write_share_bits(&d, "a", f64::NAN);
    let err = set_rate(&d, "b", 0.9, Some(0), Mode::Cap, BURST).unwrap_err();
    assert!(
        matches!(
            err,
            AgentError::Commit(CommitError::Overcommitted { gpu: 0, .. })
        ),
        "{err}"
    );
    assert!(!segments::path_of(&d, "b").unwrap().exists());
    // Garbage that cannot even be opened is fail safe too.
    write_share_bits(&d, "a", 0.9);
    std::fs::write(d.join("junk.seg"), b"garbage").unwrap();
    assert!(set_rate(&d, "b", 0.05, Some(0), Mode::Cap, BURST).is_err());
    std::fs::remove_dir_all(d).unwrap();
}

/// Issue 14: `--rate 1e-12` gave a burst of 5e9 tokens; `--burst-us` took 0 and 2^64 − 1.
#[test]
fn tiny_share_and_unbounded_bursts_are_refused() {
    let d = dir("tiny");
    let err = set_rate(&d, "a", 1e-12, None, Mode::Cap, BURST).unwrap_err();
    assert!(
        matches!(err, AgentError::Commit(CommitError::BelowMinimum { .. })),
        "{err}"
    );
    for burst_ns in [0, u64::MAX] {
        let err = set_rate(&d, "a", 0.5, None, Mode::Cap, burst_ns).unwrap_err();
        assert!(err.is_config(), "{burst_ns}: {err}");
    }
    assert!(!segments::path_of(&d, "a").unwrap().exists());
    // At the minimum share the burst is at most 100 ms of device time.
    let o = set_rate(&d, "a", bounds::MIN_SHARE, None, Mode::Cap, BURST).unwrap();
    let ns = bounds::burst_device_ns(o.burst, o.refill_per_s, o.rate).unwrap();
    assert!(ns <= 5_000_000.0 * 1.01, "{o:?}: {ns} ns");
    std::fs::remove_dir_all(d).unwrap();
}

/// Issue 14: `set-rate --shm-dir /nonexistent/deep/dir` created the whole tree.
#[test]
fn set_rate_creates_only_the_directory_itself() {
    let d = dir("tree");
    let deep = d.join("nonexistent/deep/dir");
    let err = set_rate(&deep, "a", 0.5, None, Mode::Cap, BURST).unwrap_err();
    assert!(err.is_config(), "{err}");
    assert!(err.to_string().contains("--create-parents"), "{err}");
    assert!(!d.join("nonexistent").exists(), "a tree was created");
    let leaf = d.join("leaf");
    set_rate(&leaf, "a", 0.5, None, Mode::Cap, BURST).unwrap();
    assert!(segments::path_of(&leaf, "a").unwrap().exists());
    std::fs::remove_dir_all(d).unwrap();
}

/// Issue 14: `status` printed a retired segment as `cap 0.300`, and garbage as numbers.
#[test]
fn status_shows_an_invalid_segment_as_invalid() {
    let d = dir("status");
    set_rate(&d, "ok", 0.3, None, Mode::Cap, BURST).unwrap();
    set_rate(&d, "ret", 0.3, None, Mode::Cap, BURST).unwrap();
    set_rate(&d, "nan", 0.3, None, Mode::Cap, BURST).unwrap();
    Segment::open(&segments::path_of(&d, "ret").unwrap())
        .unwrap()
        .layout()
        .control
        .retired
        .store(1, Relaxed);
    write_share_bits(&d, "nan", f64::NAN);
    let rows = status(&d, Duration::ZERO).unwrap();
    let row = |n: &str| rows.iter().find(|r| r.segment == n).unwrap();
    assert_eq!(row("ok").target, Some(0.3));
    for (name, reason) in [("ret", "retired"), ("nan", "target_share")] {
        let r = row(name);
        assert_eq!(r.target, None, "{name}");
        assert_eq!(r.mode, None, "{name}");
        let e = r.error.as_deref().unwrap();
        assert!(e.contains("invalid") && e.contains(reason), "{name}: {e}");
    }
    let table = format_table(&rows);
    assert!(!table.contains("NaN"), "{table}");
    std::fs::remove_dir_all(d).unwrap();
}

/// Issue 14: `status --sample-ms 100000000000` hung.
#[test]
fn status_refuses_a_huge_sample_at_once() {
    let d = dir("sample");
    set_rate(&d, "a", 0.3, None, Mode::Cap, BURST).unwrap();
    let t = std::time::Instant::now();
    let err = status(&d, Duration::from_millis(100_000_000_000)).unwrap_err();
    assert!(err.is_config(), "{err}");
    // Refused before any sampling: far sooner than the 10^8 s asked for, however loaded.
    assert!(t.elapsed() < Duration::from_secs(10));
    std::fs::remove_dir_all(d).unwrap();
}

/// set-rate on a segment whose block is garbage starts from the default calibration, and
/// clears a retired flag left in the file at the path.
#[test]
fn set_rate_over_a_tampered_segment_writes_a_valid_block() {
    let d = dir("over");
    set_rate(&d, "a", 0.3, None, Mode::Cap, BURST).unwrap();
    let seg = Segment::open(&segments::path_of(&d, "a").unwrap()).unwrap();
    seg.layout().control.retired.store(1, Relaxed);
    seg.layout()
        .control
        .refill_per_s
        .store(14_000_000_000_000_000_000, Relaxed);
    set_rate(&d, "a", 0.4, None, Mode::Cap, BURST).unwrap();
    assert!(integrity::check(&seg.control_snapshot(), None).is_empty());
    std::fs::remove_dir_all(d).unwrap();
}
