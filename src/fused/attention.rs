//! Masked scaled-dot-product attention with grouped-query heads as fused flex operations:
//! for training with its own backward ([`AttentionOp`], a backend extension), and for inference
//! over KV caches read in place ([`CachedAttentionOp`] for a batch sharing one cache length,
//! [`SlotAttentionOp`] for continuous batching, one sequence per cache slot). The output is
//! laid out `[b, s, h, d]`, ready for the output projection without a transpose.
//!
//! Why: under autodiff Burn computes attention from eleven generic operations (two matmuls,
//! a scale, a mask fill and a seven-step NaN-safe softmax), each allocating a
//! `[batch, heads, queries, keys]` tensor, and differentiates each of them. Here each task
//! (one batch row and one key/value head with its query heads) does its products as
//! single-threaded GEMMs and its softmax in place with the AVX2 `exp`, keeping only the
//! probabilities for the backward.
//!
//! Semantics are Burn's `attention` (and transformers' eager attention): scores
//! `q·kᵀ/√d`, blocked positions at −∞, softmax with the maximum clamped to f32's lowest
//! finite value and the sum to its smallest normal, so a fully blocked row gives 0. The
//! backward is the standard one: with P the probabilities, `dV = Pᵀ·dO`, `dP = dO·Vᵀ`,
//! `dS = P ⊙ (dP − rowsum(P ⊙ dP))`, `dQ = dS·K/√d`, `dK = dSᵀ·Q/√d`.

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

use super::flex_data::{SendPtr, f32_tensor, f32_values};
use super::matmul::gemm_serial;
use crate::numeric::kernels::exp_in_place;

/// Attention of `q` `[b, h, s, d]` over `k`, `v` `[b, kvh, t, d]` (`h` a multiple of `kvh`;
/// query heads `g·h/kvh .. (g+1)·h/kvh` share key/value head `g`), with `blocked` `[b, 1, s, t]`
/// holding 1 where a query may not attend to a key and 0 elsewhere (a constant). Returns
/// `[b, s, h, d]`.
#[backend_extension(Flex, Autodiff)]
pub trait AttentionOp: Backend {
    fn float_gqa_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        blocked: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl AttentionOp for Flex {
    fn float_gqa_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        blocked: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        attend(&q, &k, &v, &blocked, None).0
    }
}

/// Inference attention of `q` `[b, h, s, d]` over the first `len` positions of key/value
/// caches `k_cache`, `v_cache` `[b, kvh, capacity, d]`, read in place; `blocked`
/// `[b, 1, s, len]` as in [`AttentionOp`]. Returns `[b, s, h, d]`.
///
/// Why: a cache view `0..len` of a `[b, kvh, capacity, d]` buffer is not contiguous, so Burn's
/// attention first copies it and then packs it for its GEMM: three passes over the whole
/// cache per layer and token, which at a thousand cached positions cost more than the layer's
/// weights. Here each task's two products read the cache rows through their strides.
#[backend_extension(Flex)]
pub trait CachedAttentionOp: Backend {
    fn float_cached_gqa_attention(
        q: FloatTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        blocked: FloatTensor<Self>,
        len: usize,
    ) -> FloatTensor<Self>;
}

impl CachedAttentionOp for Flex {
    fn float_cached_gqa_attention(
        q: FloatTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        blocked: FloatTensor<Self>,
        len: usize,
    ) -> FloatTensor<Self> {
        attend(&q, &k_cache, &v_cache, &blocked, Some(len)).0
    }
}

/// Inference attention for continuous batching: query row `r` of `q` `[b, h, 1, d]` over
/// positions `0..lens[r]` of slot `slots[r]` of key/value caches `[slots, kvh, capacity, d]`,
/// each slot holding one sequence from position 0. Returns `[b, 1, h, d]`.
#[backend_extension(Flex)]
pub trait SlotAttentionOp: Backend {
    fn float_slot_gqa_attention(
        q: FloatTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        slots: Vec<usize>,
        lens: Vec<usize>,
    ) -> FloatTensor<Self>;
}

