use super::*;

fn args(extra: &[&str]) -> LoadgenArgs {
    let mut v = vec!["sair-loadgen", "--target", "http://127.0.0.1:1/"];
    v.extend_from_slice(extra);
    LoadgenArgs::try_parse_from(v).unwrap()
}

#[test]
fn durations_parse_with_units() {
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
    assert!(parse_duration("-1s").is_err());
    assert!(parse_duration("5 parsecs").is_err());
    assert!(parse_duration("abc").is_err());
}

#[test]
fn every_pattern_builds_from_flags() {
    let p = args(&[
        "--pattern",
        "burst",
        "--rate",
        "5",
        "--peak",
        "50",
        "--burst-every",
        "4",
        "--burst-len",
        "1",
    ]);
    assert_eq!(
        p.pattern().unwrap(),
        Pattern::Burst {
            rate: 5.0,
            peak: 50.0,
            every_s: 4.0,
            len_s: 1.0
        }
    );
    for name in ["ramp", "sine", "step"] {
        let p = args(&["--pattern", name, "--rate", "1", "--peak", "2"]);
        assert_eq!(p.pattern().unwrap().name(), name);
    }
    let plan = args(&["--header", "x-a: 1", "--body-size", "3", "--method", "POST"])
        .plan()
        .unwrap();
    assert_eq!(plan.headers["x-a"], "1");
    assert_eq!(plan.body.len(), 3);
    assert_eq!(plan.method, http::Method::POST);
}

#[test]
fn trace_flag_reads_the_file() {
    let dir = std::env::temp_dir().join(format!("sair-loadgen-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("t.csv");
    std::fs::write(&f, "second,rps\n0,10\n5,20\n").unwrap();
    let p = args(&[
        "--pattern",
        &format!("trace:{}", f.display()),
        "--speed",
        "2",
    ])
    .pattern()
    .unwrap();
    assert_eq!(
        p,
        Pattern::Trace {
            points: vec![(0.0, 10.0), (5.0, 20.0)],
            speed: 2.0
        }
    );
    std::fs::write(&f, "second,rps\n").unwrap();
    let e = args(&["--pattern", &format!("trace:{}", f.display())])
        .pattern()
        .unwrap_err();
    assert!(e.to_string().contains("no `second,rps` points"), "{e}");
    let e = args(&["--pattern", "trace:/nonexistent/x.csv"])
        .pattern()
        .unwrap_err();
    assert!(e.to_string().contains("trace:/nonexistent/x.csv"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_names_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--rate", "-5"], "`rate`"),
        (
            &["--pattern", "ramp", "--rate", "10", "--peak", "5"],
            "`peak`",
        ),
        (&["--pattern", "ramp"], "--peak"),
        (
            &["--pattern", "burst", "--peak", "500", "--burst-every", "0"],
            "`burst-every`",
        ),
        (
            &["--pattern", "sine", "--peak", "500", "--period", "-1"],
            "`period`",
        ),
        (&["--pattern", "zigzag"], "--pattern"),
        (&["--connections", "0"], "--connections"),
        (&["--duration", "0s"], "--duration"),
        (&["--header", "nocolon"], "--header"),
        (&["--method", "B A D"], "--method"),
        (&["--body-file", "/nonexistent/body"], "--body-file"),
    ];
    for (flags, needle) in cases {
        let e = args(flags).plan().unwrap_err().to_string();
        assert!(e.contains(needle), "{flags:?}: {e:?} lacks {needle:?}");
    }
}
