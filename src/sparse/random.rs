//! Standard normal samples (Box–Muller) for the paper's N(0, I) initialisation, without
//! another dependency.

use rand::Rng;

/// `len` independent N(0, 1) samples.
pub(crate) fn gaussian_vec(rng: &mut impl Rng, len: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(len + 1);
    while out.len() < len {
        // 1 − u ∈ (0, 1], so the logarithm is finite.
        let u: f64 = 1.0 - rng.random::<f64>();
        let angle = std::f64::consts::TAU * rng.random::<f64>();
        let radius = (-2.0 * u.ln()).sqrt();
        out.push((radius * angle.cos()) as f32);
        out.push((radius * angle.sin()) as f32);
    }
    out.truncate(len);
    out
}

/// `len` independent signs ±1, each with probability ½.
pub(crate) fn sign_vec(rng: &mut impl Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
        .collect()
}
