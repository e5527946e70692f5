//! How members reach each other: a trait with two implementations.
//!
//! - [`quic::QuicTransport`]: QUIC (quinn) with mutual TLS against the cluster CA. SWIM
//!   probes and acks go in QUIC datagrams (unreliable, unordered, like the UDP SWIM expects);
//!   state exchanges go on bidirectional streams (reliable, flow-controlled).
//! - [`mem::MemNetwork`]: in-process, with links that tests cut and restore.
//!
//! A transport delivers what arrives as [`Inbound`] items on the channel returned when it is
//! bound; the driver owns that receiver.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::TransportError;

pub mod mem;
pub mod quic;

/// The sending half of a stream.
pub type BoxSend = Box<dyn AsyncWrite + Send + Unpin>;
/// The receiving half of a stream.
pub type BoxRecv = Box<dyn AsyncRead + Send + Unpin>;

/// One bidirectional stream.
pub struct BiStream {
    pub send: BoxSend,
    pub recv: BoxRecv,
}

impl std::fmt::Debug for BiStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BiStream").finish_non_exhaustive()
    }
}

/// Something a peer sent.
#[derive(Debug)]
pub enum Inbound {
    Datagram { from: SocketAddr, bytes: Bytes },
    Stream { from: SocketAddr, stream: BiStream },
}

/// A future returned by [`Transport::open_stream`].
pub type OpenStream<'a> =
    Pin<Box<dyn Future<Output = Result<BiStream, TransportError>> + Send + 'a>>;

/// What the driver needs from a network.
pub trait Transport: Send + Sync + std::fmt::Debug + 'static {
    /// The address peers reach this member at.
    fn local_addr(&self) -> SocketAddr;
    /// Sends one datagram, best effort (dropped if the peer is unreachable).
    fn send_datagram(&self, to: SocketAddr, bytes: Bytes);
    /// Opens a bidirectional stream to `to`.
    fn open_stream(&self, to: SocketAddr) -> OpenStream<'_>;
    /// A new member is up: connect to it ahead of the first probe, so that the probe does
    /// not pay for a handshake (which could make a healthy newcomer look slow).
    fn warm(&self, _to: SocketAddr) {}
    /// The member is shutting down: release the socket (after what was sent has gone out).
    fn close(&self) {}
}

/// How many inbound items may wait for the driver before a transport drops datagrams.
pub const INBOUND_QUEUE: usize = 4096;
