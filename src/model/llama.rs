//! The Llama-family decoder in Burn: RMSNorm, rotary embeddings, grouped-query attention with a
//! KV cache, SwiGLU (or shifted-ReLU) MLP, tied or separate output embeddings.
//!
//! Numerics follow transformers' `modeling_llama.py` (RMSNorm in f32, its sums of squares in
//! f64 on flex; `rotate_half` RoPE with the two halves of each head; softmax in f32), so logits
//! match it to float rounding. The code is backend-agnostic: the `Device` the weights live on
//! (flex, ndarray or wgpu) decides. On flex, projections, RMSNorm, RoPE, SwiGLU and (under
//! autodiff) attention run as the fused operations of [`crate::fused`]; elsewhere as Burn's
//! composed operations.

use std::ops::Range;
use std::sync::Arc;

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear};
use burn::tensor::activation::relu;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::fused::{
    cached_gqa_attention, gqa_attention, matmul_2d, rope_heads, slot_gqa_attention, swiglu,
};
use crate::model::batch::Batch;
use crate::model::config::ModelConfig;
use crate::model::linear::linear_forward;

/// Root-mean-square normalization with a learned scale, computed as transformers does.
#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
    #[module(skip)]
    pub eps: f64,
}

impl RmsNorm {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        crate::fused::rms_norm(x, self.weight.val(), self.eps)
    }
}

#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    #[module(skip)]
    pub n_heads: usize,
    #[module(skip)]
    pub n_kv_heads: usize,
    #[module(skip)]
    pub head_dim: usize,
}

/// Keys and values of one layer for every position seen so far, preallocated to the longest
/// sequence the generation may reach so a decode step writes one slot instead of copying.
/// The tensors are taken out (`Option::take`) while written so the backend sees a unique
/// owner and updates in place.
#[derive(Debug, Clone)]
pub struct LayerCache {
    k: Option<Tensor<4>>,
    v: Option<Tensor<4>>,
}

/// The KV cache of all layers, plus how many positions it holds.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    pub len: usize,
}

impl KvCache {
    pub fn new(cfg: &ModelConfig, batch: usize, capacity: usize, device: &Device) -> Self {
        let shape = [batch, cfg.num_key_value_heads, capacity, cfg.head_dim];
        let layers = (0..cfg.num_hidden_layers)
            .map(|_| LayerCache {
                k: Some(Tensor::zeros(shape, device)),
                v: Some(Tensor::zeros(shape, device)),
            })
            .collect();
        KvCache { layers, len: 0 }
    }
}

/// The KV caches of `slots` independent sequences for continuous batching: each slot holds
/// one sequence from position 0 and its own length, so sequences join (into a free slot) and
/// leave at any step without padding or moving the others.
#[derive(Debug, Clone)]
pub struct SlotCache {
    layers: Vec<LayerCache>,
}

impl SlotCache {
    /// `slots` sequences of up to `capacity` positions each.
    pub fn new(cfg: &ModelConfig, slots: usize, capacity: usize, device: &Device) -> Self {
        let KvCache { layers, .. } = KvCache::new(cfg, slots, capacity, device);
        SlotCache { layers }
    }

    /// Copies positions `0..len` of row `row` of a prefilled cache into `slot`.
    pub fn admit(&mut self, slot: usize, prefilled: &KvCache, row: usize, len: usize) {
        for (layer, from) in self.layers.iter_mut().zip(&prefilled.layers) {
            for (cache, from) in [(&mut layer.k, &from.k), (&mut layer.v, &from.v)] {
                let from = from.clone().expect("cache present");
                let [_, kvh, _, d] = from.dims();
                let from = from.slice([row..row + 1, 0..kvh, 0..len, 0..d]);
                *cache = cache
                    .take()
                    .map(|c| c.slice_assign([slot..slot + 1, 0..kvh, 0..len, 0..d], from));
            }
        }
    }
}

/// Where a layer's new keys and values go, and what its queries attend to.
pub enum CacheWrite<'a> {
    /// Every row's new tokens at positions `past..` of its cache row; attention over
    /// `0..past + seq` under the inputs' mask.
    Shared {
        layer: &'a mut LayerCache,
        past: usize,
    },
    /// Row r's one new token at position `lens[r]` of slot `slots[r]`; attention over that
    /// slot's positions `0..=lens[r]`.
    Slots {
        layer: &'a mut LayerCache,
        slots: &'a [usize],
        lens: &'a [usize],
    },
}

