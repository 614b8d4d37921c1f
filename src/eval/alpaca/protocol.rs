//! The AlpacaEval 2.0 judging protocol: render the `alpaca_eval_clf` prompt with the two
//! outputs in alpaca_eval's per-instruction order, ask the judge for the probabilities of `m`
//! (the first output is better) and `M` (the second is), and turn them into a preference in
//! [1, 2] (2 = the evaluated model is better), as alpaca_eval's `logprob_parser` does with
//! `numerator_token = "m"`, `is_binarize = false`.

use std::path::Path;

use rand::{SeedableRng, rngs::StdRng, seq::index::sample};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::annotations::{Annotation, ModelOutput};
use super::metrics::{WinRate, win_rate};
use super::pyrandom::is_switched;
use crate::error::{Result, SeftError};
use crate::eval::judges::{Judge, parse_chatml};
use crate::model::Message;

/// A judge prompt with `{instruction}`, `{output_1}` and `{output_2}` placeholders.
#[derive(Debug, Clone)]
pub struct JudgeTemplate {
    messages: Vec<Message>,
}

impl JudgeTemplate {
    /// Reads a ChatML template file such as alpaca_eval's `alpaca_eval_clf.txt`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = crate::input::read_metadata(path)?;
        let messages = parse_chatml(&text).map_err(|e| SeftError::file(path, e))?;
        for key in ["{instruction}", "{output_1}", "{output_2}"] {
            if !messages.iter().any(|m| m.content.contains(key)) {
                return Err(SeftError::file(path, format!("the template has no {key}")));
            }
        }
        Ok(JudgeTemplate { messages })
    }

    /// Fills the placeholders in one pass, so text inside an output is never substituted.
    pub fn render(&self, instruction: &str, output_1: &str, output_2: &str) -> Vec<Message> {
        let fill = |text: &str| {
            let mut out = String::with_capacity(text.len() + output_1.len() + output_2.len());
            let mut rest = text;
            while let Some(start) = rest.find('{') {
                out.push_str(&rest[..start]);
                let tail = &rest[start..];
                let (value, skip) = [
                    ("{instruction}", instruction),
                    ("{output_1}", output_1),
                    ("{output_2}", output_2),
                ]
                .iter()
                .find(|(k, _)| tail.starts_with(k))
                .map_or(("{", 1), |(k, v)| (*v, k.len()));
                out.push_str(value);
                rest = &tail[skip..];
            }
            out.push_str(rest);
            out
        };
        self.messages
            .iter()
            .map(|m| Message::new(&m.role, &fill(&m.content)))
            .collect()
    }
}

/// A preference from the log-probabilities of `m` and `M` (None when neither was reported).
pub fn preference(
    logprob_m: Option<f64>,
    logprob_big_m: Option<f64>,
    switched: bool,
) -> Option<f64> {
    let (lm, lbig) = (
        logprob_m.unwrap_or(f64::NEG_INFINITY),
        logprob_big_m.unwrap_or(f64::NEG_INFINITY),
    );
    if lm == f64::NEG_INFINITY && lbig == f64::NEG_INFINITY {
        return None;
    }
    let max = lm.max(lbig);
    let p_first = (lm - max).exp() / ((lm - max).exp() + (lbig - max).exp());
    // output_1 is the reference unless switched.
    Some(if switched {
        1.0 + p_first
    } else {
        2.0 - p_first
    })
}

/// A seeded subset of `n` instructions (all when n >= len), kept in evaluation-set order.
pub fn seeded_subset<T: Clone>(rows: &[T], n: Option<usize>, seed: u64) -> Vec<T> {
    match n {
        Some(n) if n < rows.len() => {
            let mut idx = sample(&mut StdRng::seed_from_u64(seed), rows.len(), n).into_vec();
            idx.sort_unstable();
            idx.into_iter().map(|i| rows[i].clone()).collect()
        }
        _ => rows.to_vec(),
    }
}

/// How many pairs the judge could not rate, and why (the first few reasons).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JudgeFailures {
    pub count: usize,
    pub examples: Vec<String>,
}

