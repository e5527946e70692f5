//! Timing: service = dispatch → end of the upstream body, time to first byte = dispatch → its
//! first byte; the queue wait comes with the dispatch from admission. A streamed answer
//! measures both itself, when its bytes arrive.

use std::sync::Arc;

use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse, always_ready};
use crate::error::ProxyError;
use crate::tally::Tally;
use crate::timing::{Dispatch, RequestHead, StageTiming};

#[derive(Debug, Clone)]
pub struct TimingLayer {
    tally: Arc<Tally>,
}

impl TimingLayer {
    pub fn new(tally: Arc<Tally>) -> Self {
        TimingLayer { tally }
    }
}

impl<S> Layer<S> for TimingLayer {
    type Service = TimingService<S>;
    fn layer(&self, inner: S) -> TimingService<S> {
        TimingService {
            inner,
            tally: self.tally.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TimingService<S> {
    inner: S,
    tally: Arc<Tally>,
}

impl<S> Service<ProxyRequest> for TimingService<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError> + Send + 'static,
    S::Future: Send,
{
    always_ready!();

    fn call(&mut self, req: ProxyRequest) -> Self::Future {
        // Admission put the dispatch there; a stack without admission dispatches now.
        let dispatch = req
            .extensions()
            .get::<Dispatch>()
            .copied()
            .unwrap_or_else(|| Dispatch::granted(RequestHead::of(&req).at));
        let tally = self.tally.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut result = fut.await;
            if let Ok(resp) = &mut result
                && let Some(s) = resp.body_mut().streamed_mut()
            {
                s.time_from(dispatch, tally);
                // The edge puts the queue wait in the head's Server-Timing.
                resp.extensions_mut().insert(dispatch);
                return result;
            }
            let timing = StageTiming::ended(dispatch);
            match result {
                Ok(mut resp) => {
                    let ttfb = match resp.body().first_byte() {
                        Some(at) => at.saturating_duration_since(dispatch.at),
                        None => timing.service,
                    };
                    tally.first_byte(ttfb);
                    tally.served(timing.service);
                    resp.extensions_mut().insert(timing);
                    Ok(resp)
                }
                Err(e) => Err(e.with_timing(timing)),
            }
        })
    }
}
