//! The BERT encoder of sentence-transformers models such as all-MiniLM-L6-v2, in Burn.
//!
//! Numerics follow transformers' `modeling_bert.py` in eval mode: embeddings are word +
//! absolute position + token type, then LayerNorm; each layer is self-attention over the
//! non-padding keys and an erf-GELU feed-forward block, each followed by a residual LayerNorm
//! (post-norm). Dropout is absent because only inference is needed.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::gelu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use serde::Deserialize;

use crate::error::{Result, SeftError};
use crate::model::weights::{ParamSource, transpose};

/// The fields of a BERT `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    #[serde(default)]
    pub pad_token_id: u32,
}

fn default_type_vocab_size() -> usize {
    2
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

fn default_hidden_act() -> String {
    "gelu".into()
}

impl BertConfig {
    /// Reads and checks `config.json`; a model this encoder would compute wrongly is an error
    /// naming the file, not a silent mismatch.
    pub fn from_json(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(SeftError::file(
                path,
                "missing (a sentence-transformers folder needs config.json, model.safetensors and tokenizer.json)",
            ));
        }
        let text = crate::input::read_metadata(path)?;
        let cfg: BertConfig = serde_json::from_str(&text)
            .map_err(|e| SeftError::file(path, format!("not a BERT config: {e}")))?;
        let problem = if cfg.model_type.as_deref().is_some_and(|t| t != "bert") {
            Some(format!(
                "model_type is '{}', expected 'bert'",
                cfg.model_type.as_deref().unwrap_or_default()
            ))
        } else if cfg.hidden_act != "gelu" {
            Some(format!(
                "hidden_act '{}' is not supported (only 'gelu')",
                cfg.hidden_act
            ))
        } else if cfg
            .position_embedding_type
            .as_deref()
            .is_some_and(|t| t != "absolute")
        {
            Some("only absolute position embeddings are supported".into())
        } else if cfg.num_attention_heads == 0
            || cfg.hidden_size == 0
            || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
        {
            Some(format!(
                "hidden_size {} is not a positive multiple of num_attention_heads {}",
                cfg.hidden_size, cfg.num_attention_heads
            ))
        } else {
            None
        };
        match problem {
            Some(msg) => Err(SeftError::file(path, msg)),
            None => Ok(cfg),
        }
    }
}

/// One encoder layer: attention block and feed-forward block, each with a post-LayerNorm.
#[derive(Module, Debug)]
pub struct BertLayer {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub attention_output: Linear,
    pub attention_norm: LayerNorm,
    pub intermediate: Linear,
    pub output: Linear,
    pub output_norm: LayerNorm,
    #[module(skip)]
    pub n_heads: usize,
}

impl BertLayer {
    /// `x`: [batch, seq, hidden]; `mask`: [batch, 1, seq, seq], true where a key is padding.
    fn forward(&self, x: Tensor<3>, mask: &Tensor<4, Bool>) -> Tensor<3> {
        let [b, s, hidden] = x.dims();
        let (h, d) = (self.n_heads, hidden / self.n_heads);
        let heads = |t: Tensor<3>| t.reshape([b, s, h, d]).swap_dims(1, 2);
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x.clone()));
        // Scale 1/sqrt(d) and softmax as BERT; padding keys get zero weight.
        let context = attention(
            q,
            k,
            v,
            Some(mask.clone()),
            None,
            AttentionModuleOptions::default(),
        )
        .swap_dims(1, 2)
        .reshape([b, s, hidden]);
        let x = self
            .attention_norm
            .forward(self.attention_output.forward(context) + x);
        let ffn = self
            .output
            .forward(gelu(self.intermediate.forward(x.clone())));
        self.output_norm.forward(ffn + x)
    }
}

/// The BERT encoder without its pooler (sentence-transformers pools the token states itself).
#[derive(Module, Debug)]
pub struct BertEncoder {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    pub embeddings_norm: LayerNorm,
    pub layers: Vec<BertLayer>,
}

/// A padded batch: token ids, token type ids and which positions are real tokens.
pub struct EncoderBatch {
    /// [batch][seq], padding holds the pad id.
    pub ids: Vec<Vec<u32>>,
    /// [batch][seq], padding holds 0.
    pub type_ids: Vec<Vec<u32>>,
    /// [batch][seq]
    pub valid: Vec<Vec<bool>>,
}

fn int_tensor(rows: &[Vec<u32>], device: &Device) -> Tensor<2, Int> {
    let b = rows.len();
    let s = rows.first().map_or(0, Vec::len);
    let flat: Vec<i64> = rows.iter().flatten().map(|&i| i64::from(i)).collect();
    Tensor::from_data(TensorData::new(flat, [b, s]), device)
}

