//! RMSNorm `x / sqrt(mean(x²) + eps) · w` over the last axis as one fused flex operation with
//! its own backward ([`RmsNormOp`], a backend extension).
//!
//! Why: Burn composes it from a square, a mean, an addition, a square root, a reciprocal and two
//! products, each a pass with its own allocation, and differentiates each of them; a
//! SmolLM2 step runs 61 norms forward and backward. Here the forward is one pass and the
//! backward one pass for the input's gradient plus per-thread partial sums for the weight's.
//! Sums of squares are taken in f64.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Shape, Tensor};
use rayon::prelude::*;

use super::flex_data::{PARALLEL_MIN, f32_tensor, f32_values};

/// Rows per parallel task in the backward; fixed, so the weight gradient's partial sums are
/// added in the same order on every run (bitwise-reproducible training).
const ROWS_PER_TASK: usize = 64;

/// RMSNorm of `x` `[.., d]` with scale `weight` `[d]`.
#[backend_extension(Flex, Autodiff)]
pub trait RmsNormOp: Backend {
    fn float_rms_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self>;
}

impl RmsNormOp for Flex {
    fn float_rms_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        forward(&x, &weight, eps).0
    }
}

impl<C: CheckpointStrategy> RmsNormOp for Autodiff<Flex, C> {
    fn float_rms_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct RmsNormBackward;

        impl Backward<Flex, 2> for RmsNormBackward {
            /// The input's and the weight's nodes and each row's 1 / rms.
            type State = (NodeId, NodeId, FlexTensor);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let (x_id, weight_id, inv_rms) = ops.state;
                let x: FlexTensor = checkpointer.retrieve_node_output(x_id);
                let weight: FlexTensor = checkpointer.retrieve_node_output(weight_id);
                let grad = grads.consume::<Flex>(&ops.node);
                let [x_parent, weight_parent] = ops.parents;
                let (d_x, d_weight) =
                    backward(&x, &weight, &inv_rms, &grad, weight_parent.is_some());
                if let Some(node) = x_parent {
                    grads.register::<Flex>(node.id, d_x);
                }
                if let (Some(node), Some(d_weight)) = (weight_parent, d_weight) {
                    grads.register::<Flex>(node.id, d_weight);
                }
            }
        }

        match RmsNormBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let (x_id, weight_id) = (prep.checkpoint(&x), prep.checkpoint(&weight));
                let (out, inv_rms) = forward(x.primitive(), weight.primitive(), eps);
                prep.finish((x_id, weight_id, inv_rms), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(forward(x.primitive(), weight.primitive(), eps).0)
            }
        }
    }
}

/// [`RmsNormOp`] on `f32` flex tensors: `x` `[.., d]`, `weight` `[d]`.
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: Tensor<1>, eps: f64) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as RmsNormOp>::float_rms_norm(
        x.into_dispatch(),
        weight.into_dispatch(),
        eps,
    ))
}

/// (normalized and scaled x, 1 / rms per row).
fn forward(x: &FlexTensor, weight: &FlexTensor, eps: f64) -> (FlexTensor, FlexTensor) {
    let shape = x.layout().shape().clone();
    let (x, w) = (f32_values(x), f32_values(weight));
    let d = w.len();
    assert!(
        d > 0 && x.len() % d == 0,
        "rms_norm: last axis must match the weight"
    );
    let rows = x.len() / d;
    let mut out = vec![0f32; x.len()];
    let mut inv_rms = vec![0f32; rows];
    let normalize_row = |(r, (out, inv)): (usize, (&mut [f32], &mut f32))| {
        let row = &x[r * d..(r + 1) * d];
        let mean_square = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / d as f64;
        let r_inv = (1.0 / (mean_square + eps).sqrt()) as f32;
        *inv = r_inv;
        for ((o, &v), &w) in out.iter_mut().zip(row).zip(w.iter()) {
            *o = w * (v * r_inv);
        }
    };
    if x.len() < PARALLEL_MIN {
        let rows = out.chunks_mut(d).zip(inv_rms.iter_mut()).enumerate();
        rows.for_each(normalize_row);
    } else {
        let rows = out
            .par_chunks_mut(d)
            .zip(inv_rms.par_iter_mut())
            .enumerate();
        rows.for_each(normalize_row);
    }
    (
        f32_tensor(out, shape.clone()),
        f32_tensor(inv_rms, Shape::new([rows])),
    )
}

