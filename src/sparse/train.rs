//! Full-batch gradient descent on ½ Σ_i (f(x_i) − y_i)², through a chosen path, with
//! per-step statistics: loss, firing fraction k/m, union of firing neurons, time.

use std::time::Instant;

use super::dense::{DenseStepper, Outcome, ReferenceStepper};
use super::network::{ShiftedReluNet, TrainData};
use super::tree::FiringTrees;
use super::tree_step::TreeStepper;
use crate::error::{Result, SeftError};
use crate::numeric::validate::check_scalar;

/// How training evaluates the layer. The paths compute the same iterates up to float rounding.
/// Written `dense`, `firing-tree` or `auto` in configs and on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainPath {
    /// All m neurons on all n points, forward and backward as one gemm each.
    Dense,
    /// Only the firing neurons, found by the firing trees (built once, O(nmd)).
    FiringTree,
    /// Starts dense and moves to the trees only where the measured firing statistics predict
    /// a gain; returns to dense for good if tree steps measure slower than dense steps.
    #[default]
    Auto,
}

impl TrainPath {
    pub fn name(self) -> &'static str {
        match self {
            TrainPath::Dense => "dense",
            TrainPath::FiringTree => "firing-tree",
            TrainPath::Auto => "auto",
        }
    }

    /// The path to compare with: dense for the tree paths, the trees for dense.
    pub fn other(self) -> TrainPath {
        match self {
            TrainPath::Dense => TrainPath::FiringTree,
            _ => TrainPath::Dense,
        }
    }
}

impl std::str::FromStr for TrainPath {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "dense" => Ok(TrainPath::Dense),
            "firing-tree" => Ok(TrainPath::FiringTree),
            "auto" => Ok(TrainPath::Auto),
            _ => Err(format!(
                "unknown training path {s:?} (expected dense, firing-tree or auto)"
            )),
        }
    }
}

/// Gradient-descent settings (the threshold b belongs to the network).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainParams {
    /// Step size η: W ← W − η ∇_W L.
    pub lr: f32,
    /// Number of full-batch steps.
    pub steps: usize,
    pub path: TrainPath,
}

impl TrainParams {
    /// Trains `net` on `data` ([`train`]).
    pub fn fit(&self, net: &mut ShiftedReluNet, data: &TrainData<'_>) -> Result<TrainReport> {
        train(net, data, self)
    }
}

/// The path one step took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepPath {
    Dense,
    FiringTree,
    /// The same-order dense reference ([`train_reference`]).
    Reference,
}

/// One step's statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Loss of the weights before the step.
    pub loss: f64,
    /// Mean over points of k_i / m, the fraction of neurons firing.
    pub firing_fraction: f64,
    /// Neurons firing on at least one point: those whose weights the step changed.
    pub union: usize,
    pub path: StepPath,
    /// Wall time of the step.
    pub seconds: f64,
}

/// What training did, step by step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainReport {
    pub steps: Vec<StepStats>,
    /// Time spent building firing trees (0 where none were built).
    pub build_seconds: f64,
}

impl TrainReport {
    /// Build time plus the time of every step.
    pub fn total_seconds(&self) -> f64 {
        self.build_seconds + self.steps.iter().map(|s| s.seconds).sum::<f64>()
    }

