//! Why a proxied request failed, classified by source (client, admission, upstream,
//! downstream) so that the same value picks the status code, the JSON body, the `outcome`
//! label, the failure `source`/`reason` labels and whether a `StageReport` counts a rejection.

use http::StatusCode;

use crate::admission::Refusal;
use crate::body::BodyError;
use crate::metrics::{ErrorSource, Failure, RequestOutcome};
use crate::timing::StageTiming;
use crate::upstream::{UpstreamError, UpstreamErrorKind};

/// A request that could not be proxied.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request body could not be read whole (413 when too large, 400 otherwise).
    #[error("request {0}")]
    Body(#[source] BodyError),
    /// The request would carry more header fields once forwarded (the pipeline context
    /// added) than the model server takes, `--upstream-max-headers` (431).
    #[error(
        "request has {fields} header fields once forwarded, over the model server's limit of \
         {limit} (--upstream-max-headers)"
    )]
    TooManyHeaders { fields: usize, limit: usize },
    /// Admission refused the request: queue full or queue timeout (503).
    #[error("{0}; retry later")]
    Refused(Refusal),
    /// The model server failed (502).
    #[error("model server failed: {source}")]
    Upstream {
        #[source]
        source: UpstreamError,
        timing: Option<StageTiming>,
    },
    /// The next stage failed (502).
    #[error("next stage {target} failed: {source}")]
    Downstream {
        target: http::uri::Authority,
        #[source]
        source: UpstreamError,
        timing: Option<StageTiming>,
    },
    /// Discovery knows no next-stage endpoint (502).
    #[error("next stage - failed: no next-stage endpoints known")]
    NoNextEndpoint { timing: Option<StageTiming> },
}

impl ProxyError {
    /// What failed, with the reason: the `source` and `reason` labels.
    pub fn failure(&self) -> Failure {
        use UpstreamErrorKind as K;
        match self {
            ProxyError::Body(BodyError::TooLarge { .. }) => Failure::BodyTooLarge,
            ProxyError::Body(BodyError::Read(_)) => Failure::BodyUnreadable,
            ProxyError::Body(BodyError::Malformed(_)) => Failure::BodyMalformed,
            ProxyError::Body(BodyError::Timeout { .. }) => Failure::BodyTimeout,
            ProxyError::Body(BodyError::OverBudget { .. }) => Failure::BufferFull,
            ProxyError::TooManyHeaders { .. } => Failure::TooManyHeaders,
            ProxyError::Refused(Refusal::QueueFull { .. }) => Failure::QueueFull,
            ProxyError::Refused(Refusal::QueueTimeout { .. }) => Failure::QueueTimeout,
            ProxyError::Upstream { source, .. } => match source.kind() {
                K::Refused => Failure::UpstreamRefused,
                K::Unreachable => Failure::UpstreamUnreachable,
                K::Timeout => Failure::UpstreamTimeout,
                K::Oversized => Failure::UpstreamOversized,
                K::Broken => Failure::UpstreamBroken,
                K::OverBudget => Failure::BufferFull,
            },
            ProxyError::Downstream { source, .. } => match source.kind() {
                K::Refused => Failure::DownstreamRefused,
                K::Unreachable => Failure::DownstreamUnreachable,
                K::Timeout => Failure::DownstreamTimeout,
                K::Oversized => Failure::DownstreamOversized,
                K::Broken => Failure::DownstreamBroken,
                K::OverBudget => Failure::BufferFull,
            },
            ProxyError::NoNextEndpoint { .. } => Failure::NoNextEndpoint,
        }
    }

    /// Where the failure came from (after pingora's `ErrorSource`).
    pub fn source_kind(&self) -> ErrorSource {
        self.failure().source()
    }

    pub fn status(&self) -> StatusCode {
        // Out of buffer memory is the sidecar's own overload, wherever the body came from:
        // 503 with Retry-After, like a full queue.
        if self.failure() == Failure::BufferFull {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        match self {
            ProxyError::Body(BodyError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::Body(BodyError::Read(_) | BodyError::Malformed(_)) => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::Body(BodyError::Timeout { .. }) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::TooManyHeaders { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::Refused(_) | ProxyError::Body(BodyError::OverBudget { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::Upstream { .. }
            | ProxyError::Downstream { .. }
            | ProxyError::NoNextEndpoint { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// The `outcome` label. A 413 (or the sidecar's own 431) is the client's error, not an admission rejection: it never
    /// reached the queue. A malformed body is the client's error too; only a client that went
    /// away mid-body is `canceled`.
    pub fn outcome(&self) -> RequestOutcome {
        // Shed for memory: the same to the autoscaler as a full queue (load it cannot take).
        if self.failure() == Failure::BufferFull {
            return RequestOutcome::Rejected;
        }
        match self {
            ProxyError::Body(
                BodyError::TooLarge { .. } | BodyError::Malformed(_) | BodyError::Timeout { .. },
            )
            | ProxyError::TooManyHeaders { .. } => RequestOutcome::ClientError,
            ProxyError::Body(BodyError::OverBudget { .. }) => RequestOutcome::Rejected,
            ProxyError::Body(BodyError::Read(_)) => RequestOutcome::Canceled,
            ProxyError::Refused(Refusal::QueueFull { .. }) => RequestOutcome::Rejected,
            ProxyError::Refused(Refusal::QueueTimeout { .. }) => RequestOutcome::Timeout,
            ProxyError::Upstream { .. }
            | ProxyError::Downstream { .. }
            | ProxyError::NoNextEndpoint { .. } => RequestOutcome::UpstreamError,
        }
    }

    /// This stage's timing, when the request reached the model server.
    pub fn timing(&self) -> Option<StageTiming> {
        match self {
            ProxyError::Upstream { timing, .. }
            | ProxyError::Downstream { timing, .. }
            | ProxyError::NoNextEndpoint { timing } => *timing,
            ProxyError::Body(_) | ProxyError::TooManyHeaders { .. } | ProxyError::Refused(_) => {
                None
            }
        }
    }

    /// Attaches this stage's timing to a model-server failure.
    pub fn with_timing(mut self, t: StageTiming) -> Self {
        if let ProxyError::Upstream { timing, .. } = &mut self {
            *timing = Some(t);
        }
        self
    }
}

#[cfg(test)]
mod tests;
