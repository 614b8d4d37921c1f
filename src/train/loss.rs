//! Causal-LM cross-entropy summed over target tokens only; the caller divides by the number of
//! target tokens of the whole accumulated batch, so gradient accumulation changes nothing.
//! On flex the per-token terms come from the fused operation in `fused/nll.rs`.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::model::llama::to_f32_vec;

/// (sum of −log p(target) over targets ≥ 0, number of targets the argmax got right).
pub fn masked_token_loss(logits: Tensor<3>, targets: &[i64]) -> (Tensor<1>, usize) {
    let [b, t, v] = logits.dims();
    let flat = logits.reshape([b * t, v]);
    let predicted: Vec<i64> = {
        let arg = flat.clone().detach().argmax(1).reshape([b * t]);
        arg.into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .expect("int data")
    };
    let correct = predicted
        .iter()
        .zip(targets)
        .filter(|(p, t)| **t >= 0 && *p == *t)
        .count();
    match crate::fused::token_nll(&flat, targets) {
        Some(per_token) => (per_token.sum(), correct),
        None => (reference_nll_sum(flat, targets), correct),
    }
}

/// Σ −log softmax(row)[target] over the rows of `logits` `[rows, vocab]` whose target is
/// ≥ 0, with Burn's tensor operations (any backend; the reference for the fused flex path).
pub fn reference_nll_sum(logits: Tensor<2>, targets: &[i64]) -> Tensor<1> {
    let [rows, _] = logits.dims();
    let device = logits.device();
    let ids: Vec<i64> = targets.iter().map(|&t| t.max(0)).collect();
    let mask: Vec<f32> = targets
        .iter()
        .map(|&t| if t >= 0 { 1.0 } else { 0.0 })
        .collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [rows, 1]), &device);
    let mask = Tensor::<1>::from_data(TensorData::new(mask, [rows]), &device);
    let picked = log_softmax(logits, 1).gather(1, ids).reshape([rows]);
    (picked * mask).sum().neg()
}

/// Scalar value of a 1-element tensor.
pub fn scalar(t: Tensor<1>) -> f64 {
    to_f32_vec(t)[0] as f64
}