/// Per-call inputs shared by all layers: rotary tables and the attention mask.
pub struct AttentionInputs {
    /// [batch, 1, seq, head_dim]
    pub cos: Tensor<4>,
    pub sin: Tensor<4>,
    /// [batch, 1, seq, past + seq], true where attention is *not* allowed (padding, future);
    /// `None` for slot decoding, where every cached position of a row's slot is its own.
    pub mask: Option<Tensor<4, Bool>>,
}

impl AttentionInputs {
    fn mask(&self) -> Tensor<4, Bool> {
        self.mask
            .clone()
            .expect("a mask for every batch but slot decoding")
    }
}

impl Attention {
    /// `x`: [batch, seq, hidden]. With a cache, keys/values are appended at `past` and
    /// attention covers positions `0..past + seq`.
    pub fn forward(
        &self,
        x: Tensor<3>,
        inputs: &AttentionInputs,
        cache: Option<CacheWrite>,
    ) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let (h, kvh, d) = (self.n_heads, self.n_kv_heads, self.head_dim);
        // [b, s, n·d] → [b, s, n, d]; rope_heads also moves the heads axis: [b, n, s, d].
        let heads = |t: Tensor<3>, n: usize| t.reshape([b, s, n, d]);
        let rope = |t: Tensor<4>| rope_heads(t, inputs.cos.clone(), inputs.sin.clone());
        let q = rope(heads(linear_forward(&self.q_proj, x.clone()), h));
        let k = rope(heads(linear_forward(&self.k_proj, x.clone()), kvh));
        let v = heads(linear_forward(&self.v_proj, x), kvh).swap_dims(1, 2);
        let cached = |c: &Option<Tensor<4>>| c.clone().expect("cache present");
        // Writes take the tensor out of its option so the backend sees one owner and updates
        // in place; the clones handed to attention live only until it returns.
        let write = |cache: &mut Option<Tensor<4>>, new: Tensor<4>, at: [Range<usize>; 4]| {
            *cache = cache.take().map(|c| c.slice_assign(at, new));
        };
        let out = match cache {
            Some(CacheWrite::Shared { layer, past }) => {
                let end = past + s;
                write(&mut layer.k, k, [0..b, 0..kvh, past..end, 0..d]);
                write(&mut layer.v, v, [0..b, 0..kvh, past..end, 0..d]);
                let (k, v) = (cached(&layer.k), cached(&layer.v));
                cached_gqa_attention(q, k, v, inputs.mask(), end)
            }
            Some(CacheWrite::Slots { layer, slots, lens }) => {
                for (r, (&slot, &len)) in slots.iter().zip(lens).enumerate() {
                    let at = [slot..slot + 1, 0..kvh, len..len + 1, 0..d];
                    let row = |t: &Tensor<4>| t.clone().slice([r..r + 1, 0..kvh, 0..1, 0..d]);
                    write(&mut layer.k, row(&k), at.clone());
                    write(&mut layer.v, row(&v), at);
                }
                let lens: Vec<usize> = lens.iter().map(|len| len + 1).collect();
                let (k, v) = (cached(&layer.k), cached(&layer.v));
                slot_gqa_attention(q, k, v, slots, &lens)
            }
            None => gqa_attention(q, k, v, inputs.mask()),
        }
        .reshape([b, s, h * d]);
        linear_forward(&self.o_proj, out)
    }
}

#[derive(Module, Debug)]
pub struct Mlp {
    /// Absent in the ReLU variant.
    pub gate_proj: Option<Linear>,
    pub up_proj: Linear,
    pub down_proj: Linear,
    #[module(skip)]
    pub relu_threshold: f64,
    /// ReLU variant only, installed by [`CausalLm::install_relu_hooks`]: batch-1 steps go
    /// through it instead of the dense activation and down projection.
    #[module(skip)]
    pub relu_hook: Option<Arc<dyn ReluBlockHook>>,
}

/// A replacement for a ReLU block's activation and down projection in batch-1 decode steps.
/// The model only calls it; [`crate::sparse`]'s firing-rows decoding implements it, so the
/// decoder does not depend on the sparse algorithms.
pub trait ReluBlockHook: std::fmt::Debug + Send + Sync {
    /// The block's output [1, 1, hidden] for the up projection's output [1, 1, width], or
    /// None to run the dense path for this step.
    fn forward(&self, pre: Tensor<3>) -> Option<Tensor<3>>;
    /// Fraction of neurons that fired over every call since the last reset.
    fn firing_fraction(&self) -> f64;
    fn reset_counts(&self);
}

