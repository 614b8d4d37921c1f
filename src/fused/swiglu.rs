//! `silu(gate) · up`, the SwiGLU MLP's activation, as one fused flex operation with its own
//! backward ([`SwiGlu`], a backend extension).
//!
//! Why: Burn composes it from a sigmoid, two products and their derived backward, each a pass
//! with its own allocation over `[tokens, intermediate]` tensors (6 MB each for 4 × 256 tokens
//! of SmolLM2), with glibc's scalar `expf`. Here the forward is one pass and the backward one pass writing
//! both gradients, with the AVX2 `exp`. `silu(g) = g / (1 + e^(−g))`, as PyTorch computes it.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::flex_data::{PARALLEL_MIN, f32_tensor, f32_values};
use crate::numeric::kernels::exp_in_place;

/// Elements per parallel task: large enough to amortize scheduling, small enough to stay in
/// cache between the `exp` pass and the one that uses it.
const CHUNK: usize = 8 * 1024;

/// `silu(gate) · up` for two tensors of the same shape.
#[backend_extension(Flex, Autodiff)]
pub trait SwiGlu: Backend {
    fn float_swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl SwiGlu for Flex {
    fn float_swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        forward(&gate, &up)
    }
}

impl<C: CheckpointStrategy> SwiGlu for Autodiff<Flex, C> {
    fn float_swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SwiGluBackward;

        impl Backward<Flex, 2> for SwiGluBackward {
            /// Both inputs: each gradient needs the gate, the gate's also needs `up`.
            type State = (NodeId, NodeId);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let (gate_id, up_id) = ops.state;
                let gate: FlexTensor = checkpointer.retrieve_node_output(gate_id);
                let up: FlexTensor = checkpointer.retrieve_node_output(up_id);
                let grad = grads.consume::<Flex>(&ops.node);
                let [gate_parent, up_parent] = ops.parents;
                let (d_gate, d_up) = backward(&gate, &up, &grad);
                if let Some(node) = gate_parent {
                    grads.register::<Flex>(node.id, d_gate);
                }
                if let Some(node) = up_parent {
                    grads.register::<Flex>(node.id, d_up);
                }
            }
        }

        match SwiGluBackward
            .prepare::<C>([gate.node(), up.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&gate), prep.checkpoint(&up));
                let out = forward(gate.primitive(), up.primitive());
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(gate.primitive(), up.primitive())),
        }
    }
}

/// [`SwiGlu`] on two `f32` flex tensors of the same shape.
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as SwiGlu>::float_swiglu(
        gate.into_dispatch(),
        up.into_dispatch(),
    ))
}

fn forward(gate: &FlexTensor, up: &FlexTensor) -> FlexTensor {
    let shape = gate.layout().shape().clone();
    let (g, u) = (f32_values(gate), f32_values(up));
    assert_eq!(g.len(), u.len(), "swiglu: gate and up differ in size");
    let mut out = vec![0f32; g.len()];
    let gate_chunk = |(out, (g, u)): (&mut [f32], (&[f32], &[f32]))| {
        out.iter_mut().zip(g).for_each(|(o, &g)| *o = -g);
        exp_in_place(out);
        out.iter_mut()
            .zip(g.iter().zip(u))
            .for_each(|(o, (&g, &u))| *o = g / (1.0 + *o) * u);
    };
    if g.len() < PARALLEL_MIN {
        let chunks = out
            .chunks_mut(CHUNK)
            .zip(g.chunks(CHUNK).zip(u.chunks(CHUNK)));
        chunks.for_each(gate_chunk);
    } else {
        let chunks = out
            .par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)));
        chunks.for_each(gate_chunk);
    }
    f32_tensor(out, shape)
}

/// (d gate, d up) = (grad · up · s · (1 + g · (1 − s)), grad · g · s) with s = σ(g).
fn backward(gate: &FlexTensor, up: &FlexTensor, grad: &FlexTensor) -> (FlexTensor, FlexTensor) {
    let shape = gate.layout().shape().clone();
    let (g, u, dy) = (f32_values(gate), f32_values(up), f32_values(grad));
    assert_eq!(g.len(), dy.len(), "swiglu: gradient differs in size");
    let mut d_gate = vec![0f32; g.len()];
    let mut d_up = vec![0f32; g.len()];
    d_gate
        .par_chunks_mut(CHUNK)
        .zip(d_up.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(c, (d_gate, d_up))| {
            let range = c * CHUNK..c * CHUNK + d_gate.len();
            let (g, u, dy) = (&g[range.clone()], &u[range.clone()], &dy[range]);
            d_gate.iter_mut().zip(g).for_each(|(o, &g)| *o = -g);
            exp_in_place(d_gate);
            for i in 0..g.len() {
                let s = 1.0 / (1.0 + d_gate[i]);
                d_up[i] = dy[i] * g[i] * s;
                d_gate[i] = dy[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
            }
        });
    (f32_tensor(d_gate, shape.clone()), f32_tensor(d_up, shape))
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::silu;
    use burn::tensor::{Device, Distribution, Tensor};

    use crate::fused::max_rel_diff;

    /// Values and both gradients equal Burn's `silu(gate) * up`, over a size that is not a
    /// multiple of the chunk and with gate values far into both tails.
    #[test]
    fn fused_swiglu_matches_silu_times_up() {
        let device = Device::flex().autodiff();
        let shape = [3, 5, 1111];
        let gate = Tensor::<3>::random(shape, Distribution::Normal(0.0, 30.0), &device);
        let up = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let upstream = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let run = |fused: bool| {
            let (g, u) = (
                gate.clone().detach().require_grad(),
                up.clone().detach().require_grad(),
            );
            let out = if fused {
                super::swiglu(g.clone(), u.clone())
            } else {
                silu(g.clone()) * u.clone()
            };
            let grads = (out.clone() * upstream.clone()).sum().backward();
            (
                out.detach(),
                g.grad(&grads).expect("gate gradient"),
                u.grad(&grads).expect("up gradient"),
            )
        };
        let (out, d_gate, d_up) = run(true);
        let (want, want_gate, want_up) = run(false);
        for (name, got, want) in [
            ("value", out, want),
            ("gate gradient", d_gate, want_gate),
            ("up gradient", d_up, want_up),
        ] {
            let diff = max_rel_diff(got, want);
            assert!(diff < 1e-5, "{name} differs by {diff}");
        }
    }
}
