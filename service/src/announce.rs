//! The bound-address line: once every listener is bound, a long-running binary prints ONE JSON
//! line on stdout, then serves:
//!
//! ```text
//! {"event":"bound","binary":"sair-sidecar","addresses":{"admin":"127.0.0.1:40124","listen":"127.0.0.1:40123"}}
//! ```
//!
//! Binaries accept port 0; tests and scripts read the real addresses from this line instead of
//! guessing free ports. Roles: sidecar `listen`, `admin`; node agent `admin`, `report` (UDP);
//! sair-stage `listen`; coordinator `http`, `mesh`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;

/// The line for `binary` and its `(role, address)` pairs, without the newline.
pub fn bound_line(binary: &str, addrs: &[(&str, SocketAddr)]) -> String {
    let addresses: BTreeMap<&str, String> =
        addrs.iter().map(|(r, a)| (*r, a.to_string())).collect();
    // Written in this field order (`event` first, as documented) rather than through a
    // `serde_json::Value`, whose map sorts its keys.
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    let addresses = serde_json::Value::from(
        addresses
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
            .collect::<serde_json::Map<_, _>>(),
    );
    format!(
        r#"{{"event":"bound","binary":{},"addresses":{addresses}}}"#,
        quote(binary)
    )
}

/// Prints [`bound_line`] on stdout as one line and flushes it. A failed write is logged (the
/// process keeps serving; only its supervisor loses the addresses).
pub fn bound(binary: &str, addrs: &[(&str, SocketAddr)]) {
    let line = bound_line(binary, addrs);
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        tracing::warn!(error = %e, "cannot print the bound-address line");
    }
    tracing::info!(%line, "bound");
}

#[cfg(test)]
mod tests;
