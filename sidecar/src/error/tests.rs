use std::time::Duration;

use super::*;

fn too_large() -> ProxyError {
    ProxyError::Body(BodyError::TooLarge { max: 10 })
}

#[test]
fn a_413_is_a_client_error_not_an_admission_rejection() {
    let e = too_large();
    assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(e.outcome(), RequestOutcome::ClientError);
    assert!(!e.outcome().is_admission_refusal());
    assert_eq!(e.failure(), Failure::BodyTooLarge);
    assert_eq!(e.source_kind(), ErrorSource::Client);
    assert_eq!(e.to_string(), "request body exceeds the limit of 10 bytes");
}

#[test]
fn admission_refusals_are_rejections_with_their_own_reasons() {
    let full = ProxyError::Refused(Refusal::QueueFull { capacity: 2 });
    let late = ProxyError::Refused(Refusal::QueueTimeout {
        waited: Duration::from_millis(100),
    });
    for e in [&full, &late] {
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.outcome().is_admission_refusal());
        assert_eq!(e.source_kind(), ErrorSource::Admission);
    }
    assert_eq!(full.failure().reason(), "queue_full");
    assert_eq!(late.failure().reason(), "queue_timeout");
    assert!(full.to_string().contains("queue is full"), "{full}");
    assert!(late.to_string().contains("queue timeout"), "{late}");
}

#[test]
fn upstream_and_downstream_failures_keep_their_kind_as_reason() {
    let timeout = || UpstreamError::Timeout {
        after: Duration::from_secs(1),
    };
    let oversized = || UpstreamError::Body(BodyError::TooLarge { max: 1 });
    let refused = || UpstreamError::Connect {
        authority: "127.0.0.1:1".parse().unwrap(),
        source: std::io::ErrorKind::ConnectionRefused.into(),
    };
    let up = |source| ProxyError::Upstream {
        source,
        timing: None,
    };
    let down = |source| ProxyError::Downstream {
        target: "127.0.0.1:2".parse().unwrap(),
        source,
        timing: None,
    };
    assert_eq!(up(refused()).failure(), Failure::UpstreamRefused);
    assert_eq!(up(timeout()).failure(), Failure::UpstreamTimeout);
    assert_eq!(up(oversized()).failure(), Failure::UpstreamOversized);
    assert_eq!(down(refused()).failure(), Failure::DownstreamRefused);
    assert_eq!(down(timeout()).failure(), Failure::DownstreamTimeout);
    assert_eq!(down(oversized()).failure(), Failure::DownstreamOversized);
    for e in [up(timeout()), down(refused())] {
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(e.outcome(), RequestOutcome::UpstreamError);
    }
    assert!(
        down(refused()).to_string().contains("127.0.0.1:2"),
        "the failing replica is named"
    );
}

#[test]
fn timing_sticks_to_model_server_failures_only() {
    let t = StageTiming {
        queue: Duration::from_millis(1),
        service: Duration::from_millis(2),
    };
    let up = ProxyError::Upstream {
        source: UpstreamError::Timeout {
            after: Duration::from_secs(1),
        },
        timing: None,
    }
    .with_timing(t);
    assert_eq!(up.timing(), Some(t));
    assert_eq!(too_large().with_timing(t).timing(), None);
}

#[test]
fn a_malformed_body_is_a_client_error_and_a_hang_up_is_canceled() {
    let io = |kind| Box::new(std::io::Error::new(kind, "x")) as Box<_>;
    let malformed = ProxyError::Body(BodyError::Malformed(io(std::io::ErrorKind::InvalidData)));
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(malformed.outcome(), RequestOutcome::ClientError);
    assert_eq!(malformed.failure(), Failure::BodyMalformed);
    assert_eq!(malformed.source_kind(), ErrorSource::Client);
    let gone = ProxyError::Body(BodyError::Read(io(std::io::ErrorKind::UnexpectedEof)));
    assert_eq!(gone.status(), StatusCode::BAD_REQUEST);
    assert_eq!(gone.outcome(), RequestOutcome::Canceled);
    assert_eq!(gone.failure(), Failure::BodyUnreadable);
}
