//! A yes/no quality gate: the shifted-ReLU network trained as a binary classifier on frozen
//! embeddings (targets ±1, squared loss, prediction = sign of the output).
//!
//! Embeddings are centred on the training mean and scaled to unit norm, the paper's setting,
//! where ⟨w_r, x⟩ ~ N(0, 1) at initialisation so the threshold b fixes the firing fraction
//! p = P(N(0, 1) > b). The default step size 1/(n·p) keeps gradient descent stable: the
//! network's kernel has trace about n·p, which bounds its largest eigenvalue.

use super::network::{ShiftedReluNet, TrainData};
use super::train::{TrainParams, TrainPath, TrainReport, train};
use crate::error::{Result, SeftError};
use crate::numeric::validate::{check_finite, check_shape};

/// How the gate's network is built and trained: `GateParams { width, .. }.fit(x, labels, d)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GateParams {
    /// Neurons m.
    pub width: usize,
    /// Shift b; `None` takes the theory's √(0.4 ln m).
    pub threshold: Option<f32>,
    /// Full-batch gradient-descent steps.
    pub steps: usize,
    /// Step size; `None` takes 1/(n·p).
    pub lr: Option<f32>,
    pub path: TrainPath,
    pub seed: u64,
}

impl GateParams {
    /// Trains a gate on `embeddings` (`n × dim`, row-major) with `labels` (true = pass).
    pub fn fit(
        &self,
        embeddings: &[f32],
        labels: &[bool],
        dim: usize,
    ) -> Result<(QualityGate, TrainReport)> {
        QualityGate::fit(embeddings, labels, dim, self)
    }
}

impl Default for GateParams {
    fn default() -> Self {
        GateParams {
            width: 4096,
            threshold: None,
            steps: 200,
            lr: None,
            path: TrainPath::Auto,
            seed: 0,
        }
    }
}

/// A trained gate.
#[derive(Clone, Debug)]
pub struct QualityGate {
    net: ShiftedReluNet,
    mean: Vec<f32>,
}

impl QualityGate {
    fn fit(
        embeddings: &[f32],
        labels: &[bool],
        dim: usize,
        config: &GateParams,
    ) -> Result<(Self, TrainReport)> {
        check_shape(
            "embeddings",
            embeddings.len(),
            labels.len(),
            dim,
            "embeddings (one per label)",
        )?;
        check_finite("embeddings", embeddings)?;
        let n = labels.len();
        let mut mean = vec![0.0f64; dim];
        for row in embeddings.chunks(dim) {
            for (acc, &v) in mean.iter_mut().zip(row) {
                *acc += f64::from(v) / n as f64;
            }
        }
        let mean: Vec<f32> = mean.into_iter().map(|v| v as f32).collect();
        let x = normalize(embeddings, &mean);
        let y: Vec<f32> = labels
            .iter()
            .map(|&pass| if pass { 1.0 } else { -1.0 })
            .collect();
        let b = config
            .threshold
            .unwrap_or_else(|| ShiftedReluNet::theory_threshold(config.width));
        let mut net = ShiftedReluNet::random(config.width, dim, b, config.seed)?;
        let lr = match config.lr {
            Some(lr) => lr,
            None => (1.0 / (n as f64 * net.expected_firing_fraction().max(1e-6))) as f32,
        };
        let data = TrainData::new(&x, &y, dim)?;
        let train_config = TrainParams {
            lr,
            steps: config.steps,
            path: config.path,
        };
        let report = train(&mut net, &data, &train_config)?;
        Ok((QualityGate { net, mean }, report))
    }

    /// Network outputs (positive = pass) for `embeddings` (`n × dim`).
    pub fn scores(&self, embeddings: &[f32]) -> Result<Vec<f32>> {
        let dim = self.mean.len();
        if embeddings.is_empty() || !embeddings.len().is_multiple_of(dim) {
            return Err(SeftError::Invalid(format!(
                "embeddings have {} values, expected a positive multiple of dimension {dim}",
                embeddings.len()
            )));
        }
        check_finite("embeddings", embeddings)?;
        self.net.predict(&normalize(embeddings, &self.mean))
    }

