//! The one duration syntax of every SAIR option: a number with a unit, `30s`, `500ms`,
//! `250us`, `2m`, `1h`, or a sum such as `1m 30s` (humantime). A bare number is refused: the
//! unit is always written.

use std::time::Duration;

/// The longest duration any option accepts.
pub const MAX: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parses `30s`, `500ms`, `250us`, `2m`, `1h`; refuses a bare number and anything over
/// [`MAX`] (30 days). Use as a clap `value_parser`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let d = humantime::parse_duration(t).map_err(|e| {
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            format!("{s:?} has no unit: write e.g. {t}ms or {t}s")
        } else {
            format!("{s:?} is not a duration like 30s or 500ms: {e}")
        }
    })?;
    if d > MAX {
        return Err(format!("{s:?} is longer than 30 days"));
    }
    Ok(d)
}

/// A clap value parser for durations within `[min, max]`.
pub fn parse_duration_within(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s| {
        let d = parse_duration(s)?;
        if d < min || d > max {
            return Err(format!(
                "{s:?} must be within {}..={}",
                format_duration(min),
                format_duration(max)
            ));
        }
        Ok(d)
    }
}

/// Formats a duration in the same syntax (`150ms`, `10m`, `1h 30m`); `parse_duration` reads
/// it back exactly.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests;
