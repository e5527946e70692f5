//! The instants of one request at this stage, and the one place queue wait is computed.
//!
//! Head received ([`RequestHead`]) → granted a concurrency slot ([`Dispatch`]) → end of the
//! model server's body. Queue wait is `Dispatch::at − RequestHead::at`, computed once, by
//! [`Dispatch::granted`] when admission grants the slot; the `StageReport` window, the
//! Prometheus histogram and Server-Timing all read that one value.

use std::time::{Duration, Instant};

/// When the request head arrived and whether this sidecar is the pipeline's entry. Set by the
/// edge as a request extension.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead {
    pub at: Instant,
    pub entry: bool,
}

impl RequestHead {
    /// The head of `req`, or "now, not the entry" for a request that did not come through the
    /// edge (unit tests of a single layer).
    pub fn of<B>(req: &http::Request<B>) -> RequestHead {
        req.extensions()
            .get::<RequestHead>()
            .copied()
            .unwrap_or_else(|| RequestHead {
                at: Instant::now(),
                entry: false,
            })
    }
}

/// The instant a request left the queue for the model server, and how long it waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatch {
    pub at: Instant,
    pub queue_wait: Duration,
}

impl Dispatch {
    /// A slot was granted now to a request whose head arrived at `head`: the only place queue
    /// wait is computed.
    pub fn granted(head: Instant) -> Dispatch {
        let at = Instant::now();
        Dispatch {
            at,
            queue_wait: at.saturating_duration_since(head),
        }
    }
}

/// This stage's queue wait and service time for one request (what Server-Timing carries).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageTiming {
    pub queue: Duration,
    pub service: Duration,
}

impl StageTiming {
    /// Service ends now, for a request dispatched at `d`.
    pub fn ended(d: Dispatch) -> StageTiming {
        StageTiming {
            queue: d.queue_wait,
            service: d.at.elapsed(),
        }
    }
}
