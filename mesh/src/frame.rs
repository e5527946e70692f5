//! Mesh framing: `sair-wire`'s conventions (a 4-byte big-endian length prefix on streams, the
//! maximum checked before a byte of the payload is read, bincode 2 standard configuration,
//! [`FrameError`] for every failure) applied to [`MeshFrame`].
//!
//! `sair_wire::frame` is written for its own `Envelope`; these few functions are the same
//! rules over another type. Two additions: the protocol version is decoded and checked
//! *before* the body (so a newer peer's unknown variant reads as a version mismatch, not as
//! garbage), and bincode runs with a byte limit, so a length field inside the payload cannot
//! make the decoder allocate more than the frame holds.

use sair_wire::FrameError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::message::{MESH_PROTOCOL_VERSION, MeshFrame};

pub use sair_wire::MAX_FRAME_BYTES;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_FRAME_BYTES>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_FRAME_BYTES>()
}

/// Encodes a frame's payload (no length prefix): the form a QUIC datagram carries.
pub fn encode_payload(frame: &MeshFrame, max: usize) -> Result<Vec<u8>, FrameError> {
    let payload = bincode::encode_to_vec(frame, config())?;
    if payload.len() > max {
        return Err(FrameError::FrameTooLarge {
            len: payload.len(),
            max,
        });
    }
    Ok(payload)
}

/// Decodes one payload (no length prefix), checking its size, then its version, then its body.
pub fn decode_payload(payload: &[u8], max: usize) -> Result<MeshFrame, FrameError> {
    if payload.len() > max {
        return Err(FrameError::FrameTooLarge {
            len: payload.len(),
            max,
        });
    }
    if payload.is_empty() {
        return Err(FrameError::Empty);
    }
    let (version, _): (u16, usize) = bincode::decode_from_slice(payload, config())?;
    if version != MESH_PROTOCOL_VERSION {
        return Err(FrameError::VersionMismatch {
            got: version,
            expected: MESH_PROTOCOL_VERSION,
        });
    }
    let (frame, used): (MeshFrame, usize) = bincode::decode_from_slice(payload, config())?;
    if used != payload.len() {
        return Err(FrameError::TrailingBytes {
            trailing: payload.len() - used,
        });
    }
    Ok(frame)
}

/// Encodes one stream frame, length prefix included.
pub fn encode(frame: &MeshFrame, max: usize) -> Result<Vec<u8>, FrameError> {
    let payload = encode_payload(frame, max)?;
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::FrameTooLarge {
        len: payload.len(),
        max,
    })?;
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes one whole stream frame held in `bytes` (length prefix included).
pub fn decode(bytes: &[u8], max: usize) -> Result<MeshFrame, FrameError> {
    decode_payload(sair_wire::frame::frame_payload(bytes, max)?, max)
}

/// Writes one frame to a stream.
pub async fn write<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    frame: &MeshFrame,
    max: usize,
) -> Result<(), FrameError> {
    let bytes = encode(frame, max)?;
    w.write_all(&bytes).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame from a stream; `Ok(None)` on a clean end of stream between frames.
pub async fn read<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    max: usize,
) -> Result<Option<MeshFrame>, FrameError> {
    Ok(read_sized(r, max).await?.map(|(f, _)| f))
}

/// [`read`], also returning the frame's size on the wire (length prefix included).
pub async fn read_sized<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    max: usize,
) -> Result<Option<(MeshFrame, usize)>, FrameError> {
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
    decode_payload(&payload, max).map(|f| Some((f, 4 + len)))
}

#[cfg(test)]
mod tests;
