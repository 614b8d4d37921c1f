//! Embeddings from any seft decoder without an extra model: the final hidden states (after the
//! last norm) mean-pooled over the text's tokens and L2-normalized.

use crate::embed::{by_length_batches, mean_pool_normalized};
use crate::error::{Result, SeftError};
use crate::model::LanguageModel;
use crate::model::batch::Batch;

/// Mean-pooled, unit-norm final hidden states of `model` for each text, in order. Texts are
/// tokenized as plain prompts (BOS when the checkpoint asks for it), cut to their first
/// `max_tokens` tokens and batched `batch_size` at a time, longest first. Rows are
/// right-padded: causal attention never lets a token see the padding after it, so padding
/// leaves the embedding unchanged. A text without tokens is an error naming its index.
pub fn mean_pooled_hidden_states(
    model: &LanguageModel,
    texts: &[String],
    batch_size: usize,
    max_tokens: usize,
) -> Result<Vec<Vec<f32>>> {
    if max_tokens == 0 {
        return Err(SeftError::Invalid("max_tokens must be at least 1".into()));
    }
    let mut tokens = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let mut ids = model
            .tokenizer
            .encode(text, true)
            .map_err(|e| SeftError::Invalid(format!("text {i}: {e}")))?;
        if ids.is_empty() {
            return Err(SeftError::Invalid(format!(
                "text {i} has no tokens: an empty text has no mean hidden state"
            )));
        }
        ids.truncate(max_tokens);
        tokens.push(ids);
    }
    let lengths: Vec<usize> = tokens.iter().map(Vec::len).collect();
    let pad = model.eos_token_ids.first().copied().unwrap_or(0);
    let mut out = vec![Vec::new(); texts.len()];
    for batch in by_length_batches(&lengths, batch_size)? {
        let longest = batch.iter().map(|&i| lengths[i]).max().unwrap_or(0);
        let rows: Vec<&[u32]> = batch.iter().map(|&i| tokens[i].as_slice()).collect();
        let input = Batch::right_padded(&rows, longest, pad);
        let hidden = model.net.hidden_states(&input, None);
        for (row, &i) in mean_pool_normalized(hidden, &input.valid)
            .into_iter()
            .zip(&batch)
        {
            out[i] = row;
        }
    }
    Ok(out)
}

/// A loaded decoder used as an embedder ([`mean_pooled_hidden_states`] with a fixed length cap).
#[derive(Debug)]
pub struct DecoderEmbedder {
    pub model: LanguageModel,
    /// Tokens kept per text (its first ones).
    pub max_tokens: usize,
}

impl DecoderEmbedder {
    pub fn new(model: LanguageModel, max_tokens: usize) -> Self {
        DecoderEmbedder { model, max_tokens }
    }

    /// The decoder's hidden size.
    pub fn dim(&self) -> usize {
        self.model.config.hidden_size
    }

    pub fn embed(&self, texts: &[String], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        mean_pooled_hidden_states(&self.model, texts, batch_size, self.max_tokens)
    }
}
