//! AdamW (decoupled weight decay, as `torch.optim.AdamW`) with one fused pass per parameter on
//! flex: Burn's `AdamW` makes about fifteen tensor operations per parameter, each a pass over
//! memory with its own allocation (0.6–0.8 s a step for SmolLM2-135M's 540 MB of weights, see
//! experiments/sft_speed); here each element of the weight, its gradient and its two moments
//! is read once and written once, in place where the buffers are not shared.
//!
//! The arithmetic is Burn's, operation for operation in f32 (`m = β₁m + (1−β₁)g`,
//! `v = β₂v + (1−β₂)g²`, `p = p(1 − lr·λ) − lr · (m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)`), and the
//! state is Burn's `AdamWState`, so checkpoints are interchangeable with Burn's optimizer.
//! Other backends, dtypes and layouts go through Burn's `AdamW` itself.

use burn::optim::{AdamW, AdamWConfig, AdamWState, LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};

/// AdamW hyper-parameters plus Burn's implementation for the cases the fused pass skips.
#[derive(Clone)]
#[cfg_attr(not(feature = "flex"), allow(dead_code))] // the hyper-parameters serve the flex pass
pub struct FusedAdamW {
    reference: AdamW,
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
}

impl FusedAdamW {
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, weight_decay: f32) -> Self {
        let reference = AdamWConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay)
            .build();
        FusedAdamW {
            reference,
            beta_1,
            beta_2,
            epsilon,
            weight_decay,
        }
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        #[cfg(feature = "flex")]
        if flex_pass::applies(&tensor, &grad, state.as_ref()) {
            return flex_pass::step(self, lr, tensor, grad, state);
        }
        self.reference.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdamW::to_device(state, device)
    }
}

#[cfg(feature = "flex")]
mod flex_pass {
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use burn::optim::Optimizer;
    use burn::tensor::{DType, Tensor};
    use rayon::prelude::*;

    use burn::optim::AdaptiveMomentumState;

    use super::{AdamWState, FusedAdamW, LearningRate};
    use crate::fused::flex_data::f32_tensor;

    /// Elements per parallel task.
    const CHUNK: usize = 64 * 1024;

    /// An `f32` tensor on flex without autodiff.
    fn plain<const D: usize>(t: &Tensor<D>) -> bool {
        t.dtype() == DType::F32
            && !t.device().is_autodiff()
            && matches!(
                t.device().as_dispatch(),
                burn::backend::DispatchDevice::Flex(_)
            )
    }

    /// The flex tensor of a [`plain`] tensor.
    fn primitive<const D: usize>(t: Tensor<D>) -> FlexTensor {
        t.try_into_primitive::<Flex>()
            .expect("a plain tensor is a flex tensor")
    }

    /// Whether the storage of `t` is exactly its values in order (what the pass indexes).
    fn dense(t: &FlexTensor) -> bool {
        let n = t.layout().num_elements();
        t.layout().contiguous_offsets() == Some((0, n)) && t.storage::<f32>().len() == n
    }

    pub fn applies<const D: usize>(
        tensor: &Tensor<D>,
        grad: &Tensor<D>,
        state: Option<&AdamWState<D>>,
    ) -> bool {
        plain(tensor)
            && plain(grad)
            && state.is_none_or(|s| {
                s.momentum.max_moment_2.is_none()
                    && plain(&s.momentum.moment_1)
                    && plain(&s.momentum.moment_2)
            })
    }

