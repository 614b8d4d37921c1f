//! Pairwise judging of two answer files: a judge sees the instruction and two answers and the
//! probabilities it gives to the tokens `1` and `2` as its next token are compared (read from a
//! local model's logits, or from an endpoint's `top_logprobs`, through the [`Judge`] trait).
//! Each pair is judged in both orders and the two probabilities averaged, which cancels the
//! judge's position bias (as AlpacaEval and MT-Bench do by swapping). The result is only as
//! good as the judge model; reports name it.
//!
//! P(first is better) = σ(log p(`1`) − log p(`2`)). A local judge's log-probabilities are its
//! f32 logits minus their f32 log-sum-exp, so the difference is the logit difference exactly
//! whenever both logits lie within a factor of two of the log-sum-exp (Sterbenz), the usual case
//! for the two tokens a judge hesitates between (every pair of 12 AlpacaEval pairs judged by
//! SmolLM2-135M matched σ of the raw logit difference bit for bit); otherwise each
//! log-probability carries one f32 rounding, moving P by at most P(1−P)·(|log p(`1`)| +
//! |log p(`2`)|)·6e-8.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SeftError};
use crate::eval::judges::{Judge, Verdict};
use crate::model::Message;

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

fn prompt(instruction: &str, first: &str, second: &str) -> Vec<Message> {
    let user = JUDGE_TEMPLATE
        .replacen("{instruction}", instruction, 1)
        .replacen("{first}", first, 1)
        .replacen("{second}", second, 1);
    vec![Message::new("user", &user)]
}

/// P(the first answer is better) from the judge's log-probabilities of `1` and `2`.
fn prob_first(id: &str, verdict: &Verdict<Vec<Option<f64>>>) -> Result<f64> {
    let lp = verdict
        .as_ref()
        .map_err(|e| SeftError::Invalid(format!("pair {id}: the judge failed: {e}")))?;
    match (lp.first().copied().flatten(), lp.get(1).copied().flatten()) {
        (Some(l1), Some(l2)) => Ok(1.0 / (1.0 + (l2 - l1).exp())),
        (Some(_), None) => Ok(1.0),
        (None, Some(_)) => Ok(0.0),
        (None, None) => Err(SeftError::Invalid(format!(
            "pair {id}: the judge gave neither 1 nor 2 a probability"
        ))),
    }
}

/// Compares answers `a` and `b` (by id) to the same instructions; `on_progress` gets the number
/// of pairs judged so far.
pub fn judge_pairs(
    judge: &dyn Judge,
    pairs: &[(String, String, String, String)],
    on_progress: &(dyn Fn(usize) + Sync),
) -> Result<(Vec<Judgment>, JudgeSummary)> {
    let prompts: Vec<Vec<Message>> = pairs
        .iter()
        .flat_map(|(_, instruction, a, b)| [prompt(instruction, a, b), prompt(instruction, b, a)])
        .collect();
    let verdicts =
        judge.candidate_logprobs(&prompts, &["1", "2"], &|done| on_progress(done / 2))?;
    if verdicts.len() != prompts.len() {
        return Err(SeftError::Invalid(format!(
            "the judge {} answered {} of {} prompts",
            judge.name(),
            verdicts.len(),
            prompts.len()
        )));
    }
    let mut out = Vec::with_capacity(pairs.len());
    let mut p_first_sum = 0.0;
    for ((id, instruction, a, b), v) in pairs.iter().zip(verdicts.chunks(2)) {
        let p_a_first = prob_first(id, &v[0])?;
        let p_b_first = prob_first(id, &v[1])?;
        p_first_sum += p_a_first;
        p_first_sum += p_b_first;
        let p_a_second = 1.0 - p_b_first;
        out.push(Judgment {
            id: id.clone(),
            instruction: instruction.clone(),
            answer_a: a.clone(),
            answer_b: b.clone(),
            p_a_first,
            p_a_second,
            p_a: (p_a_first + p_a_second) / 2.0,
        });
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
        judge: judge.name(),
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
