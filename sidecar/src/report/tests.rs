use super::*;

#[test]
fn buffer_drops_the_oldest_and_counts() {
    let (m, handle) = crate::metrics::StageMetrics::new("p", "s", &[0.1, 1.0]).unwrap();
    let b = ReportBuffer::new(2, m.reports_dropped.clone());
    for i in 0..5u64 {
        b.push(StageReport {
            arrivals: i,
            ..Default::default()
        });
    }
    assert_eq!(b.len(), 2);
    assert_eq!(b.pop().unwrap().arrivals, 3);
    assert_eq!(b.pop().unwrap().arrivals, 4);
    assert!(b.is_empty());
    let text = handle.render();
    assert!(
        text.lines()
            .any(|l| l.starts_with(crate::metrics::REPORTS_DROPPED_TOTAL) && l.ends_with(" 3")),
        "{text}"
    );
}