    pub fn step<const D: usize>(
        opt: &FusedAdamW,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamWState<D>>,
    ) -> (Tensor<D>, Option<AdamWState<D>>) {
        let time = state.as_ref().map_or(1, |s| s.momentum.time + 1);
        let (mut p, g) = (primitive(tensor), primitive(grad));
        let (mut m, mut v) = match state {
            Some(s) => (
                primitive(s.momentum.moment_1),
                primitive(s.momentum.moment_2),
            ),
            None => {
                let zeros = || {
                    f32_tensor(
                        vec![0f32; p.layout().num_elements()],
                        p.layout().shape().clone(),
                    )
                };
                (zeros(), zeros())
            }
        };
        if ![&p, &g, &m, &v].iter().all(|t| dense(t)) {
            let state = (time > 1).then(|| AdamWState {
                momentum: AdaptiveMomentumState {
                    time: time - 1,
                    moment_1: Tensor::from_primitive::<Flex>(m),
                    moment_2: Tensor::from_primitive::<Flex>(v),
                    max_moment_2: None,
                },
            });
            let (p, g) = (
                Tensor::from_primitive::<Flex>(p),
                Tensor::from_primitive::<Flex>(g),
            );
            return opt.reference.step(lr, p, g, state);
        }
        let (b1, b2, eps) = (opt.beta_1, opt.beta_2, opt.epsilon);
        let (f1, f2) = (1.0 - b1, 1.0 - b2);
        let c1 = 1f32 - b1.powi(time as i32);
        let c2 = 1f32 - b2.powi(time as i32);
        let keep = (1.0 - lr * opt.weight_decay as f64) as f32;
        let lr = lr as f32;
        let g = g.storage::<f32>();
        // storage_mut copies a buffer that is shared (copy-on-write) and writes in place otherwise.
        let (pv, mv, vv) = (
            p.storage_mut::<f32>(),
            m.storage_mut::<f32>(),
            v.storage_mut::<f32>(),
        );
        pv.par_chunks_mut(CHUNK)
            .zip(mv.par_chunks_mut(CHUNK))
            .zip(vv.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .for_each(|(((p, m), v), g)| {
                for i in 0..p.len() {
                    let gi = g[i];
                    m[i] = m[i] * b1 + gi * f1;
                    v[i] = v[i] * b2 + gi * gi * f2;
                    let delta = (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
                    p[i] = p[i] * keep - delta * lr;
                }
            });
        let state = AdamWState {
            momentum: AdaptiveMomentumState {
                time,
                moment_1: Tensor::from_primitive::<Flex>(m),
                moment_2: Tensor::from_primitive::<Flex>(v),
                max_moment_2: None,
            },
        };
        (Tensor::from_primitive::<Flex>(p), Some(state))
    }
}

#[cfg(test)]
mod tests {
    use burn::optim::{AdamWConfig, Optimizer};
    use burn::tensor::{Device, Distribution, Tensor};

    use super::FusedAdamW;
    use crate::numeric::to_f32_vec;

    /// Five steps of the fused pass give Burn's AdamW's weights and moments (to float
    /// rounding), with weight decay, a changing learning rate, and weights shorter and longer
    /// than one parallel chunk.
    #[test]
    fn fused_adamw_matches_burn_adamw() {
        let device = Device::flex();
        let (b1, b2, eps, wd) = (0.9, 0.95, 1e-8, 0.1);
        let fused = FusedAdamW::new(b1, b2, eps, wd);
        let reference = AdamWConfig::new()
            .with_beta_1(b1)
            .with_beta_2(b2)
            .with_epsilon(eps)
            .with_weight_decay(wd)
            .build();
        for shape in [[3, 7], [300, 500]] {
            let start = Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let (mut a, mut b) = (start.clone(), start);
            let (mut state_a, mut state_b) = (None, None);
            for step in 0..5 {
                let grad = Tensor::<2>::random(shape, Distribution::Normal(0.0, 0.1), &device);
                let lr = 1e-3 * (step + 1) as f64;
                (a, state_a) = fused.step(lr, a, grad.clone(), state_a);
                (b, state_b) = reference.step(lr, b, grad, state_b);
            }
            let (sa, sb) = (state_a.unwrap().momentum, state_b.unwrap().momentum);
            assert_eq!(sa.time, sb.time);
            for (name, x, y) in [
                ("weights", a.clone(), b.clone()),
                ("first moment", sa.moment_1, sb.moment_1),
                ("second moment", sa.moment_2, sb.moment_2),
            ] {
                let (x, y) = (to_f32_vec(x), to_f32_vec(y));
                let scale = y.iter().fold(0f32, |m, v| m.max(v.abs()));
                let diff = x
                    .iter()
                    .zip(&y)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0f32, f32::max);
                assert!(
                    diff <= 1e-6 * scale,
                    "{shape:?}: {name} differ by {diff} (scale {scale})"
                );
            }
            assert!(to_f32_vec(a).iter().all(|w| w.is_finite()));
        }
    }
}
