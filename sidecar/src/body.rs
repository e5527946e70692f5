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
    /// The stream failed: the peer hung up mid-body, bad chunked encoding, a reset.
    #[error("body could not be read: {}", ErrorChain(.0.as_ref()))]
    Read(#[source] BoxError),
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
        Err(e) => Err(BodyError::Read(e)),
    }
}

#[cfg(test)]
mod tests;
