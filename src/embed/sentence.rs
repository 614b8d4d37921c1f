//! [`Embedder`]: a sentence-transformers BERT model (all-MiniLM-L6-v2 and its kin) loaded from
//! its folder, computing the same normalized mean-pooled embeddings as
//! `SentenceTransformer.encode`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde_json::Value;
use tokenizers::{Tokenizer, TruncationParams};

use crate::embed::bert::{BertConfig, BertEncoder, EncoderBatch, build_encoder};
use crate::embed::{by_length_batches, mean_pool_normalized};
use crate::error::{Result, SeftError};
use crate::model::weights::SafetensorsSource;

/// A sentence-transformers BERT model: tokenizer, encoder and its truncation length.
pub struct Embedder {
    encoder: BertEncoder,
    tokenizer: Tokenizer,
    config: BertConfig,
    max_seq_length: usize,
    folder: PathBuf,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("folder", &self.folder)
            .field("dim", &self.dim())
            .field("max_seq_length", &self.max_seq_length)
            .finish()
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = crate::input::read_metadata(path)?;
    serde_json::from_str(&text).map_err(|e| SeftError::file(path, format!("invalid JSON: {e}")))
}

/// sentence-transformers' truncation length (`sentence_bert_config.json`), capped by the
/// position table; without that file, the position table's size.
fn max_seq_length(folder: &Path, cfg: &BertConfig) -> Result<usize> {
    let path = folder.join("sentence_bert_config.json");
    let configured = if path.exists() {
        match read_json(&path)?.get("max_seq_length") {
            Some(Value::Number(n)) => n.as_u64().map(|n| n as usize).ok_or_else(|| {
                SeftError::file(&path, "max_seq_length must be a non-negative integer")
            })?,
            _ => cfg.max_position_embeddings,
        }
    } else {
        cfg.max_position_embeddings
    };
    let length = configured.min(cfg.max_position_embeddings);
    if length < 2 {
        return Err(SeftError::file(
            &path,
            format!("max_seq_length {length} leaves no room for [CLS] and [SEP]"),
        ));
    }
    Ok(length)
}

/// Refuses a pooling module other than mean pooling, the only one implemented here.
fn check_pooling(folder: &Path) -> Result<()> {
    let path = folder.join("1_Pooling/config.json");
    if !path.exists() {
        return Ok(());
    }
    let v = read_json(&path)?;
    let flag = |key: &str| v.get(key).and_then(Value::as_bool).unwrap_or(false);
    let others = [
        "pooling_mode_cls_token",
        "pooling_mode_max_tokens",
        "pooling_mode_mean_sqrt_len_tokens",
    ];
    if !flag("pooling_mode_mean_tokens") || others.iter().any(|k| flag(k)) {
        return Err(SeftError::file(
            &path,
            "only mean pooling (pooling_mode_mean_tokens alone) is supported",
        ));
    }
    Ok(())
}

impl Embedder {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `folder` (plus
    /// `sentence_bert_config.json` and `1_Pooling/config.json` when present).
    pub fn load(folder: &Path, device: &Device) -> Result<Self> {
        if !folder.is_dir() {
            return Err(SeftError::file(folder, "no such model folder"));
        }
        let config = BertConfig::from_json(&folder.join("config.json"))?;
        check_pooling(folder)?;
        let max_seq_length = max_seq_length(folder, &config)?;
        let tokenizer_path = folder.join("tokenizer.json");
        if !tokenizer_path.exists() {
            return Err(SeftError::file(&tokenizer_path, "missing"));
        }
        let mut tokenizer = crate::model::tokenizer::read_tokenizer_json(&tokenizer_path)?;
        // The file may carry its own padding/truncation (all-MiniLM-L6-v2's pads to 128);
        // sentence-transformers overrides both, and so does this.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| SeftError::file(&tokenizer_path, format!("truncation: {e}")))?;
        let mut source = SafetensorsSource::open(folder)?;
        let encoder = build_encoder(&config, &mut source, device)?;
        Ok(Embedder {
            encoder,
            tokenizer,
            config,
            max_seq_length,
            folder: folder.to_path_buf(),
        })
    }

    /// Embedding dimension (384 for all-MiniLM-L6-v2).
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// Tokens per text after truncation, special tokens included.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// Unit-norm embeddings of `texts`, in order. Texts are batched `batch_size` at a time,
    /// longest first (as sentence-transformers does, so padding stays small); a batch is padded
    /// to its longest text, and padding never changes a text's embedding.
    pub fn embed(&self, texts: &[String], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let encodings = texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                self.tokenizer
                    .encode(text.as_str(), true)
                    .map_err(|e| SeftError::Invalid(format!("text {i}: tokenization failed: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let lengths: Vec<usize> = encodings.iter().map(|e| e.get_ids().len()).collect();
        let mut out = vec![Vec::new(); texts.len()];
        for batch in by_length_batches(&lengths, batch_size)? {
            let longest = batch.iter().map(|&i| lengths[i]).max().unwrap_or(0);
            let padded = |row: &[u32], pad: u32| {
                let mut row = row.to_vec();
                row.resize(longest, pad);
                row
            };
            let input = EncoderBatch {
                ids: batch
                    .iter()
                    .map(|&i| padded(encodings[i].get_ids(), self.config.pad_token_id))
                    .collect(),
                type_ids: batch
                    .iter()
                    .map(|&i| padded(encodings[i].get_type_ids(), 0))
                    .collect(),
                valid: batch
                    .iter()
                    .map(|&i| (0..longest).map(|j| j < lengths[i]).collect())
                    .collect(),
            };
            let hidden = self.encoder.forward(&input);
            for (row, &i) in mean_pool_normalized(hidden, &input.valid)
                .into_iter()
                .zip(&batch)
            {
                out[i] = row;
            }
        }
        Ok(out)
    }
}
