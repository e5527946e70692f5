//! Timing: service = dispatch → end of the upstream body; the queue wait comes with the
//! dispatch from admission.

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
            let result = fut.await;
            let timing = StageTiming::ended(dispatch);
            match result {
                Ok(mut resp) => {
                    tally.served(timing.service);
                    resp.extensions_mut().insert(timing);
                    Ok(resp)
                }
                Err(e) => Err(e.with_timing(timing)),
            }
        })
    }
}
