//! The core driven by hand: a tiny synchronous network with a manual clock.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};

use metrics_exporter_prometheus::PrometheusBuilder;

use super::*;

/// One-way datagram latency of the simulated network.
const LATENCY: Duration = Duration::from_millis(10);

struct Sim {
    cores: Vec<MeshCore>,
    now: Instant,
    /// Datagrams on the wire: (arrival, destination, bytes).
    flight: Vec<(Instant, usize, Vec<u8>)>,
    /// Datagrams held for a stalled core.
    held: Vec<VecDeque<Vec<u8>>>,
    stalled: Vec<bool>,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 30_000 + i as u16))
}

impl Sim {
    fn new(n: usize, metrics: impl Fn(usize) -> MeshMetrics) -> Self {
        let now = Instant::now();
        let config = crate::test_util::fast_config();
        let mut cores: Vec<MeshCore> = (0..n)
            .map(|i| {
                let id = MemberId::try_new(&format!("m{i}"), Role::Agent, addr(i), 1).unwrap();
                MeshCore::new(id, config.clone(), now, 0, i as u64, metrics(i))
            })
            .collect();
        for c in cores.iter_mut().skip(1) {
            c.join(&[addr(0)], now);
        }
        let mut sim = Self {
            cores,
            now,
            flight: Vec::new(),
            held: vec![VecDeque::new(); n],
            stalled: vec![false; n],
        };
        sim.pump();
        sim
    }

    fn index(&self, to: SocketAddr) -> Option<usize> {
        self.cores.iter().position(|c| c.id().addr == to)
    }

    /// Delivers every pending action until the network is quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.cores.len() {
                if self.stalled[i] {
                    continue;
                }
                while let Some(a) = self.cores[i].poll_action() {
                    moved = true;
                    match a {
                        Action::Datagram { to, bytes } => {
                            let Some(j) = self.index(to) else { continue };
                            self.flight.push((self.now + LATENCY, j, bytes));
                        }
                        Action::Sync { to, frame } => {
                            let Some(j) = self.index(to) else { continue };
                            if self.stalled[j] {
                                continue;
                            }
                            let (mut from, mut other) = (i, j);
                            let mut body = Some(frame.body);
                            while let Some(b) = body.take() {
                                body = self.cores[other].handle_stream(b, self.now);
                                std::mem::swap(&mut from, &mut other);
                            }
                        }
                    }
                }
                while self.cores[i].poll_event().is_some() {}
            }
            if !moved {
                break;
            }
        }
    }

    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(10);
            self.step();
        }
    }

    /// Delivers due datagrams, fires due timers, sends what results.
    fn step(&mut self) {
        {
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flight)
                .into_iter()
                .partition(|f| f.0 <= now);
            self.flight = later;
            for (_, j, bytes) in due {
                if self.stalled[j] {
                    self.held[j].push_back(bytes);
                } else {
                    self.cores[j].handle_datagram(&bytes, now);
                }
            }
            for i in 0..self.cores.len() {
                if !self.stalled[i] {
                    self.cores[i].tick(self.now);
                }
            }
            self.pump();
        }
    }

    /// Runs until `i`'s next probe has just been sent (a ping is in flight).
    fn until_probe_sent(&mut self, i: usize) {
        let due = self.cores[i]
            .timers
            .iter()
            .filter(|t| matches!(t.timer, Timer::ProbeRandomMember(_)))
            .map(|t| t.due)
            .min()
            .unwrap();
        while self.now < due {
            self.now += Duration::from_millis(1);
            self.step();
        }
    }

    /// Resumes a stalled core; returns how many members it held as suspect or down right
    /// after its late timers fired.
    fn resume(&mut self, i: usize) -> usize {
        self.stalled[i] = false;
        // The worst order: the late timers fire before what queued up is read (the driver
        // reads first; local health must cope even when it cannot).
        self.cores[i].tick(self.now);
        let accused = self.accusations(i);
        while let Some(b) = self.held[i].pop_front() {
            self.cores[i].handle_datagram(&b, self.now);
        }
        self.pump();
        accused
    }

    fn accusations(&self, i: usize) -> usize {
        self.cores[i]
            .members()
            .filter(|(_, s)| *s != State::Alive)
            .count()
    }
}

