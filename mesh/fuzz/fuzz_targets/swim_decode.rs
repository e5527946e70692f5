//! Arbitrary bytes to our bincode codec for foca's header and member records.
#![no_main]

use foca::Codec;
use libfuzzer_sys::fuzz_target;
use sair_mesh::swim::SwimCodec;

fuzz_target!(|data: &[u8]| {
    let mut codec = SwimCodec;
    let _ = codec.decode_header(data);
    let _ = codec.decode_member(data);
});
