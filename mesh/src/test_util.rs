//! An in-process cluster over a cuttable [`MemNetwork`], driven by scripts of [`Operation`]s
//! with [`Predicate`] assertions (STYLE §11, after chitchat's tests).
//!
//! Run it under `#[tokio::test(start_paused = true)]`: every member's driver, the network and
//! the script share tokio's clock, which then advances only when every task waits. Timing
//! assertions hold however loaded the machine is, and a minute of cluster time takes
//! milliseconds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use foca::State;

use crate::config::MeshConfig;
use crate::driver::Mesh;
use crate::id::{MemberId, Role};
use crate::metrics::MeshMetrics;
use crate::transport::mem::MemNetwork;

/// Fast timings for in-process tests (gossip every 100 ms, dead after ~2 s, forgotten after
/// 10 s).
pub fn fast_config() -> MeshConfig {
    MeshConfig {
        gossip_interval: Duration::from_millis(100),
        probe_period: Duration::from_millis(300),
        probe_rtt: Duration::from_millis(100),
        suspect_to_down: Duration::from_millis(1200),
        forget_after: Duration::from_secs(10),
        announce_interval: Duration::from_secs(2),
        join_retry: Duration::from_millis(500),
        ..MeshConfig::default()
    }
}

/// One running (or killed) member of a [`Cluster`].
#[derive(Debug)]
pub struct Node {
    pub mesh: Mesh,
    pub addr: SocketAddr,
    pub role: Role,
    pub alive: bool,
}

/// Which members a predicate is checked on.
#[derive(Debug, Clone)]
pub enum On {
    /// Every member still running.
    All,
    These(Vec<String>),
}

/// Something every member in `on` must see.
#[derive(Debug, Clone)]
pub enum Predicate {
    /// Exactly these members are alive (each observer included).
    Alive { on: On, members: Vec<String> },
    /// `member` is in `state` (`None`: unknown, i.e. forgotten).
    MemberState {
        on: On,
        member: String,
        state: Option<State>,
    },
    /// `member`'s `key` has `value` (`None`: absent).
    Sees {
        on: On,
        member: String,
        key: String,
        value: Option<Vec<u8>>,
    },
    /// The leader is `leader`.
    Leader { on: On, leader: Option<String> },
}

/// One step of a script.
#[derive(Debug, Clone)]
pub enum Operation {
    Spawn {
        name: String,
        role: Role,
        seeds: Vec<String>,
    },
    /// Stops a member without a word (a crash).
    Kill(String),
    /// Restarts a killed member (new generation), at a new address if `move_addr`.
    Restart {
        name: String,
        move_addr: bool,
        seeds: Vec<String>,
    },
    Partition(Vec<String>, Vec<String>),
    Heal,
    Set {
        on: String,
        key: String,
        value: Vec<u8>,
    },
    Wait(Duration),
    Eventually {
        within: Duration,
        what: Predicate,
    },
}

/// Members on one in-process network.
#[derive(Debug)]
pub struct Cluster {
    pub net: MemNetwork,
    pub config: MeshConfig,
    nodes: BTreeMap<String, Node>,
    generation: u64,
    metrics: MeshMetrics,
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

impl Cluster {
    pub fn new(config: MeshConfig) -> Self {
        Self::with_metrics(config, MeshMetrics::noop())
    }

    /// A cluster whose members all record into `metrics` (sums over the cluster).
    pub fn with_metrics(config: MeshConfig, metrics: MeshMetrics) -> Self {
        Self {
            net: MemNetwork::new(),
            config,
            nodes: BTreeMap::new(),
            generation: 1,
            metrics,
        }
    }

    pub fn node(&self, name: &str) -> &Node {
        &self.nodes[name]
    }

    pub fn mesh(&self, name: &str) -> &Mesh {
        &self.nodes[name].mesh
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        self.nodes[name].addr
    }

    /// Names of running members.
    pub fn running(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.alive)
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn seed_addrs(&self, seeds: &[String]) -> Vec<SocketAddr> {
        seeds
            .iter()
            .filter_map(|s| self.nodes.get(s).map(|n| n.addr))
            .collect()
    }