#[test]
fn three_members_converge_by_hand() {
    let mut sim = Sim::new(3, |_| MeshMetrics::noop());
    sim.run(Duration::from_secs(3));
    for c in &sim.cores {
        assert_eq!(c.live_members().count(), 2, "{c:?}");
    }
    sim.cores[2].set("k", Some(b"v".to_vec()), sim.now).unwrap();
    sim.run(Duration::from_secs(1));
    assert_eq!(sim.cores[0].state().get("m2", "k"), Some(&b"v"[..]));
}

#[test]
fn a_member_whose_own_loop_stalled_does_not_accuse_the_others() {
    let mut sim = Sim::new(4, |_| MeshMetrics::noop());
    sim.run(Duration::from_secs(3));
    assert_eq!(sim.accusations(0), 0);
    // m0 sends a probe, then its loop stalls for a second (several probe periods) while the
    // others go on: the ack arrives, but m0 does not read it in time.
    sim.until_probe_sent(0);
    sim.stalled[0] = true;
    sim.run(Duration::from_secs(1));
    assert_eq!(sim.resume(0), 0, "m0 accused a healthy member on resuming");
    for _ in 0..60 {
        sim.run(Duration::from_millis(10));
        assert_eq!(sim.accusations(0), 0, "m0 accused a healthy member");
    }
    assert!(sim.cores[0].stats().deferred_accusations > 0);
    assert!(sim.cores[0].health() > 0 || sim.cores[0].stats().deferred_accusations > 0);
    // The others may have suspected m0, but it refuted and is alive everywhere again.
    sim.run(Duration::from_secs(3));
    for c in &sim.cores {
        assert_eq!(c.live_members().count(), 3, "{c:?}");
    }
    // Healthy again after on-time probe periods.
    assert_eq!(sim.cores[0].health(), 0);
}

#[test]
fn the_members_gauge_counts_each_state_itself_included() {
    let recorders: Vec<_> = (0..3)
        .map(|_| PrometheusBuilder::new().build_recorder())
        .collect();
    let mut sim = Sim::new(3, |i| MeshMetrics::register(&recorders[i]));
    sim.run(Duration::from_secs(3));
    // A member stalls: the others suspect it, and their gauges say so within a round.
    sim.stalled[2] = true;
    let mut suspected = false;
    for _ in 0..200 {
        sim.run(Duration::from_millis(10));
        let text = recorders[0].handle().render();
        if text.contains("sair_mesh_members{state=\"suspect\"} 1") {
            suspected = true;
            break;
        }
    }
    assert!(suspected, "{}", recorders[0].handle().render());
    sim.resume(2);
    sim.run(Duration::from_secs(3));
    for r in &recorders {
        let text = r.handle().render();
        assert!(
            text.contains("sair_mesh_members{state=\"alive\"} 3"),
            "{text}"
        );
        assert!(text.contains("sair_mesh_rounds_total"), "{text}");
        assert!(
            text.contains("sair_mesh_members{state=\"suspect\"} 0"),
            "{text}"
        );
        for name in crate::metrics::ALL {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
    }
}

#[test]
fn garbage_datagrams_are_refused_and_counted() {
    let mut sim = Sim::new(2, |_| MeshMetrics::noop());
    let now = sim.now;
    sim.cores[0].handle_datagram(&[0xff; 32], now);
    sim.cores[0].handle_datagram(&[], now);
    let frame = crate::frame::encode_payload(&MeshFrame::new(MeshBody::InSync), 2048).unwrap();
    sim.cores[0].handle_datagram(&frame, now);
    let swim =
        crate::frame::encode_payload(&MeshFrame::new(MeshBody::Swim(vec![1, 2, 3])), 2048).unwrap();
    sim.cores[0].handle_datagram(&swim, now);
    let s = sim.cores[0].stats();
    assert_eq!(s.frames_refused, 3);
    assert_eq!(s.swim_errors, 1);
}
