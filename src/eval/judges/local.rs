//! A local model as judge: candidate-token probabilities read directly from its next-token
//! logits (no sampling, so the same prompt always gives the same preference), prompts sorted
//! by length and scored in batches.

use super::{Judge, Verdict};
use crate::error::{Result, SeftError};
use crate::model::generate::{SamplingConfig, generate, log_softmax, next_token_logits};
use crate::model::{LanguageModel, Message};

pub struct LocalJudge {
    pub model: LanguageModel,
    pub label: String,
    /// Prompts per forward pass (1 = unbatched).
    pub batch_size: usize,
}

impl LocalJudge {
    fn tokenize(&self, prompts: &[Vec<Message>], prefix: &str) -> Result<Vec<Vec<u32>>> {
        prompts
            .iter()
            .map(|m| {
                let mut text = self.model.tokenizer.apply_chat_template(m, true)?;
                text.push_str(prefix);
                self.model.tokenizer.encode(&text, false)
            })
            .collect()
    }

    /// Batches of prompt indices, similar lengths together so little padding is computed.
    fn batches(&self, ids: &[Vec<u32>]) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        order
            .chunks(self.batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }

    fn token_id(&self, text: &str) -> Result<u32> {
        match self.model.tokenizer.encode(text, false)?.as_slice() {
            [id] => Ok(*id),
            other => Err(SeftError::Invalid(format!(
                "the judge {}'s tokenizer splits {text:?} into {} tokens; a candidate must be one token",
                self.label,
                other.len()
            ))),
        }
    }
}

impl Judge for LocalJudge {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn candidate_logprobs(
        &self,
        prompts: &[Vec<Message>],
        candidates: &[&str],
        on_done: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Verdict<Vec<Option<f64>>>>> {
        let tokens: Vec<u32> = candidates
            .iter()
            .map(|c| self.token_id(c))
            .collect::<Result<_>>()?;
        let ids = self.tokenize(prompts, "")?;
        let mut out = vec![Ok(Vec::new()); prompts.len()];
        let mut done = 0;
        for batch in self.batches(&ids) {
            let rows: Vec<Vec<u32>> = batch.iter().map(|&i| ids[i].clone()).collect();
            for (&i, logits) in batch.iter().zip(next_token_logits(&self.model, &rows)?) {
                let lp = log_softmax(&logits);
                out[i] = Ok(tokens
                    .iter()
                    .map(|&t| Some(lp[t as usize] as f64))
                    .collect());
            }
            done += batch.len();
            on_done(done);
        }
        Ok(out)
    }

    fn complete(
        &self,
        prompts: &[Vec<Message>],
        max_tokens: usize,
        prefix: &str,
        on_done: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Verdict<String>>> {
        let ids = self.tokenize(prompts, prefix)?;
        let cfg = SamplingConfig {
            max_new_tokens: max_tokens,
            ..Default::default()
        };
        let mut out = vec![Ok(String::new()); prompts.len()];
        let mut done = 0;
        for batch in self.batches(&ids) {
            let rows: Vec<Vec<u32>> = batch.iter().map(|&i| ids[i].clone()).collect();
            for (&i, g) in batch
                .iter()
                .zip(generate(&self.model, &rows, &cfg, |_, _| {})?)
            {
                out[i] = Ok(g.text);
            }
            done += batch.len();
            on_done(done);
        }
        Ok(out)
    }
}
