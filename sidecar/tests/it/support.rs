//! Fixtures: a tiny model server, an in-process sidecar, an HTTP client, parsers. Ports,
//! patience, binary processes and their bound-address lines come from the workspace harness
//! (`sair-tests`); what stays here is in-process and async.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Serialises the tests whose assertions are about timing or that generate heavy load, so
/// they do not disturb each other inside this one test binary.
pub static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long polls wait before failing: the harness's patience (raise it on slow machines
/// with SAIR_TEST_PATIENCE_SECONDS).
pub use sair_tests::patience;

/// Polls `f` until it returns `Some`, or panics with `what` after [`patience`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + patience();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A model server stand-in: sleeps `delay`, answers `<request body>|<name>`, counts hits.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicU64>,
    _stop: oneshot::Sender<()>,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

pub async fn upstream(name: &str, delay: Duration) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    upstream_on(listener, name, delay)
}

/// The echo model server of [`upstream`] on a listener of the caller's (a fixed address).
pub fn upstream_on(listener: TcpListener, name: &str, delay: Duration) -> Upstream {
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = oneshot::channel::<()>();
    let name: Arc<str> = name.into();
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                a = listener.accept() => match a { Ok((s, _)) => s, Err(_) => continue },
                _ = &mut rx => return,
            };
            let name = name.clone();
            let hits = h.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let name = name.clone();
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let rid = req.headers().get("x-sair-request-id").cloned();
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    let began = Instant::now();
                    tokio::time::sleep(delay).await;
                    let mut out = body.to_vec();
                    out.extend_from_slice(format!("|{name}").as_bytes());
                    let mut resp = Response::new(Full::new(Bytes::from(out)));
                    resp.headers_mut()
                        .insert("content-type", "text/plain".parse().unwrap());
                    // How long this handler took, as the model server itself saw it.
                    let took = began.elapsed().as_micros().to_string();
                    resp.headers_mut()
                        .insert("x-upstream-us", took.parse().unwrap());
                    if let Some(rid) = rid {
                        resp.headers_mut().insert("x-seen-request-id", rid);
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        hits,
        _stop: tx,
    }
}

/// An address nothing listens on (bound, then released, by the harness).
pub async fn closed_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], sair_tests::free_port()))
}

/// An in-process sidecar on ephemeral ports.
pub struct Sidecar {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<()>>,
}

impl Sidecar {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops it and waits for the drain to finish.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(j) = self.join.take() {
            j.await.unwrap();
        }
    }

    pub async fn metrics_text(&self) -> String {
        let (status, _, body) = get(&format!("http://{}/metrics", self.metrics_addr))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// The value of the sample `name{…}` whose labels contain every `label="value"` in `with`.
    pub async fn sample(&self, name: &str, with: &[&str]) -> Option<f64> {
        find_sample(&self.metrics_text().await, name, with)
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub fn find_sample(text: &str, name: &str, with: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let metric = l.split(['{', ' ']).next().unwrap_or("");
            metric == name && with.iter().all(|w| l.contains(w))
        })
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

pub async fn sidecar(args: &[&str]) -> Sidecar {
    let mut all = vec!["sair-sidecar", "--pipeline", "test"];
    all.extend_from_slice(args);
    // No process environment: only these flags configure it.
    let config =
        sair_sidecar::Config::load_with(all, &sair_service::config::MapEnv::new()).unwrap();
    let sc = sair_sidecar::Sidecar::new(config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let join = tokio::spawn(async move {
        sc.run(listener, metrics, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Sidecar {
        addr,
        metrics_addr,
        stop: Some(tx),
        join: Some(join),
    }
}

/// An in-process sidecar for stage `s` in front of `up`, with `extra` flags.
pub async fn sidecar_in_front_of(up: &Upstream, extra: &[&str]) -> Sidecar {
    let url = up.url();
    let mut args = vec!["--stage", "s", "--upstream", &url];
    args.extend_from_slice(extra);
    sidecar(&args).await
}

/// Awaits spawned requests: request `i` must be answered 200 with the body `want(i)`.
pub async fn expect_answers(
    tasks: Vec<tokio::task::JoinHandle<Result<Answer, String>>>,
    want: impl Fn(usize) -> String,
) {
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, _, body) = t
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("request {i} lost: {e}"));
        assert_eq!(status, 200, "request {i}");
        assert_eq!(body, want(i).as_bytes(), "request {i}");
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub type Answer = (StatusCode, HeaderMap, Bytes);

pub async fn send(
    c: &Client<HttpConnector, Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<Answer, String> {
    let resp = c.request(req).await.map_err(|e| format!("{e:?}"))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

pub async fn post(url: &str, body: &str) -> Result<Answer, String> {
    post_with(&client(), url, body).await
}

pub async fn post_with(
    c: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    body: &str,
) -> Result<Answer, String> {
    let req = Request::post(url)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    send(c, req).await
}

pub async fn get(url: &str) -> Result<Answer, String> {
    let req = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    send(&client(), req).await
}

/// `Server-Timing` entries as (name, milliseconds), in header order.
pub fn server_timing(h: &HeaderMap) -> Vec<(String, f64)> {
    h.get_all("server-timing")
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap()
                .split(',')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .map(|e| {
            let mut it = e.trim().split(';');
            let name = it.next().unwrap().trim().to_owned();
            let dur = it
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("dur=")
                        .map(|d| d.parse::<f64>().unwrap())
                })
                .unwrap();
            (name, dur)
        })
        .collect()
}

pub fn timing_of(h: &HeaderMap, stage: &str) -> (f64, f64) {
    let t = server_timing(h);
    let get = |k: &str| {
        t.iter()
            .find(|(n, _)| n == &format!("{stage}-{k}"))
            .map(|(_, d)| *d)
            .unwrap_or_else(|| panic!("no {stage}-{k} in {t:?}"))
    };
    (get("queue"), get("service"))
}
