//! The `Auto` path: dense first, trees where they pay, measured rather than assumed.
//!
//! Two dense steps give the dense step time (the faster of the two, the first one warms gemm
//! up) and the firing statistics. A cost model from those statistics predicts a tree step's
//! time relative to a dense one: the tree path's gemm covers the union u of firing neurons
//! instead of 2·m neurons (forward and backward), and its gradient sums each firing pair's
//! point at roughly half gemm's speed, so ratio ≈ u/(2m) + k/m + a fixed overhead. Trees are
//! built only when the ratio is below [`PROBE_BELOW`] and the predicted saving over the steps
//! left exceeds [`MIN_SAVING`] dense steps (it has to pay for the build, measured at 0.4–2.1
//! dense steps, and for the tree steps that might prove slower); the build reuses the last
//! dense step's products and its spent update buffer (O(nm) plus gemms over the neurons that
//! step changed).
//! The thresholds come from the benchmark in experiments/sparse_firing_tree: configurations
//! predicted at 0.55–0.65 (90% sparsity, or a union of firing neurons near m) measured only
//! 0.9×–2× faster per tree step, too little to pay for the build within a short run, while
//! every configuration predicted below 0.5 measured at least 2× faster. Tree steps are then timed: two in a row slower
//! than the dense step send training back to dense for the rest of the run. Whichever path
//! runs, the iterates are the same up to float rounding.

use std::time::Instant;

use super::dense::DenseStepper;
use super::network::{ShiftedReluNet, TrainData};
use super::train::{StepPath, TrainParams, TrainReport};
use super::tree_step::TreeStepper;
use crate::error::Result;

/// Dense steps timed before deciding.
const DENSE_STEPS_FIRST: usize = 2;
/// Predicted tree/dense time ratio below which trees are tried.
const PROBE_BELOW: f64 = 0.5;
/// Predicted saving, in dense steps, that building trees must promise.
const MIN_SAVING: f64 = 3.0;
/// Consecutive slower tree steps that end the tree path.
const SLOW_STEPS_TO_FALL_BACK: usize = 2;
/// Fixed part of a tree step relative to a dense one (queries, tree fixes, dispatch).
const TREE_OVERHEAD: f64 = 0.05;

/// Predicted time of a tree step over a dense step, from one dense step's statistics.
pub(crate) fn predicted_tree_ratio(firing_fraction: f64, union_fraction: f64) -> f64 {
    0.5 * union_fraction + firing_fraction + TREE_OVERHEAD
}

pub(crate) fn train_auto(
    net: &mut ShiftedReluNet,
    data: &TrainData<'_>,
    config: &TrainParams,
    report: &mut TrainReport,
) -> Result<()> {
    let mut dense = DenseStepper::new(data);
    let mut trees: Option<TreeStepper> = None;
    let (mut dense_seconds, mut tried_trees, mut slow_steps) = (f64::INFINITY, false, 0);
    for step in 0..config.steps {
        let started = Instant::now();
        if let Some(stepper) = trees.as_mut() {
            let outcome = stepper.step(net, data, config.lr)?;
            report.record(outcome, StepPath::FiringTree, started);
            let seconds = report.steps[step].seconds;
            slow_steps = if seconds > dense_seconds {
                slow_steps + 1
            } else {
                0
            };
            if slow_steps >= SLOW_STEPS_TO_FALL_BACK {
                trees = None;
            }
            continue;
        }
        let outcome = dense.step(net, data, config.lr)?;
        report.record(outcome, StepPath::Dense, started);
        dense_seconds = dense_seconds.min(report.steps[step].seconds);
        let union_fraction = outcome.union as f64 / net.width() as f64;
        let ratio = predicted_tree_ratio(outcome.firing_fraction, union_fraction);
        let saving = (config.steps - step - 1) as f64 * (1.0 - ratio);
        if !tried_trees
            && step + 1 >= DENSE_STEPS_FIRST
            && ratio < PROBE_BELOW
            && saving > MIN_SAVING
        {
            tried_trees = true;
            let started = Instant::now();
            let spent = std::mem::replace(&mut dense, DenseStepper::new(data));
            trees = Some(spent.into_tree_stepper(net, data));
            report.build_seconds += started.elapsed().as_secs_f64();
        }
    }
    Ok(())
}
