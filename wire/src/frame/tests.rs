use proptest::prelude::*;

use super::*;
use crate::histogram::LatencyHistogram;
use crate::message::Message;
use crate::report::{Percentiles, StageReport};

fn hist_strategy() -> impl Strategy<Value = LatencyHistogram> {
    proptest::collection::vec((-6.0f64..4.0, 1u64..1000), 0..40).prop_map(|samples| {
        let mut h = LatencyHistogram::new();
        for (e, n) in samples {
            h.record_n(10f64.powf(e), n);
        }
        h
    })
}

fn report_strategy() -> impl Strategy<Value = StageReport> {
    (
        ("[a-z]{1,12}", "[a-z]{1,12}", "[a-z0-9-]{0,20}"),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        (0.0f64..1e6, 0.0f64..1.0, any::<u32>()),
        (hist_strategy(), hist_strategy(), hist_strategy()),
    )
        .prop_map(
            |((p, s, r), (a, c, rej, e), (x, busy, mc), (qh, sh, eh))| StageReport {
                pipeline: p,
                stage: s,
                replica: r,
                window_end_unix_ms: a,
                window_seconds: 1.0 + x,
                arrivals: a,
                completions: c,
                rejections: rej,
                errors: e,
                queue_wait: Percentiles {
                    p50: x,
                    p95: x * 2.0,
                    p99: x * 3.0,
                },
                service: Percentiles::default(),
                mean_inflight: x,
                queue_depth: c,
                busy_fraction: busy,
                max_concurrency: mc,
                queue_wait_hist: qh,
                service_hist: sh,
                e2e_hist: eh,
            },
        )
}

proptest! {
    #[test]
    fn round_trip(report in report_strategy()) {
        prop_assert_eq!(report.validate(), Ok(()));
        let env = Envelope::new(Message::StageReport(report));
        let bytes = encode(&env, MAX_FRAME_BYTES).unwrap();
        prop_assert_eq!(decode(&bytes, MAX_FRAME_BYTES).unwrap(), env);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes, MAX_FRAME_BYTES);
        let _ = decode_payload(&bytes);
    }
}

#[test]
fn oversized_length_is_refused_before_reading() {
    let mut bytes = (u32::MAX).to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0; 8]);
    match decode(&bytes, MAX_FRAME_BYTES) {
        Err(FrameError::FrameTooLarge { len, max }) => {
            assert_eq!(len, u32::MAX as usize);
            assert_eq!(max, MAX_FRAME_BYTES);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
}

#[test]
fn wrong_version_is_named() {
    let env = Envelope {
        version: PROTOCOL_VERSION + 1,
        message: Message::StageReport(StageReport::default()),
    };
    let bytes = encode(&env, MAX_FRAME_BYTES).unwrap();
    assert!(matches!(
        decode(&bytes, MAX_FRAME_BYTES),
        Err(FrameError::VersionMismatch { .. })
    ));
}

#[tokio::test]
async fn async_read_write_round_trip_and_clean_eof() {
    let env = Envelope::new(Message::StageReport(StageReport {
        pipeline: "p".into(),
        stage: "s".into(),
        window_seconds: 1.0,
        ..Default::default()
    }));
    let (mut a, mut b) = tokio::io::duplex(4096);
    write(&mut a, &env, MAX_FRAME_BYTES).await.unwrap();
    drop(a);
    assert_eq!(read(&mut b, MAX_FRAME_BYTES).await.unwrap(), Some(env));
    assert_eq!(read(&mut b, MAX_FRAME_BYTES).await.unwrap(), None);
}

#[test]
fn truncated_and_overlong_frames_are_told_apart() {
    let env = Envelope::new(Message::StageReport(StageReport::default()));
    let bytes = encode(&env, MAX_FRAME_BYTES).unwrap();
    assert!(matches!(
        decode(&bytes[..bytes.len() - 1], MAX_FRAME_BYTES),
        Err(FrameError::Truncated { .. })
    ));
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        decode(&long, MAX_FRAME_BYTES),
        Err(FrameError::TrailingBytes { trailing: 1 })
    ));
}

/// A payload whose string length prefix claims far more than any frame can hold is refused as a
/// decode error, without reserving that much memory (this aborted the process before the limit).
#[test]
fn a_huge_claimed_length_is_refused_without_allocating() {
    // version (varint u16 = 1 byte for small values), then the Message variant index, then the
    // first field of the report: a string whose varint length is 2^40 (0xFD marks a u64 varint).
    let mut payload = Vec::new();
    payload.extend_from_slice(&bincode::encode_to_vec(PROTOCOL_VERSION, config()).unwrap());
    payload.push(0); // Message::StageReport
    payload.push(0xFD);
    payload.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        decode_payload(&payload),
        Err(FrameError::Decode(_))
    ));
}
