use super::*;

fn id(max: u32) -> ReportIdentity {
    ReportIdentity {
        pipeline: "p".into(),
        stage: "s".into(),
        replica: "r".into(),
        max_concurrency: max,
    }
}

#[test]
fn busy_fraction_is_slot_time_over_window() {
    let t0 = Instant::now();
    let mut w = ReportWindow::new(id(2), t0);
    // One slot busy for the whole second, another for half of it.
    w.dispatched(t0, Duration::ZERO);
    w.dispatched(t0 + Duration::from_millis(500), Duration::from_millis(500));
    w.slot_released(t0 + Duration::from_millis(1000));
    let r = w.take(t0 + Duration::from_secs(1), 0, 0);
    assert!((r.mean_inflight - 1.5).abs() < 1e-6, "{}", r.mean_inflight);
    assert!((r.busy_fraction - 0.75).abs() < 1e-6, "{}", r.busy_fraction);
    r.validate().unwrap();
    // The next window starts with the one slot still busy.
    let r2 = w.take(t0 + Duration::from_secs(2), 0, 0);
    assert!((r2.busy_fraction - 0.5).abs() < 1e-6);
    assert_eq!(r2.arrivals, 0);
}

#[test]
fn percentiles_and_counts() {
    let t0 = Instant::now();
    let mut w = ReportWindow::new(id(0), t0);
    for i in 1..=100u64 {
        w.arrival();
        w.dispatched(t0, Duration::from_millis(i));
        w.served(Duration::from_millis(20));
        w.slot_released(t0);
        w.finished(false, i % 10 == 0);
    }
    w.finished(true, false);
    let r = w.take(t0 + Duration::from_secs(1), 3, 7);
    assert_eq!(
        (r.arrivals, r.completions, r.rejections, r.errors),
        (100, 100, 1, 10)
    );
    assert!(
        (r.queue_wait.p50 - 0.050).abs() < 0.001,
        "{:?}",
        r.queue_wait
    );
    assert!(
        (r.queue_wait.p99 - 0.099).abs() < 0.001,
        "{:?}",
        r.queue_wait
    );
    assert!((r.service.p95 - 0.020).abs() < 0.0001);
    assert_eq!(r.queue_depth, 3);
    assert_eq!(r.window_end_unix_ms, 7);
    r.validate().unwrap();
}

#[test]
fn feed_applies_events_from_many_threads_before_closing() {
    let t0 = Instant::now();
    let feed = std::sync::Arc::new(WindowFeed::new(ReportWindow::new(id(4), t0)));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let feed = feed.clone();
            std::thread::spawn(move || {
                for _ in 0..250 {
                    feed.record(WindowEvent::Arrival);
                    let at = Instant::now();
                    feed.record(WindowEvent::Dispatched {
                        at,
                        queue_wait: Duration::from_millis(2),
                    });
                    feed.record(WindowEvent::Served {
                        service: Duration::from_millis(10),
                    });
                    feed.record(WindowEvent::SlotReleased { at });
                    feed.record(WindowEvent::Finished {
                        rejected: false,
                        error: false,
                    });
                }
                feed.record(WindowEvent::Finished {
                    rejected: true,
                    error: false,
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let r = feed.take(Instant::now(), 0, 0).unwrap();
    assert_eq!((r.arrivals, r.completions, r.rejections), (1000, 1000, 4));
    assert!(
        (r.queue_wait.p50 - 0.002).abs() < 0.0001,
        "{:?}",
        r.queue_wait
    );
    assert!((r.service.p99 - 0.010).abs() < 0.0001, "{:?}", r.service);
    // Everything was applied: the next window is empty.
    let r2 = feed.take(Instant::now(), 0, 0).unwrap();
    assert_eq!((r2.arrivals, r2.completions), (0, 0));
}

/// The report's mergeable histograms hold the window's samples: the same counts as the
/// percentiles were computed from, quantiles that agree with them, and nothing left over for
/// the next window.
#[test]
fn histograms_carry_the_windows_samples() {
    let t0 = Instant::now();
    let mut w = ReportWindow::new(id(0), t0);
    for i in 1..=100u64 {
        w.arrival();
        w.dispatched(t0, Duration::from_millis(i));
        w.served(Duration::from_millis(20));
        w.slot_released(t0);
        w.finished(false, false);
    }
    // One dispatched request still in service when the window closes.
    w.dispatched(t0, Duration::from_millis(1));
    let (queued, served) = (w.queue_wait.len(), w.service.len());
    let r = w.take(t0 + Duration::from_secs(1), 0, 0);
    assert_eq!(r.queue_wait_hist.count(), 101);
    assert_eq!(r.queue_wait_hist.count(), queued);
    assert_eq!(r.service_hist.count(), served);
    assert_eq!(r.service_hist.count(), r.completions);
    let close = |a: f64, b: f64| (a - b).abs() <= b * 0.025;
    assert!(close(r.queue_wait_hist.quantile(0.99), r.queue_wait.p99));
    assert!(close(r.service_hist.quantile(0.5), 0.020));
    assert!((r.service_hist.mean() - 0.020).abs() < 1e-9);
    // No request entered the pipeline here.
    assert!(r.e2e_hist.is_empty());
    r.validate().unwrap();
    let r2 = w.take(t0 + Duration::from_secs(2), 0, 0);
    assert!(r2.queue_wait_hist.is_empty() && r2.service_hist.is_empty());
}

#[test]
fn pipeline_requests_fill_the_e2e_histogram_through_the_feed() {
    let t0 = Instant::now();
    let feed = WindowFeed::new(ReportWindow::new(id(1), t0));
    for seconds in [0.010, 0.020, 0.030] {
        feed.record(WindowEvent::PipelineRequest { seconds });
    }
    let r = feed.take(t0 + Duration::from_secs(1), 0, 0).unwrap();
    assert_eq!(r.e2e_hist.count(), 3);
    assert!((r.e2e_hist.sum_seconds() - 0.060).abs() < 1e-9);
    let r2 = feed.take(t0 + Duration::from_secs(2), 0, 0).unwrap();
    assert!(r2.e2e_hist.is_empty());
}
