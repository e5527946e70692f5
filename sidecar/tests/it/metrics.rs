//! `/metrics` is valid Prometheus text exposition and has every family; health endpoints.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::support::*;

/// (family, labels without `le`).
type SeriesKey = (String, BTreeMap<String, String>);

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// Parses `name{l="v",…} value [timestamp]`, checking the grammar of every part.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let (name_end, rest) = match line.find(['{', ' ']) {
        Some(i) => (i, &line[i..]),
        None => return Err(format!("no value: {line:?}")),
    };
    let name = &line[..name_end];
    if !is_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut labels = BTreeMap::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let close;
        loop {
            // label name
            let start = chars.peek().map(|(i, _)| *i).ok_or("unterminated labels")?;
            if body[start..].starts_with('}') {
                close = start;
                break;
            }
            let eq = body[start..].find('=').ok_or("label without =")? + start;
            let lname = &body[start..eq];
            if !is_name(lname) || lname.contains(':') {
                return Err(format!("bad label name {lname:?}"));
            }
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")?.1 {
                    '\\' => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    '"' => break,
                    '\n' => return Err("newline in label value".into()),
                    c => value.push(c),
                }
            }
            if labels.insert(lname.to_owned(), value).is_some() {
                return Err(format!("duplicate label {lname}"));
            }
            match chars.next().ok_or("unterminated labels")? {
                (_, ',') => {}
                (i, '}') => {
                    close = i;
                    break;
                }
                (_, c) => return Err(format!("unexpected {c:?} after label value")),
            }
        }
        &body[close + 1..]
    } else {
        rest
    };
    let mut parts = rest.trim_start_matches(' ').split(' ');
    let value = parse_value(parts.next().ok_or("missing value")?)?;
    if let Some(ts) = parts.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if parts.next().is_some() {
        return Err(format!("trailing fields: {line:?}"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Checks the whole exposition; returns the family → type map.
fn check_exposition(text: &str) -> HashMap<String, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix("# ") {
            let mut it = c.splitn(3, ' ');
            match (it.next(), it.next(), it.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(is_name(name), "line {n}: bad name in TYPE");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "line {n}: bad type {kind}"
                    );
                    assert!(
                        types.insert(name.into(), kind.into()).is_none(),
                        "line {n}: TYPE twice for {name}"
                    );
                }
                (Some("HELP"), Some(name), _) => {
                    assert!(is_name(name), "line {n}: bad name in HELP")
                }
                _ => {}
            }
            continue;
        }
        assert!(
            !line.starts_with('#') || line.starts_with("# "),
            "line {n}: bad comment"
        );
        let s = parse_sample(line).unwrap_or_else(|e| panic!("line {n} {line:?}: {e}"));
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suf| {
                s.name.strip_suffix(suf).filter(|f| {
                    types
                        .get(*f)
                        .is_some_and(|t| t == "histogram" || t == "summary")
                })
            })
            .unwrap_or(&s.name)
            .to_owned();
        assert!(
            types.contains_key(&family),
            "line {n}: sample of {family} before its TYPE"
        );
        samples.push((family, s));
    }
    // Histograms: per label set, buckets non-decreasing in `le`, +Inf present and equal to count.
    let mut buckets: HashMap<SeriesKey, Vec<(f64, f64)>> = HashMap::new();
    let mut counts: HashMap<SeriesKey, f64> = HashMap::new();
    for (family, s) in &samples {
        if types[family] != "histogram" {
            continue;
        }
        let mut labels = s.labels.clone();
        if s.name.ends_with("_bucket") {
            let le = parse_value(&labels.remove("le").expect("bucket without le")).unwrap();
            buckets
                .entry((family.clone(), labels))
                .or_default()
                .push((le, s.value));
        } else if s.name.ends_with("_count") {
            counts.insert((family.clone(), labels), s.value);
        }
    }
    assert!(!buckets.is_empty(), "no histogram buckets at all");
    for (key, mut b) in buckets {
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        assert!(
            b.windows(2).all(|w| w[0].1 <= w[1].1),
            "{key:?}: buckets not monotone {b:?}"
        );
        let last = b.last().unwrap();
        assert!(last.0.is_infinite(), "{key:?}: no +Inf bucket");
        assert_eq!(
            Some(&last.1),
            counts.get(&key),
            "{key:?}: +Inf bucket ≠ count"
        );
    }
    types
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_have_every_family() {
    let up = upstream("m", Duration::from_millis(1)).await;
    let sc = sidecar(&["--stage", "s\"q", "--upstream", &up.url()]).await;
    for _ in 0..5 {
        assert_eq!(post(&sc.url(), "x").await.unwrap().0, 200);
    }
    let text = sc.metrics_text().await;
    let types = check_exposition(&text);
    for family in sair_sidecar::metrics::ALL {
        assert!(
            types.contains_key(family),
            "family {family} missing from:\n{text}"
        );
    }
    for h in [
        "sair_stage_queue_wait_seconds",
        "sair_stage_service_seconds",
        "sair_stage_request_seconds",
        "sair_pipeline_request_seconds",
    ] {
        assert_eq!(types[h], "histogram", "{h} must be a histogram");
        assert!(
            text.contains(&format!(
                "{h}_bucket{{pipeline=\"test\",stage=\"s\\\"q\",le=\"0.0005\"}}"
            )),
            "{h}: default first bucket"
        );
        assert!(
            text.contains(&format!(
                "{h}_bucket{{pipeline=\"test\",stage=\"s\\\"q\",le=\"60\"}}"
            )),
            "{h}: default last bucket"
        );
    }
    assert_eq!(
        find_sample(&text, "sair_stage_requests_total", &["outcome=\"ok\""]),
        Some(5.0)
    );
    for path in ["healthz", "readyz"] {
        let (status, _, _) = get(&format!("http://{}/{path}", sc.metrics_addr))
            .await
            .unwrap();
        assert_eq!(status, 200, "/{path}");
    }
    sc.stop().await;
}

#[test]
fn the_parser_rejects_bad_lines() {
    for bad in [
        "9bad 1",
        "m{l=\"v} 1",
        "m{l=v} 1",
        "m 1 2 3",
        "m{l=\"\\q\"} 1",
        "m abc",
    ] {
        assert!(parse_sample(bad).is_err(), "{bad:?} should not parse");
    }
    let s = parse_sample("m_x{a=\"1\",b=\"q\\\"\"} +Inf 17").unwrap();
    assert_eq!(s.labels["b"], "q\"");
    assert!(s.value.is_infinite());
}
