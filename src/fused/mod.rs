//! Fused CPU operations with their own backward passes, written as Burn backend extensions for
//! the flex backend (`#[backend_extension]`, with a handwritten `Autodiff` implementation):
//!
//! - [`matmul_2d`]: a 2-D `f32` product computed as one single-threaded GEMM per thread on a
//!   panel of the output, forward and backward ([`matmul`]);
//! - [`token_nll`]: per-token cross-entropy in one pass over the logits each way ([`nll`]);
//! - [`swiglu`]: `silu(gate) · up` and its two gradients in one pass each ([`swiglu`](mod@swiglu));
//! - [`rms_norm`]: RMSNorm and its two gradients in one pass each ([`rms_norm`](mod@rms_norm));
//! - [`rope_heads`]: rotary embedding fused with the move to heads-first layout ([`rope`]);
//! - [`gqa_attention`]: masked attention with grouped-query heads for training;
//!   [`cached_gqa_attention`] and [`slot_gqa_attention`] over KV caches read in place for
//!   inference ([`attention`](mod@attention)).
//!
//! Why: Burn's autodiff composes these from generic operations, each of which allocates its
//! output and makes a full pass over memory (see experiments/sft_speed). Every function here
//! falls back to those generic operations on other backends and dtypes, with the same result
//! up to float rounding (tests compare both paths, values and gradients).

use burn::tensor::activation::{log_softmax, silu};
use burn::tensor::module::attention as burn_attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Int, Tensor, TensorData};

#[cfg(feature = "flex")]
pub mod attention;
#[cfg(feature = "flex")]
pub(crate) mod flex_data;
#[cfg(feature = "flex")]
pub mod matmul;
#[cfg(feature = "flex")]
pub mod nll;
#[cfg(feature = "flex")]
pub mod rms_norm;
#[cfg(feature = "flex")]
pub mod rope;
#[cfg(feature = "flex")]
pub mod swiglu;

/// Whether `t` is an `f32` tensor on flex (with or without autodiff), where the fused
/// operations run.
#[cfg(feature = "flex")]
fn on_flex_f32<const D: usize>(t: &Tensor<D>) -> bool {
    t.dtype() == burn::tensor::DType::F32
        && matches!(
            t.device().inner().as_dispatch(),
            burn::backend::DispatchDevice::Flex(_)
        )
}

/// Whether attention of `q` over caches `k`, `v` runs as a fused flex inference operation:
/// `f32` on flex, without autodiff.
#[cfg(feature = "flex")]
fn inference_on_flex(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>) -> bool {
    !q.device().is_autodiff() && on_flex_f32(q) && on_flex_f32(k) && on_flex_f32(v)
}

/// `lhs · rhs` for 2-D tensors (panels on flex, Burn's matmul elsewhere).
pub fn matmul_2d(lhs: Tensor<2>, rhs: Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if on_flex_f32(&lhs) && on_flex_f32(&rhs) {
        return matmul::panel_matmul(lhs, rhs);
    }
    lhs.matmul(rhs)
}

/// `silu(gate) · up`, elementwise (fused on flex).
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if on_flex_f32(&gate) && on_flex_f32(&up) && gate.dims() == up.dims() {
        return swiglu::swiglu(gate, up);
    }
    silu(gate) * up
}

/// `−log softmax(row)[target]` for each row of `logits` `[rows, vocab]` (0 where the target
/// is negative), fused; `None` where the fused operation does not run (other backends and
/// dtypes, or a target outside the vocabulary).
pub fn token_nll(logits: &Tensor<2>, targets: &[i64]) -> Option<Tensor<1>> {
    #[cfg(feature = "flex")]
    {
        let [rows, vocab] = logits.dims();
        if on_flex_f32(logits) && rows == targets.len() && targets.iter().all(|&t| t < vocab as i64)
        {
            return Some(nll::token_nll(logits.clone(), targets));
        }
    }
    let _ = (logits, targets);
    None
}

/// Σ −log softmax(row)[target] over the rows whose target is ≥ 0: [`token_nll`] summed where
/// it runs, [`token_nll_sum_composed`] elsewhere.
pub fn token_nll_sum(logits: Tensor<2>, targets: &[i64]) -> Tensor<1> {
    match token_nll(&logits, targets) {
        Some(per_token) => per_token.sum(),
        None => token_nll_sum_composed(logits, targets),
    }
}

