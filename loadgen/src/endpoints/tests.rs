use super::*;

#[test]
fn parses_entries_comments_and_bad_lines() {
    let (addrs, bad) =
        parse("# header\n127.0.0.1:1\n\n  127.0.0.1:2  # two\nnot-an-addr\n[::1]:3\n");
    assert_eq!(addrs.len(), 3);
    assert_eq!(bad, vec![(5, "not-an-addr".to_owned())]);
}

#[tokio::test]
async fn picks_round_robin_and_follows_the_file() {
    let path = std::env::temp_dir().join(format!("sair-loadgen-eps-{}", std::process::id()));
    std::fs::write(&path, "127.0.0.1:1\n127.0.0.1:2\n").expect("write");
    let list = EndpointList::new(&path);
    list.wait_for_entries(Duration::from_secs(1))
        .await
        .expect("entries");
    let picks: Vec<_> = (0..4)
        .filter_map(|_| list.pick())
        .map(|a| a.port())
        .collect();
    assert_eq!(picks.iter().filter(|&&p| p == 1).count(), 2);
    assert_eq!(picks.iter().filter(|&&p| p == 2).count(), 2);
    // Same length, new text: still seen (text is compared, not mtime and size).
    std::fs::write(&path, "127.0.0.1:3\n127.0.0.1:4\n").expect("write");
    list.refresh().await.expect("refresh");
    assert!(list.addrs().iter().all(|a| a.port() >= 3));
    // Only bad lines: kept. Empty: emptied.
    std::fs::write(&path, "garbage\n").expect("write");
    list.refresh().await.expect("refresh");
    assert_eq!(list.addrs().len(), 2);
    std::fs::write(&path, "# nothing\n").expect("write");
    list.refresh().await.expect("refresh");
    assert!(list.pick().is_none());
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn waiting_for_entries_is_bounded() {
    let list = EndpointList::new("/nonexistent/sair-loadgen-eps");
    let start = std::time::Instant::now();
    let err = list
        .wait_for_entries(Duration::from_millis(600))
        .await
        .expect_err("no file");
    assert!(err.contains("cannot read"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
