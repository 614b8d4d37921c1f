//! The data stage: every input of a run, as JSONL in `data/`. A built-in task family makes
//! its own data; otherwise preference pairs, the unannotated prompt pool, held-out prompts and
//! annotated examples come from the files the configuration names.

use std::collections::HashSet;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::data::jsonl::{read_jsonl, write_jsonl};
use crate::data::{read_preferences, read_prompts, read_records, resolve_dataset};
use crate::error::{Result, SeftError};
use crate::evolution::layout::DataFile;
use crate::evolution::reviser::{PreferencePair, ReviserDataSummary, reviser_conversations};
use crate::evolution::run_config::RunConfig;
use crate::evolution::task::TaskItem;
use crate::model::Message;

/// A held-out (or pool) prompt; `answer` is the reference when the task has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptRow {
    pub id: String,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// What the data stage produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataOutcome {
    pub preference_pairs: usize,
    pub reviser: ReviserDataSummary,
    pub pool: usize,
    pub held_out: usize,
    /// Annotated examples for the starting policy (0 without one).
    pub annotated: usize,
    /// Malformed rows skipped (only with data.skip_bad_rows).
    pub skipped_rows: usize,
    /// Pool prompts dropped as exact duplicates.
    pub duplicate_prompts: usize,
}

/// The inputs later stages read: preference pairs (for the gate), the pool and the held-out
/// prompts. The annotated examples and the reviser's training set are read by SFT from their
/// files.
#[derive(Debug, Clone)]
pub struct RunInputs {
    pub pairs: Vec<PreferencePair>,
    pub pool: Vec<PromptRow>,
    pub held_out: Vec<PromptRow>,
}

impl RunInputs {
    /// Reads back what [`make_data`] wrote in `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        Ok(RunInputs {
            pairs: read_jsonl(&DataFile::Preferences.in_dir(dir))?,
            pool: read_jsonl(&DataFile::Pool.in_dir(dir))?,
            held_out: read_jsonl(&DataFile::HeldOut.in_dir(dir))?,
        })
    }
}

/// Writes every input of the run under `dir`.
pub fn make_data(cfg: &RunConfig, dir: &Path) -> Result<(DataOutcome, RunInputs)> {
    let mut outcome = DataOutcome::default();
    let inputs = match &cfg.task {
        Some(task) => {
            let data = task.generate(cfg.seed);
            let annotated: Vec<serde_json::Value> = data
                .annotated
                .iter()
                .map(|i| serde_json::json!({"prompt": i.prompt, "completion": i.answer}))
                .collect();
            write_jsonl(&DataFile::Annotated.in_dir(dir), &annotated)?;
            outcome.annotated = annotated.len();
            RunInputs {
                pairs: data.preferences,
                // The pool is unannotated: its answers are not written.
                pool: prompt_rows(&data.pool, "pool", false),
                held_out: prompt_rows(&data.held_out, "eval", true),
            }
        }
        None => inputs_from_files(cfg, dir, &mut outcome)?,
    };
    if inputs.pool.is_empty() {
        return Err(SeftError::Invalid(
            "the unannotated prompt pool is empty: nothing to evolve on".into(),
        ));
    }
    outcome.reviser = write_reviser_data(cfg, &inputs.pairs, dir)?;
    write_jsonl(&DataFile::Preferences.in_dir(dir), &inputs.pairs)?;
    write_jsonl(&DataFile::Pool.in_dir(dir), &inputs.pool)?;
    write_jsonl(&DataFile::HeldOut.in_dir(dir), &inputs.held_out)?;
    outcome.preference_pairs = inputs.pairs.len();
    outcome.pool = inputs.pool.len();
    outcome.held_out = inputs.held_out.len();
    Ok((outcome, inputs))
}

fn prompt_rows(items: &[TaskItem], prefix: &str, with_answers: bool) -> Vec<PromptRow> {
    items
        .iter()
        .enumerate()
        .map(|(i, it)| PromptRow {
            id: format!("{prefix}-{i:06}"),
            prompt: it.prompt.clone(),
            answer: with_answers.then(|| it.answer.clone()),
        })
        .collect()
}