/// −log softmax(row)[target] per row of `logits` `[rows, vocab]`, 0 where the target is
/// negative: [`token_nll`] where it runs, [`token_nll_per_row_composed`] elsewhere.
pub fn token_nll_per_row(logits: Tensor<2>, targets: &[i64]) -> Tensor<1> {
    match token_nll(&logits, targets) {
        Some(per_token) => per_token,
        None => token_nll_per_row_composed(logits, targets),
    }
}

/// [`token_nll_per_row`] from Burn's `log_softmax` + `gather` (any backend).
pub fn token_nll_per_row_composed(logits: Tensor<2>, targets: &[i64]) -> Tensor<1> {
    let [rows, _] = logits.dims();
    let device = logits.device();
    let ids: Vec<i64> = targets.iter().map(|&t| t.max(0)).collect();
    let mask: Vec<f32> = targets
        .iter()
        .map(|&t| if t >= 0 { 1.0 } else { 0.0 })
        .collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [rows, 1]), &device);
    let mask = Tensor::<1>::from_data(TensorData::new(mask, [rows]), &device);
    (log_softmax(logits, 1).gather(1, ids).reshape([rows]) * mask).neg()
}

/// [`token_nll_sum`] from Burn's operations (any backend; the reference for the fused path).
pub fn token_nll_sum_composed(logits: Tensor<2>, targets: &[i64]) -> Tensor<1> {
    token_nll_per_row_composed(logits, targets).sum()
}

/// RMSNorm over the last axis with scale `weight` (fused on flex).
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: Tensor<1>, eps: f64) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if on_flex_f32(&x) && on_flex_f32(&weight) && x.dims()[D - 1] == weight.dims()[0] {
        return rms_norm::rms_norm(x, weight, eps);
    }
    rms_norm_composed(x, weight, eps)
}

/// RMSNorm from Burn's operations, computed as transformers does (the reference for the fused
/// operation, and the path on other backends).
pub fn rms_norm_composed<const D: usize>(x: Tensor<D>, weight: Tensor<1>, eps: f64) -> Tensor<D> {
    let variance = x.clone().powi_scalar(2).mean_dim(D - 1);
    let normed = x * (variance + eps).sqrt().recip();
    normed * weight.unsqueeze()
}

/// Rotary embedding of `x` `[b, s, n, d]` with tables `cos`, `sin` `[b, 1, s, d]`, returned
/// heads-first `[b, n, s, d]` (fused on flex).
pub fn rope_heads(x: Tensor<4>, cos: Tensor<4>, sin: Tensor<4>) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if on_flex_f32(&x) && on_flex_f32(&cos) && on_flex_f32(&sin) {
        return rope::rope_heads(x, cos, sin);
    }
    rope_heads_composed(x, cos, sin)
}

/// [`rope_heads`] from Burn's operations: transformers' `x·cos + rotate_half(x)·sin` with
/// `rotate_half(x) = [−x₂, x₁]` on the two halves of each head.
pub fn rope_heads_composed(x: Tensor<4>, cos: Tensor<4>, sin: Tensor<4>) -> Tensor<4> {
    let x = x.swap_dims(1, 2);
    let [b, h, s, d] = x.dims();
    let x1 = x.clone().slice([0..b, 0..h, 0..s, 0..d / 2]);
    let x2 = x.clone().slice([0..b, 0..h, 0..s, d / 2..d]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos + rotated * sin
}

/// Masked attention of `q` `[b, h, s, d]` over `k`, `v` `[b, kvh, t, d]`, where query heads
/// `g·h/kvh .. (g+1)·h/kvh` share key/value head `g` and `mask` `[b, 1, s, t]` is true where a
/// query may not attend. Scale `1/√d`; a fully blocked query row gives 0. Returns
/// `[b, s, h, d]`. Fused on flex under autodiff (training); elsewhere, and for inference,
/// Burn's own attention.
pub fn gqa_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Tensor<4, Bool>) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if q.device().is_autodiff()
        && on_flex_f32(&q)
        && on_flex_f32(&k)
        && on_flex_f32(&v)
        && q.dims().iter().chain(&k.dims()).all(|&n| n > 0)
    {
        return attention::gqa_attention(q, k, v, mask.float());
    }
    gqa_attention_composed(q, k, v, mask)
}

