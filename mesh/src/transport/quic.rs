//! The QUIC transport: one quinn endpoint per member that both accepts and dials, mutual TLS
//! against the cluster CA, datagrams for SWIM and bidirectional streams for state.
//!
//! Either side refuses a peer whose certificate does not chain to the cluster CA; each refusal
//! is counted ([`crate::metrics::TLS_REFUSED_TOTAL`]) and visible in [`QuicTransport::tls_refused`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use tokio::sync::{OnceCell, mpsc};

use super::{BiStream, INBOUND_QUEUE, Inbound, OpenStream, Transport};
use crate::certs::{MESH_SERVER_NAME, MeshTls};
use crate::error::TransportError;
use crate::metrics::{MeshMetrics, TlsSide};

/// ALPN of mesh protocol version 1 (distinct from the sidecar → agent `sair/1`).
pub const MESH_ALPN: &[u8] = b"sair-mesh/1";
/// How long a dial may take before the datagram or stream waiting on it is dropped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[derive(Debug)]
struct Refusals {
    count: AtomicU64,
    metrics: MeshMetrics,
}

impl Refusals {
    fn count(&self, side: TlsSide, e: &rustls::Error) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.metrics.tls_refused(side);
        tracing::warn!(side = side.as_str(), error = %e, "peer certificate refused");
    }
}

#[derive(Debug)]
struct CountingClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    refusals: Arc<Refusals>,
}

impl ClientCertVerifier for CountingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| self.refusals.count(TlsSide::Server, e))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[derive(Debug)]
struct CountingServerVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    refusals: Arc<Refusals>,
}

impl ServerCertVerifier for CountingServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .inspect_err(|e| self.refusals.count(TlsSide::Client, e))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    // Milliseconds.
    t.max_idle_timeout(Some(quinn::VarInt::from_u32(10_000).into()));
    t.keep_alive_interval(Some(Duration::from_secs(2)));
    t.datagram_receive_buffer_size(Some(1 << 20));
    Arc::new(t)
}

fn configs(
    tls: &MeshTls,
    refusals: &Arc<Refusals>,
) -> Result<(quinn::ServerConfig, quinn::ClientConfig), TransportError> {
    let mut roots = RootCertStore::empty();
    roots.add(tls.ca.clone())?;
    let roots = Arc::new(roots);

    let client_verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()?;
    let server_crypto = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(CountingClientVerifier {
            inner: client_verifier,
            refusals: refusals.clone(),
        }))
        .with_single_cert(tls.chain.clone(), tls.key.clone_key());
    let mut server_crypto = server_crypto?;
    server_crypto.alpn_protocols = vec![MESH_ALPN.to_vec()];
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::try_from(server_crypto)
            .map_err(|e| TransportError::Quic(e.to_string()))?,
    ));
    server.transport_config(transport_config());

    let server_verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(TransportError::ServerVerifier)?;
    let mut client_crypto = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CountingServerVerifier {
            inner: server_verifier,
            refusals: refusals.clone(),
        }))
        .with_client_auth_cert(tls.chain.clone(), tls.key.clone_key())?;
    client_crypto.alpn_protocols = vec![MESH_ALPN.to_vec()];
    let mut client = quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(client_crypto)
            .map_err(|e| TransportError::Quic(e.to_string()))?,
    ));
    client.transport_config(transport_config());
    Ok((server, client))
}

type Slot = Arc<OnceCell<quinn::Connection>>;

#[derive(Debug)]
struct Inner {
    endpoint: quinn::Endpoint,
    local: SocketAddr,
    conns: Mutex<HashMap<SocketAddr, Slot>>,
    inbound: mpsc::Sender<Inbound>,
    refusals: Arc<Refusals>,
    /// Every connection (dialled or accepted) still open, for UDP accounting.
    open: Mutex<Vec<quinn::Connection>>,
    /// UDP bytes and datagrams sent on connections that have closed since.
    closed_tx: Mutex<(u64, u64)>,
}

/// A member's QUIC endpoint. Cheap to clone.
#[derive(Debug, Clone)]
pub struct QuicTransport {
    inner: Arc<Inner>,
}