/// d x = r · (g·w − x̂ · mean(g·w·x̂)) with x̂ = x · r; d w = Σ_rows g · x̂ (when wanted).
fn backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    inv_rms: &FlexTensor,
    grad: &FlexTensor,
    weight_gradient: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    let shape = x.layout().shape().clone();
    let (x, w, inv, g) = (
        f32_values(x),
        f32_values(weight),
        f32_values(inv_rms),
        f32_values(grad),
    );
    let d = w.len();
    let mut d_x = vec![0f32; x.len()];
    let partials: Vec<Vec<f64>> = d_x
        .par_chunks_mut(d * ROWS_PER_TASK)
        .enumerate()
        .map(|(task, d_x)| {
            let mut d_w = if weight_gradient {
                vec![0f64; d]
            } else {
                Vec::new()
            };
            for (i, d_x) in d_x.chunks_mut(d).enumerate() {
                let r = task * ROWS_PER_TASK + i;
                let (row, g) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
                let r_inv = inv[r];
                let dot: f64 = (0..d)
                    .map(|j| (g[j] * w[j]) as f64 * (row[j] * r_inv) as f64)
                    .sum();
                let mean = (dot / d as f64) as f32;
                for j in 0..d {
                    let normalized = row[j] * r_inv;
                    d_x[j] = r_inv * (g[j] * w[j] - normalized * mean);
                    if weight_gradient {
                        d_w[j] += (g[j] * normalized) as f64;
                    }
                }
            }
            d_w
        })
        .collect();
    let d_weight = weight_gradient.then(|| {
        let mut total = vec![0f64; d];
        for partial in &partials {
            total.iter_mut().zip(partial).for_each(|(t, p)| *t += p);
        }
        f32_tensor(
            total.into_iter().map(|v| v as f32).collect(),
            Shape::new([d]),
        )
    });
    (f32_tensor(d_x, shape), d_weight)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use crate::fused::{max_rel_diff, rms_norm_composed};

    /// Value and both gradients equal the composed RMSNorm (transformers' formula), with
    /// more rows than one backward task holds.
    #[test]
    fn fused_rms_norm_matches_composed_ops() {
        let device = Device::flex().autodiff();
        let (b, s, d) = (3, 50, 96);
        let x = Tensor::<3>::random([b, s, d], Distribution::Normal(0.5, 2.0), &device);
        let weight = Tensor::<1>::random([d], Distribution::Normal(1.0, 0.3), &device);
        let upstream = Tensor::<3>::random([b, s, d], Distribution::Normal(0.0, 1.0), &device);
        let eps = 1e-5;
        let run = |fused: bool| {
            let (x, w) = (
                x.clone().detach().require_grad(),
                weight.clone().detach().require_grad(),
            );
            let out = if fused {
                super::rms_norm(x.clone(), w.clone(), eps)
            } else {
                rms_norm_composed(x.clone(), w.clone(), eps)
            };
            let grads = (out.clone() * upstream.clone()).sum().backward();
            (
                out.detach(),
                x.grad(&grads).expect("input gradient"),
                w.grad(&grads).expect("weight gradient"),
            )
        };
        let (out, d_x, d_w) = run(true);
        let (want, want_x, want_w) = run(false);
        let diffs = [
            max_rel_diff(out, want),
            max_rel_diff(d_x, want_x),
            max_rel_diff(d_w, want_w),
        ];
        assert!(
            diffs.iter().all(|&e| e < 1e-5),
            "value, d x, d w differ by {diffs:?}"
        );
    }
}
