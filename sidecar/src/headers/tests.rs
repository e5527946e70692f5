use std::time::Duration;

use super::*;

#[test]
fn millis_match_float_formatting() {
    for nanos in [
        0u64,
        1,
        499,
        500,
        999,
        1_000,
        12_345,
        999_499,
        999_501,
        1_000_000,
        20_000_123,
        123_456_789_012,
    ] {
        let d = Duration::from_nanos(nanos);
        let mut s = String::new();
        push_millis(&mut s, d);
        assert_eq!(s, format!("{:.3}", d.as_secs_f64() * 1e3), "{nanos} ns");
    }
    // Exact half microseconds round up (float formatting may go either way on those).
    let mut s = String::new();
    push_millis(&mut s, Duration::from_nanos(999_500));
    assert_eq!(s, "1.000");
}

#[test]
fn server_timing_puts_ours_first() {
    let mut later = HeaderMap::new();
    later.append(
        &SERVER_TIMING,
        HeaderValue::from_static("b-queue;dur=1.000"),
    );
    later.append(
        &SERVER_TIMING,
        HeaderValue::from_static("b-service;dur=2.500"),
    );
    let t = StageTiming {
        queue: Duration::from_micros(1500),
        service: Duration::from_millis(20),
    };
    let v = server_timing("a", t, &later).unwrap();
    assert_eq!(
        v.to_str().unwrap(),
        "a-queue;dur=1.500, a-service;dur=20.000, b-queue;dur=1.000, b-service;dur=2.500"
    );
}

#[test]
fn request_ids_are_32_hex_digits() {
    let a = new_request_id();
    let b = new_request_id();
    assert_ne!(a, b);
    for v in [a, b] {
        let s = v.to_str().unwrap();
        assert_eq!(s.len(), 32);
        assert!(
            s.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
}

#[test]
fn hop_by_hop_headers_go_and_others_stay() {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert("x-keep", HeaderValue::from_static("1"));
    let before = h.clone();
    strip_hop_by_hop(&mut h);
    assert_eq!(h, before);
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("close, x-drop"),
    );
    h.insert("x-drop", HeaderValue::from_static("1"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    strip_hop_by_hop(&mut h);
    assert_eq!(h, before);
}

#[test]
fn keep_alive_answers_lose_only_connection_headers() {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
    h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 1);
    assert!(h.contains_key(header::CONTENT_LENGTH));
}

#[test]
fn the_entry_starts_the_context_and_later_stages_keep_it() {
    let mut h = HeaderMap::new();
    let (first, entry) = PipelineContext::stamp(&mut h);
    assert!(entry);
    assert_eq!(h[&X_REQUEST_ID], first.request_id);
    assert!(h[&X_START].to_str().unwrap().parse::<u64>().unwrap() > 0);
    let (later, entry) = PipelineContext::stamp(&mut h.clone());
    assert!(!entry);
    assert_eq!(later.request_id, first.request_id);
    assert_eq!(later.start, first.start);
    let carried = PipelineContext::of(&h).unwrap();
    assert_eq!(carried.start, first.start);
    assert!(PipelineContext::of(&HeaderMap::new()).is_none());
}

#[test]
fn trailers_are_accepted_only_when_te_lists_them() {
    let mut h = HeaderMap::new();
    assert!(!accepts_trailers(&h));
    h.insert(header::TE, HeaderValue::from_static("gzip, trailers;q=1"));
    assert!(accepts_trailers(&h));
    h.insert(header::TE, HeaderValue::from_static("gzip"));
    assert!(!accepts_trailers(&h));
    h.insert(header::TE, HeaderValue::from_static("Trailers"));
    assert!(accepts_trailers(&h));
}

#[test]
fn grpc_is_told_by_its_content_type() {
    let mut h = HeaderMap::new();
    assert!(!is_grpc(&h));
    for ct in [
        "application/grpc",
        "application/grpc+proto",
        "Application/GRPC+json",
    ] {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        assert!(is_grpc(&h), "{ct}");
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    assert!(!is_grpc(&h));
}

#[test]
fn a_trailer_announcement_is_end_to_end_and_kept() {
    let mut h = HeaderMap::new();
    h.insert(header::TRAILER, HeaderValue::from_static("grpc-status"));
    h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    strip_hop_by_hop(&mut h);
    assert_eq!(h[header::TRAILER], "grpc-status");
    assert!(!h.contains_key(header::CONNECTION));
}

#[test]
fn streamed_timing_lists_our_entries_then_the_later_ones() {
    let mut later = HeaderMap::new();
    later.insert(
        SERVER_TIMING,
        HeaderValue::from_static("next-service;dur=1.000"),
    );
    let v = timing_value(
        "gen",
        &[
            ("ttfb", Duration::from_micros(1500)),
            ("service", Duration::from_millis(900)),
        ],
        &later,
    )
    .unwrap();
    assert_eq!(
        v,
        "gen-ttfb;dur=1.500, gen-service;dur=900.000, next-service;dur=1.000"
    );
}

/// The forwarded field count: hop-by-hop fields, `Host` and `Content-Length` out; `Host`,
/// `Content-Length` (when a body may be sent) and `TE: trailers` (when accepted) back in.
#[test]
fn forwarded_over_counts_the_fields_as_forwarded() {
    let mut h = HeaderMap::new();
    for i in 0..8 {
        h.insert(
            HeaderName::from_bytes(format!("x-f{i}").as_bytes()).unwrap(),
            HeaderValue::from_static("a"),
        );
    }
    // 8 fields, far under the limit: the fast path.
    assert_eq!(forwarded_over(&h, &http::Method::GET, 100), None);
    // 8 + Host.
    assert_eq!(forwarded_over(&h, &http::Method::GET, 9), None);
    assert_eq!(forwarded_over(&h, &http::Method::GET, 8), Some(9));
    // + Content-Length for a POST.
    assert_eq!(forwarded_over(&h, &http::Method::POST, 9), Some(10));
    h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(header::HOST, HeaderValue::from_static("x"));
    assert_eq!(forwarded_over(&h, &http::Method::GET, 9), None);
    // TE: trailers is put back; chunked framing becomes a Content-Length.
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    h.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    assert_eq!(forwarded_over(&h, &http::Method::GET, 10), Some(11));
    assert_eq!(forwarded_over(&h, &http::Method::GET, 11), None);
}
