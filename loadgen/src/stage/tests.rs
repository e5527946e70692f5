use super::*;

fn args(extra: &[&str]) -> StageArgs {
    let mut v = vec!["sair-stage"];
    v.extend_from_slice(extra);
    StageArgs::try_parse_from(v).unwrap()
}

#[test]
fn bad_flags_are_named() {
    let cases: &[(&[&str], &str)] = &[
        (&["--cpu-ms", "-1"], "--cpu-ms"),
        (&["--concurrency", "0"], "--concurrency"),
        (&["--cv", "-0.5"], "--cv"),
        (
            &["--gpu-kernels", "1", "--kernel-blocks", "0"],
            "--kernel-blocks",
        ),
    ];
    for (flags, needle) in cases {
        let e = args(flags).build().unwrap_err().to_string();
        assert!(e.contains(needle), "{flags:?}: {e}");
    }
}

#[test]
fn samplers_have_the_requested_mean() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (dist, cv) in [(Dist::Exp, 1.0), (Dist::Lognormal, 0.5)] {
        let s = args(&[
            "--cpu-ms",
            "10",
            "--dist",
            if dist == Dist::Exp {
                "exp"
            } else {
                "lognormal"
            },
        ])
        .build()
        .unwrap()
        .sampler;
        let xs: Vec<f64> = (0..20_000).map(|_| s.sample(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
        assert!((mean - 10.0).abs() < 0.4, "{dist:?} mean {mean}");
        assert!((sd / mean - cv).abs() < 0.08, "{dist:?} cv {}", sd / mean);
    }
}
