//! Writes the seed corpus of the fuzz targets (mesh/fuzz/seeds/<target>/): one valid input of
//! each frame kind, so that fuzzing starts from the real grammar.
//!
//!     cargo run -p sair-mesh --example fuzz_corpus -- mesh/fuzz/seeds

use std::net::SocketAddr;
use std::path::PathBuf;

use foca::{Header, Member, Message};
use sair_mesh::frame::{MAX_FRAME_BYTES, encode, encode_payload};
use sair_mesh::message::{DigestEntry, Entry, MemberDelta, MeshBody, MeshFrame};
use sair_mesh::{MemberId, Role};

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "mesh/fuzz/seeds".into()),
    );
    let addr: SocketAddr = ([127, 0, 0, 1], 7000).into();
    let id = MemberId::try_new("node-1", Role::Agent, addr, 3).unwrap_or_else(|e| panic!("{e}"));
    let digest = vec![DigestEntry {
        member: "node-1".into(),
        generation: 3,
        control: 2,
        bulk: 5,
    }];
    let delta = vec![MemberDelta {
        member: "node-1".into(),
        generation: 3,
        control_up_to: 2,
        bulk_up_to: 5,
        entries: vec![
            Entry {
                key: "ctl/rho/p/s".into(),
                version: 2,
                value: Some(b"0.5".to_vec()),
                written_unix_ms: 1,
            },
            Entry {
                key: "gpu/0".into(),
                version: 5,
                value: None,
                written_unix_ms: 2,
            },
        ],
    }];
    let header = Header {
        src: id.clone(),
        src_incarnation: 1,
        dst: id.clone(),
        message: Message::Ping(7),
    };
    let header = bincode::serde::encode_to_vec(&header, bincode::config::standard())
        .unwrap_or_else(|e| panic!("{e}"));
    let member = bincode::serde::encode_to_vec(Member::alive(id), bincode::config::standard())
        .unwrap_or_else(|e| panic!("{e}"));
    let bodies = [
        MeshBody::Swim(header.clone()),
        MeshBody::Syn {
            from: "node-1".into(),
            hash: 42,
        },
        MeshBody::InSync,
        MeshBody::SynDigest(digest.clone()),
        MeshBody::Syn2 {
            digest,
            delta: delta.clone(),
        },
        MeshBody::Ack(delta),
    ];
    let write = |target: &str, name: String, bytes: &[u8]| {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{e}"));
    };
    for (i, b) in bodies.into_iter().enumerate() {
        let frame = MeshFrame::new(b);
        let stream = encode(&frame, MAX_FRAME_BYTES).unwrap_or_else(|e| panic!("{e}"));
        let payload = encode_payload(&frame, MAX_FRAME_BYTES).unwrap_or_else(|e| panic!("{e}"));
        write("frame_decode", format!("stream-{i}"), &stream);
        write("frame_decode", format!("payload-{i}"), &payload);
        write("core_input", format!("payload-{i}"), &payload);
    }
    write("swim_decode", "header".into(), &header);
    write("swim_decode", "member".into(), &member);
    write("core_input", "swim-header".into(), &header);
    println!("corpus written under {}", out.display());
}