impl BertEncoder {
    /// Last hidden states [batch, seq, hidden] (transformers' `last_hidden_state`).
    pub fn forward(&self, batch: &EncoderBatch) -> Tensor<3> {
        let device = self.word_embeddings.weight.device();
        let b = batch.ids.len();
        let s = batch.ids.first().map_or(0, Vec::len);
        let positions = Tensor::<1, Int>::arange(0..s as i64, &device).reshape([1, s]);
        let x = self
            .word_embeddings
            .forward(int_tensor(&batch.ids, &device))
            + self.position_embeddings.forward(positions)
            + self
                .token_type_embeddings
                .forward(int_tensor(&batch.type_ids, &device));
        let mut x = self.embeddings_norm.forward(x);
        let mut mask = Vec::with_capacity(b * s * s);
        for valid in &batch.valid {
            for _ in 0..s {
                mask.extend(valid.iter().map(|ok| !ok));
            }
        }
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(mask, [b, 1, s, s]), &device);
        for layer in &self.layers {
            x = layer.forward(x, &mask);
        }
        x
    }
}

/// Reads parameters under transformers' BertModel names, with or without a `bert.` prefix
/// (BertModel checkpoints have none, task heads such as BertForMaskedLM add it).
struct Loader<'a> {
    source: &'a mut dyn ParamSource,
    prefix: &'static str,
    device: &'a Device,
}

impl Loader<'_> {
    fn tensor<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        let data = self.source.get(&format!("{}{name}", self.prefix), &shape)?;
        Ok(Tensor::from_data(TensorData::new(data, shape), self.device))
    }

    fn embedding(&mut self, name: &str, rows: usize, dim: usize) -> Result<Embedding> {
        Ok(Embedding {
            weight: Param::from_tensor(self.tensor(&format!("{name}.weight"), [rows, dim])?),
        })
    }

    fn linear(&mut self, name: &str, d_in: usize, d_out: usize) -> Result<Linear> {
        let full = format!("{}{name}.weight", self.prefix);
        let w = self.source.get(&full, &[d_out, d_in])?;
        let weight = Tensor::from_data(
            TensorData::new(transpose(&w, d_out, d_in), [d_in, d_out]),
            self.device,
        );
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(
                self.tensor(&format!("{name}.bias"), [d_out])?,
            )),
        })
    }

    fn norm(&mut self, name: &str, dim: usize, eps: f64) -> Result<LayerNorm> {
        let mut norm = LayerNormConfig::new(dim)
            .with_epsilon(eps)
            .init(self.device);
        norm.gamma = Param::from_tensor(self.tensor(&format!("{name}.weight"), [dim])?);
        norm.beta = Some(Param::from_tensor(
            self.tensor(&format!("{name}.bias"), [dim])?,
        ));
        Ok(norm)
    }
}

/// Builds the encoder described by `cfg` with parameters from `source`.
pub fn build_encoder(
    cfg: &BertConfig,
    source: &mut dyn ParamSource,
    device: &Device,
) -> Result<BertEncoder> {
    let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
    let word = "embeddings.word_embeddings";
    let mut loader = Loader {
        source,
        prefix: "",
        device,
    };
    let word_embeddings = match loader.embedding(word, cfg.vocab_size, h) {
        Ok(e) => e,
        Err(first) => {
            loader.prefix = "bert.";
            loader
                .embedding(word, cfg.vocab_size, h)
                .map_err(|_| first)?
        }
    };
    let position_embeddings = loader.embedding(
        "embeddings.position_embeddings",
        cfg.max_position_embeddings,
        h,
    )?;
    let token_type_embeddings =
        loader.embedding("embeddings.token_type_embeddings", cfg.type_vocab_size, h)?;
    let embeddings_norm = loader.norm("embeddings.LayerNorm", h, eps)?;
    let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
    for i in 0..cfg.num_hidden_layers {
        let p = format!("encoder.layer.{i}");
        layers.push(BertLayer {
            query: loader.linear(&format!("{p}.attention.self.query"), h, h)?,
            key: loader.linear(&format!("{p}.attention.self.key"), h, h)?,
            value: loader.linear(&format!("{p}.attention.self.value"), h, h)?,
            attention_output: loader.linear(&format!("{p}.attention.output.dense"), h, h)?,
            attention_norm: loader.norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
            intermediate: loader.linear(
                &format!("{p}.intermediate.dense"),
                h,
                cfg.intermediate_size,
            )?,
            output: loader.linear(&format!("{p}.output.dense"), cfg.intermediate_size, h)?,
            output_norm: loader.norm(&format!("{p}.output.LayerNorm"), h, eps)?,
            n_heads: cfg.num_attention_heads,
        });
    }
    Ok(BertEncoder {
        word_embeddings,
        position_embeddings,
        token_type_embeddings,
        embeddings_norm,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn transpose_swaps_rows_and_columns() {
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }
}
