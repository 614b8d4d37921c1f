//! Per-token negative log-likelihood `logsumexp(logits) − logits[target]` as one fused flex
//! operation with its own backward, a seft backend extension ([`TokenNll`]).
//!
//! Why: Burn's `log_softmax` + `gather` makes about six passes over the `[tokens, vocab]`
//! logits forward (200 MB for 4 × 256 tokens of SmolLM2's 49,152-word vocabulary, measured in
//! experiments/sft_speed) and differentiates each of them. Here the forward reads each row once for its maximum and once through the
//! AVX2 `exp` for its sum; the backward writes `softmax − one-hot` in one pass. The log-sum-exp
//! is summed in f64. Other backends keep the unfused computation in `train/loss.rs`.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Shape, Tensor, TensorData};
use rayon::prelude::*;

use super::flex_data::{f32_tensor, f32_values};
use crate::numeric::kernels::exp_in_place;

/// `−log softmax(logits)[target]` for each row of `logits` `[rows, vocab]`; `targets` `[rows]`
/// holds the target ids as floats, negative where a row has no target (its value is 0 and it
/// gets no gradient).
#[backend_extension(Flex, Autodiff)]
pub trait TokenNll: Backend {
    fn float_token_nll(logits: FloatTensor<Self>, targets: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl TokenNll for Flex {
    fn float_token_nll(logits: FloatTensor<Self>, targets: FloatTensor<Self>) -> FloatTensor<Self> {
        forward(logits, &targets).0
    }
}

impl<C: CheckpointStrategy> TokenNll for Autodiff<Flex, C> {
    fn float_token_nll(logits: FloatTensor<Self>, targets: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct TokenNllBackward;

        impl Backward<Flex, 1> for TokenNllBackward {
            /// The logits' node, each row's log-sum-exp and the targets.
            type State = (NodeId, FlexTensor, FlexTensor);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let (logits_id, lse, targets) = ops.state;
                let logits: FlexTensor = checkpointer.retrieve_node_output(logits_id);
                unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                    backward(&logits, &lse, &targets, &grad)
                });
            }
        }

        let targets = targets.into_primitive();
        match TokenNllBackward
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let logits_id = prep.checkpoint(&logits);
                let (nll, lse) = forward(logits.into_primitive(), &targets);
                prep.finish((logits_id, lse, targets), nll)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(logits.into_primitive(), &targets).0),
        }
    }
}

/// The fused per-row NLL of `logits` `[rows, vocab]` against `targets` (see [`TokenNll`]);
/// every target must be below `vocab`.
pub fn token_nll(logits: Tensor<2>, targets: &[i64]) -> Tensor<1> {
    let device = logits.device();
    let ids: Vec<f32> = targets
        .iter()
        .map(|&t| if t >= 0 { t as f32 } else { -1.0 })
        .collect();
    let ids = Tensor::<1>::from_data(TensorData::new(ids, [targets.len()]), &device);
    Tensor::from_dispatch(<Dispatch as TokenNll>::float_token_nll(
        logits.into_dispatch(),
        ids.into_dispatch(),
    ))
}

/// (NLL per row, log-sum-exp per row).
fn forward(logits: FlexTensor, targets: &FlexTensor) -> (FlexTensor, FlexTensor) {
    let shape = logits.layout().shape().clone();
    assert_eq!(
        shape.num_dims(),
        2,
        "token_nll: logits must be [rows, vocab]"
    );
    let (rows, vocab) = (shape[0], shape[1]);
    let x = f32_values(&logits);
    let t = f32_values(targets);
    assert_eq!(t.len(), rows, "token_nll: one target per row");
    let mut nll = vec![0f32; rows];
    let mut lse = vec![0f32; rows];
    nll.par_iter_mut()
        .zip(lse.par_iter_mut())
        .enumerate()
        .for_each_init(
            || vec![0f32; vocab],
            |scratch, (r, (nll, lse))| {
                let target = t[r];
                if target < 0.0 {
                    return;
                }
                let row = &x[r * vocab..(r + 1) * vocab];
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                scratch.iter_mut().zip(row).for_each(|(s, &v)| *s = v - max);
                exp_in_place(scratch);
                let sum: f64 = scratch.iter().map(|&e| e as f64).sum();
                let log_sum_exp = max as f64 + sum.ln();
                *lse = log_sum_exp as f32;
                *nll = (log_sum_exp - row[target as usize] as f64) as f32;
            },
        );
    (
        f32_tensor(nll, Shape::new([rows])),
        f32_tensor(lse, Shape::new([rows])),
    )
}