impl SlotAttentionOp for Flex {
    fn float_slot_gqa_attention(
        q: FloatTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        slots: Vec<usize>,
        lens: Vec<usize>,
    ) -> FloatTensor<Self> {
        attend_slots(&q, &k_cache, &v_cache, &slots, &lens)
    }
}

impl<C: CheckpointStrategy> AttentionOp for Autodiff<Flex, C> {
    fn float_gqa_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        blocked: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct AttentionBackward;

        impl Backward<Flex, 3> for AttentionBackward {
            /// The three inputs' nodes and the probabilities `[b, h, s, t]`.
            type State = (NodeId, NodeId, NodeId, FlexTensor);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let (q_id, k_id, v_id, probabilities) = ops.state;
                let q: FlexTensor = checkpointer.retrieve_node_output(q_id);
                let k: FlexTensor = checkpointer.retrieve_node_output(k_id);
                let v: FlexTensor = checkpointer.retrieve_node_output(v_id);
                let grad = grads.consume::<Flex>(&ops.node);
                let (d_q, d_k, d_v) = backward(&q, &k, &v, &probabilities, &grad);
                let [q_parent, k_parent, v_parent] = ops.parents;
                for (parent, d) in [(q_parent, d_q), (k_parent, d_k), (v_parent, d_v)] {
                    if let Some(node) = parent {
                        grads.register::<Flex>(node.id, d);
                    }
                }
            }
        }

        let blocked = blocked.into_primitive();
        match AttentionBackward
            .prepare::<C>([q.node(), k.node(), v.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let ids = (
                    prep.checkpoint(&q),
                    prep.checkpoint(&k),
                    prep.checkpoint(&v),
                );
                let (out, probabilities) =
                    attend(q.primitive(), k.primitive(), v.primitive(), &blocked, None);
                prep.finish((ids.0, ids.1, ids.2, probabilities), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(attend(q.primitive(), k.primitive(), v.primitive(), &blocked, None).0)
            }
        }
    }
}

/// [`AttentionOp`] on `f32` flex tensors.
pub fn gqa_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, blocked: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as AttentionOp>::float_gqa_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        blocked.into_dispatch(),
    ))
}

/// [`CachedAttentionOp`] on tensors (flex `f32`, without autodiff).
pub fn cached_gqa_attention(
    q: Tensor<4>,
    k_cache: Tensor<4>,
    v_cache: Tensor<4>,
    blocked: Tensor<4>,
    len: usize,
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as CachedAttentionOp>::float_cached_gqa_attention(
        q.into_dispatch(),
        k_cache.into_dispatch(),
        v_cache.into_dispatch(),
        blocked.into_dispatch(),
        len,
    ))
}

/// [`SlotAttentionOp`] on tensors (flex `f32`, without autodiff).
pub fn slot_gqa_attention(
    q: Tensor<4>,
    k_cache: Tensor<4>,
    v_cache: Tensor<4>,
    slots: &[usize],
    lens: &[usize],
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as SlotAttentionOp>::float_slot_gqa_attention(
        q.into_dispatch(),
        k_cache.into_dispatch(),
        v_cache.into_dispatch(),
        slots.to_vec(),
        lens.to_vec(),
    ))
}

/// Sizes: batch, query heads, key/value heads, queries, keys attended, head size, and key
/// rows allocated per key/value head (`capacity` ≥ `t`; more in a KV cache).
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    h: usize,
    kvh: usize,
    s: usize,
    t: usize,
    d: usize,
    capacity: usize,
}

impl Dims {
    /// The sizes of `q` `[b, h, s, d]` over `k`, `v` `[b, kvh, capacity, d]`, attending the
    /// first `len` key rows (all when `None`).
    fn of(
        q: &FlexTensor,
        k: &FlexTensor,
        v: &FlexTensor,
        blocked: Option<&FlexTensor>,
        len: Option<usize>,
    ) -> Self {
        let (qs, ks, vs) = (q.layout().shape(), k.layout().shape(), v.layout().shape());
        let capacity = ks[2];
        let dims = Dims {
            b: qs[0],
            h: qs[1],
            kvh: ks[1],
            s: qs[2],
            t: len.unwrap_or(capacity),
            d: qs[3],
            capacity,
        };
        let Dims {
            b, h, kvh, s, t, d, ..
        } = dims;
        assert!(
            ks[0] == b
                && ks[3] == d
                && (0..4).all(|i| vs[i] == ks[i])
                && kvh > 0
                && h % kvh == 0
                && t <= capacity,
            "attention: shapes {qs:?}, {ks:?}, {vs:?} do not fit (keys attended: {t})"
        );
        if let Some(m) = blocked {
            let ms = m.layout().shape();
            assert!(
                [ms[0], ms[1], ms[2], ms[3]] == [b, 1, s, t],
                "attention: mask {ms:?} does not fit [{b}, 1, {s}, {t}]"
            );
        }
        dims
    }
}