    /// Starts `name` joining through `seeds` (names of members, running or not).
    pub fn spawn(&mut self, name: &str, role: Role, seeds: &[&str]) -> SocketAddr {
        let (transport, inbound) = self.net.bind();
        let seeds = self.seed_addrs(&names(seeds));
        self.start(name, role, transport, inbound, &seeds)
    }

    /// Starts `name` joining through raw addresses (for seeds that never existed).
    pub fn spawn_with_seed_addrs(
        &mut self,
        name: &str,
        role: Role,
        seeds: &[SocketAddr],
    ) -> SocketAddr {
        let (transport, inbound) = self.net.bind();
        self.start(name, role, transport, inbound, seeds)
    }

    fn start(
        &mut self,
        name: &str,
        role: Role,
        transport: crate::transport::mem::MemTransport,
        inbound: tokio::sync::mpsc::Receiver<crate::transport::Inbound>,
        seeds: &[SocketAddr],
    ) -> SocketAddr {
        use crate::transport::Transport;
        let addr = transport.local_addr();
        self.generation += 1;
        let id = MemberId::try_new(name, role, addr, self.generation)
            .unwrap_or_else(|e| panic!("bad test member name {name}: {e}"));
        let mesh = Mesh::start(
            id,
            self.config.clone(),
            transport,
            inbound,
            seeds,
            self.metrics.clone(),
        );
        tracing::info!(%name, %addr, "spawned");
        if let Some(old) = self.nodes.insert(
            name.to_owned(),
            Node {
                mesh,
                addr,
                role,
                alive: true,
            },
        ) {
            old.mesh.abort();
        }
        addr
    }

    /// Crashes `name`: its task stops and its address is unplugged.
    pub fn kill(&mut self, name: &str) {
        if let Some(n) = self.nodes.get_mut(name) {
            n.mesh.abort();
            self.net.remove(n.addr);
            n.alive = false;
            tracing::info!(%name, "killed");
        }
    }

    /// Makes `name` leave gracefully (it tells its peers) and unplugs it.
    pub async fn leave(&mut self, name: &str) {
        if let Some(n) = self.nodes.get_mut(name) {
            n.mesh.leave();
            tokio::time::sleep(crate::driver::LEAVE_GRACE * 2).await;
            self.net.remove(n.addr);
            n.alive = false;
            tracing::info!(%name, "left");
        }
    }

    /// Restarts a killed member with a new generation, at its old address or a new one.
    pub fn restart(&mut self, name: &str, move_addr: bool, seeds: &[&str]) -> SocketAddr {
        let (role, addr) = {
            let n = &self.nodes[name];
            (n.role, n.addr)
        };
        let seeds = self.seed_addrs(&names(seeds));
        let (transport, inbound) = if move_addr {
            self.net.bind()
        } else {
            self.net.bind_at(addr)
        };
        self.start(name, role, transport, inbound, &seeds)
    }

    pub fn partition(&self, left: &[&str], right: &[&str]) {
        let l: Vec<SocketAddr> = left.iter().map(|n| self.addr(n)).collect();
        let r: Vec<SocketAddr> = right.iter().map(|n| self.addr(n)).collect();
        self.net.partition(&l, &r);
        tracing::info!(?left, ?right, "partitioned");
    }

    pub fn heal(&self) {
        self.net.heal();
        tracing::info!("healed");
    }

    fn observers(&self, on: &On) -> Vec<String> {
        match on {
            On::All => self.running(),
            On::These(v) => v.clone(),
        }
    }

    /// Whether `p` holds now.
    pub async fn check(&self, p: &Predicate) -> bool {
        match p {
            Predicate::Alive { on, members } => {
                let mut want: Vec<&str> = members.iter().map(String::as_str).collect();
                want.sort_unstable();
                self.observers(on)
                    .iter()
                    .all(|o| self.mesh(o).view().alive() == want)
            }
            Predicate::MemberState { on, member, state } => self
                .observers(on)
                .iter()
                .all(|o| self.mesh(o).view().state_of(member) == *state),
            Predicate::Sees {
                on,
                member,
                key,
                value,
            } => {
                for o in self.observers(on) {
                    if self.mesh(&o).get(member, key).await.ok().flatten() != *value {
                        return false;
                    }
                }
                true
            }
            Predicate::Leader { on, leader } => self
                .observers(on)
                .iter()
                .all(|o| self.mesh(o).view().leader == *leader),
        }
    }

