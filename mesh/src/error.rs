//! The mesh's error types, one enum per concern.

use std::net::SocketAddr;

/// A configuration value that cannot be used; checked before anything binds.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "member name {name:?} is not 1 to 64 characters of letters, digits, '.', '_' or '-'; pick another --node"
    )]
    BadName { name: String },
    #[error("{field} must be greater than zero")]
    Zero { field: &'static str },
    #[error("{field} ({value:?}) must be shorter than {other} ({other_value:?})")]
    Order {
        field: &'static str,
        value: std::time::Duration,
        other: &'static str,
        other_value: std::time::Duration,
    },
}

/// Why a local state write was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("key {key:?} is empty, longer than {max} bytes, or not printable ASCII")]
    BadKey { key: String, max: usize },
    #[error("value of {len} bytes for key {key:?} exceeds the maximum of {max} bytes")]
    ValueTooLarge { key: String, len: usize, max: usize },
    #[error(
        "this member's state would hold {keys} keys / {bytes} bytes, over the bound of {max_keys} keys / {max_bytes} bytes; delete keys first"
    )]
    Full {
        keys: usize,
        bytes: usize,
        max_keys: usize,
        max_bytes: usize,
    },
}

/// Why the transport could not move something.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("no route to {addr}: the link is cut or the peer is gone")]
    Unreachable { addr: SocketAddr },
    #[error("QUIC connection to {addr} failed: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("QUIC stream to {addr} failed: {reason}")]
    Stream { addr: SocketAddr, reason: String },
    #[error("could not bind the mesh endpoint on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS configuration rejected: {0}")]
    Tls(#[from] rustls::Error),
    #[error("client certificate verifier could not be built: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    #[error("server certificate verifier could not be built: {0}")]
    ServerVerifier(rustls::client::VerifierBuilderError),
    #[error("QUIC crypto configuration rejected: {0}")]
    Quic(String),
}