/// (output `[b, s, h, d]`, probabilities `[b, h, s, t]`) of `q` over the first `len` key
/// rows of `k`, `v` (all when `None`).
fn attend(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    blocked: &FlexTensor,
    len: Option<usize>,
) -> (FlexTensor, FlexTensor) {
    let dims = Dims::of(q, k, v, Some(blocked), len);
    let Dims {
        b,
        h,
        kvh,
        s,
        t,
        d,
        capacity,
    } = dims;
    let (q, k, v, blocked) = (
        f32_values(q),
        f32_values(k),
        f32_values(v),
        f32_values(blocked),
    );
    let mut out = vec![0f32; b * h * s * d];
    let mut probabilities = vec![0f32; b * h * s * t];
    // Each task writes its head's columns of the [b, s, h·d] output: strided, hence a pointer.
    let out_ptr = SendPtr(out.as_mut_ptr());
    let blocks = probabilities.par_chunks_mut(s * t).enumerate();
    blocks.for_each(|(bh, p)| {
        let (bi, hq) = (bh / h, bh % h);
        let hk = hq / (h / kvh);
        let cached = (bi * kvh + hk) * capacity * d;
        // SAFETY: task (bi, hq) alone writes columns hq·d.. of rows (bi, ·) of `out`.
        unsafe {
            attend_head(
                &q[bh * s * d..][..s * d],
                &k[cached..][..t * d],
                &v[cached..][..t * d],
                Some(&blocked[bi * s * t..][..s * t]),
                p,
                Dims { s, t, d, ..dims },
                out_ptr.get().add((bi * s * h + hq) * d),
            );
        }
    });
    (
        f32_tensor(out, Shape::new([b, s, h, d])),
        f32_tensor(probabilities, Shape::new([b, h, s, t])),
    )
}

/// One query head's attention: `p` ← softmax(scale · q·kᵀ) over `dims.s` queries and `dims.t`
/// keys (blocked keys at −∞), then `p·v` into `out`, whose rows are `h·d` apart (the
/// `[b, s, h·d]` layout).
///
/// # Safety
/// `out` must be valid for `dims.s` rows of `d` values `h·d` apart, written by no one else.
unsafe fn attend_head(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    blocked: Option<&[f32]>,
    p: &mut [f32],
    dims: Dims,
    out: *mut f32,
) {
    let Dims { h, s, t, d, .. } = dims;
    let scale = 1.0 / (d as f32).sqrt();
    // SAFETY: the slices hold s·d, t·d, t·d and s·t values, and `out` is the caller's.
    unsafe {
        // P = scale · Q·Kᵀ  (Kᵀ read through strides: row stride 1, column stride d).
        gemm_serial(
            s,
            t,
            d,
            p.as_mut_ptr(),
            t,
            false,
            q.as_ptr(),
            d as isize,
            1,
            k.as_ptr(),
            1,
            d as isize,
            scale,
        );
        for (i, row) in p.chunks_mut(t).enumerate() {
            softmax_row(row, blocked.map(|m| &m[i * t..][..t]));
        }
        // O = P·V into the head's columns of the output rows.
        gemm_serial(
            s,
            d,
            t,
            out,
            h * d,
            false,
            p.as_ptr(),
            t as isize,
            1,
            v.as_ptr(),
            d as isize,
            1,
            1.0,
        );
    }
}

