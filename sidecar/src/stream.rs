//! The response body the stack hands to the client connection ([`ProxyBody`]): a buffered
//! answer, or a streamed one ([`Streamed`]) forwarded frame by frame as the model server (or
//! the next stage) produces it.
//!
//! A streamed answer leaves the stack when its *head* arrives, long before the request is
//! over, so what the layers do "when the request ends" moves into the body: the timing layer
//! asks it to record the time to first byte and the service time (dispatch → last byte), the
//! admission layer hands it the concurrency slot (the model server is busy until its last
//! byte), the metrics layer hands it the outcome count, and the edge asks it to append
//! Server-Timing to the trailers. It does all of that once, when the upstream body ends,
//! fails or — the client went away — is dropped. Nothing here allocates per frame.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::admission::Slot;
use crate::body::BodyError;
use crate::budget::Reservation;
use crate::error::ProxyError;
use crate::headers::{SERVER_TIMING, timing_value};
use crate::metrics::RequestOutcome;
use crate::tally::Tally;
use crate::timing::{Dispatch, RequestHead, StageTiming};
use crate::upstream::UpstreamError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the client connection sends: a whole answer or a stream.
#[derive(Debug)]
pub enum ProxyBody {
    /// A buffered answer (or an error body of the sidecar's own), sent as one frame. `hold`
    /// keeps its bytes counted in the buffer budget until the connection has taken them.
    Full {
        data: Option<Bytes>,
        hold: Option<Reservation>,
        /// When the first byte of a model server's body arrived, for its time to first byte
        /// (here rather than in an extension: no map insert per request).
        first_byte: Option<Instant>,
    },
    /// Forwarded as it arrives.
    Streamed(Box<Streamed>),
}

impl ProxyBody {
    /// A buffered answer outside the budget (error bodies, tests).
    pub fn full(data: Bytes) -> Self {
        ProxyBody::Full {
            data: Some(data),
            hold: None,
            first_byte: None,
        }
    }

    /// When a buffered answer's first body byte arrived (`None`: empty, a stream, or not from
    /// a peer).
    pub fn first_byte(&self) -> Option<Instant> {
        match self {
            ProxyBody::Full { first_byte, .. } => *first_byte,
            ProxyBody::Streamed(_) => None,
        }
    }

    /// Whether this is a stream.
    pub fn is_streamed(&self) -> bool {
        matches!(self, ProxyBody::Streamed(_))
    }

    /// The bytes of a buffered answer; `None` for a stream.
    pub fn as_full(&self) -> Option<&Bytes> {
        match self {
            ProxyBody::Full { data, .. } => data.as_ref(),
            ProxyBody::Streamed(_) => None,
        }
    }

    /// The stream, if this is one (the layers attach their end-of-request work to it).
    pub fn streamed_mut(&mut self) -> Option<&mut Streamed> {
        match self {
            ProxyBody::Full { .. } => None,
            ProxyBody::Streamed(s) => Some(s),
        }
    }
}

impl From<Bytes> for ProxyBody {
    fn from(b: Bytes) -> Self {
        ProxyBody::full(b)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Full { data, .. } => Poll::Ready(
                data.take()
                    .filter(|d| !d.is_empty())
                    .map(|d| Ok(Frame::data(d))),
            ),
            ProxyBody::Streamed(s) => Pin::new(s.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full { data, .. } => data.as_ref().is_none_or(Bytes::is_empty),
            ProxyBody::Streamed(s) => s.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ProxyBody::Streamed(_) => SizeHint::default(),
        }
    }
}

/// Which peer a stream comes from, to classify its failure.
#[derive(Debug, Clone)]
pub enum Origin {
    /// This stage's model server.
    Model,
    /// A next-stage replica (the stream passes through a chained stage).
    Next(http::uri::Authority),
}

/// Server-Timing for the trailers of a stream from this stage's model server.
#[derive(Debug)]
struct TrailerTiming {
    stage: Arc<str>,
}

/// A streamed answer and the work due when it ends.
#[derive(Debug)]
pub struct Streamed {
    inner: Incoming,
    origin: Origin,
    /// A 5xx head: counted `upstream_error` at the end, like a buffered 5xx.
    server_error: bool,
    /// The upstream timeout still applies: the last byte must come by then.
    deadline: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
    /// Set by the timing layer: time to first byte and service time are measured from here.
    timing: Option<(Dispatch, Arc<Tally>)>,
    first_byte: Option<Duration>,
    service: Option<Duration>,
    /// Set by the admission layer: released when the model server's body has ended.
    slot: Option<Slot>,
    /// Set by the metrics layer: how the request ended is counted when the stream does.
    finish: Option<(Arc<Tally>, RequestHead)>,
    /// Set by the edge when the client accepts trailers.
    trailers: Option<TrailerTiming>,
    done: bool,
}

impl Streamed {
    /// A stream of `inner` (the head has been received with `status`), which must end within
    /// `deadline` from now.
    pub fn new(inner: Incoming, origin: Origin, status: StatusCode, deadline: Duration) -> Self {
        Streamed {
            inner,
            origin,
            server_error: status.is_server_error(),
            deadline: Some((Box::pin(tokio::time::sleep(deadline)), deadline)),
            timing: None,
            first_byte: None,
            service: None,
            slot: None,
            finish: None,
            trailers: None,
            done: false,
        }
    }

