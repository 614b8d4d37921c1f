//! Preference pairs graded by rules: a policy samples K responses to each verifiable-instruction
//! prompt ([`super::synthetic`]), each is scored by the fraction of the prompt's instructions it
//! follows ([`constraint_score`]), and the best and the worst sample become (chosen, rejected)
//! when their scores differ; prompts whose samples all score the same give no pair. This is the
//! rule-graded counterpart of the rated preference data SEFT's reviser learns from: scores are
//! on the 0-10 scale of such ratings (10 × the fraction followed).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::evaluate::{IfevalPrompt, read_input_data};
use super::synthetic::constraint_score;
use crate::backend::Backend;
use crate::data::generation::{RowsOutput, generate_rows, user};
use crate::data::jsonl::{write_atomic, write_jsonl};
use crate::error::{Result, SeftError};
use crate::model::Message;
use crate::model::generate::SamplingConfig;

#[derive(Debug, Clone)]
pub struct PairOptions {
    /// The policy that samples (GGUF, HF folder or hub id).
    pub model: String,
    pub backend: Backend,
    /// Prompts in IFEval's input format.
    pub prompts: PathBuf,
    /// Samples per prompt (K ≥ 2).
    pub samples: usize,
    pub sampling: SamplingConfig,
    pub batch_size: usize,
    /// Run folder: samples.jsonl (resumed), pairs.jsonl, summary.json.
    pub out: PathBuf,
}

/// One graded sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub key: i64,
    pub response: String,
    /// Fraction of the prompt's instructions followed (strict).
    pub score: f64,
}

/// A rated preference pair in the row format seft's preference readers take
/// (`data.preferences` of a run, `[preference]` training).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
    pub score_chosen: Option<f64>,
    pub score_rejected: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairSummary {
    pub prompts: usize,
    pub samples_per_prompt: usize,
    pub pairs: usize,
    /// Prompts whose samples all scored the same.
    pub ties: usize,
    /// Mean fraction of instructions followed over all samples.
    pub mean_score: f64,
    /// Samples following every instruction of their prompt.
    pub all_followed: usize,
}

/// Best and worst sample of each prompt as a pair, or none on a tie.
pub fn pairs_from_samples(
    prompts: &[IfevalPrompt],
    samples: &[Sample],
    k: usize,
) -> Vec<PreferencePair> {
    prompts
        .iter()
        .zip(samples.chunks(k))
        .filter_map(|(p, group)| {
            // The first best and the first worst, so a rerun picks the same pair.
            let best = group
                .iter()
                .reduce(|a, b| if b.score > a.score { b } else { a })?;
            let worst = group
                .iter()
                .reduce(|a, b| if b.score < a.score { b } else { a })?;
            (best.score > worst.score).then(|| PreferencePair {
                prompt: p.prompt.clone(),
                chosen: best.response.clone(),
                rejected: worst.response.clone(),
                score_chosen: Some(10.0 * best.score),
                score_rejected: Some(10.0 * worst.score),
            })
        })
        .collect()
}

/// The most samples per prompt: best against worst of more gains little, and every sample is
/// held in memory.
pub const MAX_SAMPLES: usize = 64;

/// Samples, grades and pairs; writes the run folder and returns the summary.
pub fn make_pairs(opts: &PairOptions) -> Result<PairSummary> {
    if !(2..=MAX_SAMPLES).contains(&opts.samples) {
        return Err(SeftError::Invalid(format!(
            "--samples must be 2..={MAX_SAMPLES} (a pair needs two samples), not {}",
            opts.samples
        )));
    }
    let prompts = read_input_data(&opts.prompts)?;
    crate::ownership::claim_dir(&opts.out, "--out")?;
    let model = crate::model::LanguageModel::load_on(&opts.model, opts.backend)?;
    let k = opts.samples;
    let inputs: Vec<Vec<Message>> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(user(&p.prompt), k))
        .collect();
    let samples = generate_rows(
        &model,
        &inputs,
        &opts.sampling,
        opts.batch_size.max(1),
        RowsOutput {
            path: &opts.out.join("samples.jsonl"),
            label: "sample",
            fault: "sample",
        },
        |i, g| {
            let p = &prompts[i / k];
            Sample {
                key: p.key,
                score: constraint_score(p, &g.text),
                response: g.text.clone(),
            }
        },
    )?;
    let pairs = pairs_from_samples(&prompts, &samples, k);
    write_jsonl(&opts.out.join("pairs.jsonl"), &pairs)?;
    let n = samples.len().max(1) as f64;
    let summary = PairSummary {
        prompts: prompts.len(),
        samples_per_prompt: k,
        pairs: pairs.len(),
        ties: prompts.len() - pairs.len(),
        mean_score: samples.iter().map(|s| s.score).sum::<f64>() / n,
        all_followed: samples.iter().filter(|s| s.score == 1.0).count(),
    };
    let json = serde_json::to_string_pretty(&summary).expect("summary serializes") + "\n";
    write_atomic(&opts.out.join("summary.json"), json.as_bytes())?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::eval::ifeval::evaluate::parse_input_data;

    #[test]
    fn best_and_worst_sample_pair_up_and_ties_drop() {
        let text = "{\"key\": 1, \"prompt\": \"a\", \"instruction_id_list\": [\"punctuation:no_comma\"], \"kwargs\": [{}]}\n\
                    {\"key\": 2, \"prompt\": \"b\", \"instruction_id_list\": [\"punctuation:no_comma\"], \"kwargs\": [{}]}\n";
        let prompts = parse_input_data(text, Path::new("p.jsonl")).unwrap();
        let s = |key, response: &str, score| Sample {
            key,
            response: response.into(),
            score,
        };
        let samples = vec![
            s(1, "x, y", 0.0),
            s(1, "x y", 1.0),
            s(1, "z", 1.0),
            s(2, "a, b", 0.0),
            s(2, "c, d", 0.0),
            s(2, "e, f", 0.0),
        ];
        let pairs = pairs_from_samples(&prompts, &samples, 3);
        assert_eq!(pairs.len(), 1);
        assert_eq!(
            (pairs[0].chosen.as_str(), pairs[0].rejected.as_str()),
            ("x y", "x, y")
        );
        assert_eq!(
            (pairs[0].score_chosen, pairs[0].score_rejected),
            (Some(10.0), Some(0.0))
        );
    }
}
