//! Exact KDE by brute force, the reference for the estimators: all n kernel values per query.
//!
//! Distances come from ‖x‖² + ‖q‖² − 2x·q with GEMM blocks of data rows × queries, run on
//! all rayon threads; sums are accumulated in f64. Data and queries are shifted by the data
//! mean first, which keeps the norms (and so the cancellation error of that form) small.

use rayon::prelude::*;

use super::Kernel;
use crate::error::Result;
use crate::numeric::kernels::{BLOCK_ROWS, dot, dot_block, exp_in_place};
use crate::numeric::matrix::Matrix;
use crate::numeric::validate::check_bandwidth;
use crate::numeric::validate::check_point;

/// Queries per GEMM block.
const QUERY_BLOCK: usize = 64;
/// Rows summed in f32 before adding into the f64 totals (kernel values are ≤ 1, so a partial
/// sum is ≤ 32 and keeps f32's relative precision).
const ROWS_PER_PARTIAL: usize = 32;

/// Turns a block of products x·q (rows × queries) into kernel values k(x, q), the
/// exponentials vectorized.
fn kernel_values_in_place(
    products: &mut [f32],
    x_norms: &[f32],
    q_norms: &[f32],
    kernel: Kernel,
    bandwidth: f32,
) {
    let q_count = q_norms.len();
    for (row, &x_norm) in products.chunks_exact_mut(q_count).zip(x_norms) {
        for (p, &q_norm) in row.iter_mut().zip(q_norms) {
            let dist2 = (x_norm + q_norm - 2.0 * *p).max(0.0);
            *p = kernel.exponent(dist2, bandwidth);
        }
    }
    exp_in_place(products);
}

/// Brute-force KDE over a fixed data set.
pub struct ExactKde {
    /// Data rows minus `mean`.
    centered: Vec<f32>,
    norms: Vec<f32>,
    mean: Vec<f32>,
    n: usize,
    d: usize,
    kernel: Kernel,
    bandwidth: f32,
}

/// Parameters of an [`ExactKde`]: `ExactKdeParams::new(kernel, bandwidth).fit(&data)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExactKdeParams {
    kernel: Kernel,
    bandwidth: f32,
}

impl ExactKdeParams {
    pub fn new(kernel: Kernel, bandwidth: f32) -> Self {
        ExactKdeParams { kernel, bandwidth }
    }

    /// Holds `data` (centered) for brute-force queries; errors on a bandwidth that is not a
    /// positive finite number.
    pub fn fit(&self, data: &Matrix) -> Result<ExactKde> {
        ExactKde::new(data, self.kernel, self.bandwidth)
    }
}

impl ExactKde {
    fn new(data: &Matrix, kernel: Kernel, bandwidth: f32) -> Result<Self> {
        check_bandwidth(bandwidth)?;
        let (n, d) = (data.n(), data.d());
        let mut mean = vec![0f64; d];
        for row in data.data().chunks_exact(d) {
            mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
        }
        let mean: Vec<f32> = mean.iter().map(|m| (m / n as f64) as f32).collect();
        let centered: Vec<f32> = data
            .data()
            .chunks_exact(d)
            .flat_map(|row| row.iter().zip(&mean).map(|(v, m)| v - m))
            .collect();
        let norms = centered.chunks_exact(d).map(|x| dot(x, x)).collect();
        Ok(ExactKde {
            centered,
            norms,
            mean,
            n,
            d,
            kernel,
            bandwidth,
        })
    }

    /// KDE(q) = (1/n) Σ k(xᵢ, q).
    pub fn query(&self, query: &[f32]) -> Result<f64> {
        check_point(query, self.d, "the query")?;
        Ok(self.sums(query)[0] / self.n as f64)
    }

    /// KDE of every row of `queries`.
    pub fn query_batch(&self, queries: &Matrix) -> Result<Vec<f64>> {
        queries.check_same_dim(self.d, "the queries")?;
        let mut out = Vec::with_capacity(queries.n());
        for block in queries.data().chunks(QUERY_BLOCK * self.d) {
            out.extend(self.sums(block).into_iter().map(|s| s / self.n as f64));
        }
        Ok(out)
    }

