//! The decoder's checkpoint layout, described once.
//!
//! [`skeleton`] is the decoder's structure (every parameter's shape, no values). The module
//! fields are named as in transformers (`layers.3.self_attn.q_proj.weight`), so a parameter's
//! checkpoint name is its Burn module path under `model.` (the output head, `lm_head`, sits
//! beside `model`), and `Linear` weights are stored transposed (`[out, in]` in checkpoints,
//! `[in, out]` in Burn). Loading ([`load_parameters`], from GGUF, safetensors or a random
//! initialization) and saving ([`named_tensors`]) both walk that structure with Burn's module
//! visitors, so neither spells out a name of its own.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::{Embedding, Linear};
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, SeftError};
use crate::model::config::{MlpKind, ModelConfig, rope_inv_freq};
use crate::model::llama::{Attention, CausalLm, DecoderLayer, Mlp, RmsNorm};
use crate::model::weights::{ParamSource, transpose};
use crate::numeric::to_f32_vec;

/// The decoder described by `cfg`, with parameters of the right shapes and undefined values
/// (nothing is written; [`load_parameters`] fills them).
pub fn skeleton(cfg: &ModelConfig, device: &Device) -> CausalLm {
    let matrix = |rows: usize, cols: usize| Param::from_tensor(Tensor::empty([rows, cols], device));
    let vector = |n: usize| Param::from_tensor(Tensor::<1>::empty([n], device));
    let linear = |d_in: usize, d_out: usize, bias: bool| Linear {
        weight: matrix(d_in, d_out),
        bias: bias.then(|| vector(d_out)),
    };
    let norm = || RmsNorm {
        weight: vector(cfg.hidden_size),
        eps: cfg.rms_norm_eps,
    };
    let (h, d) = (cfg.hidden_size, cfg.head_dim);
    let q = cfg.num_attention_heads * d;
    let kv = cfg.num_key_value_heads * d;
    let layers = (0..cfg.num_hidden_layers)
        .map(|_| DecoderLayer {
            input_layernorm: norm(),
            self_attn: Attention {
                q_proj: linear(h, q, cfg.qkv_bias),
                k_proj: linear(h, kv, cfg.qkv_bias),
                v_proj: linear(h, kv, cfg.qkv_bias),
                o_proj: linear(q, h, cfg.o_bias),
                n_heads: cfg.num_attention_heads,
                n_kv_heads: cfg.num_key_value_heads,
                head_dim: d,
            },
            post_attention_layernorm: norm(),
            mlp: Mlp {
                gate_proj: (cfg.mlp == MlpKind::SwiGlu)
                    .then(|| linear(h, cfg.intermediate_size, false)),
                up_proj: linear(h, cfg.intermediate_size, false),
                down_proj: linear(cfg.intermediate_size, h, false),
                relu_threshold: cfg.relu_threshold,
                relu_hook: None,
            },
        })
        .collect();
    CausalLm {
        embed_tokens: Embedding {
            weight: matrix(cfg.vocab_size, h),
        },
        layers,
        norm: norm(),
        lm_head: (!cfg.tie_word_embeddings).then(|| linear(h, cfg.vocab_size, false)),
        inv_freq: rope_inv_freq(cfg),
    }
}

/// The checkpoint name of the parameter at Burn module `path`.
pub fn checkpoint_name(path: &str) -> String {
    if path.starts_with("lm_head.") {
        path.to_string()
    } else {
        format!("model.{path}")
    }
}

/// Whether the parameter at `path` (of `rank` dimensions) is a `Linear` weight, stored
/// transposed in checkpoints. The only other matrix is the token embedding.
fn stored_transposed(path: &str, rank: usize) -> bool {
    rank == 2 && path != "embed_tokens.weight"
}

/// Fills every parameter of `skeleton` from `source`, in module order (the order matters for
/// a random initialization, which draws its values one tensor after the other).
pub fn load_parameters(
    skeleton: CausalLm,
    source: &mut dyn ParamSource,
    device: &Device,
) -> Result<CausalLm> {
    let mut loader = Loader {
        source,
        device,
        path: Vec::new(),
        error: None,
    };
    let net = skeleton.map(&mut loader);
    match loader.error {
        Some(e) => Err(e),
        None => Ok(net),
    }
}

struct Loader<'a> {
    source: &'a mut dyn ParamSource,
    device: &'a Device,
    path: Vec<String>,
    /// The first failure; later parameters are left as they are.
    error: Option<SeftError>,
}

impl Loader<'_> {
    fn read<const D: usize>(&mut self, shape: [usize; D]) -> Result<Tensor<D>> {
        let path = self.path.join(".");
        let name = checkpoint_name(&path);
        let data = if stored_transposed(&path, D) {
            let (d_in, d_out) = (shape[0], shape[1]);
            transpose(&self.source.get(&name, &[d_out, d_in])?, d_out, d_in)
        } else {
            self.source.get(&name, &shape)?
        };
        Ok(Tensor::from_data(TensorData::new(data, shape), self.device))
    }
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        match self.read(param.val().dims()) {
            Ok(tensor) => Param::from_tensor(tensor),
            Err(e) => {
                self.error = Some(e);
                param
            }
        }
    }
}

/// Every parameter under its checkpoint name, in checkpoint layout, as (shape, f32 data).
pub fn named_tensors(model: &CausalLm) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut lister = Lister {
        path: Vec::new(),
        out: BTreeMap::new(),
    };
    model.visit(&mut lister);
    lister.out
}

struct Lister {
    path: Vec<String>,
    out: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl ModuleVisitor for Lister {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.path.join(".");
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        let data = to_f32_vec(tensor);
        let entry = if stored_transposed(&path, D) {
            (
                vec![shape[1], shape[0]],
                transpose(&data, shape[0], shape[1]),
            )
        } else {
            (shape, data)
        };
        self.out.insert(checkpoint_name(&path), entry);
    }
}
