use super::*;

#[test]
fn plain_and_chunked_bodies() {
    let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    assert_eq!(parse_response(plain), Ok((200, b"ok".to_vec())));
    let chunked =
        b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    assert_eq!(parse_response(chunked), Ok((503, b"abcde".to_vec())));
    assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    assert!(parse_response(b"garbage\r\n\r\n").is_err());
}

#[test]
fn decision_fields_are_read_leniently() {
    let r = serde_json::json!({"time": 12.5, "action": {"replicas": [1, 2]}, "source": "model",
        "bottleneck": "infer", "rationale": "queue wait grows"});
    let d = DecisionLine::of(&r);
    assert_eq!(d.time, 12.5);
    assert_eq!(d.action, r#"{"replicas":[1,2]}"#);
    assert_eq!(d.bottleneck.as_deref(), Some("infer"));
    assert_eq!(
        DecisionLine::of(&serde_json::json!({})),
        DecisionLine::default()
    );
}
