//! [`StageContext`]: what one sidecar's request path is built from. [`crate::stack::build`]
//! and [`crate::edge::Edge`] hand each layer the parts it uses; nothing on the request path
//! holds the whole context.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use crate::admission::Admission;
use crate::balance::Balancer;
use crate::budget::Budget;
use crate::headers::number_value;
use crate::retry::ConnectRetry;
use crate::tally::Tally;
use crate::upstream::UpstreamPool;
use crate::window::WindowFeed;

/// The parts of one sidecar's request path, built once by [`crate::Sidecar::new`].
#[derive(Debug, Clone)]
pub struct StageContext {
    /// This stage's name (Server-Timing, error bodies).
    pub stage: Arc<str>,
    /// The next stage's name, for the 502 body when it cannot be reached.
    pub next_stage: Arc<str>,
    /// Keep-alive connections to the model server (`--upstream`) and the next stage.
    pub pool: Arc<UpstreamPool>,
    /// Outcome counters, histograms and report-window events.
    pub tally: Arc<Tally>,
    /// The report window the tally feeds (closed by the reporter).
    pub window: Arc<WindowFeed>,
    /// The request queue.
    pub admission: Arc<Admission>,
    /// Next-stage replicas, when `--next` is set.
    pub balancer: Option<Arc<Balancer>>,
    /// Connect retries toward the next stage (`--connect-retry-for`).
    pub next_retry: ConnectRetry,
    /// HTTP/1.1 or h2c toward the model server.
    pub upstream_protocol: crate::config::UpstreamProtocol,
    /// Header fields a forwarded request may carry (`--upstream-max-headers`; 431 beyond).
    pub upstream_max_headers: usize,
    /// Request body limit (413 beyond).
    pub max_body_bytes: usize,
    /// Every buffered body's bytes together (`--max-buffered-bytes`; 503 beyond).
    pub budget: Arc<Budget>,
    /// A request body must arrive whole within this of its head (408 beyond).
    pub body_timeout: Duration,
    /// `Retry-After` on a 503 from admission.
    pub retry_after: HeaderValue,
}

impl StageContext {
    /// The context of another serving thread: everything shared (admission, budget, tally,
    /// balancer) except the upstream connection pool, which is the thread's own.
    pub fn for_thread(&self) -> StageContext {
        StageContext {
            pool: Arc::new(self.pool.sibling()),
            ..self.clone()
        }
    }

    /// `Retry-After` for `seconds`.
    pub fn retry_after(seconds: u32) -> HeaderValue {
        number_value(u64::from(seconds))
    }
}
