//! Linear layers as one 2-D product over all rows ([`crate::fused::matmul_2d`]: per-thread
//! panels on flex), with a LoRA adapter applied in factored form: `x·W + s·(x·A)·B`, as peft
//! does, instead of materializing `W + s·A·B` as Burn's LoRA parameter does. With `W` frozen
//! the backward then needs no `d_in × d_out` weight gradient, only the rank-r ones.

use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::fused::matmul_2d;

/// `x · W (+ b)` over the last axis of `x`, with leading axes folded into rows; a LoRA
/// adapter on `W` is applied in factored form (see the module doc).
pub fn linear_forward<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let dims = x.dims();
    let [d_in, d_out] = layer.weight.base().dims();
    let rows = dims[..D - 1].iter().product::<usize>();
    let x = x.reshape([rows, d_in]);
    let y = match layer.weight.adapter() {
        Some(lora) => {
            let base = matmul_2d(x.clone(), layer.weight.base());
            let low = matmul_2d(x, lora.a.val()).matmul(lora.b.val());
            base + low.mul_scalar(lora.scale)
        }
        None => matmul_2d(x, layer.weight.val()),
    };
    let y = match &layer.bias {
        Some(bias) => y + bias.val().unsqueeze::<2>(),
        None => y,
    };
    let mut out_dims = dims;
    out_dims[D - 1] = d_out;
    y.reshape(out_dims)
}
