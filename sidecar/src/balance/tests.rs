use super::*;

#[test]
fn p2c_prefers_the_less_loaded_endpoint() {
    let b = Balancer::new();
    b.update(&["a:1".into(), "b:2".into()]);
    // Hold many picks: P2C over two endpoints always takes the less loaded one.
    let picks: Vec<Pick> = (0..100).filter_map(|_| b.pick()).collect();
    let set = b.snapshot();
    let diff = set[0].inflight().abs_diff(set[1].inflight());
    assert!(
        diff <= 1,
        "in flight {} vs {}",
        set[0].inflight(),
        set[1].inflight()
    );
    drop(picks);
    assert_eq!(set[0].inflight() + set[1].inflight(), 0);
}

#[test]
fn update_keeps_counters_of_surviving_endpoints() {
    let b = Balancer::new();
    b.update(&["a:1".into()]);
    let p = b.pick().unwrap();
    b.update(&["a:1".into(), "c:3".into()]);
    let set = b.snapshot();
    assert_eq!(set.len(), 2);
    assert_eq!(set[0].inflight(), 1);
    drop(p);
    assert_eq!(set[0].inflight(), 0);
    b.update(&[]);
    assert!(b.pick().is_none());
}

#[test]
fn endpoints_file_grammar() {
    let text = "# replicas\n127.0.0.1:1\n\n  h:2  # comment\nbad\n";
    assert_eq!(parse_endpoints_file(text), vec!["127.0.0.1:1", "h:2"]);
}

#[tokio::test]
async fn file_target_is_reread_on_change() {
    let dir = std::env::temp_dir().join(format!("sair-sidecar-bal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("next");
    std::fs::write(&path, "127.0.0.1:1\n").unwrap();
    let b = Balancer::new();
    let stop = CancellationToken::new();
    let task = tokio::spawn(discover(
        NextTarget::File(path.clone()),
        b.clone(),
        Duration::from_millis(20),
        stop.clone(),
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while b.snapshot().len() != 1 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::write(&path, "127.0.0.1:1\n127.0.0.1:2\n127.0.0.1:3\n").unwrap();
    while b.snapshot().len() != 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "file change not picked up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    task.await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn dns_target_resolves_and_keeps_the_set_on_failure() {
    let b = Balancer::new();
    let stop = CancellationToken::new();
    let task = tokio::spawn(discover(
        NextTarget::Dns {
            name: "localhost".into(),
            port: 4321,
        },
        b.clone(),
        Duration::from_millis(20),
        stop.clone(),
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while b.snapshot().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "localhost never resolved"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let set = b.snapshot();
    assert!(
        set.iter().all(|e| e.authority.port_u16() == Some(4321)),
        "{set:?}"
    );
    assert!(
        set.iter()
            .any(|e| e.authority.host() == "127.0.0.1" || e.authority.host() == "[::1]"),
        "{set:?}"
    );
    stop.cancel();
    task.await.unwrap();
}
