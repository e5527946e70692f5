//! Surprisal-guided retrieval of past episodes.
//!
//! Surprisal of an episode is the negative log-likelihood of its realised reward under the
//! error distribution of reward predictions, modelled as Gaussian with a running mean μ and
//! variance σ² of the residual `r − r̂`. Dropping the `ln σ` term (common to every episode
//! judged under the same σ) and shifting so that a perfectly predicted outcome scores 1:
//! `surprisal = 1 + z²/2`, `z = (r − r̂ − μ)/σ`.
//!
//! Retrieval scores each stored episode by `similarity × surprisal` (similarity alone in the
//! `sair-no-surprisal` ablation), with `similarity = exp(−‖f − f'‖² / (2h²·d))` over the
//! normalised feature vectors (d = dimension), and picks greedily with a diversity penalty:
//! each pick's score is multiplied by `1 − λ·max_j redundancy(i, j)` over the episodes
//! already picked, where redundancy is their feature similarity (halved for a different kind
//! of move). Positives (reward above neutral) fill `m − negatives` places, negatives the rest.

use super::store::Episode;

/// Running Gaussian model of the reward-prediction residual.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorModel {
    pub mean: f64,
    pub var: f64,
    alpha: f64,
}

impl Default for ErrorModel {
    fn default() -> Self {
        Self {
            mean: 0.0,
            var: 0.25,
            alpha: 0.05,
        }
    }
}

/// Floor of σ, so an unlucky streak of exact predictions cannot make surprisal explode.
const SIGMA_MIN: f64 = 0.05;

impl ErrorModel {
    /// Surprisal of `realised` given `predicted` (see module docs).
    pub fn surprisal(&self, predicted: f64, realised: f64) -> f64 {
        let sigma = self.var.sqrt().max(SIGMA_MIN);
        let z = (realised - predicted - self.mean) / sigma;
        let s = 1.0 + z * z / 2.0;
        if s.is_finite() { s.min(1e6) } else { 1e6 }
    }

    /// Folds one residual into the running mean and variance (EWMA).
    pub fn update(&mut self, predicted: f64, realised: f64) {
        let e = realised - predicted;
        if !e.is_finite() {
            return;
        }
        let d = e - self.mean;
        self.mean += self.alpha * d;
        self.var = (1.0 - self.alpha) * (self.var + self.alpha * d * d);
    }

    /// Rebuilds the model from stored episodes (after a restart).
    pub fn from_episodes(eps: &[Episode]) -> Self {
        let mut m = Self::default();
        for e in eps {
            m.update(e.predicted_reward, e.reward);
        }
        m
    }
}

/// Retrieval knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrievalConfig {
    pub m: usize,
    pub negatives: usize,
    pub bandwidth: f64,
    pub diversity: f64,
    pub use_surprisal: bool,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        Self {
            m: 15,
            negatives: 3,
            bandwidth: 0.15,
            diversity: 0.5,
            use_surprisal: true,
        }
    }
}

/// Gaussian-kernel similarity of two feature vectors in [0, 1]; 0 when shapes differ.
pub fn similarity(a: &[f64], b: &[f64], h: f64) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let d2: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    (-d2 / (2.0 * h * h * a.len() as f64)).exp()
}

/// Indices of the retrieved episodes, best first.
pub fn retrieve(eps: &[Episode], f: &[f64], neutral: f64, cfg: &RetrievalConfig) -> Vec<usize> {
    let scored: Vec<(usize, f64)> = eps
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let sim = similarity(f, &e.features, cfg.bandwidth);
            let w = if cfg.use_surprisal { e.surprisal } else { 1.0 };
            let s = sim * w;
            (s > 1e-6).then_some((i, s))
        })
        .collect();
    let negatives = cfg.negatives.min(cfg.m);
    let mut picked: Vec<usize> = Vec::new();
    for (want_positive, quota) in [(true, cfg.m - negatives), (false, negatives)] {
        let mut pool: Vec<(usize, f64)> = scored
            .iter()
            .copied()
            .filter(|&(i, _)| (eps[i].reward >= neutral) == want_positive)
            .collect();
        pool.sort_by(|a, b| b.1.total_cmp(&a.1));
        pool.truncate(200);
        let mut taken = 0;
        while taken < quota && !pool.is_empty() {
            let mut best = 0;
            let mut best_v = f64::MIN;
            for (k, &(i, s)) in pool.iter().enumerate() {
                let red = picked
                    .iter()
                    .map(|&j| {
                        let same = eps[i].kind == eps[j].kind && eps[i].stage == eps[j].stage;
                        similarity(&eps[i].features, &eps[j].features, cfg.bandwidth)
                            * if same { 1.0 } else { 0.5 }
                    })
                    .fold(0.0, f64::max);
                let v = s * (1.0 - cfg.diversity * red);
                if v > best_v {
                    best_v = v;
                    best = k;
                }
            }
            picked.push(pool.swap_remove(best).0);
            taken += 1;
        }
    }
    picked
}

#[cfg(test)]
mod tests;
