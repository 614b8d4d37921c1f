//! Policy answers to prompts, generated resumably through [`crate::data::generation`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::generation::{RowsOutput, generate_rows};
use crate::error::Result;
use crate::evolution::data::PromptRow;
use crate::model::generate::{FinishReason, SamplingConfig};
use crate::model::{LanguageModel, Message};

/// One policy answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseRow {
    pub id: String,
    pub prompt: String,
    pub response: String,
    pub response_tokens: usize,
    pub finish_reason: FinishReason,
}

pub use crate::data::generation::user;

/// How `model` answers `prompts`, appended to `path` (resumable, see [`generate_rows`]).
pub fn answer_prompts(
    model: &LanguageModel,
    prompts: &[PromptRow],
    sampling: &SamplingConfig,
    batch_size: usize,
    path: &Path,
    label: &str,
    fault: &str,
) -> Result<Vec<ResponseRow>> {
    let inputs: Vec<Vec<Message>> = prompts.iter().map(|p| user(&p.prompt)).collect();
    generate_rows(
        model,
        &inputs,
        sampling,
        batch_size,
        RowsOutput { path, label, fault },
        |i, g| ResponseRow {
            id: prompts[i].id.clone(),
            prompt: prompts[i].prompt.clone(),
            response: g.text.clone(),
            response_tokens: g.token_ids.len(),
            finish_reason: g.finish_reason,
        },
    )
}
