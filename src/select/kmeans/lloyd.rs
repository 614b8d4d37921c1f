//! Lloyd's iterations (Lloyd, "Least squares quantization in PCM", 1982): assign every point
//! to its nearest centroid, move every centroid to the mean of its points, repeat.
//!
//! Neither step can raise the cost Σ‖x − c(x)‖², so the cost never increases. Assignment
//! uses GEMM blocks ([`nearest_rows`]); means are summed in f64 per thread. A centroid that
//! loses all its points stays where it is (which keeps the no-increase property).

use rayon::prelude::*;

use crate::numeric::kernels::nearest_rows;

/// Result of running Lloyd's iterations.
pub(crate) struct LloydRun {
    pub centroids: Vec<f32>,
    pub labels: Vec<u32>,
    /// Cost before the first iteration, then after each one.
    pub costs: Vec<f64>,
}

/// Runs at most `iterations` Lloyd iterations from `centroids` (k×d), stopping early when no
/// label changes.
pub(crate) fn lloyd(data: &[f32], d: usize, centroids: Vec<f32>, iterations: usize) -> LloydRun {
    let k = centroids.len() / d;
    let (mut labels, dist) = nearest_rows(data, &centroids, d);
    let mut costs = vec![total(&dist)];
    let mut centroids = centroids;
    for _ in 0..iterations {
        centroids = means(data, d, &labels, k, &centroids);
        let (new_labels, dist) = nearest_rows(data, &centroids, d);
        costs.push(total(&dist));
        let changed = new_labels != labels;
        labels = new_labels;
        if !changed {
            break;
        }
    }
    LloydRun {
        centroids,
        labels,
        costs,
    }
}

fn total(dist: &[f32]) -> f64 {
    dist.par_iter().map(|&v| v as f64).sum()
}

/// The mean of each label's rows; `previous` for labels without rows.
fn means(data: &[f32], d: usize, labels: &[u32], k: usize, previous: &[f32]) -> Vec<f32> {
    let n = labels.len();
    let pieces = (rayon::current_num_threads() * 2).max(1);
    let rows_per_piece = n.div_ceil(pieces).max(1);
    let (sums, counts) = data
        .par_chunks(rows_per_piece * d)
        .zip(labels.par_chunks(rows_per_piece))
        .map(|(block, block_labels)| {
            let mut sums = vec![0f64; k * d];
            let mut counts = vec![0u64; k];
            for (x, &label) in block.chunks_exact(d).zip(block_labels) {
                let label = label as usize;
                counts[label] += 1;
                for (sum, &v) in sums[label * d..(label + 1) * d].iter_mut().zip(x) {
                    *sum += v as f64;
                }
            }
            (sums, counts)
        })
        .reduce(
            || (vec![0f64; k * d], vec![0u64; k]),
            |(mut sums, mut counts), (other_sums, other_counts)| {
                sums.iter_mut().zip(&other_sums).for_each(|(a, b)| *a += b);
                counts
                    .iter_mut()
                    .zip(&other_counts)
                    .for_each(|(a, b)| *a += b);
                (sums, counts)
            },
        );
    let mut centroids = previous.to_vec();
    for c in 0..k {
        if counts[c] > 0 {
            let inverse = 1.0 / counts[c] as f64;
            for j in 0..d {
                centroids[c * d + j] = (sums[c * d + j] * inverse) as f32;
            }
        }
    }
    centroids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_average_each_cluster_and_keep_empty_ones() {
        let data = [0.0f32, 0.0, 2.0, 2.0, 10.0, 10.0];
        let labels = [0u32, 0, 1];
        let previous = [9.0f32, 9.0, 9.0, 9.0, 5.0, 5.0];
        let centroids = means(&data, 2, &labels, 3, &previous);
        assert_eq!(centroids, vec![1.0, 1.0, 10.0, 10.0, 5.0, 5.0]);
    }
}
