//! The glue between foca and the core: foca's codec over bincode 2, and a runtime that
//! collects what foca wants done so the core can turn it into actions.

use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use bytes::{Buf, BufMut};
use foca::{Header, Member, Notification, OwnedNotification, Timer};

use crate::config::MeshConfig;
use crate::id::MemberId;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ 64 * 1024 }>,
> {
    bincode::config::standard().with_limit::<{ 64 * 1024 }>()
}

/// Why foca's payload could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum SwimCodecError {
    #[error("SWIM payload could not be decoded: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("SWIM payload could not be encoded: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("SWIM packet buffer full")]
    BufferFull,
}

/// foca's [`foca::Codec`] over bincode 2 (serde mode), with a byte limit while decoding.
#[derive(Debug, Clone, Copy, Default)]
pub struct SwimCodec;

impl SwimCodec {
    fn put<T: serde::Serialize>(value: &T, mut buf: impl BufMut) -> Result<(), SwimCodecError> {
        let bytes = bincode::serde::encode_to_vec(value, config())?;
        if buf.remaining_mut() < bytes.len() {
            return Err(SwimCodecError::BufferFull);
        }
        buf.put_slice(&bytes);
        Ok(())
    }

    fn take<T: serde::de::DeserializeOwned>(mut buf: impl Buf) -> Result<T, SwimCodecError> {
        // foca hands us a contiguous buffer.
        let (value, used) = bincode::serde::decode_from_slice(buf.chunk(), config())?;
        buf.advance(used);
        Ok(value)
    }
}

impl foca::Codec<MemberId> for SwimCodec {
    type Error = SwimCodecError;

    fn encode_header(
        &mut self,
        header: &Header<MemberId>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        Self::put(header, buf)
    }

    fn decode_header(&mut self, buf: impl Buf) -> Result<Header<MemberId>, Self::Error> {
        Self::take(buf)
    }

    fn encode_member(
        &mut self,
        member: &Member<MemberId>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        Self::put(member, buf)
    }

    fn decode_member(&mut self, buf: impl Buf) -> Result<Member<MemberId>, Self::Error> {
        Self::take(buf)
    }
}

/// What foca asked for during one call.
#[derive(Debug, Default)]
pub struct SwimOut {
    pub sends: Vec<(MemberId, Vec<u8>)>,
    pub timers: Vec<(Timer<MemberId>, Duration)>,
    pub notes: Vec<OwnedNotification<MemberId>>,
}

impl foca::Runtime<MemberId> for SwimOut {
    fn notify(&mut self, notification: Notification<'_, MemberId>) {
        self.notes.push(notification.to_owned());
    }

    fn send_to(&mut self, to: MemberId, data: &[u8]) {
        self.sends.push((to, data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer<MemberId>, after: Duration) {
        self.timers.push((event, after));
    }
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n.max(1)).unwrap_or(NonZeroUsize::MIN)
}

/// foca's configuration from ours (validated beforehand).
pub fn foca_config(c: &MeshConfig) -> foca::Config {
    foca::Config {
        probe_period: c.probe_period,
        probe_rtt: c.probe_rtt,
        num_indirect_probes: nz(3),
        max_transmissions: NonZeroU8::new(c.max_transmissions()).unwrap_or(NonZeroU8::MIN),
        suspect_to_down_after: c.suspect_to_down,
        remove_down_after: Some(c.forget_after),
        max_packet_size: nz(c.max_datagram),
        notify_down_members: true,
        periodic_announce: Some(foca::PeriodicParams {
            frequency: c.announce_interval,
            num_members: nz(1),
        }),
        periodic_announce_to_down_members: Some(foca::PeriodicParams {
            frequency: c.announce_interval * 2,
            num_members: nz(2),
        }),
        periodic_gossip: Some(foca::PeriodicParams {
            frequency: c.gossip_interval,
            num_members: nz(3),
        }),
    }
}
