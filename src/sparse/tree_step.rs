//! One gradient-descent step through the firing trees: the forward and backward passes touch
//! only the firing (point, neuron) pairs, and only the neurons of their union change weights,
//! so only those are recomputed (gemms over blocks of them) and re-seated in the trees.

use rayon::prelude::*;

use super::dense::{Outcome, checked_loss};
use super::firing::FiringSets;
use super::network::{ShiftedReluNet, TrainData, firing_sum, neuron_coef, neuron_step};
use super::tree::{FiringTrees, NEURON_BLOCK};
use crate::error::Result;

/// Union neurons per parallel gradient task.
const MIN_NEURONS_PER_TASK: usize = 8;

pub(crate) struct TreeStepper {
    trees: FiringTrees,
    sets: FiringSets,
    errors: Vec<f32>,
    /// New weights of a block of union neurons, in the trees' canonical gemm layout.
    rows: Vec<f32>,
}

impl TreeStepper {
    /// A stepper over trees built for `net`'s current weights and `data`'s points.
    pub(crate) fn new(trees: FiringTrees) -> Self {
        let sets = FiringSets::new(trees.points(), trees.neurons());
        TreeStepper {
            trees,
            sets,
            errors: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// The trees, for tests that compare them with a fresh build.
    #[cfg(test)]
    pub(crate) fn into_trees(self) -> FiringTrees {
        self.trees
    }

    pub(crate) fn step(
        &mut self,
        net: &mut ShiftedReluNet,
        data: &TrainData<'_>,
        lr: f32,
    ) -> Result<Outcome> {
        let (n, d, b, scale) = (
            data.points(),
            data.dim(),
            net.threshold(),
            net.output_scale(),
        );
        let a = net.output_weights();
        let trees = &self.trees;

        // Forward: each point's firing neurons from its tree, in increasing order.
        self.errors.resize(n, 0.0);
        self.sets
            .per_point_mut()
            .par_iter_mut()
            .zip(self.errors.par_iter_mut())
            .zip(data.y().par_iter())
            .enumerate()
            .for_each(|(i, ((firing, e), &y))| {
                firing.clear();
                trees.visit_firing(i, b, |r, _| firing.push(r));
                let z = trees.row(i);
                let sum = firing_sum(firing.iter().map(|&r| (a[r as usize], z[r as usize])), b);
                *e = scale * sum - y;
            });
        let loss = checked_loss(&self.errors)?;
        self.sets.index();

        // Backward: new weights of the union neurons, each from the points that fire it,
        // a block of neurons at a time, each block's products recomputed right after it.
        let union = self.sets.union();
        let stride = self.trees.point_matrix().padded_dim();
        let (sets, errors, x) = (&self.sets, &self.errors, data.x());
        let (w, a) = net.parts_mut();
        let mut changing = rows_of(w, d, union);
        for (block, (neurons, w_block)) in union
            .chunks(NEURON_BLOCK)
            .zip(changing.chunks_mut(NEURON_BLOCK))
            .enumerate()
        {
            let columns = self
                .trees
                .point_matrix()
                .prepare_rows(&mut self.rows, neurons.len());
            let first_slot = block * NEURON_BLOCK;
            self.rows[..neurons.len() * stride]
                .par_chunks_mut(stride)
                .zip(w_block.par_iter_mut())
                .enumerate()
                .with_min_len(MIN_NEURONS_PER_TASK)
                .for_each(|(offset, (row, w_r))| {
                    let slot = first_slot + offset;
                    let coef = neuron_coef(lr, scale, a[union[slot] as usize]);
                    neuron_step(w_r, sets.slot_points(slot), errors, x, coef, row);
                    w_r.copy_from_slice(&row[..d]);
                });
            self.trees.set_values(neurons, &self.rows, columns);
        }
        self.trees.fix_levels(union);

        Ok(Outcome {
            loss,
            firing_fraction: self.sets.firing_fraction(),
            union: union.len(),
        })
    }
}

/// The rows (`d` wide) of `w` for the strictly increasing `neurons`, as disjoint slices.
fn rows_of<'w>(w: &'w mut [f32], d: usize, neurons: &[u32]) -> Vec<&'w mut [f32]> {
    let mut rows = Vec::with_capacity(neurons.len());
    let (mut rest, mut rest_start) = (w, 0);
    for &r in neurons {
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(r as usize * d - rest_start);
        let (row, tail) = tail.split_at_mut(d);
        rows.push(row);
        (rest, rest_start) = (tail, (r as usize + 1) * d);
    }
    rows
}
