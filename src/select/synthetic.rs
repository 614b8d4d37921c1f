//! Synthetic data for tests and benchmarks.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Result, SeftError};
use crate::numeric::matrix::Matrix;

/// Gaussian blobs for tests and benchmarks: `centers` cluster centers uniform in
/// [−10, 10]^d, points N(center, 1) assigned round-robin.
pub fn gaussian_blobs(n: usize, d: usize, centers: usize, seed: u64) -> Result<Matrix> {
    if centers == 0 {
        return Err(SeftError::Invalid("blobs need at least one center".into()));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let means: Vec<f32> = (0..centers * d)
        .map(|_| rng.random_range(-10.0..10.0))
        .collect();
    let mut data = Vec::with_capacity(n * d);
    for i in 0..n {
        let c = i % centers;
        for j in 0..d {
            let noise: f32 = StandardNormal.sample(&mut rng);
            data.push(means[c * d + j] + noise);
        }
    }
    Matrix::new(data, n, d)
}
