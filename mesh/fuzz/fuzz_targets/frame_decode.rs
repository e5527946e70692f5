//! Arbitrary bytes to the mesh frame decoders (stream frames and datagram payloads): an error
//! or a frame, never a panic, never an allocation past the frame's size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sair_mesh::frame::{MAX_FRAME_BYTES, decode, decode_payload};

fuzz_target!(|data: &[u8]| {
    let _ = decode(data, MAX_FRAME_BYTES);
    let _ = decode_payload(data, MAX_FRAME_BYTES);
});
