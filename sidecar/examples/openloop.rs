//! Fixed-rate open-loop HTTP load for `scripts/bench-sidecar.sh` (wrk2-style, until
//! `sair-loadgen` exists).
//!
//! Request `i` is due at `start + i / rate` and goes out on connection `i % connections`, each
//! connection a keep-alive HTTP/1.1 stream. Two latencies are recorded: from the actual send
//! (what the server path costs) and from the due time (coordinated-omission corrected; it also
//! holds the ~1 ms granularity of tokio's timer, equally for every target). JSON on stdout.

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

#[derive(Debug, Parser)]
struct Args {
    /// Target, http://host:port/path
    #[arg(long)]
    url: String,
    /// Requests per second.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration_seconds: f64,
    /// Unmeasured seconds first.
    #[arg(long, default_value_t = 2.0)]
    warmup_seconds: f64,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
}

#[derive(Debug)]
struct Result {
    from_send: Histogram<u64>,
    from_due: Histogram<u64>,
    errors: u64,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds")
}

fn summary(h: &Histogram<u64>) -> serde_json::Value {
    serde_json::json!({
        "count": h.len(),
        "p50_us": h.value_at_quantile(0.50),
        "p90_us": h.value_at_quantile(0.90),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
    })
}

async fn connection(
    uri: http::Uri,
    index: usize,
    args_conns: usize,
    rate: f64,
    start: tokio::time::Instant,
    warm_until: Instant,
    total: usize,
) -> Result {
    let mut r = Result {
        from_send: hist(),
        from_due: hist(),
        errors: 0,
    };
    let authority = uri
        .authority()
        .expect("url has host:port")
        .as_str()
        .to_owned();
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .expect("connect");
    stream.set_nodelay(true).ok();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut i = index;
    while i < total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let sent = Instant::now();
        let req = http::Request::get(uri.clone())
            .header(http::header::HOST, authority.as_str())
            .body(Empty::<Bytes>::new())
            .expect("request");
        let ok = match sender.send_request(req).await {
            Ok(resp) => resp.status().is_success() && resp.into_body().collect().await.is_ok(),
            Err(_) => false,
        };
        let done = Instant::now();
        if sent >= warm_until {
            if ok {
                let us = |d: Duration| (d.as_micros() as u64).max(1);
                let _ = r.from_send.record(us(done - sent));
                let _ = r.from_due.record(us(done - due.into_std()));
            } else {
                r.errors += 1;
            }
        }
        if !ok {
            // Reconnect after a failure so one bad exchange does not end this connection.
            let Ok(stream) = tokio::net::TcpStream::connect(&authority).await else {
                return r;
            };
            stream.set_nodelay(true).ok();
            let Ok((s, c)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
            else {
                return r;
            };
            tokio::spawn(c);
            sender = s;
        }
        i += args_conns;
    }
    r
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let uri: http::Uri = args.url.parse().expect("--url");
    let out = rt.block_on(async move {
        let total = (args.rate * (args.warmup_seconds + args.duration_seconds)) as usize;
        let start = tokio::time::Instant::now() + Duration::from_millis(200);
        let warm_until = start.into_std() + Duration::from_secs_f64(args.warmup_seconds);
        let tasks: Vec<_> = (0..args.connections)
            .map(|c| {
                tokio::spawn(connection(
                    uri.clone(),
                    c,
                    args.connections,
                    args.rate,
                    start,
                    warm_until,
                    total,
                ))
            })
            .collect();
        let mut from_send = hist();
        let mut from_due = hist();
        let mut errors = 0;
        for t in tasks {
            let r = t.await.expect("connection task");
            from_send.add(&r.from_send).ok();
            from_due.add(&r.from_due).ok();
            errors += r.errors;
        }
        let elapsed = start.elapsed().as_secs_f64();
        serde_json::json!({
            "url": args.url,
            "rate": args.rate,
            "duration_seconds": args.duration_seconds,
            "achieved_rate": total as f64 / elapsed,
            "errors": errors,
            "latency_from_send": summary(&from_send),
            "latency_from_due": summary(&from_due),
        })
    });
    println!("{out}");
}
