//! Pairwise judging with a local model, read from logits rather than sampled text: the judge
//! sees the instruction and two answers and the probabilities it gives to the tokens `1` and
//! `2` as its next token are compared. Each pair is judged in both orders and the two
//! probabilities averaged, which cancels the judge's position bias (as AlpacaEval and MT-Bench
//! do by swapping). The result is only as good as the judge model; reports name it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SeftError};
use crate::model::batch::Batch;
use crate::model::llama::KvCache;
use crate::model::{LanguageModel, Message};
use crate::numeric::to_f32_vec;

pub const JUDGE_TEMPLATE: &str = "Compare two responses to the same instruction and decide which one is more helpful, correct and clear.\n\n### Instruction:\n{instruction}\n\n### Response 1:\n{first}\n\n### Response 2:\n{second}\n\nWhich response is better? Answer with the number 1 or 2 only.";

/// One judged pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgment {
    pub id: String,
    pub instruction: String,
    pub answer_a: String,
    pub answer_b: String,
    /// P(A better) with A shown first, with A shown second, and their mean.
    pub p_a_first: f64,
    pub p_a_second: f64,
    pub p_a: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeSummary {
    pub judge: String,
    pub pairs: usize,
    /// Share of pairs where A is preferred (p_a > 0.5), ties (p_a = 0.5) counting half.
    pub win_rate_a: f64,
    pub mean_p_a: f64,
    /// Mean probability of "1" over all judgments: 0.5 means no position bias.
    pub mean_p_first: f64,
}

/// The judge's next-token logits after `prompt` (one sequence, no padding).
fn next_token_logits(model: &LanguageModel, prompt: &[u32]) -> Vec<f32> {
    let device = model.device();
    let n = prompt.len();
    let mut cache = KvCache::new(&model.config, 1, n, &device);
    let batch = Batch::single(prompt);
    let hidden = model
        .net
        .prefill(&batch, &mut cache, crate::model::generate::PREFILL_CHUNK);
    to_f32_vec(model.net.logits(hidden))
}

fn single_token(model: &LanguageModel, text: &str) -> Result<u32> {
    match model.tokenizer.encode(text, false)?.as_slice() {
        [id] => Ok(*id),
        other => Err(SeftError::Invalid(format!(
            "the judge's tokenizer splits {text:?} into {} tokens; it needs one",
            other.len()
        ))),
    }
}

/// Compares answers `a` and `b` (by id) to the same instructions.
pub fn judge_pairs(
    judge: &LanguageModel,
    judge_name: &str,
    pairs: &[(String, String, String, String)],
    mut on_progress: impl FnMut(usize),
) -> Result<(Vec<Judgment>, JudgeSummary)> {
    let one = single_token(judge, "1")?;
    let two = single_token(judge, "2")?;
    let mut p_first_sum = 0.0;
    let mut prob_first = |instruction: &str, first: &str, second: &str| -> Result<f64> {
        let user = JUDGE_TEMPLATE
            .replacen("{instruction}", instruction, 1)
            .replacen("{first}", first, 1)
            .replacen("{second}", second, 1);
        let text = judge
            .tokenizer
            .apply_chat_template(&[Message::new("user", &user)], true)?;
        let logits = next_token_logits(judge, &judge.tokenizer.encode(&text, false)?);
        let (l1, l2) = (logits[one as usize] as f64, logits[two as usize] as f64);
        let p = 1.0 / (1.0 + (l2 - l1).exp());
        p_first_sum += p;
        Ok(p)
    };
    let mut out = Vec::with_capacity(pairs.len());
    for (i, (id, instruction, a, b)) in pairs.iter().enumerate() {
        let p_a_first = prob_first(instruction, a, b)?;
        let p_a_second = 1.0 - prob_first(instruction, b, a)?;
        out.push(Judgment {
            id: id.clone(),
            instruction: instruction.clone(),
            answer_a: a.clone(),
            answer_b: b.clone(),
            p_a_first,
            p_a_second,
            p_a: (p_a_first + p_a_second) / 2.0,
        });
        on_progress(i + 1);
    }
    let n = out.len().max(1) as f64;
    let wins: f64 = out
        .iter()
        .map(|j| match j.p_a.partial_cmp(&0.5) {
            Some(std::cmp::Ordering::Greater) => 1.0,
            Some(std::cmp::Ordering::Equal) => 0.5,
            _ => 0.0,
        })
        .sum();
    let summary = JudgeSummary {
        judge: judge_name.to_string(),
        pairs: out.len(),
        win_rate_a: wins / n,
        mean_p_a: out.iter().map(|j| j.p_a).sum::<f64>() / n,
        mean_p_first: p_first_sum / (2.0 * n),
    };
    Ok((out, summary))
}

/// Pairs the rows of two answer files by id: (id, instruction, answer a, answer b).
pub fn pair_by_id(
    a: &[serde_json::Value],
    b: &[serde_json::Value],
) -> std::result::Result<Vec<(String, String, String, String)>, String> {
    let field = |v: &serde_json::Value, k: &str| -> std::result::Result<String, String> {
        v.get(k)
            .and_then(|x| x.as_str())
            .map(String::from)
            .ok_or_else(|| format!("a row has no string '{k}'"))
    };
    let mut by_id = BTreeMap::new();
    for row in b {
        by_id.insert(field(row, "id")?, field(row, "response")?);
    }
    let mut out = Vec::new();
    for row in a {
        let id = field(row, "id")?;
        if let Some(other) = by_id.get(&id) {
            out.push((
                id,
                field(row, "prompt")?,
                field(row, "response")?,
                other.clone(),
            ));
        }
    }
    if out.is_empty() {
        return Err("the two files share no row id".into());
    }
    Ok(out)
}
