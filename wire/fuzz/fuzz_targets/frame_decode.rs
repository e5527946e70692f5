//! Feeds arbitrary bytes to the frame decoder: it must return an error or a message, never
//! panic, and never allocate more than the declared maximum.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sair_wire::frame::decode(data, sair_wire::MAX_FRAME_BYTES);
    let _ = sair_wire::frame::decode_payload(data);
});
