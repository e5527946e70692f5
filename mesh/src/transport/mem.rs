//! An in-process network whose links can be cut and restored (STYLE §11).
//!
//! Addresses are plain `SocketAddr`s handed out by [`MemNetwork::bind`]; nothing touches the
//! operating system. A cut link drops datagrams and refuses new streams in both directions.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{BiStream, INBOUND_QUEUE, Inbound, OpenStream, Transport};
use crate::error::TransportError;

#[derive(Debug, Default)]
struct Net {
    nodes: HashMap<SocketAddr, mpsc::Sender<Inbound>>,
    cut: HashSet<(SocketAddr, SocketAddr)>,
    next_port: u16,
    datagrams: u64,
    dropped: u64,
    bytes: u64,
}

fn pair(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b { (a, b) } else { (b, a) }
}

impl Net {
    fn up(&self, a: SocketAddr, b: SocketAddr) -> bool {
        !self.cut.contains(&pair(a, b))
    }
}

/// The shared network; clone it freely.
#[derive(Debug, Clone, Default)]
pub struct MemNetwork {
    net: Arc<Mutex<Net>>,
}

/// Datagram counters of a [`MemNetwork`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemStats {
    pub datagrams: u64,
    pub dropped: u64,
    pub bytes: u64,
}

impl MemNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Net> {
        // A panic while holding this lock is a test bug; keep going with the data.
        self.net.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new member's transport at a fresh address.
    pub fn bind(&self) -> (MemTransport, mpsc::Receiver<Inbound>) {
        let port = {
            let mut n = self.lock();
            n.next_port += 1;
            20_000 + n.next_port
        };
        self.bind_at(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// A member's transport at `addr` (replacing whoever was there).
    pub fn bind_at(&self, addr: SocketAddr) -> (MemTransport, mpsc::Receiver<Inbound>) {
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        self.lock().nodes.insert(addr, tx);
        (
            MemTransport {
                addr,
                net: self.clone(),
            },
            rx,
        )
    }

    /// Unplugs `addr` (a killed member).
    pub fn remove(&self, addr: SocketAddr) {
        self.lock().nodes.remove(&addr);
    }

    /// Cuts the link between `a` and `b`, both ways.
    pub fn cut(&self, a: SocketAddr, b: SocketAddr) {
        self.lock().cut.insert(pair(a, b));
    }

    /// Restores the link between `a` and `b`.
    pub fn restore(&self, a: SocketAddr, b: SocketAddr) {
        self.lock().cut.remove(&pair(a, b));
    }

    /// Cuts every link between the two groups.
    pub fn partition(&self, left: &[SocketAddr], right: &[SocketAddr]) {
        let mut n = self.lock();
        for a in left {
            for b in right {
                n.cut.insert(pair(*a, *b));
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    pub fn stats(&self) -> MemStats {
        let n = self.lock();
        MemStats {
            datagrams: n.datagrams,
            dropped: n.dropped,
            bytes: n.bytes,
        }
    }
}

/// One member's end of a [`MemNetwork`].
#[derive(Debug, Clone)]
pub struct MemTransport {
    addr: SocketAddr,
    net: MemNetwork,
}

impl Transport for MemTransport {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn send_datagram(&self, to: SocketAddr, bytes: Bytes) {
        let mut n = self.net.lock();
        n.datagrams += 1;
        let tx = n.nodes.get(&to).filter(|_| n.up(self.addr, to)).cloned();
        let len = bytes.len() as u64;
        match tx.map(|tx| {
            tx.try_send(Inbound::Datagram {
                from: self.addr,
                bytes,
            })
        }) {
            Some(Ok(())) => n.bytes += len,
            _ => n.dropped += 1,
        }
    }

    fn open_stream(&self, to: SocketAddr) -> OpenStream<'_> {
        Box::pin(async move {
            let tx = {
                let n = self.net.lock();
                n.nodes.get(&to).filter(|_| n.up(self.addr, to)).cloned()
            };
            let tx = tx.ok_or(TransportError::Unreachable { addr: to })?;
            let (ours, theirs) = tokio::io::duplex(256 * 1024);
            let (our_recv, our_send) = tokio::io::split(ours);
            let (their_recv, their_send) = tokio::io::split(theirs);
            tx.send(Inbound::Stream {
                from: self.addr,
                stream: BiStream {
                    send: Box::new(their_send),
                    recv: Box::new(their_recv),
                },
            })
            .await
            .map_err(|_| TransportError::Unreachable { addr: to })?;
            Ok(BiStream {
                send: Box::new(our_send),
                recv: Box::new(our_recv),
            })
        })
    }
}
