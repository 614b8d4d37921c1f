//! Causal-LM cross-entropy summed over target tokens only; the caller divides by the number of
//! target tokens of the whole accumulated batch, so gradient accumulation changes nothing.
//! On flex the per-token terms come from the fused operation ([`crate::fused::token_nll_sum`]).

use burn::tensor::Tensor;

use crate::numeric::to_f32_vec;

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
    (crate::fused::token_nll_sum(flat, targets), correct)
}

/// Scalar value of a 1-element tensor.
pub fn scalar(t: Tensor<1>) -> f64 {
    to_f32_vec(t)[0] as f64
}
