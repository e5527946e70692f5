use proptest::prelude::*;

use super::*;
use crate::message::{DigestEntry, Entry, MemberDelta, MeshBody};

fn digest() -> impl Strategy<Value = Vec<DigestEntry>> {
    proptest::collection::vec(
        ("[a-z0-9-]{1,16}", any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(member, generation, control, bulk)| DigestEntry {
                member,
                generation,
                control,
                bulk,
            },
        ),
        0..8,
    )
}

fn delta() -> impl Strategy<Value = Vec<MemberDelta>> {
    let entry = (
        "[a-z/]{1,24}",
        any::<u64>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        any::<u64>(),
    )
        .prop_map(|(key, version, value, written_unix_ms)| Entry {
            key,
            version,
            value,
            written_unix_ms,
        });
    proptest::collection::vec(
        (
            "[a-z0-9-]{1,16}",
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(entry, 0..6),
        )
            .prop_map(|(member, generation, control_up_to, bulk_up_to, entries)| {
                MemberDelta {
                    member,
                    generation,
                    control_up_to,
                    bulk_up_to,
                    entries,
                }
            }),
        0..4,
    )
}

fn body() -> impl Strategy<Value = MeshBody> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..1200).prop_map(MeshBody::Swim),
        ("[a-z0-9-]{1,16}", any::<u64>()).prop_map(|(from, hash)| MeshBody::Syn { from, hash }),
        Just(MeshBody::InSync),
        digest().prop_map(MeshBody::SynDigest),
        (digest(), delta()).prop_map(|(digest, delta)| MeshBody::Syn2 { digest, delta }),
        delta().prop_map(MeshBody::Ack),
    ]
}

proptest! {
    #[test]
    fn stream_frames_round_trip(body in body()) {
        let frame = MeshFrame::new(body);
        let bytes = encode(&frame, MAX_FRAME_BYTES).unwrap();
        prop_assert_eq!(decode(&bytes, MAX_FRAME_BYTES).unwrap(), frame);
    }

    #[test]
    fn datagram_payloads_round_trip(body in body()) {
        let frame = MeshFrame::new(body);
        let bytes = encode_payload(&frame, MAX_FRAME_BYTES).unwrap();
        prop_assert_eq!(decode_payload(&bytes, MAX_FRAME_BYTES).unwrap(), frame);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes, MAX_FRAME_BYTES);
        let _ = decode_payload(&bytes, MAX_FRAME_BYTES);
    }
}

#[test]
fn oversized_length_is_refused_before_reading() {
    let mut bytes = u32::MAX.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0; 8]);
    assert!(matches!(
        decode(&bytes, MAX_FRAME_BYTES),
        Err(FrameError::FrameTooLarge { .. })
    ));
    let big = vec![0u8; 2048];
    assert!(matches!(
        decode_payload(&big, 1024),
        Err(FrameError::FrameTooLarge {
            len: 2048,
            max: 1024
        })
    ));
}

#[test]
fn wrong_version_is_named_before_the_body_is_read() {
    // Version 2 followed by a body this build cannot decode.
    let mut payload = bincode::encode_to_vec(2u16, config()).unwrap();
    payload.extend_from_slice(&[0xff, 0xff, 0xff]);
    assert!(matches!(
        decode_payload(&payload, MAX_FRAME_BYTES),
        Err(FrameError::VersionMismatch {
            got: 2,
            expected: 1
        })
    ));
}

#[test]
fn a_length_field_inside_the_payload_cannot_allocate_past_the_frame() {
    // A Swim body whose inner byte-vector claims 2^40 bytes.
    let mut payload = bincode::encode_to_vec(MESH_PROTOCOL_VERSION, config()).unwrap();
    payload.push(0); // variant Swim
    payload.push(253); // varint u64 marker
    payload.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        decode_payload(&payload, MAX_FRAME_BYTES),
        Err(FrameError::Decode(_))
    ));
}

#[test]
fn truncated_and_overlong_frames_are_told_apart() {
    let bytes = encode(&MeshFrame::new(MeshBody::InSync), MAX_FRAME_BYTES).unwrap();
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

#[tokio::test]
async fn stream_read_write_round_trip_and_clean_eof() {
    let frame = MeshFrame::new(MeshBody::Syn {
        from: "a".into(),
        hash: 7,
    });
    let (mut a, mut b) = tokio::io::duplex(4096);
    write(&mut a, &frame, MAX_FRAME_BYTES).await.unwrap();
    drop(a);
    assert_eq!(read(&mut b, MAX_FRAME_BYTES).await.unwrap(), Some(frame));
    assert_eq!(read(&mut b, MAX_FRAME_BYTES).await.unwrap(), None);
}