    /// Pass (true) where the score is positive.
    pub fn predict(&self, embeddings: &[f32]) -> Result<Vec<bool>> {
        Ok(self
            .scores(embeddings)?
            .into_iter()
            .map(|s| s > 0.0)
            .collect())
    }

    /// Fraction of `labels` predicted right.
    pub fn accuracy(&self, embeddings: &[f32], labels: &[bool]) -> Result<f64> {
        let predicted = self.predict(embeddings)?;
        if predicted.len() != labels.len() {
            return Err(SeftError::Invalid(format!(
                "{} labels for {} embeddings",
                labels.len(),
                predicted.len()
            )));
        }
        let right = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
        Ok(right as f64 / labels.len() as f64)
    }

    /// The trained network (on centred, unit-norm embeddings).
    pub fn network(&self) -> &ShiftedReluNet {
        &self.net
    }

    /// The training mean the embeddings are centred on.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// A gate from a saved network and centring mean (see [`network`](Self::network),
    /// [`mean`](Self::mean)).
    pub fn from_parts(net: ShiftedReluNet, mean: Vec<f32>) -> Result<Self> {
        if mean.len() != net.dim() {
            return Err(SeftError::Invalid(format!(
                "gate mean has dimension {}, its network {}",
                mean.len(),
                net.dim()
            )));
        }
        check_finite("gate mean", &mean)?;
        Ok(QualityGate { net, mean })
    }
}

/// Rows centred on `mean` and scaled to unit norm (a row equal to the mean stays zero).
fn normalize(embeddings: &[f32], mean: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(embeddings.len());
    for row in embeddings.chunks(mean.len()) {
        let start = out.len();
        out.extend(row.iter().zip(mean).map(|(v, m)| v - m));
        let norm = out[start..].iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            out[start..].iter_mut().for_each(|v| *v /= norm);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;
    use crate::sparse::random::gaussian_vec;

    /// Two Gaussian clusters at ±2·e_0 with unit noise, plus a common offset.
    fn clusters(n: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<bool>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut x = gaussian_vec(&mut rng, n * d);
        let labels: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        for (row, &pass) in x.chunks_mut(d).zip(&labels) {
            row[0] += if pass { 2.0 } else { -2.0 };
            row[1] += 5.0;
        }
        (x, labels)
    }

    #[test]
    fn separates_clusters() {
        let d = 16;
        let (x, labels) = clusters(80, d, 1);
        let (test_x, test_labels) = clusters(200, d, 2);
        let config = GateParams {
            width: 2048,
            steps: 60,
            ..GateParams::default()
        };
        let (gate, report) = config.fit(&x, &labels, d).unwrap();
        let losses: Vec<f64> = report.steps.iter().map(|s| s.loss).collect();
        assert!(losses.last() < losses.first(), "{losses:?}");
        assert!(gate.accuracy(&x, &labels).unwrap() >= 0.95);
        assert!(gate.accuracy(&test_x, &test_labels).unwrap() >= 0.9);
        let trees = GateParams {
            path: TrainPath::FiringTree,
            ..config
        };
        let (tree_gate, _) = trees.fit(&x, &labels, d).unwrap();
        let dense = GateParams {
            path: TrainPath::Dense,
            ..config
        };
        let (dense_gate, _) = dense.fit(&x, &labels, d).unwrap();
        assert_eq!(
            tree_gate.predict(&test_x).unwrap(),
            dense_gate.predict(&test_x).unwrap()
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        let config = GateParams {
            width: 64,
            steps: 2,
            ..GateParams::default()
        };
        assert!(config.fit(&[0.0; 6], &[true, false], 2).is_err());
        assert!(config.fit(&[], &[], 2).is_err());
        assert!(config.fit(&[f32::NAN, 0.0], &[true], 2).is_err());
        let (gate, _) = config
            .fit(&[1.0, 0.0, 0.0, 1.0], &[true, false], 2)
            .unwrap();
        assert!(gate.scores(&[1.0; 3]).is_err());
        assert!(gate.scores(&[]).is_err());
        assert!(gate.accuracy(&[1.0; 4], &[true]).is_err());
    }
}