    /// Measure time to first byte and service time from `dispatch` (the timing layer).
    pub fn time_from(&mut self, dispatch: Dispatch, tally: Arc<Tally>) {
        self.timing = Some((dispatch, tally));
    }

    /// Whether this stage's service time is measured by the stream (its own model server's).
    pub fn is_timed(&self) -> bool {
        self.timing.is_some()
    }

    /// Hold the concurrency slot until the stream ends (the admission layer).
    pub fn hold(&mut self, slot: Slot) {
        self.slot = Some(slot);
    }

    /// Count the request when the stream ends (the metrics layer).
    pub fn finish_with(&mut self, tally: Arc<Tally>, head: RequestHead) {
        self.finish = Some((tally, head));
    }

    /// Append `<stage>-ttfb` and `<stage>-service` to Server-Timing in the trailers (the
    /// edge, when the client sent `TE: trailers`).
    pub fn trailer_timing(&mut self, stage: Arc<str>) {
        self.trailers = Some(TrailerTiming { stage });
    }

    /// The first data byte arrived now.
    fn first_data(&mut self) {
        if self.first_byte.is_none()
            && let Some((d, tally)) = &self.timing
        {
            let ttfb = d.at.elapsed();
            tally.first_byte(ttfb);
            self.first_byte = Some(ttfb);
        }
    }

    /// The upstream body ended well: service time, slot, outcome.
    fn end(&mut self) {
        self.done = true;
        if let Some((d, tally)) = &self.timing {
            let service = d.at.elapsed();
            if self.first_byte.is_none() {
                // No data at all: the first byte is the end.
                tally.first_byte(service);
                self.first_byte = Some(service);
            }
            tally.served(service);
            self.service = Some(service);
        }
        self.deadline = None;
        self.slot = None;
        if let Some((tally, head)) = self.finish.take() {
            let outcome = if self.server_error {
                RequestOutcome::UpstreamError
            } else {
                RequestOutcome::Ok
            };
            tally.finish(outcome, head);
        }
    }

    /// The upstream body failed (or the deadline passed): counted as the peer's failure.
    fn fail(&mut self, why: UpstreamError) {
        self.done = true;
        self.deadline = None;
        self.slot = None;
        let timing = self.timing.as_ref().map(|(d, _)| StageTiming::ended(*d));
        let e = match &self.origin {
            Origin::Model => ProxyError::Upstream {
                source: why,
                timing,
            },
            Origin::Next(target) => ProxyError::Downstream {
                target: target.clone(),
                source: why,
                timing,
            },
        };
        tracing::debug!(error = %e, "stream failed");
        if let Some((tally, head)) = self.finish.take() {
            tally.finish_failed(&e, head);
        }
    }

    /// The trailers to send after the last data frame: the model server's (if any) with this
    /// stage's Server-Timing entries put first.
    fn merged_trailers(&self, upstream: Option<HeaderMap>) -> Option<HeaderMap> {
        let Some(t) = &self.trailers else {
            return upstream;
        };
        let (Some(ttfb), Some(service)) = (self.first_byte, self.service) else {
            return upstream;
        };
        let mut out = upstream.unwrap_or_default();
        let value: Option<HeaderValue> =
            timing_value(&t.stage, &[("ttfb", ttfb), ("service", service)], &out);
        if let Some(v) = value {
            out.insert(SERVER_TIMING, v);
        }
        Some(out)
    }
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some((sleep, after)) = &mut this.deadline
            && sleep.as_mut().poll(cx).is_ready()
        {
            let after = *after;
            this.fail(UpstreamError::Timeout { after });
            return Poll::Ready(Some(Err(Box::new(UpstreamError::Timeout { after }))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                if frame.is_data() {
                    this.first_data();
                    return Poll::Ready(Some(Ok(frame)));
                }
                match frame.into_trailers() {
                    // Trailers end the stream.
                    Ok(trailers) => {
                        this.end();
                        Poll::Ready(
                            this.merged_trailers(Some(trailers))
                                .map(|t| Ok(Frame::trailers(t))),
                        )
                    }
                    // Neither data nor trailers (none exist today): passed on as it is.
                    Err(frame) => Poll::Ready(Some(Ok(frame))),
                }
            }
            Poll::Ready(Some(Err(e))) => {
                let text = e.to_string();
                this.fail(UpstreamError::Body(BodyError::Read(Box::new(e))));
                Poll::Ready(Some(Err(text.into())))
            }
            Poll::Ready(None) => {
                this.end();
                Poll::Ready(this.merged_trailers(None).map(|t| Ok(Frame::trailers(t))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

impl Drop for Streamed {
    /// The client went away mid-stream (hyper dropped the body): counted `canceled`; the slot
    /// goes back with the field.
    fn drop(&mut self) {
        if let Some((tally, head)) = self.finish.take() {
            tally.finish(RequestOutcome::Canceled, head);
        }
    }
}