    /// Waits until `p` holds (checked every 20 ms of cluster time); returns how long it took,
    /// or an error describing what each observer saw.
    pub async fn eventually(&self, within: Duration, p: &Predicate) -> Result<Duration, String> {
        let start = tokio::time::Instant::now();
        loop {
            if self.check(p).await {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                let views: Vec<String> = self
                    .running()
                    .iter()
                    .map(|n| {
                        let v = self.mesh(n).view();
                        format!(
                            "{n}: alive={:?} leader={:?} members={:?}",
                            v.alive(),
                            v.leader,
                            v.members
                        )
                    })
                    .collect();
                return Err(format!(
                    "{p:?} did not hold within {within:?}:\n{}",
                    views.join("\n")
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs a script; panics with the failing step and what the members saw.
    pub async fn run(&mut self, ops: Vec<Operation>) {
        for (i, op) in ops.into_iter().enumerate() {
            tracing::info!(step = i, ?op, "script");
            match op {
                Operation::Spawn { name, role, seeds } => {
                    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
                    self.spawn(&name, role, &seeds);
                }
                Operation::Kill(name) => self.kill(&name),
                Operation::Restart {
                    name,
                    move_addr,
                    seeds,
                } => {
                    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
                    self.restart(&name, move_addr, &seeds);
                }
                Operation::Partition(l, r) => {
                    let l: Vec<&str> = l.iter().map(String::as_str).collect();
                    let r: Vec<&str> = r.iter().map(String::as_str).collect();
                    self.partition(&l, &r);
                }
                Operation::Heal => self.heal(),
                Operation::Set { on, key, value } => match self.mesh(&on).set(&key, value).await {
                    Ok(Ok(())) => {}
                    other => panic!("step {i}: set {key} on {on}: {other:?}"),
                },
                Operation::Wait(d) => tokio::time::sleep(d).await,
                Operation::Eventually { within, what } => {
                    if let Err(e) = self.eventually(within, &what).await {
                        panic!("step {i}: {e}");
                    }
                }
            }
        }
    }
}

/// Shorthand for building scripts.
pub mod script {
    use super::*;

    pub fn s(v: &[&str]) -> Vec<String> {
        names(v)
    }

    pub fn spawn(name: &str, role: Role, seeds: &[&str]) -> Operation {
        Operation::Spawn {
            name: name.into(),
            role,
            seeds: s(seeds),
        }
    }

    pub fn alive(members: &[&str], within: Duration) -> Operation {
        Operation::Eventually {
            within,
            what: Predicate::Alive {
                on: On::All,
                members: s(members),
            },
        }
    }

    pub fn alive_on(on: &[&str], members: &[&str], within: Duration) -> Operation {
        Operation::Eventually {
            within,
            what: Predicate::Alive {
                on: On::These(s(on)),
                members: s(members),
            },
        }
    }

    pub fn state_of(member: &str, state: Option<State>, within: Duration) -> Operation {
        Operation::Eventually {
            within,
            what: Predicate::MemberState {
                on: On::All,
                member: member.into(),
                state,
            },
        }
    }

    pub fn set(on: &str, key: &str, value: &[u8]) -> Operation {
        Operation::Set {
            on: on.into(),
            key: key.into(),
            value: value.to_vec(),
        }
    }

    pub fn sees(member: &str, key: &str, value: Option<&[u8]>, within: Duration) -> Operation {
        Operation::Eventually {
            within,
            what: Predicate::Sees {
                on: On::All,
                member: member.into(),
                key: key.into(),
                value: value.map(<[u8]>::to_vec),
            },
        }
    }

    pub fn leader_on(on: &[&str], leader: Option<&str>, within: Duration) -> Operation {
        Operation::Eventually {
            within,
            what: Predicate::Leader {
                on: On::These(s(on)),
                leader: leader.map(str::to_owned),
            },
        }
    }
}
