//! Why a proxied request failed, classified by source (client, admission, upstream,
//! downstream) so that the same value picks the status code, the JSON body and the metric
//! outcome.

use std::time::Duration;

use http::StatusCode;

use crate::metrics::Outcome;

/// This stage's queue wait and service time for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageTiming {
    pub queue: Duration,
    pub service: Duration,
}

/// Where a failure came from (after pingora's `ErrorSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Client,
    Admission,
    Upstream,
    Downstream,
}

/// A request that could not be proxied.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("request body exceeds the limit of {max} bytes")]
    BodyTooLarge { max: usize },
    #[error("request body could not be read: {0}")]
    BadBody(String),
    #[error("admission queue is full ({capacity} waiting); retry later")]
    QueueFull { capacity: u64 },
    #[error("waited {waited:?} in the admission queue, longer than the queue timeout")]
    QueueTimeout { waited: Duration },
    #[error("model server failed: {why}")]
    Upstream {
        why: String,
        timing: Option<StageTiming>,
    },
    #[error("next stage {target} failed: {why}")]
    Downstream {
        target: String,
        why: String,
        timing: Option<StageTiming>,
    },
}

impl ProxyError {
    pub fn source_kind(&self) -> Source {
        match self {
            ProxyError::BodyTooLarge { .. } | ProxyError::BadBody(_) => Source::Client,
            ProxyError::QueueFull { .. } | ProxyError::QueueTimeout { .. } => Source::Admission,
            ProxyError::Upstream { .. } => Source::Upstream,
            ProxyError::Downstream { .. } => Source::Downstream,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BadBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::QueueFull { .. } | ProxyError::QueueTimeout { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::Upstream { .. } | ProxyError::Downstream { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self {
            ProxyError::BodyTooLarge { .. } | ProxyError::QueueFull { .. } => Outcome::Rejected,
            ProxyError::BadBody(_) => Outcome::Canceled,
            ProxyError::QueueTimeout { .. } => Outcome::Timeout,
            ProxyError::Upstream { .. } | ProxyError::Downstream { .. } => Outcome::UpstreamError,
        }
    }

    pub fn timing(&self) -> Option<StageTiming> {
        match self {
            ProxyError::Upstream { timing, .. } | ProxyError::Downstream { timing, .. } => *timing,
            _ => None,
        }
    }

    /// Attaches this stage's timing to an upstream failure.
    pub fn with_timing(mut self, t: StageTiming) -> Self {
        if let ProxyError::Upstream { timing, .. } = &mut self {
            *timing = Some(t);
        }
        self
    }
}

/// The error and its sources, joined, for messages that name the root cause.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
