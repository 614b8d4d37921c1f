//! A 2-D `f32` matrix product on flex as one single-threaded GEMM per thread, each on its own
//! panel of the output, for the forward product and for both products of the backward
//! ([`PanelMatmul`], a backend extension with a handwritten autodiff backward).
//!
//! Why: flex runs a large `f32` matmul as one `gemm` call that the gemm crate splits over the
//! threads itself, and Burn's autodiff computes the backward's products the same way. For the
//! shapes of a 4 × 256-token SmolLM2 step (`cargo run --release --example sgemm`, 2 threads,
//! one run, experiments/sft_speed/results/sgemm.md) the panels reached 140–183 GFLOP/s against
//! 111–177 for the single call, faster for 9 of the 10 forward and weight-gradient products.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Shape, Tensor};
use rayon::prelude::*;

use super::flex_data::{SendPtr, f32_tensor};
use crate::numeric::gemm::{Dims, Threads, gemm_raw};
use crate::numeric::thin_gemm::{MAX_ROWS, thin_matmul};

/// A 2-D `f32` matrix product `lhs · rhs` (`[m, k] · [k, n]`, any strides). The default body
/// is Burn's matmul; flex overrides it with one GEMM per thread on a panel of the output.
#[backend_extension(Flex, Autodiff)]
pub trait PanelMatmul: Backend {
    fn float_panel_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(lhs, rhs)
    }
}

impl PanelMatmul for Flex {
    fn float_panel_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        panels(lhs, rhs)
    }
}

impl<B: Backend + PanelMatmul, C: CheckpointStrategy> PanelMatmul for Autodiff<B, C> {
    fn float_panel_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        /// d lhs = grad · rhsᵀ, d rhs = lhsᵀ · grad, both through `B::float_panel_matmul`.
        #[derive(Debug)]
        struct PanelMatmulBackward;

        impl<B: Backend + PanelMatmul> Backward<B, 2> for PanelMatmulBackward {
            /// The saved operand each gradient needs: lhs for d rhs, rhs for d lhs.
            type State = (Option<NodeId>, Option<NodeId>);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let (lhs, rhs) = ops.state;
                let lhs: Option<FloatTensor<B>> =
                    lhs.map(|id| checkpointer.retrieve_node_output(id));
                let rhs: Option<FloatTensor<B>> =
                    rhs.map(|id| checkpointer.retrieve_node_output(id));
                binary::<B, _, _>(
                    ops.parents,
                    ops.node,
                    grads,
                    |grad| {
                        let rhs = rhs.expect("rhs saved when lhs is tracked");
                        B::float_panel_matmul(grad, B::float_transpose(rhs))
                    },
                    |grad| {
                        let lhs = lhs.expect("lhs saved when rhs is tracked");
                        B::float_panel_matmul(B::float_transpose(lhs), grad)
                    },
                );
            }
        }

        let lhs_tracked = lhs.is_tracked();
        let rhs_tracked = rhs.is_tracked();
        match PanelMatmulBackward
            .prepare::<C>([lhs.node(), rhs.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let lhs_state = rhs_tracked.then(|| prep.checkpoint(&lhs));
                let rhs_state = lhs_tracked.then(|| prep.checkpoint(&rhs));
                let out = B::float_panel_matmul(lhs.into_primitive(), rhs.into_primitive());
                prep.finish((lhs_state, rhs_state), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::float_panel_matmul(
                lhs.into_primitive(),
                rhs.into_primitive(),
            )),
        }
    }
}

/// `lhs · rhs` through [`PanelMatmul`]; both must be `f32` tensors on flex.
pub fn panel_matmul(lhs: Tensor<2>, rhs: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as PanelMatmul>::float_panel_matmul(
        lhs.into_dispatch(),
        rhs.into_dispatch(),
    ))
}

/// `C = beta·A·B`, or `C += beta·A·B` when `accumulate`, on the calling thread, for a
/// row-major `C` `[m, n]` with row stride `ldc`; `A(i, l)` is at `a + i·a_rs + l·a_cs` and
/// `B(l, j)` at `b + l·b_rs + j·b_cs`.
///
/// # Safety
/// The pointers must be valid for those extents and `C` must not overlap `A` or `B`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_serial(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    b: *const f32,
    b_rs: isize,
    b_cs: isize,
    beta: f32,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm_raw(
            Dims { m, n, k },
            c,
            (ldc as isize, 1),
            accumulate.then_some(1.0),
            a,
            (a_rs, a_cs),
            b,
            (b_rs, b_cs),
            beta,
            Threads::Caller,
        );
    }
}

/// Below this many multiply-adds (and for thin products, as in one-token decoding) the
/// gemm crate's own threading is left in charge.
const MIN_WORK: usize = 192 * 192 * 192;
const MIN_SIDE: usize = 128;
/// Panel boundaries fall on multiples of this many rows or columns (the gemm crate's
/// f32 micro-tiles divide it).
const ALIGN: usize = 16;

