//! Arbitrary input to a live member's core: as a raw datagram, as a SWIM packet inside a valid
//! frame (foca decodes it), and, when it decodes as a frame, as a state-exchange frame (the
//! state layer applies whatever delta it carries). The member must never panic.
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use sair_mesh::frame::{MAX_FRAME_BYTES, decode_payload, encode_payload};
use sair_mesh::message::{MeshBody, MeshFrame};
use sair_mesh::metrics::MeshMetrics;
use sair_mesh::{MemberId, MeshConfig, MeshCore, Role};

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let addr: SocketAddr = ([127, 0, 0, 1], 7946).into();
    let Ok(id) = MemberId::try_new("fuzz", Role::Coordinator, addr, 1) else {
        return;
    };
    let mut core = MeshCore::new(id, MeshConfig::default(), now, 0, 1, MeshMetrics::noop());
    core.handle_datagram(data, now);
    if let Ok(bytes) = encode_payload(&MeshFrame::new(MeshBody::Swim(data.to_vec())), 4096) {
        core.handle_datagram(&bytes, now);
    }
    if let Ok(frame) = decode_payload(data, MAX_FRAME_BYTES) {
        let _ = core.handle_stream(frame.body, now);
    }
    core.tick(now);
    while core.poll_action().is_some() {}
    while core.poll_event().is_some() {}
});
