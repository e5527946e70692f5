//! Parsing of `Server-Timing` response headers into per-stage queue and service times.
//!
//! The SAIR sidecar writes one entry pair per pipeline stage, in pipeline order:
//! `<stage>-queue;dur=<ms>, <stage>-service;dur=<ms>` (RFC 8673 syntax; `dur` in milliseconds).
//! Entries with other names, without `dur`, or with a malformed `dur` are ignored.

/// Which part of a stage's time an entry measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Time waiting for a worker slot.
    Queue,
    /// Time being served.
    Service,
}

/// One `<stage>-queue` or `<stage>-service` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The stage name (the entry name without its `-queue`/`-service` suffix).
    pub stage: String,
    /// Queue or service.
    pub part: Part,
    /// Duration in milliseconds.
    pub dur_ms: f64,
}

/// Parses one header value; appends the recognised entries to `out`.
pub fn parse_into(value: &str, out: &mut Vec<Entry>) {
    for item in value.split(',') {
        let mut params = item.split(';').map(str::trim);
        let Some(name) = params.next() else { continue };
        let (stage, part) = if let Some(s) = name.strip_suffix("-queue") {
            (s, Part::Queue)
        } else if let Some(s) = name.strip_suffix("-service") {
            (s, Part::Service)
        } else {
            continue;
        };
        if stage.is_empty() {
            continue;
        }
        let dur = params.find_map(|p| {
            let (k, v) = p.split_once('=')?;
            if !k.trim().eq_ignore_ascii_case("dur") {
                return None;
            }
            v.trim().trim_matches('"').parse::<f64>().ok()
        });
        if let Some(dur_ms) = dur.filter(|d| d.is_finite() && *d >= 0.0) {
            out.push(Entry {
                stage: stage.to_owned(),
                part,
                dur_ms,
            });
        }
    }
}

/// Parses one header value.
pub fn parse(value: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    parse_into(value, &mut out);
    out
}

#[cfg(test)]
mod tests;
