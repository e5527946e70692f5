//! The request stack, assembled bottom-up in one function ([`build`]).

use tower::Layer;
use tower::util::{BoxCloneSyncService, Either};

use crate::context::StageContext;
use crate::error::ProxyError;
use crate::layer::{
    AdmissionLayer, ChainLayer, MetricsLayer, NextStage, ProxyRequest, ProxyResponse, TimingLayer,
    UpstreamService,
};
use crate::upstream::Mode;

/// The boxed stack between the edge and the model server.
pub type ProxyService = BoxCloneSyncService<ProxyRequest, ProxyResponse, ProxyError>;

/// Builds the request stack from the model server up; each layer gets only what it uses.
pub fn build(ctx: &StageContext) -> ProxyService {
    // The model server, over a pooled keep-alive connection. A sized answer is read to its
    // end, so the layers above see a whole answer; a streaming one goes up at its head —
    // except on a chained stage, where the answer is the next stage's request body and is
    // read whole (up to --max-body-bytes) like any request body.
    let mode = match ctx.balancer {
        Some(_) => Mode::Buffer,
        None => Mode::Auto,
    };
    let svc = UpstreamService::new(ctx.pool.clone(), mode, ctx.upstream_protocol);

    // Timing right above the model server: service time runs from dispatch to the end of the
    // model server's body and covers nothing else (not the queue, not the next stage); a
    // stream measures its own end.
    let svc = TimingLayer::new(ctx.tally.clone()).layer(svc);

    // Admission above timing: the queue wait ends exactly when a slot is granted (admission
    // computes it, timing reads it), and a refused request never reaches the model server. The
    // slot is held until the model server's body has ended (a stream holds it to its end).
    let svc = AdmissionLayer::new(ctx.admission.clone()).layer(svc);

    // Chaining outside admission: the concurrency slot guards the model server only, so it is
    // released before the next stage is called, and downstream time can never leak into this
    // stage's service time or hold this stage's slot. Absent on the last stage.
    let svc = match &ctx.balancer {
        Some(balancer) => Either::Left(
            ChainLayer::new(NextStage {
                balancer: balancer.clone(),
                pool: ctx.pool.clone(),
                retry: ctx.next_retry.clone(),
            })
            .layer(svc),
        ),
        None => Either::Right(svc),
    };

    // Metrics outermost: every request is counted exactly once, whatever layer below answers
    // it (a 503 from admission, a 502 from the chain), and a request whose client goes away
    // is counted `canceled` when this layer's future is dropped.
    let svc = MetricsLayer::new(ctx.tally.clone()).layer(svc);

    BoxCloneSyncService::new(svc)
}