    /// Number of steps taken through the firing trees.
    pub fn tree_steps(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.path == StepPath::FiringTree)
            .count()
    }

    pub(crate) fn record(&mut self, outcome: Outcome, path: StepPath, started: Instant) {
        self.steps.push(StepStats {
            loss: outcome.loss,
            firing_fraction: outcome.firing_fraction,
            union: outcome.union,
            path,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
}

/// Trains `net` on `data`. Every path computes the same gradient-descent iterates: the
/// firing-tree path bitwise equal to [`train_reference`], the dense path within float
/// rounding of it (gemm sums the gradient in another order). On error (for instance a
/// diverging loss) `net` keeps the weights of the last completed step.
pub fn train(
    net: &mut ShiftedReluNet,
    data: &TrainData<'_>,
    config: &TrainParams,
) -> Result<TrainReport> {
    net.check_data(data)?;
    check_scalar("learning rate", config.lr, true)?;
    let mut report = TrainReport::default();
    match config.path {
        TrainPath::Dense => {
            let mut dense = DenseStepper::new(data);
            for _ in 0..config.steps {
                let started = Instant::now();
                let outcome = dense.step(net, data, config.lr)?;
                report.record(outcome, StepPath::Dense, started);
            }
        }
        TrainPath::FiringTree => {
            if config.steps == 0 {
                return Ok(report);
            }
            let started = Instant::now();
            let (n, m, d) = (data.points(), net.width(), data.dim());
            let trees = FiringTrees::build(data.x(), n, d, net.weights(), m)?;
            report.build_seconds = started.elapsed().as_secs_f64();
            let mut stepper = TreeStepper::new(trees);
            for _ in 0..config.steps {
                let started = Instant::now();
                let outcome = stepper.step(net, data, config.lr)?;
                report.record(outcome, StepPath::FiringTree, started);
            }
        }
        TrainPath::Auto => super::auto::train_auto(net, data, config, &mut report)?,
    }
    check_converged(net)?;
    Ok(report)
}

/// Trains through the slow dense reference, which evaluates every neuron on every point but
/// sums each gradient in the tree path's order: for checking that path bit for bit.
pub fn train_reference(
    net: &mut ShiftedReluNet,
    data: &TrainData<'_>,
    lr: f32,
    steps: usize,
) -> Result<TrainReport> {
    net.check_data(data)?;
    check_scalar("learning rate", lr, true)?;
    let mut report = TrainReport::default();
    let mut reference = ReferenceStepper::new(data);
    for _ in 0..steps {
        let started = Instant::now();
        let outcome = reference.step(net, data, lr)?;
        report.record(outcome, StepPath::Reference, started);
    }
    check_converged(net)?;
    Ok(report)
}

/// Weights that overflowed may leave every neuron silent with a finite loss: caught here,
/// once per run (a per-step scan would cost the dense path O(md) every step).
fn check_converged(net: &ShiftedReluNet) -> Result<()> {
    match net.weights().iter().position(|w| !w.is_finite()) {
        None => Ok(()),
        Some(at) => Err(SeftError::Invalid(format!(
            "training diverged: weight {at} is {} (lower the learning rate)",
            net.weights()[at]
        ))),
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;
    use crate::sparse::random::gaussian_vec;

    /// Unit-norm Gaussian points and targets in [−1, 1].
    fn dataset(n: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut x = gaussian_vec(&mut rng, n * d);
        for row in x.chunks_mut(d) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            row.iter_mut().for_each(|v| *v /= norm);
        }
        let y = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        (x, y)
    }

    fn run(
        path: TrainPath,
        net: &ShiftedReluNet,
        data: &TrainData<'_>,
        lr: f32,
        steps: usize,
    ) -> (ShiftedReluNet, TrainReport) {
        let mut net = net.clone();
        let report = train(&mut net, data, &TrainParams { lr, steps, path }).unwrap();
        (net, report)
    }

    fn relative_difference(a: &[f32], b: &[f32]) -> f64 {
        let scale = b
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()))
            .max(f32::MIN_POSITIVE);
        let diff = a
            .iter()
            .zip(b)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        f64::from(diff / scale)
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn every_path_reproduces_the_dense_iterates() {
        let steps = 6;
        // (n, d, m, b, lr): typical, n = m = 1, padded depth, two depth chunks, 99% sparsity,
        // m below one gemm panel with most neurons firing, 50% and 99.9% sparsity.
        let cases = [
            (6, 20, 300, 0.8, 1.0),
            (1, 5, 1, 0.0, 0.5),
            (3, 2, 200, 0.5, 0.8),
            (4, 600, 150, 1.0, 1.0),
            (8, 16, 1000, 2.3, 8.0),
            (5, 12, 37, -0.2, 0.3),
            (16, 130, 2000, 0.0, 0.1),
            (32, 64, 5000, 3.09, 20.0),
            // Half the neurons fire: the union spans three blocks of recomputed products.
            (8, 24, 5000, 0.0, 0.1),
        ];
        for (case, &(n, d, m, b, lr)) in cases.iter().enumerate() {
            let (x, y) = dataset(n, d, case as u64);
            let data = TrainData::new(&x, &y, d).unwrap();
            let net = ShiftedReluNet::random(m, d, b, 10 + case as u64).unwrap();
            let mut reference = net.clone();
            let expected = train_reference(&mut reference, &data, lr, steps).unwrap();
            let (tree, tree_report) = run(TrainPath::FiringTree, &net, &data, lr, steps);
            assert_eq!(
                bits(tree.weights()),
                bits(reference.weights()),
                "case {case}"
            );
            for (got, want) in tree_report.steps.iter().zip(&expected.steps) {
                assert_eq!(got.loss.to_bits(), want.loss.to_bits(), "case {case}");
                assert_eq!(
                    (got.union, got.firing_fraction),
                    (want.union, want.firing_fraction)
                );
            }
            for path in [TrainPath::Dense, TrainPath::Auto] {
                let (other, _) = run(path, &net, &data, lr, steps);
                let difference = relative_difference(other.weights(), reference.weights());
                assert!(difference <= 1e-6, "case {case} {path:?}: {difference:e}");
            }
            if case == 0 {
                let moved = relative_difference(reference.weights(), net.weights());
                let fractions: Vec<f64> =
                    expected.steps.iter().map(|s| s.firing_fraction).collect();
                assert!(moved > 1e-3, "weights barely moved: {moved}");
                assert!(
                    fractions.windows(2).any(|w| w[0] != w[1]),
                    "firing never changed"
                );
                assert!(expected.steps[steps - 1].loss < expected.steps[0].loss);
            }
        }
    }

    #[test]
    fn statistics_count_the_firing_pairs() {
        let (x, y) = dataset(4, 8, 3);
        let data = TrainData::new(&x, &y, 8).unwrap();
        let net = ShiftedReluNet::random(500, 8, 1.0, 4).unwrap();
        let (_, report) = run(TrainPath::FiringTree, &net, &data, 0.5, 1);
        let trees = FiringTrees::build(&x, 4, 8, net.weights(), 500).unwrap();
        let lists: Vec<Vec<u32>> = (0..4).map(|i| trees.query(i, 1.0).unwrap()).collect();
        let pairs: usize = lists.iter().map(Vec::len).sum();
        let mut union: Vec<u32> = lists.concat();
        union.sort_unstable();
        union.dedup();
        let step = report.steps[0];
        assert_eq!(step.firing_fraction, pairs as f64 / 2000.0);
        assert_eq!(step.union, union.len());
        assert_eq!(step.path, StepPath::FiringTree);
    }

    #[test]
    fn auto_stays_dense_when_everything_fires() {
        let (x, y) = dataset(4, 8, 5);
        let data = TrainData::new(&x, &y, 8).unwrap();
        let net = ShiftedReluNet::random(400, 8, -10.0, 6).unwrap();
        let (_, report) = run(TrainPath::Auto, &net, &data, 0.01, 8);
        assert_eq!((report.tree_steps(), report.build_seconds), (0, 0.0));
        assert_eq!(report.steps.len(), 8);
    }

    #[test]
    fn auto_moves_to_trees_when_few_neurons_fire() {
        let (x, y) = dataset(4, 8, 9);
        let data = TrainData::new(&x, &y, 8).unwrap();
        let net = ShiftedReluNet::random(2000, 8, 2.3, 10).unwrap();
        let (_, report) = run(TrainPath::Auto, &net, &data, 5.0, 10);
        let paths: Vec<StepPath> = report.steps.iter().map(|s| s.path).collect();
        assert_eq!(
            paths[..4],
            [
                StepPath::Dense,
                StepPath::Dense,
                StepPath::FiringTree,
                StepPath::FiringTree
            ]
        );
        assert!(report.build_seconds > 0.0);
    }

    #[test]
    fn auto_switches_with_a_union_wider_than_one_block() {
        let (x, y) = dataset(32, 16, 11);
        let data = TrainData::new(&x, &y, 16).unwrap();
        let net = ShiftedReluNet::random(20_000, 16, 2.3, 12).unwrap();
        let mut reference = net.clone();
        train_reference(&mut reference, &data, 2.0, 8).unwrap();
        let (auto, report) = run(TrainPath::Auto, &net, &data, 2.0, 8);
        let switch = &report.steps[2];
        assert_eq!(switch.path, StepPath::FiringTree);
        assert!(
            switch.union > crate::sparse::tree::NEURON_BLOCK,
            "{}",
            switch.union
        );
        let difference = relative_difference(auto.weights(), reference.weights());
        assert!(difference <= 1e-6, "{difference:e}");
    }

    #[test]
    fn bad_settings_and_divergence_are_errors() {
        let (x, y) = dataset(3, 4, 7);
        let data = TrainData::new(&x, &y, 4).unwrap();
        let net = ShiftedReluNet::random(200, 4, 0.0, 8).unwrap();
        for path in [TrainPath::Dense, TrainPath::FiringTree, TrainPath::Auto] {
            for lr in [0.0, -1.0, f32::NAN, f32::INFINITY] {
                let mut copy = net.clone();
                assert!(train(&mut copy, &data, &TrainParams { lr, steps: 2, path }).is_err());
            }
            // One neuron, x = 1, w = 1, e = 1 − y: a step of f32::MAX overflows w to −∞ (the
            // neuron falls silent) for y = −3 and to +∞ (the output overflows) for y = 5.
            for y in [[-3.0], [5.0]] {
                let single = TrainData::new(&[1.0], &y, 1).unwrap();
                let mut one = ShiftedReluNet::new(vec![1.0], vec![1.0], 1, 0.0).unwrap();
                let diverging = TrainParams {
                    lr: f32::MAX,
                    steps: 3,
                    path,
                };
                let message = train(&mut one, &single, &diverging)
                    .unwrap_err()
                    .to_string();
                assert!(message.contains("diverged"), "{message}");
            }
            let (_, report) = run(path, &net, &data, 0.1, 0);
            assert!(report.steps.is_empty());
        }
        let other = ShiftedReluNet::random(200, 5, 0.0, 8).unwrap();
        let mut copy = other.clone();
        let config = TrainParams {
            lr: 0.1,
            steps: 1,
            path: TrainPath::Auto,
        };
        assert!(train(&mut copy, &data, &config).is_err());
        assert!(train_reference(&mut copy, &data, 0.1, 1).is_err());
    }
}