impl QuicTransport {
    /// Binds `addr` (port 0 picks one) with `tls`; must run inside a tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        tls: &MeshTls,
        metrics: MeshMetrics,
    ) -> Result<(Self, mpsc::Receiver<Inbound>), TransportError> {
        let refusals = Arc::new(Refusals {
            count: AtomicU64::new(0),
            metrics,
        });
        let (server, client) = configs(tls, &refusals)?;
        let mut endpoint = quinn::Endpoint::server(server, addr)
            .map_err(|source| TransportError::Bind { addr, source })?;
        endpoint.set_default_client_config(client);
        let local = endpoint
            .local_addr()
            .map_err(|source| TransportError::Bind { addr, source })?;
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        let t = Self {
            inner: Arc::new(Inner {
                endpoint,
                local,
                conns: Mutex::new(HashMap::new()),
                inbound: tx,
                refusals,
                open: Mutex::new(Vec::new()),
                closed_tx: Mutex::new((0, 0)),
            }),
        };
        tokio::spawn(t.clone().accept_loop());
        Ok((t, rx))
    }

    /// Peers refused for their certificate (either side), since bind.
    pub fn tls_refused(&self) -> u64 {
        self.inner.refusals.count.load(Ordering::Relaxed)
    }

    /// Closes every connection and the endpoint.
    pub fn close(&self) {
        self.inner.endpoint.close(0u32.into(), b"bye");
    }

    async fn accept_loop(self) {
        while let Some(incoming) = self.inner.endpoint.accept().await {
            let t = self.clone();
            tokio::spawn(async move {
                match incoming.await {
                    Ok(conn) => {
                        let from = conn.remote_address();
                        tracing::debug!(%from, "mesh connection accepted");
                        // Members dial from their listening endpoint, so `from` is where we
                        // would dial them: reuse this connection rather than open a second.
                        let _ = t.slot(from).set(conn.clone());
                        t.readers(conn);
                    }
                    Err(e) => tracing::debug!(error = %e, "mesh handshake failed"),
                }
            });
        }
    }

    /// UDP bytes and datagrams this endpoint has sent (QUIC, TLS and all), since bind.
    pub fn udp_sent(&self) -> (u64, u64) {
        let (mut bytes, mut datagrams) = *self
            .inner
            .closed_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for c in self
            .inner
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let s = c.stats();
            bytes += s.udp_tx.bytes;
            datagrams += s.udp_tx.datagrams;
        }
        (bytes, datagrams)
    }

    fn track(&self, conn: &quinn::Connection) {
        // Slots of closed connections (dead peers) are dropped whenever a new one opens.
        self.inner
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, s| s.get().is_none_or(|c| c.close_reason().is_none()));
        let mut open = self.inner.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut closed = self
            .inner
            .closed_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        open.retain(|c| {
            if c.close_reason().is_none() {
                return true;
            }
            let s = c.stats();
            closed.0 += s.udp_tx.bytes;
            closed.1 += s.udp_tx.datagrams;
            false
        });
        open.push(conn.clone());
    }

    /// Forwards a connection's datagrams and incoming streams to the driver.
    fn readers(&self, conn: quinn::Connection) {
        self.track(&conn);
        let from = conn.remote_address();
        let tx = self.inner.inbound.clone();
        let c = conn.clone();
        tokio::spawn(async move {
            while let Ok(bytes) = c.read_datagram().await {
                if tx.try_send(Inbound::Datagram { from, bytes }).is_err() {
                    tracing::debug!(%from, "inbound queue full; datagram dropped");
                }
            }
        });
        let tx = self.inner.inbound.clone();
        tokio::spawn(async move {
            while let Ok((send, recv)) = conn.accept_bi().await {
                let stream = BiStream {
                    send: Box::new(send),
                    recv: Box::new(recv),
                };
                if tx.send(Inbound::Stream { from, stream }).await.is_err() {
                    break;
                }
            }
        });
    }

    fn slot(&self, to: SocketAddr) -> Slot {
        let mut conns = self.inner.conns.lock().unwrap_or_else(|p| p.into_inner());
        let slot = conns.entry(to).or_default();
        if slot.get().is_some_and(|c| c.close_reason().is_some()) {
            *slot = Slot::default();
        }
        slot.clone()
    }

    async fn connection(&self, to: SocketAddr) -> Result<quinn::Connection, TransportError> {
        let slot = self.slot(to);
        let conn = slot
            .get_or_try_init(|| async {
                let connecting =
                    self.inner
                        .endpoint
                        .connect(to, MESH_SERVER_NAME)
                        .map_err(|e| TransportError::Connect {
                            addr: to,
                            reason: e.to_string(),
                        })?;
                let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
                    .await
                    .map_err(|_| TransportError::Connect {
                        addr: to,
                        reason: "timed out".into(),
                    })?
                    .map_err(|e| TransportError::Connect {
                        addr: to,
                        reason: e.to_string(),
                    })?;
                self.readers(conn.clone());
                Ok::<_, TransportError>(conn)
            })
            .await;
        match conn {
            Ok(conn) => Ok(conn.clone()),
            Err(e) => {
                // Forget the address, so that dead peers and stale seeds do not pile up.
                let mut conns = self.inner.conns.lock().unwrap_or_else(|p| p.into_inner());
                if conns
                    .get(&to)
                    .is_some_and(|s| Arc::ptr_eq(s, &slot) && s.get().is_none())
                {
                    conns.remove(&to);
                }
                Err(e)
            }
        }
    }
}

impl Transport for QuicTransport {
    fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    fn send_datagram(&self, to: SocketAddr, bytes: Bytes) {
        let slot = self.slot(to);
        if let Some(conn) = slot.get() {
            if let Err(e) = conn.send_datagram(bytes) {
                tracing::debug!(%to, error = %e, "datagram not sent");
            }
            return;
        }
        let t = self.clone();
        tokio::spawn(async move {
            match t.connection(to).await {
                Ok(conn) => {
                    if let Err(e) = conn.send_datagram(bytes) {
                        tracing::debug!(%to, error = %e, "datagram not sent");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "datagram dropped"),
            }
        });
    }

    fn close(&self) {
        QuicTransport::close(self);
    }

    fn warm(&self, to: SocketAddr) {
        // Only the lower address dials ahead, so a pair warms one connection, not two.
        if self.inner.local > to || self.slot(to).get().is_some() {
            return;
        }
        let t = self.clone();
        tokio::spawn(async move {
            if let Err(e) = t.connection(to).await {
                tracing::debug!(error = %e, "warming a connection failed");
            }
        });
    }

    fn open_stream(&self, to: SocketAddr) -> OpenStream<'_> {
        Box::pin(async move {
            let conn = self.connection(to).await?;
            let (send, recv) = conn.open_bi().await.map_err(|e| TransportError::Stream {
                addr: to,
                reason: e.to_string(),
            })?;
            Ok(BiStream {
                send: Box::new(send),
                recv: Box::new(recv),
            })
        })
    }
}
