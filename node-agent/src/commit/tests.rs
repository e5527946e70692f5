use super::*;

fn claim(segment: &str, gpu: u32, rate: f64, mode: Mode) -> Claim {
    Claim {
        segment: segment.into(),
        gpu,
        rate,
        mode,
        invalid: false,
    }
}

#[test]
fn rates_outside_unit_interval_are_refused() {
    for bad in [0.0, -0.1, 1.01, f64::NAN, f64::INFINITY] {
        let err = check_commitment(&[], &claim("a", 0, bad, Mode::Cap)).unwrap_err();
        assert!(matches!(err, CommitError::RateOutOfRange { .. }), "{bad}");
    }
    check_commitment(&[], &claim("a", 0, 1.0, Mode::Cap)).unwrap();
}

#[test]
fn over_commit_names_gpu_sum_and_segments() {
    let existing = vec![
        claim("a", 0, 0.5, Mode::Cap),
        claim("b", 0, 0.3, Mode::Share),
        claim("c", 1, 0.9, Mode::Cap),
        claim("d", 0, 1.0, Mode::Off),
    ];
    check_commitment(&existing, &claim("e", 0, 0.2, Mode::Cap)).unwrap();
    let err = check_commitment(&existing, &claim("e", 0, 0.3, Mode::Cap)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("GPU 0"), "{text}");
    assert!(text.contains("1.100"), "{text}");
    assert!(
        text.contains("a=0.5") && text.contains("b=0.3") && text.contains("e=0.3"),
        "{text}"
    );
    assert!(!text.contains("c=") && !text.contains("d="), "{text}");
}

#[test]
fn a_segment_replaces_its_own_claim() {
    let existing = vec![claim("a", 0, 0.9, Mode::Cap)];
    check_commitment(&existing, &claim("a", 0, 1.0, Mode::Cap)).unwrap();
    // Moving to another GPU frees the old one.
    check_commitment(&existing, &claim("a", 1, 1.0, Mode::Cap)).unwrap();
}

#[test]
fn off_mode_reserves_nothing() {
    let existing = vec![claim("a", 0, 1.0, Mode::Cap)];
    check_commitment(&existing, &claim("b", 0, 1.0, Mode::Off)).unwrap();
}

#[test]
fn float_sums_at_exactly_one_pass() {
    let existing = vec![claim("a", 0, 0.1, Mode::Cap), claim("b", 0, 0.2, Mode::Cap)];
    check_commitment(&existing, &claim("c", 0, 0.7, Mode::Cap)).unwrap();
}

#[test]
fn an_invalid_share_counts_as_the_whole_gpu() {
    let existing = vec![Claim::fully_committed("nan".into(), 0)];
    let err = check_commitment(&existing, &claim("b", 0, 0.1, Mode::Cap)).unwrap_err();
    assert!(err.to_string().contains("nan=1 (invalid"), "{err}");
    check_commitment(&existing, &claim("b", 1, 0.9, Mode::Cap)).unwrap();
    check_commitment(&existing, &claim("b", 0, 1.0, Mode::Off)).unwrap();
}