/// `[b, 1, h, d]`: query row `r` of `q` `[b, h, 1, d]` over positions `0..lens[r]` of slot
/// `slots[r]` of the caches `[slots, kvh, capacity, d]` (a slot holds one sequence from
/// position 0, so nothing is blocked).
fn attend_slots(
    q: &FlexTensor,
    k_cache: &FlexTensor,
    v_cache: &FlexTensor,
    slots: &[usize],
    lens: &[usize],
) -> FlexTensor {
    let (qs, ks) = (q.layout().shape(), k_cache.layout().shape());
    let (b, h, d) = (qs[0], qs[1], qs[3]);
    let (kvh, capacity) = (ks[1], ks[2]);
    assert!(
        qs[2] == 1
            && ks[3] == d
            && v_cache.layout().shape() == ks
            && kvh > 0
            && h % kvh == 0
            && slots.len() == b
            && lens.len() == b
            && slots.iter().all(|&slot| slot < ks[0])
            && lens.iter().all(|&len| (1..=capacity).contains(&len)),
        "slot attention: q {qs:?}, caches {ks:?}, slots {slots:?}, lengths {lens:?} do not fit"
    );
    let (q, k, v) = (f32_values(q), f32_values(k_cache), f32_values(v_cache));
    let mut out = vec![0f32; b * h * d];
    let out_ptr = SendPtr(out.as_mut_ptr());
    (0..b * h).into_par_iter().for_each_init(Vec::new, |p, bh| {
        let (bi, hq) = (bh / h, bh % h);
        let t = lens[bi];
        let cached = (slots[bi] * kvh + hq / (h / kvh)) * capacity * d;
        p.resize(t, 0.0);
        let dims = Dims {
            b,
            h,
            kvh,
            s: 1,
            t,
            d,
            capacity,
        };
        // SAFETY: task (bi, hq) alone writes values (bi·h + hq)·d.. of `out`.
        unsafe {
            attend_head(
                &q[bh * d..][..d],
                &k[cached..][..t * d],
                &v[cached..][..t * d],
                None,
                p,
                dims,
                out_ptr.get().add(bh * d),
            );
        }
    });
    f32_tensor(out, Shape::new([b, 1, h, d]))
}

/// In place: blocked scores to −∞, then Burn's NaN-safe softmax.
fn softmax_row(row: &mut [f32], blocked: Option<&[f32]>) {
    for (x, &m) in row.iter_mut().zip(blocked.unwrap_or_default()) {
        if m != 0.0 {
            *x = f32::NEG_INFINITY;
        }
    }
    let max = row
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
        .max(f32::MIN);
    row.iter_mut().for_each(|x| *x -= max);
    exp_in_place(row);
    let sum = row.iter().sum::<f32>().max(f32::MIN_POSITIVE);
    row.iter_mut().for_each(|x| *x /= sum);
}