/// The flex implementation: the output split into one panel per thread.
fn panels(lhs: FlexTensor, rhs: FlexTensor) -> FlexTensor {
    let threads = rayon::current_num_threads();
    let (ll, rl) = (lhs.layout(), rhs.layout());
    if let Some(out) = thin(&lhs, &rhs) {
        return out;
    }
    let eligible = threads > 1
        && lhs.dtype() == DType::F32
        && rhs.dtype() == DType::F32
        && ll.num_dims() == 2
        && rl.num_dims() == 2
        && ll.has_positive_strides()
        && rl.has_positive_strides();
    if !eligible {
        return burn::backend::flex::ops::matmul::matmul(lhs, rhs);
    }
    let (m, k, n) = (ll.shape()[0], ll.shape()[1], rl.shape()[1]);
    assert_eq!(
        k,
        rl.shape()[0],
        "panel_matmul: inner dimensions must match"
    );
    if m.min(n) < MIN_SIDE || k == 0 || m.saturating_mul(n).saturating_mul(k) < MIN_WORK {
        return burn::backend::flex::ops::matmul::matmul(lhs, rhs);
    }
    let (lhs_rs, lhs_cs) = (ll.strides()[0], ll.strides()[1]);
    let (rhs_rs, rhs_cs) = (rl.strides()[0], rl.strides()[1]);
    let mut out_values = vec![0f32; m * n];
    let out_ptr = SendPtr(out_values.as_mut_ptr());
    // The operands from their first element (the layouts' offsets are inside the storage).
    let (lhs_data, rhs_data) = (
        &lhs.storage::<f32>()[ll.start_offset()..],
        &rhs.storage::<f32>()[rl.start_offset()..],
    );
    // Split the longer side of the output; the other operand is shared read-only.
    let split_rows = m >= n;
    let side = if split_rows { m } else { n };
    let step = side.div_ceil(threads).div_ceil(ALIGN) * ALIGN;
    let panels: Vec<(usize, usize)> = (0..side)
        .step_by(step)
        .map(|start| (start, (start + step).min(side)))
        .collect();
    panels.into_par_iter().for_each(|(start, end)| {
        let (out, lhs, rhs) = (out_ptr.get(), lhs_data.as_ptr(), rhs_data.as_ptr());
        let len = end - start;
        // SAFETY: panel `start..end` of the output is written by this task alone; the
        // operand pointers stay inside their buffers for the given extents and strides.
        unsafe {
            if split_rows {
                let lhs = lhs.offset(start as isize * lhs_rs);
                let out = out.add(start * n);
                gemm_serial(
                    len, n, k, out, n, false, lhs, lhs_rs, lhs_cs, rhs, rhs_rs, rhs_cs, 1.0,
                );
            } else {
                let rhs = rhs.offset(start as isize * rhs_cs);
                let out = out.add(start);
                gemm_serial(
                    m, len, k, out, n, false, lhs, lhs_rs, lhs_cs, rhs, rhs_rs, rhs_cs, 1.0,
                );
            }
        }
    });
    f32_tensor(out_values, Shape::new([m, n]))
}

/// Products with at most [`MAX_ROWS`] rows (decode steps) through the thin kernels, which
/// stream the right operand once; None where they do not apply.
fn thin(lhs: &FlexTensor, rhs: &FlexTensor) -> Option<FlexTensor> {
    let (ll, rl) = (lhs.layout(), rhs.layout());
    let simple = lhs.dtype() == DType::F32
        && rhs.dtype() == DType::F32
        && ll.num_dims() == 2
        && rl.num_dims() == 2
        && ll.has_positive_strides()
        && rl.has_positive_strides();
    if !simple {
        return None;
    }
    let (m, k, n) = (ll.shape()[0], ll.shape()[1], rl.shape()[1]);
    // Narrow or shallow products gain nothing; the general path handles them.
    if m > MAX_ROWS || n < 16 || k < 8 || k != rl.shape()[0] || ll.strides()[1] != 1 {
        return None;
    }
    let a_rs = if m == 1 { k } else { ll.strides()[0] as usize };
    let (b_rs, b_cs) = (rl.strides()[0] as usize, rl.strides()[1] as usize);
    let a = &lhs.storage::<f32>()[ll.start_offset()..];
    let b = &rhs.storage::<f32>()[rl.start_offset()..];
    let out = thin_matmul(m, n, k, a, a_rs, b, b_rs, b_cs)?;
    Some(f32_tensor(out, Shape::new([m, n])))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use crate::fused::matmul_2d;
    use crate::fused::max_rel_diff;

    /// Forward and both gradients of the panel product equal Burn's matmul, for shapes split
    /// by rows and by columns, with uneven panels and a transposed (strided) operand.
    #[test]
    fn panel_matmul_matches_burn_matmul_with_gradients() {
        let device = Device::flex().autodiff();
        for (m, k, n, transposed_rhs) in [
            (300, 200, 160, false),
            (150, 130, 410, true),
            (2, 64, 64, false),
        ] {
            let lhs = Tensor::<2>::random([m, k], Distribution::Default, &device);
            let rhs_stored = Tensor::<2>::random(
                if transposed_rhs { [n, k] } else { [k, n] },
                Distribution::Default,
                &device,
            );
            let upstream = Tensor::<2>::random([m, n], Distribution::Default, &device);
            let run = |panels: bool| {
                let (l, r) = (
                    lhs.clone().detach().require_grad(),
                    rhs_stored.clone().detach().require_grad(),
                );
                let rhs = if transposed_rhs {
                    r.clone().transpose()
                } else {
                    r.clone()
                };
                let out = if panels {
                    matmul_2d(l.clone(), rhs)
                } else {
                    l.clone().matmul(rhs)
                };
                let grads = (out.clone() * upstream.clone()).sum().backward();
                (
                    out.detach(),
                    l.grad(&grads).expect("lhs gradient"),
                    r.grad(&grads).expect("rhs gradient"),
                )
            };
            let (out, d_lhs, d_rhs) = run(true);
            let (want, want_lhs, want_rhs) = run(false);
            for (name, got, want) in [
                ("product", out, want),
                ("lhs gradient", d_lhs, want_lhs),
                ("rhs gradient", d_rhs, want_rhs),
            ] {
                let diff = max_rel_diff(got, want);
                assert!(diff < 1e-5, "{m}x{k}x{n}: {name} differs by {diff}");
            }
        }
    }
}
