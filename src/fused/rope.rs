//! Rotary position embedding fused with the move to attention heads: `x` `[b, s, n, d]` (a
//! projection's output split into heads) becomes `x·cos + rotate_half(x)·sin` laid out
//! `[b, n, s, d]`, as one flex operation with its own backward ([`RopeOp`], a backend
//! extension).
//!
//! Why: Burn composes it from a transpose, two slices, a negation, a concatenation, two
//! products and a sum, and differentiates each (a slice's backward writes into a fresh
//! zero tensor); that runs for queries and keys in each of a step's 30 layers. Here each
//! direction is one pass. `rotate_half` follows transformers: `[−x₂, x₁]` on the two halves
//! of each head.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Shape, Tensor};
use rayon::prelude::*;

use super::flex_data::{PARALLEL_MIN, f32_tensor, f32_values};

/// Rotary embedding of `x` `[b, s, n, d]` with tables `cos`, `sin` `[b, 1, s, d]` (constants),
/// returned as `[b, n, s, d]`.
#[backend_extension(Flex, Autodiff)]
pub trait RopeOp: Backend {
    fn float_rope_heads(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl RopeOp for Flex {
    fn float_rope_heads(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        forward(&x, &cos, &sin)
    }
}

impl<C: CheckpointStrategy> RopeOp for Autodiff<Flex, C> {
    fn float_rope_heads(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct RopeBackward;

        impl Backward<Flex, 1> for RopeBackward {
            /// The tables (the backward rotates the gradient back; `x` itself is not needed).
            type State = (FlexTensor, FlexTensor);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let (cos, sin) = ops.state;
                unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                    backward(&grad, &cos, &sin)
                });
            }
        }

        let (cos, sin) = (cos.into_primitive(), sin.into_primitive());
        match RopeBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let out = forward(x.primitive(), &cos, &sin);
                prep.finish((cos, sin), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), &cos, &sin)),
        }
    }
}

/// [`RopeOp`] on `f32` flex tensors.
pub fn rope_heads(x: Tensor<4>, cos: Tensor<4>, sin: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as RopeOp>::float_rope_heads(
        x.into_dispatch(),
        cos.into_dispatch(),
        sin.into_dispatch(),
    ))
}

/// `[b, s, n, d]` and the tables' `[b, 1, s, d]` must agree.
fn dims(x: &FlexTensor, cos: &FlexTensor, sin: &FlexTensor) -> [usize; 4] {
    let shape = x.layout().shape();
    let [b, s, n, d] = [shape[0], shape[1], shape[2], shape[3]];
    for table in [cos, sin] {
        let t = table.layout().shape();
        assert!(
            t.num_dims() == 4 && [t[0], t[1], t[2], t[3]] == [b, 1, s, d] && d % 2 == 0,
            "rope: tables {t:?} do not fit input {shape:?}"
        );
    }
    [b, s, n, d]
}

/// out[b, h, i, :] = x[b, i, h, :]·cos[b, i] + rotate_half(x[b, i, h, :])·sin[b, i].
fn forward(x: &FlexTensor, cos: &FlexTensor, sin: &FlexTensor) -> FlexTensor {
    let [b, s, n, d] = dims(x, cos, sin);
    let (x, cos, sin) = (f32_values(x), f32_values(cos), f32_values(sin));
    let half = d / 2;
    let mut out = vec![0f32; x.len()];
    // One task per (batch row, head): a contiguous [s, d] block of the output.
    let rotate_block = |(bh, out): (usize, &mut [f32])| {
        let (bi, h) = (bh / n, bh % n);
        for (i, out) in out.chunks_mut(d).enumerate() {
            let row = &x[((bi * s + i) * n + h) * d..][..d];
            let c = &cos[(bi * s + i) * d..][..d];
            let sn = &sin[(bi * s + i) * d..][..d];
            for j in 0..half {
                out[j] = row[j] * c[j] - row[j + half] * sn[j];
                out[j + half] = row[j + half] * c[j + half] + row[j] * sn[j + half];
            }
        }
    };
    if x.len() < PARALLEL_MIN {
        out.chunks_mut(s * d).enumerate().for_each(rotate_block);
    } else {
        out.par_chunks_mut(s * d).enumerate().for_each(rotate_block);
    }
    f32_tensor(out, Shape::new([b, n, s, d]))
}

/// The transpose of the forward: d x[b, i, h, :] from grad[b, h, i, :].
fn backward(grad: &FlexTensor, cos: &FlexTensor, sin: &FlexTensor) -> FlexTensor {
    let shape = grad.layout().shape();
    let [b, n, s, d] = [shape[0], shape[1], shape[2], shape[3]];
    let (g, cos, sin) = (f32_values(grad), f32_values(cos), f32_values(sin));
    let half = d / 2;
    let mut d_x = vec![0f32; g.len()];
    // One task per (batch row, position): a contiguous [n, d] block of the input gradient.
    d_x.par_chunks_mut(n * d)
        .enumerate()
        .for_each(|(bi_i, d_x)| {
            let (bi, i) = (bi_i / s, bi_i % s);
            let c = &cos[(bi * s + i) * d..][..d];
            let sn = &sin[(bi * s + i) * d..][..d];
            for (h, d_x) in d_x.chunks_mut(d).enumerate() {
                let g = &g[((bi * n + h) * s + i) * d..][..d];
                for j in 0..half {
                    d_x[j] = g[j] * c[j] + g[j + half] * sn[j + half];
                    d_x[j + half] = g[j + half] * c[j + half] - g[j] * sn[j];
                }
            }
        });
    f32_tensor(d_x, Shape::new([b, s, n, d]))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use crate::fused::rope_heads_composed;
    use crate::numeric::to_f32_vec;

    /// Value and input gradient equal the composed transpose + rotate_half formula.
    #[test]
    fn fused_rope_matches_composed_ops() {
        let device = Device::flex().autodiff();
        let (b, s, n, d) = (2, 7, 3, 8);
        let x = Tensor::<4>::random([b, s, n, d], Distribution::Normal(0.0, 1.0), &device);
        let angles = Tensor::<4>::random([b, 1, s, d], Distribution::Uniform(-3.0, 3.0), &device);
        let (cos, sin) = (angles.clone().cos(), angles.sin());
        let upstream = Tensor::<4>::random([b, n, s, d], Distribution::Normal(0.0, 1.0), &device);
        let run = |fused: bool| {
            let x = x.clone().detach().require_grad();
            let out = if fused {
                super::rope_heads(x.clone(), cos.clone(), sin.clone())
            } else {
                rope_heads_composed(x.clone(), cos.clone(), sin.clone())
            };
            let grads = (out.clone() * upstream.clone()).sum().backward();
            (
                to_f32_vec(out.detach()),
                to_f32_vec(x.grad(&grads).expect("x gradient")),
            )
        };
        let (out, d_x) = run(true);
        let (want, want_x) = run(false);
        let diff = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max)
        };
        assert!(
            diff(&out, &want) < 1e-5,
            "value differs by {}",
            diff(&out, &want)
        );
        assert!(
            diff(&d_x, &want_x) < 1e-5,
            "gradient differs by {}",
            diff(&d_x, &want_x)
        );
    }
}