fn numbered(prompts: Vec<String>, prefix: &str) -> Vec<PromptRow> {
    prompts
        .into_iter()
        .enumerate()
        .map(|(i, prompt)| PromptRow {
            id: format!("{prefix}-{i:06}"),
            prompt,
            answer: None,
        })
        .collect()
}

/// Preference pairs, pool, held-out prompts and annotated examples from the configured files,
/// each file shuffled with the run's seed and cut to its configured maximum.
fn inputs_from_files(cfg: &RunConfig, dir: &Path, outcome: &mut DataOutcome) -> Result<RunInputs> {
    let opts = cfg.data.read_options();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut pairs = Vec::new();
    for spec in &cfg.data.preferences {
        let (mut prefs, report) = read_preferences(&resolve_dataset(spec)?, &opts)?;
        outcome.skipped_rows += report.skipped;
        prefs.shuffle(&mut rng);
        if cfg.data.max_pairs_per_file > 0 {
            prefs.truncate(cfg.data.max_pairs_per_file);
        }
        pairs.extend(prefs.iter().map(PreferencePair::from_preference));
    }
    let mut seen = HashSet::new();
    let mut pool = Vec::new();
    for spec in &cfg.data.prompts {
        let (mut prompts, report) = read_prompts(&resolve_dataset(spec)?, &opts)?;
        outcome.skipped_rows += report.skipped;
        prompts.shuffle(&mut rng);
        if cfg.data.max_prompts_per_file > 0 {
            prompts.truncate(cfg.data.max_prompts_per_file);
        }
        for prompt in prompts {
            if seen.insert(prompt.clone()) {
                pool.push(prompt);
            } else {
                outcome.duplicate_prompts += 1;
            }
        }
    }
    let held_out = match &cfg.data.eval_prompts {
        Some(spec) => {
            let (mut prompts, report) = read_prompts(&resolve_dataset(spec)?, &opts)?;
            outcome.skipped_rows += report.skipped;
            prompts.shuffle(&mut rng);
            if cfg.data.max_eval_prompts > 0 {
                prompts.truncate(cfg.data.max_eval_prompts);
            }
            numbered(prompts, "eval")
        }
        None => Vec::new(),
    };
    if let Some(spec) = &cfg.data.annotated {
        let (records, report) = read_records(&resolve_dataset(spec)?, &opts)?;
        outcome.skipped_rows += report.skipped;
        outcome.annotated = records.len();
        let rows: Vec<serde_json::Value> = records
            .iter()
            .map(|r| serde_json::json!({ "messages": message_values(&r.sft_messages()) }))
            .collect();
        write_jsonl(&DataFile::Annotated.in_dir(dir), &rows)?;
    }
    Ok(RunInputs {
        pairs,
        pool: numbered(pool, "pool"),
        held_out,
    })
}

fn message_values(messages: &[Message]) -> Vec<serde_json::Value> {
    messages
        .iter()
        .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
        .collect()
}

/// The reviser's training conversations (tagged revisions of rejected answers, kept chosen
/// ones), in `reviser_train.jsonl`.
fn write_reviser_data(
    cfg: &RunConfig,
    pairs: &[PreferencePair],
    dir: &Path,
) -> Result<ReviserDataSummary> {
    let (conversations, summary) = reviser_conversations(
        pairs,
        &cfg.reviser.levels,
        &cfg.reviser.format,
        cfg.reviser.max_pair_chars,
    );
    if conversations.is_empty() {
        return Err(SeftError::Invalid(format!(
            "no reviser training data: all {} preference pairs were dropped ({} by reviser.levels.min_gap = {}, {} by reviser.max_pair_chars = {})",
            pairs.len(),
            summary.dropped_small_gap,
            cfg.reviser.levels.min_gap,
            summary.dropped_too_long,
            cfg.reviser.max_pair_chars
        )));
    }
    let rows: Vec<serde_json::Value> = conversations
        .iter()
        .map(|c| serde_json::json!({ "messages": message_values(c) }))
        .collect();
    write_jsonl(&DataFile::ReviserTrain.in_dir(dir), &rows)?;
    Ok(summary)
}
