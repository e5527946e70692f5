use http_body_util::{Full, StreamBody};

use super::*;

#[tokio::test]
async fn a_body_within_the_limit_is_read_whole() {
    let b = read_to_end(Full::new(Bytes::from_static(b"hello")), 5)
        .await
        .unwrap();
    assert_eq!(&b[..], b"hello");
}

#[tokio::test]
async fn a_body_over_the_limit_is_too_large_by_type() {
    let e = read_to_end(Full::new(Bytes::from_static(b"hello!")), 5)
        .await
        .unwrap_err();
    assert!(matches!(e, BodyError::TooLarge { max: 5 }), "{e:?}");
    assert_eq!(e.to_string(), "body exceeds the limit of 5 bytes");
}

#[tokio::test]
async fn a_failing_stream_is_a_read_error_naming_its_cause() {
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = vec![
        Ok(http_body::Frame::data(Bytes::from_static(b"a"))),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "peer reset",
        )),
    ];
    let e = read_to_end(StreamBody::new(futures::stream::iter(chunks)), 100)
        .await
        .unwrap_err();
    assert!(matches!(e, BodyError::Read(_)), "{e:?}");
    assert!(e.to_string().contains("peer reset"), "{e}");
}

#[tokio::test]
async fn bad_framing_is_malformed_not_a_read_error() {
    // hyper reports a bad chunk size line as an InvalidInput io::Error under its body error.
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = vec![Err(
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid chunk size line"),
    )];
    let e = read_to_end(StreamBody::new(futures::stream::iter(chunks)), 100)
        .await
        .unwrap_err();
    assert!(matches!(e, BodyError::Malformed(_)), "{e:?}");
    assert!(e.to_string().contains("invalid chunk size line"), "{e}");
}
