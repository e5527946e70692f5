//! Placing GPU replicas' shares on GPUs: first-fit decreasing, Σρ ≤ 1 per GPU.

/// Slack for floating-point sums of shares.
const EPS: f64 = 1e-9;

/// Assigns each share to a GPU (first-fit decreasing); `None` when they do not fit.
pub fn pack(shares: &[f64], gpus: u32) -> Option<Vec<usize>> {
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| shares[b].total_cmp(&shares[a]).then(a.cmp(&b)));
    let mut free = vec![1.0_f64; gpus as usize];
    let mut out = vec![0; shares.len()];
    for i in order {
        let g = free.iter().position(|&f| f + EPS >= shares[i])?;
        free[g] -= shares[i];
        out[i] = g;
    }
    Some(out)
}
