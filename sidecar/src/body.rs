//! Reading a message body to its end under a size limit, with a typed error.
//!
//! Bodies are buffered: service time ends at the end of the model server's body and
//! Server-Timing is a header, so both bodies are read whole (see docs/sidecar.md).

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

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

/// Reads `body` to its end, refusing more than `max` bytes.
pub async fn read_to_end<B>(body: B, max: usize) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge { max }),
        Err(e) => Err(BodyError::from_stream(e)),
    }
}

#[cfg(test)]
mod tests;
