//! Batch-1 decoding of the ReLU-MLP decoder variant through its firing set.
//!
//! The variant's block is `down(relu(up(x) − b))`. At batch 1 the hidden vector has k
//! firing entries out of m, so the down projection needs only those k rows of its weight:
//! `out = Σ_{r fires} (up(x)_r − b) · W_down[r, :]`, k·h multiply-adds instead of m·h. The
//! up projection still runs dense: the firing set is only known after it (the firing-tree
//! of arXiv:2211.14227 needs inputs fixed across iterations, and a decoder's inputs change
//! every token). Measured in `experiments/relu_decode`; [`FiringRowsDown`] is used only where
//! it was enabled explicitly ([`enable_firing_rows_decode`]), as the model's
//! [`ReluBlockHook`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::{Tensor, TensorData};

use crate::model::llama::{CausalLm, ReluBlockHook};
use crate::numeric::to_f32_vec;

/// Above this firing fraction a step goes back to the dense down projection: per row, the
/// loop below costs about twice the gemm's time, so the rows stop paying near 45% firing
/// (measured in `experiments/relu_decode`: block 0.98× at 50%, 1.45× at 10%).
pub const DENSE_ABOVE: f64 = 0.35;

/// A row-major copy of a ReLU block's down projection, read one firing row at a time.
///
/// It is a snapshot: weights changed after it was taken are not seen, so it is for
/// inference only.
#[derive(Debug)]
pub struct FiringRowsDown {
    /// [m, h]: row r holds neuron r's outgoing weights (Burn's `Linear` layout).
    rows: Vec<f32>,
    bias: Option<Vec<f32>>,
    width: usize,
    hidden: usize,
    threshold: f32,
    fired: AtomicU64,
    seen: AtomicU64,
}

impl FiringRowsDown {
    /// Copies the down projection (weight [m, h], optional bias [h]).
    pub fn new(weight: Tensor<2>, bias: Option<Tensor<1>>, threshold: f64) -> Self {
        let [width, hidden] = weight.dims();
        FiringRowsDown {
            rows: to_f32_vec(weight),
            bias: bias.map(to_f32_vec),
            width,
            hidden,
            threshold: threshold as f32,
            fired: AtomicU64::new(0),
            seen: AtomicU64::new(0),
        }
    }

    /// Adds the firing rows of `pre` = up(x) (length m) into `out` (length h, starting from
    /// the bias or zero). Returns the number of firing neurons.
    pub fn accumulate(&self, pre: &[f32], out: &mut [f32]) -> usize {
        debug_assert_eq!(pre.len(), self.width);
        debug_assert_eq!(out.len(), self.hidden);
        match &self.bias {
            Some(b) => out.copy_from_slice(b),
            None => out.fill(0.0),
        }
        let mut fired = 0;
        for (r, &z) in pre.iter().enumerate() {
            // Same activation as the dense path: relu(z − b), strict firing.
            let a = z - self.threshold;
            if a > 0.0 {
                fired += 1;
                let row = &self.rows[r * self.hidden..(r + 1) * self.hidden];
                for (o, w) in out.iter_mut().zip(row) {
                    *o += a * w;
                }
            }
        }
        self.fired.fetch_add(fired as u64, Ordering::Relaxed);
        self.seen.fetch_add(self.width as u64, Ordering::Relaxed);
        fired
    }

    /// The block's output [1, 1, h] for the up projection's output [1, 1, m], or None when
    /// more than [`DENSE_ABOVE`] of the neurons fire (the caller then runs the dense path).
    pub fn forward(&self, pre: Tensor<3>) -> Option<Tensor<3>> {
        let device = pre.device();
        let pre = to_f32_vec(pre);
        let firing = pre.iter().filter(|&&z| z - self.threshold > 0.0).count();
        if firing as f64 > DENSE_ABOVE * self.width as f64 {
            self.fired.fetch_add(firing as u64, Ordering::Relaxed);
            self.seen.fetch_add(self.width as u64, Ordering::Relaxed);
            return None;
        }
        let mut out = vec![0.0f32; self.hidden];
        self.accumulate(&pre, &mut out);
        Some(Tensor::from_data(
            TensorData::new(out, [1, 1, self.hidden]),
            &device,
        ))
    }
}

impl ReluBlockHook for FiringRowsDown {
    fn forward(&self, pre: Tensor<3>) -> Option<Tensor<3>> {
        FiringRowsDown::forward(self, pre)
    }

    /// NaN before the first call.
    fn firing_fraction(&self) -> f64 {
        let seen = self.seen.load(Ordering::Relaxed);
        self.fired.load(Ordering::Relaxed) as f64 / seen as f64
    }

    fn reset_counts(&self) {
        self.fired.store(0, Ordering::Relaxed);
        self.seen.store(0, Ordering::Relaxed);
    }
}

/// Makes batch-1 steps of a ReLU-MLP model compute only the firing rows of each down
/// projection (measured in `experiments/relu_decode`). The rows are a snapshot of the
/// current weights: for inference after training, not during it. Returns false, and changes
/// nothing, for SwiGLU models.
pub fn enable_firing_rows_decode(net: &mut CausalLm) -> bool {
    net.install_relu_hooks(|mlp| {
        Arc::new(FiringRowsDown::new(
            mlp.down_proj.weight.val(),
            mlp.down_proj.bias.as_ref().map(|b| b.val()),
            mlp.relu_threshold,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn firing_rows_give_the_dense_relu_block() {
        let device = Device::flex();
        let (m, h) = (7, 3);
        let w: Vec<f32> = (0..m * h)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0)
            .collect();
        let bias = vec![0.5f32, -0.25, 0.0];
        let pre = vec![0.3f32, -1.0, 0.1, 2.0, 0.1, -0.2, 0.9];
        let threshold = 0.1;
        let weight = Tensor::<2>::from_data(TensorData::new(w.clone(), [m, h]), &device);
        let rows = FiringRowsDown::new(
            weight,
            Some(Tensor::from_data(
                TensorData::new(bias.clone(), [h]),
                &device,
            )),
            threshold,
        );
        let mut out = vec![0.0; h];
        // Ties at the threshold (0.1) do not fire, as relu(0) = 0 in the dense path.
        assert_eq!(rows.accumulate(&pre, &mut out), 3);
        for c in 0..h {
            let dense: f32 = bias[c]
                + (0..m)
                    .map(|r| (pre[r] - threshold as f32).max(0.0) * w[r * h + c])
                    .sum::<f32>();
            assert!((out[c] - dense).abs() < 1e-6, "{c}: {} vs {dense}", out[c]);
        }
        assert!((rows.firing_fraction() - 3.0 / 7.0).abs() < 1e-12);
        // 3 of 7 fire (43% > DENSE_ABOVE): the dense path takes over.
        let pre_tensor = Tensor::<3>::from_data(TensorData::new(pre.clone(), [1, 1, m]), &device);
        assert!(rows.forward(pre_tensor).is_none());
        let sparse_pre: Vec<f32> = pre
            .iter()
            .map(|&z| if z > 1.0 { z } else { -1.0 })
            .collect();
        let pre_tensor = Tensor::<3>::from_data(TensorData::new(sparse_pre, [1, 1, m]), &device);
        assert!(rows.forward(pre_tensor).is_some());
    }
}