/// [`gqa_attention`] of `q` over the first `len` positions of key/value caches `k_cache`,
/// `v_cache` `[b, kvh, capacity, d]`. For inference on flex the caches are read in place
/// ([`attention::CachedAttentionOp`]); elsewhere the `0..len` views go through
/// [`gqa_attention`].
pub fn cached_gqa_attention(
    q: Tensor<4>,
    k_cache: Tensor<4>,
    v_cache: Tensor<4>,
    mask: Tensor<4, Bool>,
    len: usize,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if inference_on_flex(&q, &k_cache, &v_cache) && len > 0 && q.dims().iter().all(|&n| n > 0) {
        return attention::cached_gqa_attention(q, k_cache, v_cache, mask.float(), len);
    }
    let [b, kvh, _, d] = k_cache.dims();
    let view = |cache: Tensor<4>| cache.slice([0..b, 0..kvh, 0..len, 0..d]);
    gqa_attention(q, view(k_cache), view(v_cache), mask)
}

/// Attention for continuous batching: query row `r` of `q` `[b, h, 1, d]` over positions
/// `0..lens[r]` of slot `slots[r]` of key/value caches `[slots, kvh, capacity, d]`, where each
/// slot holds one sequence from position 0 (nothing blocked). Returns `[b, 1, h, d]`. Read in
/// place on flex for inference ([`attention::SlotAttentionOp`]); elsewhere row by row through
/// [`gqa_attention`].
pub fn slot_gqa_attention(
    q: Tensor<4>,
    k_cache: Tensor<4>,
    v_cache: Tensor<4>,
    slots: &[usize],
    lens: &[usize],
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if inference_on_flex(&q, &k_cache, &v_cache) {
        return attention::slot_gqa_attention(q, k_cache, v_cache, slots, lens);
    }
    slot_gqa_attention_composed(q, k_cache, v_cache, slots, lens)
}

/// [`slot_gqa_attention`] row by row through [`gqa_attention`] over each row's slot (any
/// backend; the reference for the fused operation).
pub fn slot_gqa_attention_composed(
    q: Tensor<4>,
    k_cache: Tensor<4>,
    v_cache: Tensor<4>,
    slots: &[usize],
    lens: &[usize],
) -> Tensor<4> {
    let [_, h, _, d] = q.dims();
    let kvh = k_cache.dims()[1];
    let device = q.device();
    let rows = slots
        .iter()
        .zip(lens)
        .enumerate()
        .map(|(r, (&slot, &len))| {
            let view = |c: &Tensor<4>| c.clone().slice([slot..slot + 1, 0..kvh, 0..len, 0..d]);
            let open = Tensor::<4, Bool>::from_data(
                TensorData::new(vec![false; len], [1, 1, 1, len]),
                &device,
            );
            gqa_attention(
                q.clone().slice([r..r + 1, 0..h, 0..1, 0..d]),
                view(&k_cache),
                view(&v_cache),
                open,
            )
        });
    Tensor::cat(rows.collect(), 0)
}

/// [`gqa_attention`] through Burn's `attention`, without repeating K/V: the query heads that
/// share a KV head are contiguous, so they fold into the query-length axis.
pub fn gqa_attention_composed(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Tensor<4, Bool>,
) -> Tensor<4> {
    let [b, h, s, d] = q.dims();
    let kvh = k.dims()[1];
    let groups = h / kvh;
    let q = q.reshape([b, kvh, groups * s, d]);
    let mask = if groups > 1 {
        mask.repeat_dim(2, groups)
    } else {
        mask
    };
    // Burn's attention: scale 1/sqrt(d), softmax in f32, fully masked rows give 0.
    burn_attention(q, k, v, Some(mask), None, AttentionModuleOptions::default())
        .reshape([b, h, s, d])
        .swap_dims(1, 2)
}

/// Test helper: the largest difference between two tensors relative to the largest magnitude
/// in the reference `want`.
#[cfg(test)]
pub(crate) fn max_rel_diff<const D: usize>(got: Tensor<D>, want: Tensor<D>) -> f32 {
    let (got, want) = (
        crate::numeric::to_f32_vec(got),
        crate::numeric::to_f32_vec(want),
    );
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = got.iter().zip(&want).map(|(x, y)| (x - y).abs());
    diff.fold(0.0, f32::max) / scale
}
