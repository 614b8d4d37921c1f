//! Which judge an evaluation uses, as plain data: a local model or an OpenAI-compatible
//! endpoint, built into a [`Judge`] only when there is something to judge.

use std::path::Path;
use std::time::Duration;

use super::Judge;
use super::cache::ResponseCache;
use super::http::HttpJudge;
use super::local::LocalJudge;
use crate::backend::Backend;
use crate::error::Result;

/// An OpenAI-compatible chat-completions endpoint as judge.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpJudgeSpec {
    /// Base URL, e.g. `https://api.openai.com/v1`.
    pub url: String,
    /// Model name sent to the API.
    pub model: String,
    pub api_key: Option<String>,
    /// Requests in flight at once.
    pub concurrency: usize,
    pub timeout: Duration,
    /// Retries after a 429, 5xx, timeout or malformed response.
    pub max_retries: usize,
    /// First retry delay, doubled after each failure.
    pub backoff: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JudgeSpec {
    /// A local judge model (GGUF file, Hugging Face folder or hub id), `batch_size` prompts
    /// per forward pass.
    Local {
        model: String,
        batch_size: usize,
    },
    Http(HttpJudgeSpec),
}

impl JudgeSpec {
    /// Builds the judge: a local model is loaded on `backend`; HTTP responses are cached in
    /// `http_cache` so a rerun sends no request twice.
    pub fn build(&self, backend: Backend, http_cache: &Path) -> Result<Box<dyn Judge>> {
        match self {
            JudgeSpec::Http(h) => {
                let mut judge = HttpJudge::new(&h.url, &h.model, h.api_key.clone(), h.timeout);
                judge.concurrency = h.concurrency.max(1);
                judge.max_retries = h.max_retries;
                judge.backoff = h.backoff;
                judge.cache = Some(ResponseCache::open(http_cache)?);
                Ok(Box::new(judge))
            }
            JudgeSpec::Local { model, batch_size } => Ok(Box::new(LocalJudge {
                model: crate::model::LanguageModel::load_on(model, backend)?,
                label: model.clone(),
                batch_size: (*batch_size).max(1),
            })),
        }
    }
}
