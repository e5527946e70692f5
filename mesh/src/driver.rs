//! The thin tokio driver: moves bytes between a [`Transport`] and a [`MeshCore`], keeps time,
//! fans changes out to subscribers. It holds no protocol policy.
//!
//! Shutdown: [`Mesh::shutdown`] (or dropping every [`Mesh`] handle) makes the member leave the
//! cluster gracefully — foca tells its peers at once, so they do not wait for a suspicion to
//! expire — and stops the task. [`Mesh::abort`] stops it without a word (a crash, for tests).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use foca::State;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::MeshConfig;
use crate::core::{Action, CoreStats, Event, MeshCore};
use crate::error::StateError;
use crate::frame::{self, MAX_FRAME_BYTES};
use crate::id::MemberId;
use crate::leader::{Candidacy, Epoch};
use crate::message::{MeshBody, MeshFrame};
use crate::metrics::{Direction, FrameRefusal, MeshMetrics};
use crate::state::Change;
use crate::transport::{BiStream, Inbound, Transport};

/// How long one state exchange may take before it is abandoned.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a leaving member waits for its goodbyes to be sent before closing its socket.
pub const LEAVE_GRACE: Duration = Duration::from_millis(100);
/// Inbound items handled before timers get their turn.
pub const INBOUND_BATCH: usize = 256;
/// Changes a subscriber may have unread before further ones are dropped (and counted).
pub const SUBSCRIPTION_QUEUE: usize = 1024;

/// What a member sees, refreshed after every step of the driver.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub id: MemberId,
    /// Every member foca knows (this one excluded) and its state.
    pub members: Vec<(MemberId, State)>,
    pub leader: Option<String>,
    /// This member's epoch while it leads.
    pub epoch: Option<Epoch>,
    /// Local health (0 = healthy).
    pub health: u32,
}

impl View {
    /// Names of alive members, this one included.
    pub fn alive(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .members
            .iter()
            .filter(|(_, s)| *s == State::Alive)
            .map(|(m, _)| m.name.as_str())
            .chain([self.id.name.as_str()])
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The state this member gives `name` (`None`: unknown or forgotten).
    pub fn state_of(&self, name: &str) -> Option<State> {
        self.members
            .iter()
            .filter(|(m, _)| m.name == name)
            .max_by_key(|(m, _)| m.generation)
            .map(|(_, s)| *s)
    }
}

enum Command {
    Set {
        key: String,
        value: Option<Vec<u8>>,
        reply: oneshot::Sender<Result<(), StateError>>,
    },
    Decide {
        key: String,
        body: Vec<u8>,
        reply: oneshot::Sender<Option<Result<Epoch, StateError>>>,
    },
    Candidacy {
        candidacy: Candidacy,
        reply: oneshot::Sender<Option<Epoch>>,
    },
    Get {
        member: String,
        key: String,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    Scan {
        prefix: String,
        reply: oneshot::Sender<Vec<(String, String, Vec<u8>)>>,
    },
    Subscribe {
        prefix: String,
        tx: mpsc::Sender<Change>,
    },
    Stats {
        reply: oneshot::Sender<CoreStats>,
    },
    Shutdown,
}

enum Internal {
    Frame {
        body: MeshBody,
        reply: oneshot::Sender<Option<MeshBody>>,
    },
    Refused(FrameRefusal),
}

/// The mesh as an embedding component sees it: a handle to a running member.
#[derive(Debug)]
pub struct Mesh {
    cmds: mpsc::UnboundedSender<Command>,
    view: watch::Receiver<View>,
    task: JoinHandle<()>,
    addr: SocketAddr,
}

/// The member stopped; its handle can do nothing more.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the mesh member has stopped")]
pub struct Stopped;

impl Mesh {
    /// Starts a member: builds its core from `id` and `config`, joins through `seeds`.
    pub fn start<T: Transport>(
        id: MemberId,
        config: MeshConfig,
        transport: T,
        inbound: mpsc::Receiver<Inbound>,
        seeds: &[SocketAddr],
        metrics: MeshMetrics,
    ) -> Self {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let seed = RandomState::new().hash_one(&id.name);
        let core = MeshCore::new(
            id,
            config,
            Instant::now().into_std(),
            unix_ms,
            seed,
            metrics.clone(),
        );
        Self::spawn(core, transport, inbound, seeds, metrics)
    }

