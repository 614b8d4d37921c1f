//! Weight–data inner products ⟨w_r, x_i⟩ through gemm, in one canonical call shape.
//!
//! The firing trees keep inner products computed at different times by gemm calls over
//! different neuron sets (all m at build, the changed ones after each step), while the dense
//! reference recomputes all of them every step. Training is bitwise equal across the two only
//! if every product is a pure function of (w_r, x_i), whatever else is in the call. gemm 0.19
//! computes an output of its main kernel as one fused multiply–add chain per depth block, but
//! small or thin shapes take other kernels (horizontal sums when rows·columns ≤ 256, gemv when
//! a side is 1, gevv when depth ≤ 2) and depth beyond 512 is split into shape-dependent blocks.
//! So every call here has at least 2 point rows, at least [`MIN_COLUMNS`] neuron columns, a
//! depth of 3 to 512 per call (longer vectors are summed over fixed chunks with `read_dst`),
//! and the same strides; padding rows and columns are zero.

use crate::numeric::gemm::{MatMut, MatRef, Threads, gemm};

/// Fewest neuron columns per gemm call: with 2 point rows or more, 129 columns keeps
/// rows·columns above 256, off gemm's horizontal small-matrix kernel.
pub(crate) const MIN_COLUMNS: usize = 129;
/// Fewest point rows per call (a single row would take gemm's gemv kernel).
const MIN_POINTS: usize = 2;
/// Smallest depth per call (depth ≤ 2 takes gemm's gevv kernel).
const MIN_DEPTH: usize = 3;
/// Largest depth per call: gemm keeps a depth up to 512 in one block.
const MAX_DEPTH_CHUNK: usize = 512;

/// The training points, zero-padded to the canonical shape, as gemm's left operand.
#[derive(Clone, Debug)]
pub(crate) struct PointMatrix {
    /// `padded_points × padded_dim`, row-major.
    x: Vec<f32>,
    padded_points: usize,
    dim: usize,
    padded_dim: usize,
}

impl PointMatrix {
    /// Copies `x` (`points × dim`, row-major); the caller has validated the shape.
    pub(crate) fn new(x: &[f32], points: usize, dim: usize) -> Self {
        let padded_points = points.max(MIN_POINTS);
        let padded_dim = dim.max(MIN_DEPTH);
        let mut padded = vec![0.0; padded_points * padded_dim];
        for (row, point) in padded.chunks_mut(padded_dim).zip(x.chunks(dim)) {
            row[..dim].copy_from_slice(point);
        }
        PointMatrix {
            x: padded,
            padded_points,
            dim,
            padded_dim,
        }
    }

    /// Row stride of a neuron-rows buffer given to [`PointMatrix::products`].
    pub(crate) fn padded_dim(&self) -> usize {
        self.padded_dim
    }

    /// Columns of a products call for `neurons` neurons (rows of the rows buffer).
    pub(crate) fn columns_for(neurons: usize) -> usize {
        neurons.max(MIN_COLUMNS)
    }

    /// Sizes `rows` for `neurons` neuron rows (zeros beyond what the caller writes).
    pub(crate) fn prepare_rows(&self, rows: &mut Vec<f32>, neurons: usize) -> usize {
        let columns = Self::columns_for(neurons);
        rows.resize(columns * self.padded_dim, 0.0);
        columns
    }

    /// Copies the weights of `neurons` (rows of `w`, `m × dim`) into `rows` in canonical
    /// layout; returns the column count to pass to [`PointMatrix::products`].
    pub(crate) fn gather(&self, w: &[f32], neurons: &[u32], rows: &mut Vec<f32>) -> usize {
        let columns = self.prepare_rows(rows, neurons.len());
        let (dim, stride) = (self.dim, self.padded_dim);
        for (row, &r) in rows.chunks_mut(stride).zip(neurons) {
            let r = r as usize;
            row[..dim].copy_from_slice(&w[r * dim..(r + 1) * dim]);
        }
        columns
    }

