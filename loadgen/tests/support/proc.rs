//! Shared by the integration tests: bounded child processes, a raw HTTP/1.1 client, scripted
//! loopback servers and a small JSON Schema checker.
#![allow(dead_code, clippy::unwrap_used)] // test support: a failed set-up step should panic

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A per-test scratch directory.
pub fn scratch(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!(
        "sair-loadgen-it-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `cmd` to completion, killing it after `limit`.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if d2.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = nix::unistd::Pid::from_raw(i32::try_from(id).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    watchdog.join().unwrap();
    out
}

/// Result of one `sair-loadgen` run.
#[derive(Debug)]
pub struct LoadgenRun {
    pub code: Option<i32>,
    pub stderr: String,
    pub stdout: String,
    pub report: Option<Value>,
    pub wall: Duration,
}

/// Runs `sair-loadgen` with `args` (plus `--out`), at most 60 s.
pub fn loadgen(args: &[&str]) -> LoadgenRun {
    let dir = scratch("run");
    let out = dir.join("report.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sair-loadgen"));
    cmd.args(args).arg("--out").arg(&out).arg("--quiet");
    // Keep the caller's SAIR_LOADGEN_* variables out of the test.
    for (k, _) in std::env::vars() {
        if k.starts_with("SAIR_LOADGEN_") {
            cmd.env_remove(k);
        }
    }
    let t0 = Instant::now();
    let o = run_bounded(cmd, Duration::from_secs(60));
    let wall = t0.elapsed();
    let report = std::fs::read(&out)
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap());
    std::fs::remove_dir_all(&dir).ok();
    let run = LoadgenRun {
        code: o.status.code(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        report,
        wall,
    };
    tracing_print(&run);
    run
}

fn tracing_print(run: &LoadgenRun) {
    eprintln!(
        "sair-loadgen exit {:?} in {:?}\nstdout:\n{}\nstderr:\n{}",
        run.code, run.wall, run.stdout, run.stderr
    );
}

/// A `sair-stage` child, killed on drop.
#[derive(Debug)]
pub struct StageProc {
    pub child: Child,
    pub addr: SocketAddr,
}

impl StageProc {
    /// Starts `sair-stage --listen 127.0.0.1:0 <args>` with `envs` and waits for its address.
    pub fn spawn(args: &[&str], envs: &[(&str, &Path)]) -> StageProc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sair-stage"));
        cmd.arg("--listen").arg("127.0.0.1:0").args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("SAIR_STAGE_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // The first stdout line names the address (or the process exits with an error).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            panic!(
                "sair-stage did not start: {line:?} (exit {:?})",
                child.wait()
            );
        };
        StageProc {
            addr: addr.parse().unwrap(),
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for StageProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response read by [`http`].
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_f64(&self, name: &str) -> f64 {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.headers))
            .parse()
            .unwrap()
    }
}

/// One HTTP/1.1 request with `Connection: close`, read to the end (10 s bound).
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// What a scripted test server does with each request.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Answer at once, except that requests arriving from 1 s to 2 s after the first request
    /// all wait until 2 s: the server stalls for 1 s.
    StallOneSecond,
    /// Answer after this delay (requests are served concurrently).
    Delay(Duration),
    /// Answer at once with this status.
    Status(u16),
    /// Never answer.
    BlackHole,
}

/// Starts a scripted loopback HTTP/1.1 server on its own thread and runtime; it lives until
/// the test process exits.
pub fn serve(behaviour: Behaviour) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let first: &'static Mutex<Option<tokio::time::Instant>> =
                Box::leak(Box::new(Mutex::new(None)));
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                stream.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| async move {
                            let _ = req.into_body().collect().await;
                            let now = tokio::time::Instant::now();
                            let t0 = *first.lock().unwrap().get_or_insert(now);
                            let mut status = 200;
                            match behaviour {
                                Behaviour::StallOneSecond => {
                                    let since = now - t0;
                                    if since >= Duration::from_secs(1)
                                        && since < Duration::from_secs(2)
                                    {
                                        tokio::time::sleep_until(t0 + Duration::from_secs(2)).await;
                                    }
                                }
                                Behaviour::Delay(d) => tokio::time::sleep(d).await,
                                Behaviour::Status(s) => status = s,
                                Behaviour::BlackHole => std::future::pending::<()>().await,
                            }
                            let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"ok")));
                            *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            Ok::<_, std::convert::Infallible>(r)
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

/// Checks `v` against the subset of JSON Schema that report.schema.json uses: `type`,
/// `const`, `enum`, `minimum`, `required`, `properties`, `additionalProperties` (false or a
/// schema), `propertyNames.enum` and `items`. Returns every violation with its JSON path.
pub fn schema_violations(schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            other => panic!("schema type {other} not supported by the checker"),
        };
        if !ok {
            out.push(format!("{path}: expected {t}, got {v}"));
            return;
        }
    }
    if let Some(c) = schema.get("const")
        && c != v
    {
        out.push(format!("{path}: expected {c}, got {v}"));
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        out.push(format!("{path}: {v} not in {e:?}"));
    }
    if let (Some(m), Some(x)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64())
        && x < m
    {
        out.push(format!("{path}: {x} < minimum {m}"));
    }
    if let Some(obj) = v.as_object() {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap();
            if !obj.contains_key(r) {
                out.push(format!("{path}: missing required {r}"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, child) in obj {
            if let Some(names) = schema
                .pointer("/propertyNames/enum")
                .and_then(Value::as_array)
                && !names.contains(&Value::String(k.clone()))
            {
                out.push(format!("{path}: property name {k} not allowed"));
            }
            let p = format!("{path}.{k}");
            match (
                props.and_then(|p| p.get(k)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => schema_violations(s, child, &p, out),
                (None, Some(Value::Bool(false))) => out.push(format!("{p}: not in the schema")),
                (None, Some(s)) if s.is_object() => schema_violations(s, child, &p, out),
                _ => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, child) in arr.iter().enumerate() {
            schema_violations(items, child, &format!("{path}[{i}]"), out);
        }
    }
}

/// The checked-in report schema.
pub fn report_schema() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/report.schema.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}