/// Judges each model output against the reference output to the same instruction.
pub fn annotate(
    judge: &dyn Judge,
    template: &JudgeTemplate,
    reference: &[ModelOutput],
    outputs: &[ModelOutput],
    annotator: &str,
    seed: u64,
    on_done: &(dyn Fn(usize) + Sync),
) -> Result<(Vec<Annotation>, JudgeFailures)> {
    let by_instruction: std::collections::HashMap<&str, &ModelOutput> = reference
        .iter()
        .map(|r| (r.instruction.as_str(), r))
        .collect();
    let mut pairs = Vec::with_capacity(outputs.len());
    for (i, o) in outputs.iter().enumerate() {
        let r = by_instruction.get(o.instruction.as_str()).ok_or_else(|| {
            SeftError::Invalid(format!(
                "model output {i}: its instruction is not in the reference outputs: {:.60}",
                o.instruction
            ))
        })?;
        pairs.push((*r, o, is_switched(&o.instruction, seed)));
    }
    let prompts: Vec<Vec<Message>> = pairs
        .iter()
        .map(|(r, o, switched)| {
            if *switched {
                template.render(&o.instruction, &o.output, &r.output)
            } else {
                template.render(&o.instruction, &r.output, &o.output)
            }
        })
        .collect();
    let verdicts = judge.candidate_logprobs(&prompts, &["m", "M"], on_done)?;
    let mut failures = JudgeFailures::default();
    let annotations = pairs
        .iter()
        .zip(verdicts)
        .map(|((r, o, switched), verdict)| {
            let (pref, raw) = match verdict {
                Ok(lp) => (
                    preference(lp[0], lp[1], *switched),
                    json!({"logprob_m": lp[0], "logprob_M": lp[1]}),
                ),
                Err(e) => {
                    failures.count += 1;
                    if failures.examples.len() < 5 {
                        failures.examples.push(e.clone());
                    }
                    (None, json!({"error": e}))
                }
            };
            Annotation {
                instruction: o.instruction.clone(),
                output_1: r.output.clone(),
                generator_1: r.generator.clone(),
                output_2: o.output.clone(),
                generator_2: o.generator.clone(),
                dataset: o.dataset.clone(),
                annotator: annotator.to_string(),
                preference: pref,
                is_switched_outputs: Some(*switched),
                raw_completion: Some(raw),
            }
        })
        .collect();
    Ok((annotations, failures))
}

/// The leaderboard row of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlpacaEvalMetrics {
    pub generator: String,
    #[serde(flatten)]
    pub win_rate: WinRate,
    pub avg_length: usize,
    /// Percent; None when there are too few judged pairs to fit the GLM.
    pub length_controlled_winrate: Option<f64>,
    pub lc_standard_error: Option<f64>,
    /// Where the instruction difficulties of the LC GLM came from.
    pub instruction_difficulty: String,
    pub annotator: String,
}

/// All metrics of one model's annotations.
pub fn metrics(
    annotations: &[Annotation],
    difficulty: &[f64],
    difficulty_source: &str,
) -> Result<AlpacaEvalMetrics> {
    let prefs: Vec<Option<f64>> = annotations.iter().map(|a| a.preference).collect();
    let judged = prefs.iter().flatten().count();
    let wr = win_rate(&prefs);
    // A win rate over no usable preference is undefined: an error, not `win_rate: null`.
    let Some(first) = annotations.first().filter(|_| wr.n_total > 0) else {
        return Err(SeftError::Invalid(format!(
            "no usable preference among {} annotations ({judged} judged; alpaca_eval uses preferences in [1, 2], 0 as a draw)",
            annotations.len()
        )));
    };
    let lc = if judged >= super::lc::MIN_JUDGED {
        Some(super::lc::length_controlled_winrate(
            annotations,
            difficulty,
        )?)
    } else {
        None
    };
    Ok(AlpacaEvalMetrics {
        generator: first.generator_2.clone(),
        win_rate: wr,
        avg_length: super::annotations::avg_length(annotations.iter().map(|a| a.output_2.as_str())),
        length_controlled_winrate: lc.as_ref().map(|l| l.length_controlled_winrate),
        lc_standard_error: lc.as_ref().map(|l| l.lc_standard_error),
        instruction_difficulty: difficulty_source.to_string(),
        annotator: first.annotator.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preference_follows_the_order_shown() {
        // The judge is sure the first output is better.
        assert_eq!(preference(Some(0.0), None, false), Some(1.0));
        assert_eq!(preference(Some(0.0), None, true), Some(2.0));
        let half = 0.5f64.ln();
        assert_eq!(preference(Some(half), Some(half), false), Some(1.5));
        // A missing token counts as probability 0.
        assert_eq!(preference(None, Some(-3.0), false), Some(2.0));
        assert_eq!(preference(None, None, false), None);
    }

    #[test]
    fn outputs_containing_placeholders_are_not_substituted_again() {
        let t = JudgeTemplate {
            messages: vec![Message::new(
                "user",
                "I={instruction} A={output_1} B={output_2} {x}",
            )],
        };
        let m = t.render("q", "uses {output_2}", "b");
        assert_eq!(m[0].content, "I=q A=uses {output_2} B=b {x}");
    }
}
