//! Metrics: outcome counter, failure reasons, request and pipeline histograms, window counts.

use std::sync::Arc;

use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse, always_ready};
use crate::error::ProxyError;
use crate::metrics::RequestOutcome;
use crate::tally::Tally;
use crate::timing::RequestHead;

/// Counts every request exactly once, whichever layer below answers it.
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    tally: Arc<Tally>,
}

impl MetricsLayer {
    pub fn new(tally: Arc<Tally>) -> Self {
        MetricsLayer { tally }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> MetricsService<S> {
        MetricsService {
            inner,
            tally: self.tally.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    tally: Arc<Tally>,
}

/// Counts a request exactly once, also when its future is dropped (client gone → canceled).
struct Finish {
    tally: Arc<Tally>,
    head: RequestHead,
    done: bool,
}

impl Drop for Finish {
    fn drop(&mut self) {
        if !self.done {
            self.tally.finish(RequestOutcome::Canceled, self.head);
        }
    }
}

impl<S> Service<ProxyRequest> for MetricsService<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError> + Send + 'static,
    S::Future: Send,
{
    always_ready!();

    fn call(&mut self, req: ProxyRequest) -> Self::Future {
        let mut finish = Finish {
            tally: self.tally.clone(),
            head: RequestHead::of(&req),
            done: false,
        };
        self.tally.arrival();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut result = fut.await;
            finish.done = true;
            if let Ok(resp) = &mut result
                && let Some(s) = resp.body_mut().streamed_mut()
            {
                // The request ends with the stream: it counts then (or `canceled` when the
                // client drops it).
                s.finish_with(finish.tally.clone(), finish.head);
                return result;
            }
            match &result {
                Ok(resp) if resp.status().is_server_error() => finish
                    .tally
                    .finish(RequestOutcome::UpstreamError, finish.head),
                Ok(_) => finish.tally.finish(RequestOutcome::Ok, finish.head),
                Err(e) => finish.tally.finish_failed(e, finish.head),
            }
            result
        })
    }
}
