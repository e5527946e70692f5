//! Reading a message body to its end under a size limit and the buffer budget, with a typed
//! error.
//!
//! Request bodies and sized model-server answers are buffered: service time ends at the end
//! of the model server's body and Server-Timing is a header, so both are read whole; streamed
//! answers go through `stream.rs` instead (see docs/sidecar.md).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use crate::budget::{OverBudget, Reservation};
use crate::display::ErrorChain;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More than the limit arrived (the rest was not read).
    #[error("body exceeds the limit of {max} bytes")]
    TooLarge { max: usize },
    /// The stream failed: the peer hung up mid-body, a reset.
    #[error("body could not be read: {}", ErrorChain(.0.as_ref()))]
    Read(#[source] BoxError),
    /// The body's framing is invalid (a bad chunk size line, a bad chunk end): the peer sent
    /// malformed HTTP, it did not go away.
    #[error("body is malformed: {}", ErrorChain(.0.as_ref()))]
    Malformed(#[source] BoxError),
    /// The sidecar's buffer budget (`--max-buffered-bytes`, all bodies together) is full.
    #[error(
        "body does not fit: the sidecar's buffers are full ({max} bytes for all bodies in \
         flight, --max-buffered-bytes)"
    )]
    OverBudget { max: usize },
    /// The body did not arrive whole within the body read timeout (a slow or stalled sender).
    #[error("body did not arrive within {after:?} (--body-read-timeout)")]
    Timeout { after: Duration },
}

impl BodyError {
    /// Sorts a stream error: hyper reports bad chunked framing as an `io::Error` of kind
    /// `InvalidInput` or `InvalidData` under its body error, and a peer that hung up as
    /// `UnexpectedEof` or a connection error.
    fn from_stream(e: BoxError) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>()
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
                )
            {
                return BodyError::Malformed(e);
            }
            cause = c.source();
        }
        BodyError::Read(e)
    }
}

/// Reads `body` to its end, refusing more than `max` bytes (no budget).
pub async fn read_to_end<B>(body: B, max: usize) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let budget = crate::budget::Budget::new(usize::MAX);
    let mut hold = budget.reserve();
    read_buffered(body, max, &mut hold).await.map(|b| b.bytes)
}

/// A body read whole.
#[derive(Debug)]
pub struct Buffered {
    pub bytes: Bytes,
    /// When the first data byte arrived (`None` for an empty body): the time to first byte of
    /// a buffered answer.
    pub first_byte: Option<Instant>,
}

/// Reads `body` to its end, refusing more than `max` bytes; every byte is first taken from
/// `hold`'s budget (refused with [`BodyError::OverBudget`] when it is full). Trailers are
/// dropped. A body of one frame (the common case) is not copied.
pub async fn read_buffered<B>(
    body: B,
    max: usize,
    hold: &mut Reservation,
) -> Result<Buffered, BodyError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut first_byte = None;
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::from_stream(e.into()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        len = len.saturating_add(data.len());
        if len > max {
            return Err(BodyError::TooLarge { max });
        }
        hold.grow(data.len())
            .map_err(|OverBudget { max }| BodyError::OverBudget { max })?;
        match (&first, &mut rest) {
            (None, _) => {
                first_byte = Some(Instant::now());
                first = Some(data);
            }
            (Some(f), None) => {
                let mut all = BytesMut::with_capacity(f.len() + data.len());
                all.extend_from_slice(f);
                all.extend_from_slice(&data);
                rest = Some(all);
            }
            (Some(_), Some(all)) => all.extend_from_slice(&data),
        }
    }
    let bytes = match (rest, first) {
        (Some(all), _) => all.freeze(),
        (None, Some(f)) => f,
        (None, None) => Bytes::new(),
    };
    Ok(Buffered { bytes, first_byte })
}

#[cfg(test)]
mod tests;
