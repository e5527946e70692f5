//! The tower layers of the request stack. [`crate::stack::build`] assembles them; each one does
//! one thing, holds only what it uses, and passes `Request<Bytes>` in and
//! `Result<Response<ProxyBody>, ProxyError>` out. A streamed answer ([`ProxyBody::Streamed`])
//! leaves the stack at its head: a layer whose work is due at the end of the request hands
//! that work to the stream instead (see `stream.rs`).
//!
//! Every service is always ready: back-pressure is the admission queue's job, and it must be
//! per-request (FIFO, capacity, timeout), which `poll_ready` cannot express.

mod admission;
mod chain;
mod metrics;
mod timing;
mod upstream;

use bytes::Bytes;
use http::{Request, Response};

pub use self::admission::AdmissionLayer;
pub use self::chain::{ChainLayer, NextStage};
pub use self::metrics::MetricsLayer;
pub use self::timing::TimingLayer;
pub use self::upstream::UpstreamService;
use crate::error::ProxyError;
use crate::stream::ProxyBody;

pub type ProxyRequest = Request<Bytes>;
pub type ProxyResponse = Response<ProxyBody>;
pub type ProxyResult = Result<ProxyResponse, ProxyError>;

/// The `Service` items shared by every layer: always ready, a boxed future.
macro_rules! always_ready {
    () => {
        type Response = $crate::layer::ProxyResponse;
        type Error = $crate::error::ProxyError;
        type Future = futures::future::BoxFuture<'static, $crate::layer::ProxyResult>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), $crate::error::ProxyError>> {
            std::task::Poll::Ready(Ok(()))
        }
    };
}
use always_ready;