/// d logits = grad · (softmax − one-hot(target)) on rows with a target, 0 elsewhere.
fn backward(
    logits: &FlexTensor,
    lse: &FlexTensor,
    targets: &FlexTensor,
    grad: &FlexTensor,
) -> FlexTensor {
    let shape = logits.layout().shape().clone();
    let vocab = shape[1];
    let x = f32_values(logits);
    let (lse, t, g) = (f32_values(lse), f32_values(targets), f32_values(grad));
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(vocab).enumerate().for_each(|(r, out)| {
        let target = t[r];
        if target < 0.0 {
            return;
        }
        let row = &x[r * vocab..(r + 1) * vocab];
        out.iter_mut().zip(row).for_each(|(o, &v)| *o = v - lse[r]);
        exp_in_place(out);
        let scale = g[r];
        out.iter_mut().for_each(|o| *o *= scale);
        out[target as usize] -= scale;
    });
    f32_tensor(out, shape)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use crate::fused::token_nll_sum_composed;
    use crate::numeric::to_f32_vec;

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Loss and logits gradient of the fused operation equal log_softmax + gather, with rows
    /// that have no target, on an upstream gradient that is not all ones.
    #[test]
    fn fused_nll_matches_log_softmax_and_gather() {
        let device = Device::flex().autodiff();
        let (rows, vocab) = (9, 1003);
        let logits = Tensor::<2>::random([rows, vocab], Distribution::Normal(0.0, 4.0), &device);
        let targets: Vec<i64> = vec![0, 17, -100, 1002, 5, -1, 640, 640, 3];
        let weights =
            Tensor::<1>::from_floats([1.0, 2.0, 0.5, -1.0, 3.0, 1.0, 0.25, 1.0, 2.0], &device);
        let run = |fused: bool| {
            let x = logits.clone().detach().require_grad();
            let per_row = if fused {
                super::token_nll(x.clone(), &targets)
            } else {
                // The reference gives only the sum; rows are recovered one at a time.
                Tensor::cat(
                    (0..rows)
                        .map(|r| {
                            token_nll_sum_composed(
                                x.clone().slice([r..r + 1, 0..vocab]),
                                &targets[r..r + 1],
                            )
                        })
                        .collect(),
                    0,
                )
            };
            let loss = (per_row.clone() * weights.clone()).sum();
            let grads = loss.backward();
            let grad = x.grad(&grads).expect("logits gradient");
            (to_f32_vec(per_row), to_f32_vec(grad))
        };
        assert!(super::super::on_flex_f32(&logits));
        let (fused_nll, fused_grad) = run(true);
        let (reference_nll, reference_grad) = run(false);
        assert!(
            fused_nll[2] == 0.0 && fused_nll[5] == 0.0,
            "rows without target"
        );
        assert!(fused_nll[0] > 1.0, "a real loss: {}", fused_nll[0]);
        let nll_diff = max_abs_diff(&fused_nll, &reference_nll);
        let grad_diff = max_abs_diff(&fused_grad, &reference_grad);
        let grad_scale = reference_grad.iter().fold(0f32, |m, g| m.max(g.abs()));
        assert!(nll_diff < 1e-4, "nll differs by {nll_diff}");
        assert!(
            grad_diff < 2e-6 * grad_scale,
            "gradient differs by {grad_diff} (largest {grad_scale})"
        );
        assert!(fused_grad[2 * vocab..3 * vocab].iter().all(|&g| g == 0.0));
    }
}
