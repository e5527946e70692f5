use super::*;

#[test]
fn outcome_and_failure_lists_are_in_declaration_order() {
    for (i, o) in RequestOutcome::ALL.iter().enumerate() {
        assert_eq!(*o as usize, i, "{o:?}");
    }
    for (i, f) in Failure::ALL.iter().enumerate() {
        assert_eq!(*f as usize, i, "{f:?}");
    }
}

#[test]
fn every_failure_series_has_distinct_labels() {
    let mut seen = std::collections::HashSet::new();
    for f in Failure::ALL {
        assert!(
            seen.insert((f.source().as_str(), f.reason())),
            "{f:?} repeats a label pair"
        );
    }
}

#[test]
fn counts_land_on_their_own_series() {
    let (m, handle) = StageMetrics::new("p", "s", &[0.1, 1.0]).unwrap();
    m.count(RequestOutcome::ClientError);
    m.count_failure(Failure::UpstreamTimeout);
    m.count_failure(Failure::UpstreamTimeout);
    let text = handle.render();
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in {text}"))
            .to_owned()
    };
    assert!(line("outcome=\"client_error\"").ends_with(" 1"));
    assert!(line("outcome=\"rejected\"").ends_with(" 0"));
    assert!(line("source=\"upstream\",reason=\"timeout\"").ends_with(" 2"));
    assert!(line("source=\"upstream\",reason=\"refused\"").ends_with(" 0"));
}
