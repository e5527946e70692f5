//! `sair-node-agent`: one per node.
//!
//! It owns the GPU-share segments of its node (creation, adoption after restart, garbage
//! collection), turns target shares ρ into token-bucket parameters with a feedback loop on
//! measured GPU utilisation, keeps Σρ ≤ 1 per GPU, and collects `StageReport`s from sidecars.
//!
//! It must not sit on the request path or the kernel-launch path: it only writes parameters
//! that the interception library reads with atomics.
