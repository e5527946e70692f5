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