impl Mlp {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let hidden = match &self.gate_proj {
            Some(gate) => swiglu(
                linear_forward(gate, x.clone()),
                linear_forward(&self.up_proj, x),
            ),
            None => {
                let pre = linear_forward(&self.up_proj, x);
                // A batch-1 step with few firing neurons reads only their rows.
                if let Some(hook) = self.relu_hook.as_ref().filter(|_| b * s == 1)
                    && let Some(out) = hook.forward(pre.clone())
                {
                    return out;
                }
                relu(pre - self.relu_threshold)
            }
        };
        linear_forward(&self.down_proj, hidden)
    }
}

#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

impl DecoderLayer {
    fn forward(
        &self,
        x: Tensor<3>,
        inputs: &AttentionInputs,
        cache: Option<CacheWrite>,
    ) -> Tensor<3> {
        let h = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), inputs, cache);
        h.clone() + self.mlp.forward(self.post_attention_layernorm.forward(h))
    }
}

/// The decoder with its language-model head.
#[derive(Module, Debug)]
pub struct CausalLm {
    pub embed_tokens: Embedding,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    /// `None` when the output embedding is tied to `embed_tokens`.
    pub lm_head: Option<Linear>,
    #[module(skip)]
    pub inv_freq: Vec<f32>,
}

impl CausalLm {
    /// Rotary tables `[batch, 1, seq, head_dim]` (cos, sin) for the rotary positions of each
    /// row's new tokens.
    fn rotary_tables(&self, positions: &[Vec<usize>], device: &Device) -> (Tensor<4>, Tensor<4>) {
        let b = positions.len();
        let s = positions.first().map_or(0, Vec::len);
        let half = self.inv_freq.len();
        let d = 2 * half;
        let mut cos = Vec::with_capacity(b * s * d);
        let mut sin = Vec::with_capacity(b * s * d);
        for row in positions {
            for &p in row {
                // transformers: freqs = (inv_freq @ position) in f32, emb = cat(freqs, freqs).
                let freqs: Vec<f32> = self.inv_freq.iter().map(|f| f * p as f32).collect();
                for _ in 0..2 {
                    cos.extend(freqs.iter().map(|f| f.cos()));
                    sin.extend(freqs.iter().map(|f| f.sin()));
                }
            }
        }
        (
            Tensor::from_data(TensorData::new(cos, [b, 1, s, d]), device),
            Tensor::from_data(TensorData::new(sin, [b, 1, s, d]), device),
        )
    }

    /// Rotary tables and the causal + padding mask for a batch whose new tokens start at `past`.
    pub fn attention_inputs(&self, batch: &Batch, past: usize, device: &Device) -> AttentionInputs {
        let b = batch.ids.len();
        let s = batch.ids.first().map_or(0, Vec::len);
        let t = past + s;
        let (cos, sin) = self.rotary_tables(&batch.positions, device);
        let mut mask = Vec::with_capacity(b * s * t);
        for (r, valid) in batch.valid.iter().enumerate() {
            let segments = batch.segments.as_ref().map(|s| &s[r]);
            for i in 0..s {
                for (j, &ok) in valid.iter().enumerate().take(t) {
                    let same_segment = segments.is_none_or(|seg| seg[past + i] == seg[j]);
                    mask.push(!(ok && j <= past + i && same_segment));
                }
            }
        }
        AttentionInputs {
            cos,
            sin,
            mask: Some(Tensor::from_data(
                TensorData::new(mask, [b, 1, s, t]),
                device,
            )),
        }
    }