    /// Runs an already built core.
    pub fn spawn<T: Transport>(
        mut core: MeshCore,
        transport: T,
        inbound: mpsc::Receiver<Inbound>,
        seeds: &[SocketAddr],
        metrics: MeshMetrics,
    ) -> Self {
        core.join(seeds, Instant::now().into_std());
        let (view_tx, view) = watch::channel(view_of(&core));
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let addr = transport.local_addr();
        let task = tokio::spawn(run(
            core,
            Arc::new(transport),
            inbound,
            cmd_rx,
            view_tx,
            metrics,
        ));
        Self {
            cmds,
            view,
            task,
            addr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The latest view.
    pub fn view(&self) -> View {
        self.view.borrow().clone()
    }

    /// A receiver that sees every new view.
    pub fn watch(&self) -> watch::Receiver<View> {
        self.view.clone()
    }

    async fn ask<R>(&self, make: impl FnOnce(oneshot::Sender<R>) -> Command) -> Result<R, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(make(tx)).map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Writes one of this member's keys.
    pub async fn set(&self, key: &str, value: Vec<u8>) -> Result<Result<(), StateError>, Stopped> {
        let key = key.to_owned();
        self.ask(|reply| Command::Set {
            key,
            value: Some(value),
            reply,
        })
        .await
    }

    /// Deletes one of this member's keys.
    pub async fn delete(&self, key: &str) -> Result<Result<(), StateError>, Stopped> {
        let key = key.to_owned();
        self.ask(|reply| Command::Set {
            key,
            value: None,
            reply,
        })
        .await
    }

    /// Publishes a decision with this leader's epoch; `None` when this member does not lead.
    pub async fn decide(
        &self,
        key: &str,
        body: Vec<u8>,
    ) -> Result<Option<Result<Epoch, StateError>>, Stopped> {
        let key = key.to_owned();
        self.ask(|reply| Command::Decide { key, body, reply }).await
    }

    /// Who may claim leadership from now on ([`Candidacy`]; the default is the mesh's own
    /// lowest-name rule). Answers this member's epoch if it leads once the change is applied.
    pub async fn set_candidacy(&self, candidacy: Candidacy) -> Result<Option<Epoch>, Stopped> {
        self.ask(|reply| Command::Candidacy { candidacy, reply })
            .await
    }

    /// `member`'s value of `key`, as this member knows it.
    pub async fn get(&self, member: &str, key: &str) -> Result<Option<Vec<u8>>, Stopped> {
        let (member, key) = (member.to_owned(), key.to_owned());
        self.ask(|reply| Command::Get { member, key, reply }).await
    }

    /// Every live `(member, key, value)` under `prefix`.
    pub async fn scan(&self, prefix: &str) -> Result<Vec<(String, String, Vec<u8>)>, Stopped> {
        let prefix = prefix.to_owned();
        self.ask(|reply| Command::Scan { prefix, reply }).await
    }

    /// Every future change of a key under `prefix`, any member's (this one's included).
    pub fn subscribe(&self, prefix: &str) -> Result<mpsc::Receiver<Change>, Stopped> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_QUEUE);
        self.cmds
            .send(Command::Subscribe {
                prefix: prefix.to_owned(),
                tx,
            })
            .map_err(|_| Stopped)?;
        Ok(rx)
    }

    pub async fn stats(&self) -> Result<CoreStats, Stopped> {
        self.ask(|reply| Command::Stats { reply }).await
    }

    /// Leaves the cluster gracefully and waits for the task to end.
    pub async fn shutdown(self) {
        let _ = self.cmds.send(Command::Shutdown);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "mesh task ended abnormally");
        }
    }

    /// Asks the member to leave gracefully, without waiting (see [`Self::shutdown`]).
    pub fn leave(&self) {
        let _ = self.cmds.send(Command::Shutdown);
    }

    /// Stops at once, telling nobody (a crash).
    pub fn abort(&self) {
        self.task.abort();
    }
}

