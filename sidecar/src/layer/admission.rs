//! Admission: FIFO wait for a concurrency slot, held until the model server's body has ended
//! (for a streamed answer, the stream holds it to its last byte).

use std::sync::Arc;

use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse, always_ready};
use crate::admission::Admission;
use crate::error::ProxyError;
use crate::timing::RequestHead;

#[derive(Debug, Clone)]
pub struct AdmissionLayer {
    admission: Arc<Admission>,
}

impl AdmissionLayer {
    pub fn new(admission: Arc<Admission>) -> Self {
        AdmissionLayer { admission }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = AdmissionService<S>;
    fn layer(&self, inner: S) -> AdmissionService<S> {
        AdmissionService {
            inner,
            admission: self.admission.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AdmissionService<S> {
    inner: S,
    admission: Arc<Admission>,
}

impl<S> Service<ProxyRequest> for AdmissionService<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError> + Clone + Send + 'static,
    S::Future: Send,
{
    always_ready!();

    fn call(&mut self, mut req: ProxyRequest) -> Self::Future {
        let admission = self.admission.clone();
        // The inner service is called only once the slot is held; take a ready clone now.
        let mut inner = self.inner.clone();
        std::mem::swap(&mut inner, &mut self.inner);
        Box::pin(async move {
            let slot = admission
                .acquire(RequestHead::of(&req).at)
                .await
                .map_err(ProxyError::Refused)?;
            // The layer below reads the queue wait from here: it is computed once, by
            // admission, when the slot is granted.
            req.extensions_mut().insert(slot.dispatch());
            let mut result = inner.call(req).await;
            if let Ok(resp) = &mut result
                && let Some(s) = resp.body_mut().streamed_mut()
            {
                s.hold(slot);
            } else {
                drop(slot);
            }
            result
        })
    }
}
