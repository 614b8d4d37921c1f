//! Sentence embeddings, the points that k-means and KDE select from.
//!
//! - [`Embedder`]: a sentence-transformers BERT model (all-MiniLM-L6-v2) from its folder,
//!   equal to `SentenceTransformer.encode` (mean pooling over the attention mask, then L2
//!   normalization; texts truncated at the model's `max_seq_length`, 256 tokens).
//! - [`mean_pooled_hidden_states`] / [`DecoderEmbedder`]: the same pooling over the final
//!   hidden states of any seft decoder, so selection works with no extra model.
//! - [`TextEmbedder`]: either one, picked from what `--model` points at.

mod bert;
mod decoder;
mod sentence;

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, SeftError};
use crate::model::LanguageModel;
use crate::numeric::to_f32_vec;

pub use bert::{BertConfig, BertEncoder, EncoderBatch, build_encoder};
pub use decoder::{DecoderEmbedder, mean_pooled_hidden_states};
pub use sentence::Embedder;

/// Mean of `hidden` [batch, seq, dim] over each row's valid positions, then divided by its L2
/// norm, as sentence-transformers' Pooling (count clamped at 1e-9) and Normalize (norm clamped
/// at 1e-12) modules compute it. Returns one vector per row.
pub fn mean_pool_normalized(hidden: Tensor<3>, valid: &[Vec<bool>]) -> Vec<Vec<f32>> {
    let [b, s, d] = hidden.dims();
    let weights: Vec<f32> = valid
        .iter()
        .flat_map(|row| row.iter().map(|&ok| if ok { 1.0 } else { 0.0 }))
        .collect();
    let mask = Tensor::<3>::from_data(TensorData::new(weights, [b, s, 1]), &hidden.device());
    let sum = (hidden * mask.clone()).sum_dim(1).reshape([b, d]);
    let count = mask.sum_dim(1).reshape([b, 1]).clamp_min(1e-9);
    let mean = sum / count;
    let norm = mean
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    to_f32_vec(mean / norm)
        .chunks(d)
        .map(<[f32]>::to_vec)
        .collect()
}

/// Indices of texts grouped into batches of at most `batch_size`, longest first (ties keep
/// input order), so each batch pads little.
pub(crate) fn by_length_batches(lengths: &[usize], batch_size: usize) -> Result<Vec<Vec<usize>>> {
    if batch_size == 0 {
        return Err(SeftError::Invalid("batch size must be at least 1".into()));
    }
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    Ok(order.chunks(batch_size).map(<[usize]>::to_vec).collect())
}

/// Is `path` a Hugging Face folder of a BERT model (config.json with `model_type: bert`)?
fn is_bert_folder(path: &Path) -> bool {
    let config = path.join("config.json");
    crate::input::read_metadata(&config)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v.get("model_type")?.as_str().map(|t| t == "bert"))
        .unwrap_or(false)
}

/// A sentence-transformers model or a decoder, whichever `spec` names (boxed: both hold a
/// whole model).
#[derive(Debug)]
pub enum TextEmbedder {
    Sentence(Box<Embedder>),
    Decoder(Box<DecoderEmbedder>),
}

impl TextEmbedder {
    /// A folder whose config.json says `model_type: bert` loads as an [`Embedder`]; anything
    /// else (GGUF file, decoder folder, hub id) as a decoder whose texts keep their first
    /// `decoder_max_tokens` tokens.
    pub fn load(spec: &str, device: &Device, decoder_max_tokens: usize) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_dir() && is_bert_folder(path) {
            return Ok(TextEmbedder::Sentence(Box::new(Embedder::load(
                path, device,
            )?)));
        }
        let model = LanguageModel::load(spec, device)?;
        Ok(TextEmbedder::Decoder(Box::new(DecoderEmbedder::new(
            model,
            decoder_max_tokens,
        ))))
    }

    pub fn dim(&self) -> usize {
        match self {
            TextEmbedder::Sentence(e) => e.dim(),
            TextEmbedder::Decoder(e) => e.dim(),
        }
    }

    pub fn embed(&self, texts: &[String], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        match self {
            TextEmbedder::Sentence(e) => e.embed(texts, batch_size),
            TextEmbedder::Decoder(e) => e.embed(texts, batch_size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_go_longest_first_and_keep_ties_in_order() {
        let batches = by_length_batches(&[3, 9, 3, 1, 9], 2).unwrap();
        assert_eq!(batches, vec![vec![1, 4], vec![0, 2], vec![3]]);
        assert!(by_length_batches(&[1], 0).is_err());
        assert!(by_length_batches(&[], 4).unwrap().is_empty());
    }

    #[test]
    fn pooling_averages_valid_positions_and_normalizes() {
        let device = Device::flex();
        // Row 0: (3, 4) and padding (100, 0); row 1: (0, 1) and (6, 7), mean (3, 4).
        let hidden = Tensor::<3>::from_data(
            TensorData::new(vec![3.0, 4.0, 100.0, 0.0, 0.0, 1.0, 6.0, 7.0], [2, 2, 2]),
            &device,
        );
        let out = mean_pool_normalized(hidden, &[vec![true, false], vec![true, true]]);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(&out[0], &[0.6, 0.8]), "{:?}", out[0]);
        assert!(close(&out[1], &[0.6, 0.8]), "{:?}", out[1]);
    }

    #[test]
    fn a_zero_vector_stays_zero() {
        let device = Device::flex();
        let hidden = Tensor::<3>::zeros([1, 1, 3], &device);
        assert_eq!(
            mean_pool_normalized(hidden, &[vec![true]]),
            vec![vec![0.0; 3]]
        );
    }
}