fn view_of(core: &MeshCore) -> View {
    View {
        id: core.id().clone(),
        members: core.members().map(|(m, s)| (m.clone(), s)).collect(),
        leader: core.leader().map(str::to_owned),
        epoch: core.epoch().cloned(),
        health: core.health(),
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

async fn run(
    mut core: MeshCore,
    transport: Arc<dyn Transport>,
    mut inbound: mpsc::Receiver<Inbound>,
    mut cmds: mpsc::UnboundedReceiver<Command>,
    view_tx: watch::Sender<View>,
    metrics: MeshMetrics,
) {
    let (itx, mut irx) = mpsc::unbounded_channel::<Internal>();
    let mut subs: Vec<(String, mpsc::Sender<Change>)> = Vec::new();
    let mut stop = false;
    while !stop {
        let deadline = Instant::from_std(core.next_deadline());
        // Internal replies and commands first (they are few and bounded); then a batch of
        // what arrived; timers last, and always: a flood of datagrams can delay them by one
        // batch, never starve them. Reading what arrived before firing timers means that
        // after a stall of this loop the queued acks count before any probe times out.
        tokio::select! {
            biased;
            Some(msg) = irx.recv() => match msg {
                Internal::Frame { body, reply } => {
                    let _ = reply.send(core.handle_stream(body, now()));
                }
                Internal::Refused(why) => core.refuse(why),
            },
            cmd = cmds.recv() => match cmd {
                None | Some(Command::Shutdown) => {
                    core.leave(now());
                    stop = true;
                }
                Some(cmd) => command(&mut core, cmd, &mut subs),
            },
            Some(ib) = inbound.recv() => {
                let mut next = Some(ib);
                let mut batch = 0;
                while let Some(ib) = next.take() {
                    match ib {
                        Inbound::Datagram { bytes, .. } => {
                            metrics.bytes(Direction::In, bytes.len());
                            core.handle_datagram(&bytes, now());
                        }
                        Inbound::Stream { from, stream } => {
                            tokio::spawn(exchange(from, stream, None, itx.clone(), metrics.clone()));
                        }
                    }
                    batch += 1;
                    if batch < INBOUND_BATCH {
                        next = inbound.try_recv().ok();
                    }
                }
            },
            () = tokio::time::sleep_until(deadline) => {}
        }
        let t = now();
        if t >= core.next_deadline() {
            core.tick(t);
        }
        while let Some(action) = core.poll_action() {
            match action {
                Action::Datagram { to, bytes } => {
                    metrics.bytes(Direction::Out, bytes.len());
                    transport.send_datagram(to, Bytes::from(bytes));
                }
                Action::Sync { to, frame } => {
                    let t = transport.clone();
                    let (itx, metrics) = (itx.clone(), metrics.clone());
                    tokio::spawn(async move {
                        match t.open_stream(to).await {
                            Ok(stream) => exchange(to, stream, Some(frame), itx, metrics).await,
                            Err(e) => tracing::debug!(error = %e, "state exchange not started"),
                        }
                    });
                }
            }
        }
        let mut changed = false;
        while let Some(event) = core.poll_event() {
            match event {
                Event::Changed(c) => {
                    subs.retain(|(prefix, tx)| {
                        if !c.key.starts_with(prefix.as_str()) {
                            return !tx.is_closed();
                        }
                        match tx.try_send(c.clone()) {
                            Ok(()) => true,
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                tracing::warn!(prefix, key = %c.key, "subscriber lagging; change dropped");
                                true
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => false,
                        }
                    });
                }
                other => {
                    if let Event::MemberUp(id) = &other {
                        transport.warm(id.addr);
                    }
                    tracing::debug!(member = %core.id().name, event = ?other, "mesh event");
                    changed = true;
                }
            }
        }
        let view = view_of(&core);
        if changed || *view_tx.borrow() != view {
            view_tx.send_replace(view);
        }
    }
    // Give the leave announcements a moment to go out, then release the socket.
    tokio::time::sleep(LEAVE_GRACE).await;
    transport.close();
}

fn command(core: &mut MeshCore, cmd: Command, subs: &mut Vec<(String, mpsc::Sender<Change>)>) {
    match cmd {
        Command::Set { key, value, reply } => {
            let _ = reply.send(core.set(&key, value, now()));
        }
        Command::Decide { key, body, reply } => {
            let _ = reply.send(core.decide(&key, body, now()));
        }
        Command::Candidacy { candidacy, reply } => {
            core.set_candidacy(candidacy, now());
            let _ = reply.send(core.epoch().cloned());
        }
        Command::Get { member, key, reply } => {
            let _ = reply.send(core.state().get(&member, &key).map(<[u8]>::to_vec));
        }
        Command::Scan { prefix, reply } => {
            let _ = reply.send(
                core.state()
                    .scan(&prefix)
                    .map(|(m, k, v)| (m.to_owned(), k.to_owned(), v.to_vec()))
                    .collect(),
            );
        }
        Command::Subscribe { prefix, tx } => subs.push((prefix, tx)),
        Command::Stats { reply } => {
            let _ = reply.send(core.stats().clone());
        }
        Command::Shutdown => {}
    }
}

/// Runs one state exchange on `stream`: writes `first` if this end opened it, then relays
/// frames to the core and its replies back until the core says the exchange is over.
async fn exchange(
    peer: SocketAddr,
    mut stream: BiStream,
    first: Option<MeshFrame>,
    itx: mpsc::UnboundedSender<Internal>,
    metrics: MeshMetrics,
) {
    let run = async {
        if let Some(f) = first {
            let bytes = frame::encode(&f, MAX_FRAME_BYTES)?;
            metrics.bytes(Direction::Out, bytes.len());
            stream.send.write_all(&bytes).await?;
        }
        loop {
            let Some((f, len)) = frame::read_sized(&mut stream.recv, MAX_FRAME_BYTES).await? else {
                break;
            };
            metrics.bytes(Direction::In, len);
            let (tx, rx) = oneshot::channel();
            if itx
                .send(Internal::Frame {
                    body: f.body,
                    reply: tx,
                })
                .is_err()
            {
                break;
            }
            match rx.await {
                Ok(Some(reply)) => {
                    let bytes = frame::encode(&MeshFrame::new(reply), MAX_FRAME_BYTES)?;
                    metrics.bytes(Direction::Out, bytes.len());
                    stream.send.write_all(&bytes).await?;
                }
                _ => break,
            }
        }
        stream.send.shutdown().await?;
        Ok::<(), sair_wire::FrameError>(())
    };
    match tokio::time::timeout(EXCHANGE_TIMEOUT, run).await {
        Ok(Ok(())) => {}
        Ok(Err(sair_wire::FrameError::Io(e))) => {
            tracing::debug!(%peer, error = %e, "state exchange cut short");
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "state exchange frame refused");
            let _ = itx.send(Internal::Refused(FrameRefusal::from(&e)));
        }
        Err(_) => tracing::debug!(%peer, "state exchange timed out"),
    }
}