    /// Final hidden states [batch, seq, hidden] (after the last norm).
    pub fn hidden_states(&self, batch: &Batch, mut cache: Option<&mut KvCache>) -> Tensor<3> {
        let device = self.norm.weight.device();
        let past = cache.as_ref().map_or(0, |c| c.len);
        let inputs = self.attention_inputs(batch, past, &device);
        let b = batch.ids.len();
        let s = batch.ids.first().map_or(0, Vec::len);
        let flat: Vec<i64> = batch.ids.iter().flatten().map(|&i| i as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(flat, [b, s]), &device);
        let mut x = self.embed_tokens.forward(ids);
        for (i, layer) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| CacheWrite::Shared {
                layer: &mut c.layers[i],
                past,
            });
            x = layer.forward(x, &inputs, layer_cache);
        }
        if let Some(c) = cache {
            c.len = past + s;
        }
        self.norm.forward(x)
    }

    /// Final hidden states [rows, 1, hidden] of one decode step for continuous batching: row r's
    /// token `ids[r]` is position `lens[r]` of the sequence in slot `slots[r]` (which holds
    /// its positions `0..lens[r]`), and is written there.
    pub fn decode_slots(
        &self,
        ids: &[u32],
        slots: &[usize],
        lens: &[usize],
        cache: &mut SlotCache,
    ) -> Tensor<3> {
        let device = self.norm.weight.device();
        let positions: Vec<Vec<usize>> = lens.iter().map(|&len| vec![len]).collect();
        let (cos, sin) = self.rotary_tables(&positions, &device);
        let inputs = AttentionInputs {
            cos,
            sin,
            mask: None,
        };
        let flat: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(flat, [ids.len(), 1]), &device);
        let mut x = self.embed_tokens.forward(ids);
        for (layer, layer_cache) in self.layers.iter().zip(&mut cache.layers) {
            let write = CacheWrite::Slots {
                layer: layer_cache,
                slots,
                lens,
            };
            x = layer.forward(x, &inputs, Some(write));
        }
        self.norm.forward(x)
    }

    /// Runs a prompt batch into an empty-or-partial cache in chunks of `chunk` tokens and returns
    /// the final hidden state of the last position, [batch, 1, hidden]. Chunking skips most of
    /// the masked (future) half of the causal attention and bounds the score-matrix memory.
    pub fn prefill(&self, batch: &Batch, cache: &mut KvCache, chunk: usize) -> Tensor<3> {
        let mut last = None;
        self.prefill_chunks(batch, cache, chunk, |_, hidden| {
            let [b, n, h] = hidden.dims();
            last = Some(hidden.slice([0..b, n - 1..n, 0..h]));
        });
        last.expect("prefill of an empty prompt")
    }

    /// [`Self::prefill`]'s chunked pass, handing each chunk's final hidden states
    /// [batch, chunk length, hidden] and the index of its first new token to `visit`.
    pub fn prefill_chunks(
        &self,
        batch: &Batch,
        cache: &mut KvCache,
        chunk: usize,
        mut visit: impl FnMut(usize, Tensor<3>),
    ) {
        let s = batch.ids.first().map_or(0, Vec::len);
        let past = cache.len;
        for start in (0..s).step_by(chunk.max(1)) {
            let end = (start + chunk.max(1)).min(s);
            let part = batch.chunk(start, end, past);
            visit(start, self.hidden_states(&part, Some(cache)));
        }
    }

    /// Logits over the vocabulary for hidden states [.., hidden].
    pub fn logits<const D: usize>(&self, hidden: Tensor<D>) -> Tensor<D> {
        match &self.lm_head {
            Some(head) => linear_forward(head, hidden),
            None => {
                let w = self.embed_tokens.weight.val(); // [vocab, hidden]
                let dims = hidden.dims();
                let h = dims[D - 1];
                let rows: usize = dims[..D - 1].iter().product();
                let out = matmul_2d(hidden.reshape([rows, h]), w.transpose());
                let mut out_dims = dims;
                out_dims[D - 1] = self.embed_tokens.weight.dims()[0];
                out.reshape(out_dims)
            }
        }
    }

    /// Gives every ReLU block the hook `make` builds from it (see [`ReluBlockHook`]).
    /// Returns false, and changes nothing, for SwiGLU models.
    pub fn install_relu_hooks(&mut self, make: impl Fn(&Mlp) -> Arc<dyn ReluBlockHook>) -> bool {
        if self.layers.iter().any(|l| l.mlp.gate_proj.is_some()) {
            return false;
        }
        for layer in &mut self.layers {
            layer.mlp.relu_hook = Some(make(&layer.mlp));
        }
        true
    }

    /// Fraction of ReLU neurons that fired in hooked steps since the last reset, over all
    /// layers (None unless [`Self::install_relu_hooks`] was called).
    pub fn firing_fraction(&self, reset: bool) -> Option<f64> {
        let rows: Vec<_> = self
            .layers
            .iter()
            .filter_map(|l| l.mlp.relu_hook.as_ref())
            .collect();
        if rows.is_empty() {
            return None;
        }
        let mean = rows.iter().map(|r| r.firing_fraction()).sum::<f64>() / rows.len() as f64;
        if reset {
            rows.iter().for_each(|r| r.reset_counts());
        }
        Some(mean)
    }

    /// Logits [batch, seq, vocab] for a full forward pass without cache.
    pub fn forward(&self, batch: &Batch) -> Tensor<3> {
        self.logits(self.hidden_states(batch, None))
    }
}