/// (d q, d k, d v) from the output gradient; one task per batch row and key/value head, so
/// the query heads sharing a key/value head add into its gradients in a fixed order.
///
/// One function: each task's five products share the strided pointers into the three
/// gradient buffers and one scratch block, and their safety argument is the task's
/// ownership of its (batch, key/value head) slices, stated once below.
fn backward(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    probabilities: &FlexTensor,
    grad: &FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let dims = Dims::of(q, k, v, None, None);
    let Dims {
        b, h, kvh, s, t, d, ..
    } = dims;
    let (q, k, v, p, d_o) = (
        f32_values(q),
        f32_values(k),
        f32_values(v),
        f32_values(probabilities),
        f32_values(grad),
    );
    let scale = 1.0 / (d as f32).sqrt();
    let groups = h / kvh;
    let mut d_q = vec![0f32; b * h * s * d];
    let mut d_k = vec![0f32; b * kvh * t * d];
    let mut d_v = vec![0f32; b * kvh * t * d];
    // Key/value head `bk` = (bi, hk) pairs with query heads bi·h + hk·groups + g, g < groups:
    // one contiguous `groups · s · d` block of d q.
    d_k.par_chunks_mut(t * d)
        .zip(d_v.par_chunks_mut(t * d))
        .zip(d_q.par_chunks_mut(groups * s * d))
        .enumerate()
        .for_each_init(
            || vec![0f32; s * t],
            |d_s, (bk, ((d_k, d_v), d_q))| {
                let bi = bk / kvh;
                let k = &k[bk * t * d..][..t * d];
                let v = &v[bk * t * d..][..t * d];
                for g in 0..groups {
                    let bh = bi * h + (bk % kvh) * groups + g;
                    let q = &q[bh * s * d..][..s * d];
                    let p = &p[bh * s * t..][..s * t];
                    // This head's [s, d] block of the [b, s, h, d] gradient: row stride h·d.
                    let (hq, row) = (bh % h, (h * d) as isize);
                    let d_o = d_o[(bi * s * h + hq) * d..].as_ptr();
                    let first = g == 0;
                    unsafe {
                        // dV (+)= Pᵀ·dO
                        gemm_serial(
                            t,
                            d,
                            s,
                            d_v.as_mut_ptr(),
                            d,
                            !first,
                            p.as_ptr(),
                            1,
                            t as isize,
                            d_o,
                            row,
                            1,
                            1.0,
                        );
                        // dP = dO·Vᵀ, into the scratch
                        gemm_serial(
                            s,
                            t,
                            d,
                            d_s.as_mut_ptr(),
                            t,
                            false,
                            d_o,
                            row,
                            1,
                            v.as_ptr(),
                            1,
                            d as isize,
                            1.0,
                        );
                    }
                    // dS = P ⊙ (dP − rowsum(P ⊙ dP))
                    for (d_s, p) in d_s.chunks_mut(t).zip(p.chunks(t)) {
                        let dot: f32 = d_s.iter().zip(p).map(|(a, b)| a * b).sum();
                        d_s.iter_mut()
                            .zip(p)
                            .for_each(|(x, &p)| *x = p * (*x - dot));
                    }
                    unsafe {
                        // dQ = scale · dS·K  (this query head's block, written by this task only)
                        gemm_serial(
                            s,
                            d,
                            t,
                            d_q[g * s * d..].as_mut_ptr(),
                            d,
                            false,
                            d_s.as_ptr(),
                            t as isize,
                            1,
                            k.as_ptr(),
                            d as isize,
                            1,
                            scale,
                        );
                        // dK (+)= scale · dSᵀ·Q
                        gemm_serial(
                            t,
                            d,
                            s,
                            d_k.as_mut_ptr(),
                            d,
                            !first,
                            d_s.as_ptr(),
                            1,
                            t as isize,
                            q.as_ptr(),
                            d as isize,
                            1,
                            scale,
                        );
                    }
                }
            },
        );
    (
        f32_tensor(d_q, Shape::new([b, h, s, d])),
        f32_tensor(d_k, Shape::new([b, kvh, t, d])),
        f32_tensor(d_v, Shape::new([b, kvh, t, d])),
    )
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    use burn::tensor::{Bool, Device, Distribution, Tensor, TensorData};

    use crate::numeric::to_f32_vec;

    /// Output and the three gradients equal Burn's attention with K/V heads repeated for the
    /// query groups, under a causal + padding mask that blocks one query row entirely.
    #[test]
    fn fused_attention_matches_burn_attention() {
        let device = Device::flex().autodiff();
        let (b, h, kvh, s, d) = (2, 6, 2, 9, 16);
        let q = Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), &device);
        let k = Tensor::<4>::random([b, kvh, s, d], Distribution::Normal(0.0, 1.0), &device);
        let v = Tensor::<4>::random([b, kvh, s, d], Distribution::Normal(0.0, 1.0), &device);
        let upstream = Tensor::<4>::random([b, s, h, d], Distribution::Normal(0.0, 1.0), &device);
        // Row 1 of the batch has two padding keys at the front; its query 0 sees nothing.
        let mut blocked = Vec::new();
        for bi in 0..b {
            for i in 0..s {
                for j in 0..s {
                    blocked.push(j > i || (bi == 1 && j < 2));
                }
            }
        }
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(blocked, [b, 1, s, s]), &device);
        let run = |fused: bool| {
            let (q, k, v) = (
                q.clone().detach().require_grad(),
                k.clone().detach().require_grad(),
                v.clone().detach().require_grad(),
            );
            let out = if fused {
                super::gqa_attention(q.clone(), k.clone(), v.clone(), mask.clone().float())
            } else {
                let repeat = |t: Tensor<4>| {
                    let [b, kvh, s, d] = t.dims();
                    t.unsqueeze_dim::<5>(2)
                        .repeat_dim(2, h / kvh)
                        .reshape([b, h, s, d])
                };
                attention(
                    q.clone(),
                    repeat(k.clone()),
                    repeat(v.clone()),
                    Some(mask.clone().repeat_dim(1, h)),
                    None,
                    AttentionModuleOptions::default(),
                )
                .swap_dims(1, 2)
            };
            let grads = (out.clone() * upstream.clone()).sum().backward();
            [
                to_f32_vec(out.detach()),
                to_f32_vec(q.grad(&grads).expect("q gradient")),
                to_f32_vec(k.grad(&grads).expect("k gradient")),
                to_f32_vec(v.grad(&grads).expect("v gradient")),
            ]
        };
        let fused = run(true);
        let reference = run(false);
        for (name, (got, want)) in ["output", "d q", "d k", "d v"]
            .iter()
            .zip(fused.iter().zip(&reference))
        {
            let diff = got
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-5, "{name} differs by {diff}");
        }
        // Batch row 1's query 0 (blocked everywhere) attends to nothing, in every head.
        let row = &fused[0][s * h * d..(s * h + h) * d];
        assert!(row.iter().all(|&x| x == 0.0), "blocked row: {row:?}");
    }

    /// Attention over the first `len` rows of a larger cache, read in place, equals Burn's
    /// attention over the `0..len` views (decode step and a short chunk, left padding that
    /// blocks one row's first keys, one row fully blocked).
    #[test]
    fn cached_attention_reads_the_cache_in_place() {
        let device = Device::flex();
        let (b, h, kvh, d, capacity, len) = (3, 6, 2, 16, 40, 29);
        let k = Tensor::<4>::random(
            [b, kvh, capacity, d],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let v = Tensor::<4>::random(
            [b, kvh, capacity, d],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        for s in [1, 4] {
            let q = Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), &device);
            let mut blocked = Vec::new();
            for bi in 0..b {
                for i in 0..s {
                    for j in 0..len {
                        blocked.push(j > len - s + i || (bi == 1 && j < 5) || bi == 2);
                    }
                }
            }
            let mask =
                Tensor::<4, Bool>::from_data(TensorData::new(blocked, [b, 1, s, len]), &device);
            let got = crate::fused::cached_gqa_attention(
                q.clone(),
                k.clone(),
                v.clone(),
                mask.clone(),
                len,
            );
            let view = |t: &Tensor<4>| t.clone().slice([0..b, 0..kvh, 0..len, 0..d]);
            let want = crate::fused::gqa_attention_composed(q, view(&k), view(&v), mask);
            assert_eq!(got.dims(), [b, s, h, d]);
            let diff = crate::fused::max_rel_diff(got.clone(), want);
            assert!(diff < 1e-5, "s = {s}: differs by {diff}");
            let blocked_row = to_f32_vec(got.slice([2..3, 0..s, 0..h, 0..d]));
            assert!(blocked_row.iter().all(|&x| x == 0.0));
        }
    }

    /// Slot attention: each row over its own slot's first `len` positions equals the composed
    /// path (Burn's attention over that slice), whatever the other rows hold.
    #[test]
    fn slot_attention_reads_each_rows_slot() {
        let device = Device::flex();
        let (h, kvh, d, capacity) = (6, 2, 16, 30);
        let k = Tensor::<4>::random(
            [4, kvh, capacity, d],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let v = Tensor::<4>::random(
            [4, kvh, capacity, d],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let (slots, lens) = ([2, 0, 3], [7, 30, 1]);
        let q = Tensor::<4>::random([3, h, 1, d], Distribution::Normal(0.0, 1.0), &device);
        let got = crate::fused::slot_gqa_attention(q.clone(), k.clone(), v.clone(), &slots, &lens);
        let want = crate::fused::slot_gqa_attention_composed(q, k, v, &slots, &lens);
        assert_eq!(got.dims(), [3, 1, h, d]);
        let diff = crate::fused::max_rel_diff(got, want);
        assert!(diff < 1e-5, "differs by {diff}");
    }
}
