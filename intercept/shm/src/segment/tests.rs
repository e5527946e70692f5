use super::*;

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "sair-shm-test-{tag}-{}-{}",
        std::process::id(),
        monotonic_ns()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn create_open_set_and_count() {
    let dir = tmp_dir("basic");
    let path = segment_path(&dir, "pipe.stage-0").unwrap();
    let seg = Segment::create(&path, 2, &Params::default()).unwrap();
    assert_eq!(seg.gpu(), 2);
    assert_eq!(seg.params(), Params::default());
    let other = Segment::open(&path).unwrap();
    let p = Params {
        refill_per_s: 7,
        ..Params::default()
    };
    seg.set_params(&p).unwrap();
    assert_eq!(other.params(), p, "both mappings see one file");
    assert!(other.generation() > 1);
    assert_eq!(
        list_segments(&dir).unwrap(),
        vec![("pipe.stage-0".to_owned(), path.clone())]
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o666);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn recreate_retires_old_file() {
    let dir = tmp_dir("retire");
    let path = segment_path(&dir, "s").unwrap();
    let old = Segment::create(&path, 0, &Params::default()).unwrap();
    let new = Segment::create(&path, 0, &Params::default()).unwrap();
    assert!(old.is_retired());
    assert!(!new.is_retired());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn open_errors_name_file_and_problem() {
    let dir = tmp_dir("errors");
    let path = dir.join("x.seg");
    let err = Segment::open(&path).unwrap_err();
    assert!(matches!(err, ShmError::Io { op: "open", .. }), "{err}");
    assert!(err.to_string().contains("x.seg"));

    std::fs::write(&path, [0u8; 100]).unwrap();
    let err = Segment::open(&path).unwrap_err();
    assert!(matches!(err, ShmError::Truncated { len: 100, .. }), "{err}");

    std::fs::write(&path, [0u8; SEGMENT_SIZE]).unwrap();
    let err = Segment::open(&path).unwrap_err();
    assert!(matches!(err, ShmError::BadMagic { found: 0, .. }), "{err}");

    let mut img = initial_bytes(0, &Params::default(), 0);
    img[8] = 9;
    std::fs::write(&path, img).unwrap();
    let err = Segment::open(&path).unwrap_err();
    assert!(
        matches!(err, ShmError::VersionMismatch { found_major: 9, .. }),
        "{err}"
    );

    let mut img = initial_bytes(0, &Params::default(), 0);
    img[16] = 1;
    std::fs::write(&path, img).unwrap();
    let err = Segment::open(&path).unwrap_err();
    assert!(matches!(err, ShmError::SizeMismatch { .. }), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn names_are_checked() {
    assert!(validate_segment_name("ok-1.a_b").is_ok());
    for bad in ["", ".hidden", "a/b", "sp ace", &"x".repeat(129)] {
        assert!(validate_segment_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn invalid_params_change_nothing() {
    let dir = tmp_dir("params");
    let path = segment_path(&dir, "p").unwrap();
    let seg = Segment::create(&path, 0, &Params::default()).unwrap();
    let bad = Params {
        cost_scale: -1.0,
        ..Params::default()
    };
    assert!(seg.set_params(&bad).is_err());
    assert_eq!(seg.params(), Params::default());
    assert!(Segment::create(&dir.join("q.seg"), 0, &bad).is_err());
    assert!(!dir.join("q.seg").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs `dd` as `uid` writing 8 zero bytes at `offset` of `path`; `None` when this process
/// cannot switch users (not root), so the caller skips with a printed reason.
fn dd_as(uid: u32, path: &Path, offset: usize) -> Option<bool> {
    use std::os::unix::process::CommandExt;
    let status = std::process::Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", path.display()))
        .args(["bs=1", "count=8", &format!("seek={offset}"), "conv=notrunc"])
        .uid(uid)
        .gid(uid)
        .stderr(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) => Some(s.success()),
        Err(e) => {
            eprintln!("skipped: cannot run dd as uid {uid}: {e}");
            None
        }
    }
}

/// Issue 14 (threat model): a process of another user cannot change the share of a segment
/// that belongs to a tenant; the tenant itself (and root, the agent) can open it.
#[test]
fn another_user_cannot_change_an_owned_segment() {
    // Only root can give a file to another user: whether this test can run at all.
    let dir = tmp_dir("owner");
    let probe = dir.join("probe");
    std::fs::write(&probe, b"").unwrap();
    if std::os::unix::fs::chown(&probe, Some(65_533), None).is_err() {
        eprintln!("skipped: not running as root, cannot create files owned by another user");
        std::fs::remove_dir_all(dir).unwrap();
        return;
    }
    // The directory and every one above it must be traversable by the other users (tmp_dir
    // is 0755, but a private TMPDIR of 0700 would refuse the owner too, for another reason).
    if let Some(closed) = dir
        .ancestors()
        .find(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
    {
        eprintln!(
            "skipped: {} is not traversable by other users (set TMPDIR elsewhere)",
            closed.display()
        );
        std::fs::remove_dir_all(dir).unwrap();
        return;
    }
    let path = segment_path(&dir, "tenant").unwrap();
    let p = Params {
        target_share: 0.3,
        ..Params::default()
    };
    let seg = Segment::create_with(&path, 0, &p, Access::Owner { uid: 65_533 }).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(Access::of(&meta), Access::Owner { uid: 65_533 });
    // `nobody` (65534) tries to zero the target share (offset 104): refused.
    let Some(other) = dd_as(65_534, &path, 104) else {
        std::fs::remove_dir_all(dir).unwrap();
        return;
    };
    assert!(!other, "another user wrote into the segment");
    assert_eq!(seg.params().target_share, 0.3);
    // The owner can write (here into reserved bytes of the bucket line, offset 152).
    assert_eq!(
        dd_as(65_533, &path, 152),
        Some(true),
        "the owner cannot attach"
    );
    assert_eq!(seg.params(), p);
    // A segment for any user is writable by `nobody`: the default, documented as such.
    let open = segment_path(&dir, "open").unwrap();
    Segment::create(&open, 0, &p).unwrap();
    assert_eq!(dd_as(65_534, &open, 152), Some(true));
    std::fs::remove_dir_all(dir).unwrap();
}
