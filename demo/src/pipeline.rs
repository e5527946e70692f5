//! The pipelines file the demo runs: the shipped `demo/pipelines/image-classification.toml`,
//! built into the binary so that `sair demo` works from any folder, or `--pipeline FILE`.
//! `@RUN@` and `@BIN@` in it become the run's working folder and the binaries' folder.

use std::path::Path;

/// The shipped pipeline.
pub const SHIPPED: &str = include_str!("../pipelines/image-classification.toml");

/// `text` with `@RUN@` and `@BIN@` filled in. Paths are written as TOML basic-string
/// content, so a quote or a backslash in a path cannot break the file.
pub fn render(text: &str, run_dir: &Path, bin_dir: &Path) -> String {
    let esc = |p: &Path| {
        p.display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    };
    text.replace("@RUN@", &esc(run_dir))
        .replace("@BIN@", &esc(bin_dir))
}

/// The SLO of the first pipeline in `text` (`slo_p99_ms`), in seconds, when it can be read
/// without a TOML parser (the coordinator parses the file; the demo only needs this figure
/// before the coordinator has answered).
pub fn slo_p99_s(text: &str) -> Option<f64> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .find_map(|l| l.strip_prefix("slo_p99_ms"))
        .and_then(|rest| rest.trim().strip_prefix('='))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(|ms| ms / 1e3)
}

/// The name of the first pipeline (`name = "…"` right under `[pipeline]`).
pub fn name(text: &str) -> Option<String> {
    let mut in_pipeline = false;
    for l in text.lines() {
        let l = l.split('#').next().unwrap_or("").trim();
        if l.starts_with('[') {
            in_pipeline = l == "[pipeline]";
            continue;
        }
        if in_pipeline && let Some(rest) = l.strip_prefix("name") {
            return rest
                .trim()
                .strip_prefix('=')
                .map(|v| v.trim().trim_matches('"').to_string());
        }
    }
    None
}