    /// Products of the points with all `m` neurons of `w` into `out`, gathering into `rows`
    /// only where `w` lacks the canonical shape; returns the row stride of `out`.
    pub(crate) fn all_products(
        &self,
        w: &[f32],
        m: usize,
        rows: &mut Vec<f32>,
        out: &mut Vec<f32>,
    ) -> usize {
        if m >= MIN_COLUMNS && self.dim == self.padded_dim {
            self.products(&w[..m * self.dim], m, out);
            return m;
        }
        rows.clear();
        let columns = self.prepare_rows(rows, m);
        let dim = self.dim;
        for (row, weights) in rows.chunks_mut(self.padded_dim).zip(w.chunks(dim)) {
            row[..dim].copy_from_slice(weights);
        }
        self.products(rows, columns, out);
        columns
    }

    /// `out[i · columns + c] = ⟨rows[c], x_i⟩` for every padded point `i` and column `c`,
    /// where `rows` holds `columns` neuron rows of stride `padded_dim`.
    pub(crate) fn products(&self, rows: &[f32], columns: usize, out: &mut Vec<f32>) {
        assert!(columns >= MIN_COLUMNS, "products need canonical columns");
        assert!(
            rows.len() >= columns * self.padded_dim,
            "rows buffer too short"
        );
        out.resize(self.padded_points * columns, 0.0);
        let stride = self.padded_dim;
        let mut start = 0;
        for (chunk, depth) in depth_chunks(self.padded_dim).enumerate() {
            // dst: padded_points × columns; lhs: the points' coordinates start..start + depth;
            // rhs: the same coordinates of the neuron rows, read as depth × columns.
            gemm(
                MatMut::row_major(out, self.padded_points, columns),
                (chunk > 0).then_some(1.0),
                MatRef::new(&self.x[start..], self.padded_points, depth, stride, 1),
                MatRef::new(&rows[start..], depth, columns, 1, stride),
                1.0,
                Threads::Rayon,
            );
            start += depth;
        }
    }
}

/// Splits a depth into balanced chunks of at most [`MAX_DEPTH_CHUNK`] (each ≥ 3 when the
/// depth is): the split depends on the depth alone, never on the call's other sizes.
fn depth_chunks(depth: usize) -> impl Iterator<Item = usize> {
    let chunks = depth.div_ceil(MAX_DEPTH_CHUNK).max(1);
    let (base, extra) = (depth / chunks, depth % chunks);
    (0..chunks).map(move |c| base + usize::from(c < extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], d: usize, i: usize, r: usize) -> f64 {
        (0..d)
            .map(|j| f64::from(x[i * d + j]) * f64::from(w[r * d + j]))
            .sum()
    }

    fn pseudo(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|k| {
                ((k as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 1000.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn depth_chunks_are_balanced_and_small() {
        assert_eq!(depth_chunks(3).collect::<Vec<_>>(), vec![3]);
        assert_eq!(depth_chunks(512).collect::<Vec<_>>(), vec![512]);
        assert_eq!(depth_chunks(513).collect::<Vec<_>>(), vec![257, 256]);
        assert_eq!(depth_chunks(1500).sum::<usize>(), 1500);
    }

    #[test]
    fn a_product_does_not_depend_on_the_other_columns() {
        for (n, d, m) in [
            (1, 2, 1),
            (3, 5, 300),
            (4, 700, 150),
            (7, 128, 1000),
            (40, 64, 3000),
        ] {
            let x = pseudo(n * d, 1);
            let w = pseudo(m * d, 7);
            let points = PointMatrix::new(&x, n, d);
            let (mut rows, mut all) = (Vec::new(), Vec::new());
            let stride = points.all_products(&w, m, &mut rows, &mut all);
            for i in 0..n {
                for r in 0..m {
                    let value = all[i * stride + r];
                    assert!((f64::from(value) - naive(&x, &w, d, i, r)).abs() < 1e-3);
                }
            }
            let every_third: Vec<u32> = (0..m as u32).rev().step_by(3).collect();
            for subset in [every_third, vec![m as u32 - 1], (0..m as u32).collect()] {
                let mut sub = Vec::new();
                let columns = points.gather(&w, &subset, &mut rows);
                points.products(&rows, columns, &mut sub);
                for i in 0..n {
                    for (c, &r) in subset.iter().enumerate() {
                        let (a, b) = (sub[i * columns + c], all[i * stride + r as usize]);
                        assert_eq!(a.to_bits(), b.to_bits(), "n={n} d={d} m={m} i={i} r={r}");
                    }
                }
            }
        }
    }
}