    /// Σᵢ k(xᵢ, q) for each query of `block` (≤ QUERY_BLOCK rows, already validated).
    fn sums(&self, block: &[f32]) -> Vec<f64> {
        let d = self.d;
        let queries: Vec<f32> = block
            .chunks_exact(d)
            .flat_map(|q| q.iter().zip(&self.mean).map(|(v, m)| v - m))
            .collect();
        let q_count = queries.len() / d;
        let q_norms: Vec<f32> = queries.chunks_exact(d).map(|q| dot(q, q)).collect();
        let (kernel, h) = (self.kernel, self.bandwidth);
        self.centered
            .par_chunks(BLOCK_ROWS * d)
            .zip(self.norms.par_chunks(BLOCK_ROWS))
            .map(|(rows, norms)| {
                let mut products = vec![0f32; norms.len() * q_count];
                dot_block(rows, &queries, d, &mut products);
                kernel_values_in_place(&mut products, norms, &q_norms, kernel, h);
                // f32 partial sums over ROWS_PER_PARTIAL rows (vectorizable), f64 across them.
                let mut sums = vec![0f64; q_count];
                let mut partial = vec![0f32; q_count];
                for rows in products.chunks(ROWS_PER_PARTIAL * q_count) {
                    partial.fill(0.0);
                    for row in rows.chunks_exact(q_count) {
                        partial.iter_mut().zip(row).for_each(|(p, &v)| *p += v);
                    }
                    sums.iter_mut()
                        .zip(&partial)
                        .for_each(|(s, &p)| *s += p as f64);
                }
                sums
            })
            .reduce(
                || vec![0f64; q_count],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            )
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// Bytes held: the centered data, norms and mean.
    pub fn memory_bytes(&self) -> usize {
        (self.centered.capacity() + self.norms.capacity() + self.mean.capacity()) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::kernels::squared_distance;

    #[test]
    fn equals_a_naive_double_loop() {
        let d = 7;
        let n = 700;
        let data: Vec<f32> = (0..n * d)
            .map(|i| ((i * 2_654_435_761usize) % 1000) as f32 / 100.0 + 50.0)
            .collect();
        let data = Matrix::new(data, n, d).unwrap();
        let queries: Vec<f32> = (0..70 * d)
            .map(|i| ((i * 40_503) % 1000) as f32 / 100.0 + 50.0)
            .collect();
        let queries = Matrix::new(queries, 70, d).unwrap();
        for kernel in [Kernel::Gaussian, Kernel::Laplacian] {
            let kde = ExactKdeParams::new(kernel, 3.0).fit(&data).unwrap();
            let fast = kde.query_batch(&queries).unwrap();
            for (j, q) in queries.data().chunks_exact(d).enumerate() {
                let naive: f64 = data
                    .data()
                    .chunks_exact(d)
                    .map(|x| kernel.value(squared_distance(x, q), 3.0) as f64)
                    .sum::<f64>()
                    / n as f64;
                assert!((fast[j] - naive).abs() <= 1e-4 * naive, "{kernel:?} {j}");
                assert!((kde.query(q).unwrap() - fast[j]).abs() <= 1e-5 * naive);
            }
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let data = Matrix::new(vec![0.0, 1.0, 2.0, 3.0], 2, 2).unwrap();
        assert!(
            ExactKdeParams::new(Kernel::Gaussian, 0.0)
                .fit(&data)
                .is_err()
        );
        assert!(
            ExactKdeParams::new(Kernel::Gaussian, -2.0)
                .fit(&data)
                .is_err()
        );
        let kde = ExactKdeParams::new(Kernel::Gaussian, 1.0)
            .fit(&data)
            .unwrap();
        assert!(kde.query(&[1.0]).is_err());
        assert!(kde.query(&[1.0, f32::NAN]).is_err());
        let wrong = Matrix::new(vec![1.0; 3], 1, 3).unwrap();
        assert!(kde.query_batch(&wrong).is_err());
    }
}
