//! Length-prefixed bincode 2 framing.
//!
//! A frame is a 4-byte big-endian payload length followed by the bincode (standard config)
//! encoding of an [`Envelope`]. The length is checked against the maximum *before* any byte of
//! the payload is read or decoded, so a hostile peer cannot make us allocate.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::message::{Envelope, PROTOCOL_VERSION};

/// Largest payload accepted by default (a StageReport is a few hundred bytes).
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// Why a frame could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    #[error("frame payload is empty")]
    Empty,
    #[error("frame declares {len} payload bytes but only {got} arrived")]
    Truncated { len: usize, got: usize },
    #[error("frame could not be decoded: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("message could not be encoded: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("frame has {trailing} trailing bytes after the message")]
    TrailingBytes { trailing: usize },
    #[error("peer speaks protocol version {got}, this build speaks {expected}")]
    VersionMismatch { got: u16, expected: u16 },
    #[error("i/o error while moving a frame: {0}")]
    Io(#[from] std::io::Error),
}

/// The standard configuration with a decode limit: bincode trusts a collection's or string's
/// length prefix when it reserves memory, so without a limit a 12-byte payload that claims a
/// 2^40-byte string aborts the process on allocation. No message is larger than a frame.
fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_FRAME_BYTES>,
> {
    bincode::config::standard().with_limit::<MAX_FRAME_BYTES>()
}

/// Encodes `envelope` as one frame (length prefix included).
pub fn encode(envelope: &Envelope, max: usize) -> Result<Vec<u8>, FrameError> {
    let payload = bincode::encode_to_vec(envelope, config())?;
    if payload.len() > max {
        return Err(FrameError::FrameTooLarge {
            len: payload.len(),
            max,
        });
    }
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::FrameTooLarge {
        len: payload.len(),
        max,
    })?;
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes one payload (without its length prefix) and checks the protocol version.
pub fn decode_payload(payload: &[u8]) -> Result<Envelope, FrameError> {
    if payload.is_empty() {
        return Err(FrameError::Empty);
    }
    let (envelope, used): (Envelope, usize) =
        bincode::decode_from_slice_with_context(payload, config(), ())?;
    if used != payload.len() {
        return Err(FrameError::TrailingBytes {
            trailing: payload.len() - used,
        });
    }
    if envelope.version != PROTOCOL_VERSION {
        return Err(FrameError::VersionMismatch {
            got: envelope.version,
            expected: PROTOCOL_VERSION,
        });
    }
    Ok(envelope)
}

/// Decodes one whole frame held in `bytes` (length prefix included).
pub fn decode(bytes: &[u8], max: usize) -> Result<Envelope, FrameError> {
    decode_payload(frame_payload(bytes, max)?)
}

/// The payload of one whole frame held in `bytes`: the length prefix is checked against `max`
/// before anything else, and the rest must be exactly that long. Shared by every framed codec
/// (the mesh's frames too), so the size check is written once.
pub fn frame_payload(bytes: &[u8], max: usize) -> Result<&[u8], FrameError> {
    let Some((head, payload)) = bytes.split_first_chunk::<4>() else {
        return Err(FrameError::Truncated {
            len: 4,
            got: bytes.len(),
        });
    };
    let len = u32::from_be_bytes(*head) as usize;
    if len > max {
        return Err(FrameError::FrameTooLarge { len, max });
    }
    if payload.len() < len {
        return Err(FrameError::Truncated {
            len,
            got: payload.len(),
        });
    }
    if payload.len() > len {
        return Err(FrameError::TrailingBytes {
            trailing: payload.len() - len,
        });
    }
    Ok(payload)
}

/// Writes one frame to `w`.
pub async fn write<W: AsyncWrite + Unpin>(
    w: &mut W,
    envelope: &Envelope,
    max: usize,
) -> Result<(), FrameError> {
    let bytes = encode(envelope, max)?;
    w.write_all(&bytes).await?;
    Ok(())
}

/// Reads one frame from `r`. Returns `Ok(None)` on a clean end of stream between frames.
pub async fn read<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Envelope>, FrameError> {
    let mut head = [0u8; 4];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(head) as usize;
    if len > max {
        return Err(FrameError::FrameTooLarge { len, max });
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    decode_payload(&payload).map(Some)
}

#[cfg(test)]
mod tests;
