use super::*;

#[test]
fn units() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
}

#[test]
fn bare_numbers_and_junk_are_refused_with_a_hint() {
    let e = parse_duration("150").unwrap_err();
    assert!(e.contains("no unit"), "{e}");
    assert!(e.contains("150ms"), "{e}");
    assert!(parse_duration("").is_err());
    assert!(parse_duration("fast").is_err());
    assert!(parse_duration("-1s").is_err());
    assert!(parse_duration("inf").is_err());
    assert!(parse_duration("NaNs").is_err());
}

#[test]
fn range_is_checked() {
    assert_eq!(parse_duration("30days"), Ok(MAX));
    let e = parse_duration("31days").unwrap_err();
    assert!(e.contains("30 days"), "{e}");
    assert!(parse_duration("99999999999999999999h").is_err());
    let p = parse_duration_within(Duration::from_millis(10), Duration::from_secs(10));
    assert_eq!(p("150ms"), Ok(Duration::from_millis(150)));
    let e = p("5ms").unwrap_err();
    assert!(e.contains("10ms..=10s"), "{e}");
    assert!(p("11s").is_err());
}

#[test]
fn format_round_trips() {
    for d in [
        Duration::from_millis(150),
        Duration::from_secs(600),
        Duration::from_micros(5000),
        Duration::from_secs(5400),
    ] {
        assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }
}
