//! Members as separate processes, each in its own network namespace, joined by veth pairs to
//! a bridge in one more namespace: real QUIC with mutual TLS over real (virtual) links. One
//! member's link is cut (`ip link set … down`), the others must declare it dead; the link is
//! restored, and every member must see every other alive again and the cut member's write
//! made while it was cut.
//!
//! Needs root and `ip` (iproute2); where a namespace cannot be created (not root, no
//! `CAP_SYS_ADMIN`, no `ip`) it prints why and passes without testing anything. Traffic stays
//! inside the test's namespaces (10.211.0.0/24 on a private bridge); everything it creates is
//! removed at the end, also when it fails. Bounded: about a minute at most.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MEMBERS: usize = 4;
const PORT: u16 = 7946;

/// Writes to the process's stderr directly, so the line shows even though libtest captures
/// `eprintln!` output of passing tests.
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "netns: {msg}");
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespaces, links and processes of one run; removed on drop.
struct Net {
    tag: String,
    /// Cluster CA and member certificates of this run (a temporary directory).
    certs: PathBuf,
    children: Vec<(String, Child, Option<ChildStdin>)>,
}

impl Net {
    fn ns(&self, i: usize) -> String {
        format!("{}-m{i}", self.tag)
    }

    fn bridge_ns(&self) -> String {
        format!("{}-br", self.tag)
    }

    fn addr(i: usize) -> String {
        format!("10.211.0.{}", i + 1)
    }

    /// One bridge namespace, and per member a namespace with `eth0` whose peer is a port of
    /// the bridge.
    fn build(&self) -> Result<(), String> {
        let br = self.bridge_ns();
        ip(&["netns", "add", &br])?;
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for i in 0..MEMBERS {
            let ns = self.ns(i);
            let port = format!("p{i}");
            ip(&["netns", "add", &ns])?;
            ip(&[
                "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                &br,
            ])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &br, "link", "set", &port, "up"])?;
            let cidr = format!("{}/24", Self::addr(i));
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    fn link(&self, i: usize, up: bool) -> Result<(), String> {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.ns(i), "link", "set", "eth0", state])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for (_, child, stdin) in &mut self.children {
            // Closing stdin asks the member to leave; kill in case it does not.
            drop(stdin.take());
            let _ = child.kill();
            let _ = child.wait();
        }
        for i in 0..MEMBERS {
            let _ = ip(&["netns", "del", &self.ns(i)]);
        }
        let _ = ip(&["netns", "del", &self.bridge_ns()]);
        let _ = std::fs::remove_dir_all(&self.certs);
    }
}

/// The member example, built by `cargo test` beside this test's executable.
fn member_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?;
    let p = dir.join("examples").join("mesh_member");
    p.exists().then_some(p)
}

type Views = Arc<Mutex<HashMap<String, String>>>;

/// Parsed last line of a member: (alive, dead, keys).
fn parse(line: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for part in line.split_whitespace() {
        let list = |v: &str| -> Vec<String> {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        if let Some(v) = part.strip_prefix("alive=") {
            out.0 = list(v);
        } else if let Some(v) = part.strip_prefix("dead=") {
            out.1 = list(v);
        } else if let Some(v) = part.strip_prefix("keys=") {
            out.2 = list(v);
        }
    }
    out
}

/// Waits until `check` holds for the last line of every member in `on`, or fails with what
/// each of them saw.
fn eventually(
    views: &Views,
    on: &[String],
    within: Duration,
    what: &str,
    check: impl Fn(&(Vec<String>, Vec<String>, Vec<String>)) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let seen: Vec<(String, String)> = {
            let v = views.lock().unwrap_or_else(|p| p.into_inner());
            on.iter()
                .map(|m| (m.clone(), v.get(m).cloned().unwrap_or_default()))
                .collect()
        };
        if seen.iter().all(|(_, l)| check(&parse(l))) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{what}: not within {within:?}; last lines: {seen:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cut_link_is_detected_and_heals_across_namespaces() {
    let tag = format!("sairmesh{}", std::process::id());
    // Can this machine make a namespace at all? If not, skip loudly.
    if let Err(e) = ip(&["netns", "add", &format!("{tag}-probe")]) {
        say(&format!(
            "SKIPPED: cannot create a network namespace here ({e}); needs root (CAP_SYS_ADMIN) and iproute2"
        ));
        return;
    }
    let _ = ip(&["netns", "del", &format!("{tag}-probe")]);
    let Some(exe) = member_exe() else {
        say("SKIPPED: examples/mesh_member is not built (run through `cargo test -p sair-mesh`)");
        return;
    };
    let certs = std::env::temp_dir().join(format!("{tag}-certs"));
    let mut net = Net {
        tag,
        certs: certs.clone(),
        children: Vec::new(),
    };
    if let Err(e) = net.build() {
        panic!("could build namespaces but not the links: {e}");
    }

    let _ = std::fs::remove_dir_all(&certs);
    sair_mesh::certs::init_ca(&certs).unwrap_or_else(|e| panic!("CA: {e}"));
    let names: Vec<String> = (0..MEMBERS).map(|i| format!("m{i}")).collect();
    for n in &names {
        sair_mesh::certs::issue(&certs, n, &certs.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
    }

    let views: Views = Arc::default();
    let seed = format!("{}:{PORT}", Net::addr(0));
    for (i, name) in names.iter().enumerate() {
        let listen = format!("{}:{PORT}", Net::addr(i));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &net.ns(i)])
            .arg(&exe)
            .args([name.as_str(), listen.as_str()])
            .arg(&certs);
        if i > 0 {
            cmd.arg(&seed);
        }
        let mut child = cmd
            // A send on the cut link fails with "network unreachable": expected, not news.
            .env("RUST_LOG", "warn,quinn_udp=error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let stdout = child.stdout.take();
        let stdin = child.stdin.take();
        let (views, who) = (views.clone(), name.clone());
        std::thread::spawn(move || {
            let Some(out) = stdout else { return };
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                views
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(who.clone(), line);
            }
        });
        net.children.push((name.clone(), child, stdin));
    }

    let all = names.clone();
    let others: Vec<String> = names[..MEMBERS - 1].to_vec();
    let cut = &names[MEMBERS - 1];
    let t = eventually(
        &views,
        &all,
        Duration::from_secs(20),
        "join",
        |(a, _, _)| a.len() == MEMBERS,
    );
    say(&format!(
        "{MEMBERS} members in {MEMBERS} namespaces see each other after {t:?}"
    ));

    net.link(MEMBERS - 1, false)
        .unwrap_or_else(|e| panic!("cut: {e}"));
    let t = eventually(
        &views,
        &others,
        Duration::from_secs(15),
        "detect",
        |(a, d, _)| !a.contains(cut) && d.contains(cut),
    );
    say(&format!(
        "{cut}'s link down: dead on the other {} after {t:?}",
        MEMBERS - 1
    ));

    // Written while cut off: must reach the others after the heal.
    if let Some((_, _, Some(stdin))) = net.children.last_mut() {
        writeln!(stdin, "set during-cut").unwrap_or_else(|e| panic!("stdin: {e}"));
    }
    net.link(MEMBERS - 1, true)
        .unwrap_or_else(|e| panic!("heal: {e}"));
    let want = format!("{cut}:during-cut");
    let t = eventually(
        &views,
        &all,
        Duration::from_secs(30),
        "heal",
        |(a, _, k)| a.len() == MEMBERS && k.contains(&want),
    );
    say(&format!(
        "link up: all {MEMBERS} alive again and {cut}'s write seen everywhere after {t:?}"
    ));
}
