//! `seft run`: data → (starting policy) → reviser → T evolution iterations → evaluation →
//! report, every step a resumable stage with its artifacts on disk.
//!
//! Run directory:
//! ```text
//! config.toml                 the resolved configuration (a rerun must use the same)
//! data/                       preferences, reviser_train, pool, held_out (and annotated) JSONL
//! base/model/                 a scratch model's initialization
//! starting_policy/model/      SFT on the annotated examples
//! reviser/model/              the reviser (SFT on reviser_train.jsonl)
//! seft/iter-t/                generate/responses.jsonl → revise/revisions.jsonl →
//!                             sft_data/{sft,filtered}.jsonl → policy/model/
//! identity/iter-t/            the same with the reviser replaced by the identity
//! eval/<policy>/              graded held-out answers; eval/reviser/reviewed.jsonl
//! report.json, report.md
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::data::{ReadOptions, read_preferences, read_prompts, resolve_dataset};
use crate::error::{Result, SeftError};
use crate::model::generate::{FinishReason, SamplingConfig};
use crate::model::{LanguageModel, Message};
use crate::seft::config::{ReviserBase, RunConfig};
use crate::seft::evaluate::{
    GradedRow, PolicyEval, PromptRow, ReviserEval, eval_policy, eval_reviser,
};
use crate::seft::gate::{GateOutcome, GateScorer, train_gate_stage};
use crate::seft::generation::generate_rows;
use crate::seft::report::{IterationReport, Report, write_report};
use crate::seft::reviser::{PreferencePair, ReviserDataSummary, Tag, reviser_conversations};
use crate::seft::scratch::write_scratch_model;
use crate::seft::selection::{Selection, SelectionReport, select};
use crate::seft::stage::{StageRecord, io, read_jsonl, stage, write_atomic, write_jsonl};
use crate::select::Matrix;
use crate::select::embed::TextEmbedder;
use crate::train::config::{
    DataSection, LoraSection, ModelSection, OutputSection, SftConfig, TrainSection,
};
use crate::train::run_sft;

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftStage {
    pub model: PathBuf,
    pub rows: usize,
    pub steps: usize,
    pub truncated_rows: usize,
    /// Mean training loss of the first and of the last 10% of logged steps.
    pub first_loss: f64,
    pub final_loss: f64,
}

/// One policy answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseRow {
    pub id: String,
    pub prompt: String,
    pub response: String,
    pub response_tokens: usize,
    pub finish_reason: FinishReason,
}

/// One answer after the reviser (or the identity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionRow {
    pub id: String,
    pub prompt: String,
    pub response: String,
    pub response_finish: FinishReason,
    /// `None`: the reviser's output had no tag, and the response is kept.
    pub tag: Option<Tag>,
    /// What the policy is trained on: the revision, or the response when kept.
    pub enhanced: String,
    pub reviser_output: String,
    pub reviser_tokens: usize,
    pub reviser_finish: Option<FinishReason>,
    #[serde(default)]
    pub response_chars: usize,
    #[serde(default)]
    pub enhanced_chars: usize,
    /// The quality gate's score of (prompt, response), where a gate is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_score: Option<f32>,
    /// The gate passed the response: kept without calling the reviser.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gate_skipped: bool,
}

impl RevisionRow {
    /// The response kept as it is, without a reviser call (identity arm, gate pass).
    fn kept(r: &ResponseRow) -> Self {
        let chars = r.response.chars().count();
        RevisionRow {
            id: r.id.clone(),
            prompt: r.prompt.clone(),
            response: r.response.clone(),
            response_finish: r.finish_reason,
            tag: Some(Tag::Keep),
            enhanced: r.response.clone(),
            reviser_output: String::new(),
            reviser_tokens: 0,
            reviser_finish: None,
            response_chars: chars,
            enhanced_chars: chars,
            gate_score: None,
            gate_skipped: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RevisionOutcome {
    pub rows: usize,
    pub keep: usize,
    pub minor: usize,
    pub major: usize,
    /// Outputs without a tag: kept by default.
    pub untagged: usize,
    /// minor/major whose revision is empty (the response is kept) or identical to the response.
    pub empty_revision: usize,
    pub mean_response_chars: f64,
    pub mean_enhanced_chars: f64,
    pub mean_reviser_tokens_keep: f64,
    /// Responses the quality gate passed: kept without a reviser call.
    #[serde(default)]
    pub gate_skipped: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterOutcome {
    pub rows: usize,
    pub dropped_empty: usize,
    pub dropped_degenerate: usize,
    pub dropped_duplicate: usize,
    pub dropped_length_ratio: usize,
    /// Enhanced answers the quality gate rejected (gate.filter_precision).
    #[serde(default)]
    pub dropped_gate: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    /// The reviser enhances the policy's answers.
    Seft,
    /// Control: the policy's answers are kept as they are.
    Identity,
}

impl Arm {
    pub fn name(self) -> &'static str {
        match self {
            Arm::Seft => "seft",
            Arm::Identity => "identity",
        }
    }
}

fn user(prompt: &str) -> Vec<Message> {
    vec![Message::new("user", prompt)]
}

fn model_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Refuses a run directory made by another configuration, then records this one.
fn claim_run_dir(cfg: &RunConfig, out: &Path) -> Result<()> {
    io(out, std::fs::create_dir_all(out))?;
    let path = out.join("config.toml");
    let text = cfg.to_toml();
    if path.exists() {
        let old = io(&path, std::fs::read_to_string(&path))?;
        if old != text {
            return Err(SeftError::file(
                &path,
                "this run directory was made with a different configuration: choose another --out (or delete the directory)",
            ));
        }
        return Ok(());
    }
    write_atomic(&path, text.as_bytes())
}

/// The data stage: every input of the run as JSONL under `dir`.
fn make_data(cfg: &RunConfig, dir: &Path) -> Result<DataOutcome> {
    let mut outcome = DataOutcome::default();
    let (pairs, pool, held_out): (Vec<PreferencePair>, Vec<PromptRow>, Vec<PromptRow>);
    if let Some(task) = &cfg.task {
        let data = task.generate(cfg.seed);
        let annotated: Vec<serde_json::Value> = data
            .annotated
            .iter()
            .map(|i| serde_json::json!({"prompt": i.prompt, "completion": i.answer}))
            .collect();
        write_jsonl(&dir.join("annotated.jsonl"), &annotated)?;
        outcome.annotated = annotated.len();
        pairs = data.preferences;
        let rows = |items: &[crate::seft::task::TaskItem], prefix: &str| -> Vec<PromptRow> {
            items
                .iter()
                .enumerate()
                .map(|(i, it)| PromptRow {
                    id: format!("{prefix}-{i:06}"),
                    prompt: it.prompt.clone(),
                    answer: Some(it.answer.clone()),
                })
                .collect()
        };
        // The pool is unannotated: its answers are not written.
        pool = rows(&data.pool, "pool")
            .into_iter()
            .map(|p| PromptRow { answer: None, ..p })
            .collect();
        held_out = rows(&data.held_out, "eval");
    } else {
        let opts = ReadOptions {
            skip_bad_rows: cfg.data.skip_bad_rows,
        };
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let mut all_pairs = Vec::new();
        for spec in &cfg.data.preferences {
            let (mut prefs, report) = read_preferences(&resolve_dataset(spec)?, &opts)?;
            outcome.skipped_rows += report.skipped;
            prefs.shuffle(&mut rng);
            if cfg.data.max_pairs_per_file > 0 {
                prefs.truncate(cfg.data.max_pairs_per_file);
            }
            all_pairs.extend(prefs.iter().map(PreferencePair::from_preference));
        }
        pairs = all_pairs;
        let mut seen = HashSet::new();
        let mut prompts = Vec::new();
        for spec in &cfg.data.prompts {
            let (mut p, report) = read_prompts(&resolve_dataset(spec)?, &opts)?;
            outcome.skipped_rows += report.skipped;
            p.shuffle(&mut rng);
            if cfg.data.max_prompts_per_file > 0 {
                p.truncate(cfg.data.max_prompts_per_file);
            }
            for prompt in p {
                if seen.insert(prompt.clone()) {
                    prompts.push(prompt);
                } else {
                    outcome.duplicate_prompts += 1;
                }
            }
        }
        pool = prompts
            .into_iter()
            .enumerate()
            .map(|(i, prompt)| PromptRow {
                id: format!("pool-{i:06}"),
                prompt,
                answer: None,
            })
            .collect();
        held_out = match &cfg.data.eval_prompts {
            Some(spec) => {
                let (mut p, report) = read_prompts(&resolve_dataset(spec)?, &opts)?;
                outcome.skipped_rows += report.skipped;
                p.shuffle(&mut rng);
                if cfg.data.max_eval_prompts > 0 {
                    p.truncate(cfg.data.max_eval_prompts);
                }
                p.into_iter()
                    .enumerate()
                    .map(|(i, prompt)| PromptRow {
                        id: format!("eval-{i:06}"),
                        prompt,
                        answer: None,
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        if let Some(a) = &cfg.data.annotated {
            let (records, report) = crate::data::read_records(&resolve_dataset(a)?, &opts)?;
            outcome.skipped_rows += report.skipped;
            outcome.annotated = records.len();
            let rows: Vec<serde_json::Value> = records
                .iter()
                .map(|r| {
                    let messages: Vec<serde_json::Value> = r
                        .sft_messages()
                        .iter()
                        .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
                        .collect();
                    serde_json::json!({ "messages": messages })
                })
                .collect();
            write_jsonl(&dir.join("annotated.jsonl"), &rows)?;
        }
    }
    if pool.is_empty() {
        return Err(SeftError::Invalid(
            "the unannotated prompt pool is empty: nothing to evolve on".into(),
        ));
    }
    let (conversations, summary) = reviser_conversations(
        &pairs,
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
    let reviser_rows: Vec<serde_json::Value> = conversations
        .iter()
        .map(|c| {
            serde_json::json!({"messages": c.iter()
                .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
                .collect::<Vec<_>>()})
        })
        .collect();
    write_jsonl(&dir.join("preferences.jsonl"), &pairs)?;
    write_jsonl(&dir.join("reviser_train.jsonl"), &reviser_rows)?;
    write_jsonl(&dir.join("pool.jsonl"), &pool)?;
    write_jsonl(&dir.join("held_out.jsonl"), &held_out)?;
    outcome.preference_pairs = pairs.len();
    outcome.reviser = summary;
    outcome.pool = pool.len();
    outcome.held_out = held_out.len();
    Ok(outcome)
}

/// Mean loss over the first and the last 10% of the training steps in `metrics.jsonl`.
fn loss_ends(metrics: &Path) -> (f64, f64) {
    let losses: Vec<f64> = std::fs::read_to_string(metrics)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("loss").and_then(|x| x.as_f64()))
        .collect();
    if losses.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let k = (losses.len() / 10).max(1);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    (mean(&losses[..k]), mean(&losses[losses.len() - k..]))
}

/// SFT of `model` on `data` in `dir` (resuming from the stage's own checkpoints).
fn sft(
    cfg: &RunConfig,
    model: &str,
    data: &Path,
    train: &TrainSection,
    lora: Option<&LoraSection>,
    max_len: usize,
    dir: &Path,
) -> Result<SftStage> {
    let sft_cfg = SftConfig {
        model: ModelSection {
            path: model.to_string(),
            backend: cfg.backend,
        },
        data: DataSection {
            train: model_str(data),
            eval: None,
            eval_fraction: 0.0,
            max_rows: 0,
            max_len,
            train_on_prompt: false,
            skip_bad_rows: false,
            packing: false,
        },
        train: train.clone(),
        lora: lora.cloned(),
        output: OutputSection {
            dir: dir.to_path_buf(),
        },
    };
    let outcome = run_sft(&sft_cfg, true)?;
    let (first_loss, final_loss) = loss_ends(&dir.join("metrics.jsonl"));
    Ok(SftStage {
        model: outcome.model_dir,
        rows: outcome.data.train_rows,
        steps: outcome.steps,
        truncated_rows: outcome.data.truncated_rows,
        first_loss,
        final_loss,
    })
}

/// Is `text` stuck in a loop? Few distinct word trigrams among many.
pub fn is_repetitive(text: &str, min_unique_share: f64) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() < 10 {
        return false;
    }
    let trigrams: Vec<&[&str]> = words.windows(3).collect();
    let unique: HashSet<&[&str]> = trigrams.iter().copied().collect();
    (unique.len() as f64) < min_unique_share * trigrams.len() as f64
}

/// A trained quality gate, ready to score answers.
pub struct LoadedGate {
    pub outcome: GateOutcome,
    pub scorer: GateScorer,
}

/// The SFT set of one iteration: enhanced answers that pass the filters.
fn build_sft_set(
    cfg: &RunConfig,
    rows: &[RevisionRow],
    gate: Option<&LoadedGate>,
    dir: &Path,
) -> Result<FilterOutcome> {
    let f = &cfg.evolution.filters;
    let mut out = FilterOutcome::default();
    let gate_filter = match gate.and_then(|g| g.outcome.filter_score.map(|t| (g, t))) {
        Some((g, t)) => {
            let texts: Vec<String> = rows
                .iter()
                .map(|r| cfg.reviser.format.user_turn(&r.prompt, &r.enhanced))
                .collect();
            let scores = g.scorer.scores(&texts)?;
            Some((scores, t))
        }
        None => None,
    };
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (index, r) in rows.iter().enumerate() {
        let text = r.enhanced.trim();
        let revised = r.enhanced != r.response;
        let cut_off = if revised {
            r.reviser_finish == Some(FinishReason::Length)
        } else {
            r.response_finish == FinishReason::Length
        };
        let chars = |s: &str| s.chars().count().max(1) as f64;
        let ratio = chars(&r.enhanced) / chars(&r.response);
        let reason = if f.drop_empty && text.is_empty() {
            out.dropped_empty += 1;
            Some("empty")
        } else if f.drop_degenerate
            && ((cut_off && is_repetitive(text, 0.5)) || is_repetitive(text, 0.3))
        {
            out.dropped_degenerate += 1;
            Some("degenerate")
        } else if f.drop_duplicates && !seen.insert((r.prompt.clone(), text.to_string())) {
            out.dropped_duplicate += 1;
            Some("duplicate")
        } else if revised
            && f.max_length_ratio > 0.0
            && (ratio > f.max_length_ratio || ratio < 1.0 / f.max_length_ratio)
        {
            out.dropped_length_ratio += 1;
            Some("length_ratio")
        } else if gate_filter
            .as_ref()
            .is_some_and(|(scores, t)| scores[index] <= *t)
        {
            out.dropped_gate += 1;
            Some("gate")
        } else {
            None
        };
        match reason {
            Some(reason) => dropped.push(serde_json::json!({"id": r.id, "reason": reason})),
            None => kept.push(serde_json::json!({"prompt": r.prompt, "completion": text})),
        }
    }
    out.rows = kept.len();
    write_jsonl(&dir.join("sft.jsonl"), &kept)?;
    write_jsonl(&dir.join("filtered.jsonl"), &dropped)?;
    if kept.is_empty() {
        return Err(SeftError::Invalid(format!(
            "{}: every answer was filtered out, nothing to fine-tune on",
            dir.display()
        )));
    }
    Ok(out)
}

fn summarize_revisions(rows: &[RevisionRow]) -> RevisionOutcome {
    let n = rows.len().max(1) as f64;
    let count = |t: Option<Tag>| rows.iter().filter(|r| r.tag == t).count();
    let keep_tokens: Vec<usize> = rows
        .iter()
        .filter(|r| r.tag == Some(Tag::Keep) && !r.gate_skipped)
        .map(|r| r.reviser_tokens)
        .collect();
    RevisionOutcome {
        rows: rows.len(),
        keep: count(Some(Tag::Keep)),
        minor: count(Some(Tag::Minor)),
        major: count(Some(Tag::Major)),
        untagged: count(None),
        empty_revision: rows
            .iter()
            .filter(|r| matches!(r.tag, Some(Tag::Minor | Tag::Major)) && r.enhanced == r.response)
            .count(),
        mean_response_chars: rows
            .iter()
            .map(|r| r.response.chars().count())
            .sum::<usize>() as f64
            / n,
        mean_enhanced_chars: rows
            .iter()
            .map(|r| r.enhanced.chars().count())
            .sum::<usize>() as f64
            / n,
        mean_reviser_tokens_keep: keep_tokens.iter().sum::<usize>() as f64
            / keep_tokens.len().max(1) as f64,
        gate_skipped: rows.iter().filter(|r| r.gate_skipped).count(),
    }
}

/// The reviser pass of one iteration (or the identity for the control arm).
fn revise(
    cfg: &RunConfig,
    arm: Arm,
    reviser: &Path,
    responses: &[ResponseRow],
    gate: Option<&LoadedGate>,
    device: &burn::tensor::Device,
    dir: &Path,
) -> Result<RevisionOutcome> {
    let path = dir.join("revisions.jsonl");
    let rows: Vec<RevisionRow> = match arm {
        Arm::Identity => {
            let rows: Vec<RevisionRow> = responses.iter().map(RevisionRow::kept).collect();
            write_jsonl(&path, &rows)?;
            rows
        }
        Arm::Seft => {
            // The gate's scores decide which responses reach the reviser at all.
            let scores = match gate {
                Some(g) => {
                    let texts: Vec<String> = responses
                        .iter()
                        .map(|r| cfg.reviser.format.user_turn(&r.prompt, &r.response))
                        .collect();
                    Some(g.scorer.scores(&texts)?)
                }
                None => None,
            };
            let skip_at = gate.and_then(|g| g.outcome.skip_score);
            let skipped = |i: usize| match (&scores, skip_at) {
                (Some(s), Some(t)) => s[i] >= t,
                _ => false,
            };
            let to_revise: Vec<usize> = (0..responses.len()).filter(|&i| !skipped(i)).collect();
            let model = LanguageModel::load(&model_str(reviser), device)?;
            let format = &cfg.reviser.format;
            let inputs: Vec<Vec<Message>> = to_revise
                .iter()
                .map(|&i| user(&format.user_turn(&responses[i].prompt, &responses[i].response)))
                .collect();
            let sampling = format.decoding(&cfg.reviser.sampling);
            // Without a gate the reviser's rows are the stage's rows; with one they go to
            // their own (resumable) file and are merged with the skipped rows below.
            let reviser_path = if gate.is_some() {
                dir.join("reviser_outputs.jsonl")
            } else {
                path.clone()
            };
            let revised = generate_rows(
                &model,
                &inputs,
                &sampling,
                cfg.reviser.batch_size,
                &reviser_path,
                "revise",
                "revise",
                |j, g| {
                    let i = to_revise[j];
                    let r = &responses[i];
                    let (tag, enhanced) = format.apply(&g.text, &r.response);
                    RevisionRow {
                        id: r.id.clone(),
                        prompt: r.prompt.clone(),
                        response: r.response.clone(),
                        response_finish: r.finish_reason,
                        tag,
                        response_chars: r.response.chars().count(),
                        enhanced_chars: enhanced.chars().count(),
                        enhanced,
                        reviser_output: g.text.clone(),
                        reviser_tokens: g.token_ids.len(),
                        reviser_finish: Some(g.finish_reason),
                        gate_score: scores.as_ref().map(|s| s[i]),
                        gate_skipped: false,
                    }
                },
            )?;
            match &scores {
                None => revised,
                Some(scores) => {
                    let mut revised = revised.into_iter();
                    let rows: Vec<RevisionRow> = responses
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            if skipped(i) {
                                Ok(RevisionRow {
                                    gate_score: Some(scores[i]),
                                    gate_skipped: true,
                                    ..RevisionRow::kept(r)
                                })
                            } else {
                                revised.next().ok_or_else(|| {
                                    SeftError::file(
                                        &reviser_path,
                                        "fewer reviser rows than responses to revise",
                                    )
                                })
                            }
                        })
                        .collect::<Result<_>>()?;
                    write_jsonl(&path, &rows)?;
                    rows
                }
            }
        }
    };
    let outcome = summarize_revisions(&rows);
    if outcome.untagged > 0 {
        eprintln!(
            "note: {} of {} reviser outputs had no tag; their responses are kept as they are",
            outcome.untagged, outcome.rows
        );
    }
    Ok(outcome)
}

/// Embeds the pool (when the selector or the report needs it) and chooses every iteration's
/// prompts up front, so a resumed run reuses exactly the same choice.
fn select_stage(
    cfg: &RunConfig,
    start: &str,
    pool: &[PromptRow],
    device: &burn::tensor::Device,
    dir: &Path,
) -> Result<Selection> {
    let spec = match (
        &cfg.evolution.embedder,
        cfg.evolution.selector.needs_embeddings(),
    ) {
        (Some(e), _) if e == "policy" => Some(start.to_string()),
        (Some(e), _) => Some(e.clone()),
        (None, true) => Some(start.to_string()),
        (None, false) => None,
    };
    let started = std::time::Instant::now();
    let embeddings = match &spec {
        Some(spec) => {
            let embedder = TextEmbedder::load(spec, device, EMBED_MAX_TOKENS)?;
            let texts: Vec<String> = pool.iter().map(|p| p.prompt.clone()).collect();
            let rows = embedder.embed(&texts, cfg.evolution.batch_size.max(1))?;
            let m = Matrix::from_rows(&rows)?;
            m.write_npy(&dir.join("pool_embeddings.npy"))?;
            Some(m)
        }
        None => None,
    };
    let embed_seconds = started.elapsed().as_secs_f64();
    let (iterations, stats) = select(
        cfg.evolution.selector,
        embeddings.as_ref(),
        pool.len(),
        cfg.evolution.prompts_per_iteration,
        cfg.iterations,
        cfg.seed,
    )?;
    Ok(Selection {
        iterations,
        stats,
        embedder: spec,
        embed_seconds,
    })
}

/// Prompt tokens an embedding looks at (prompts are short; longer ones are cut).
const EMBED_MAX_TOKENS: usize = 256;

/// Whether the SEFT arm's reviser changed (minor/major) each prompt it saw, by prompt id.
fn collect_tags(out: &Path, cfg: &RunConfig) -> Result<Vec<(String, bool)>> {
    let mut tags = Vec::new();
    for t in 1..=cfg.iterations {
        let path = out.join(format!("seft/iter-{t}/revise/revisions.jsonl"));
        if path.exists() {
            let rows: Vec<RevisionRow> = read_jsonl(&path)?;
            tags.extend(
                rows.into_iter()
                    .map(|r| (r.id, matches!(r.tag, Some(Tag::Minor) | Some(Tag::Major)))),
            );
        }
    }
    Ok(tags)
}

/// Runs (or resumes) the experiment described by `cfg` in `out`.
pub fn run(cfg: &RunConfig, out: &Path) -> Result<Report> {
    claim_run_dir(cfg, out)?;
    let started = std::time::Instant::now();
    let device = cfg.backend.device()?;
    let mut stages: Vec<(String, f64)> = Vec::new();
    let mut note = |name: &str, seconds: f64| stages.push((name.to_string(), seconds));

    let data = stage(out, "data", "data", |dir| make_data(cfg, dir))?;
    note("data", data.seconds);
    let data_dir = out.join("data");

    let base = match (&cfg.model.path, &cfg.model.scratch) {
        (Some(p), _) => p.clone(),
        (None, Some(spec)) => {
            let r = stage(out, "base", "initialize the scratch model", |dir| {
                write_scratch_model(spec, cfg.seed, &dir.join("model"))?;
                Ok(dir.join("model"))
            })?;
            note("base", r.seconds);
            model_str(&r.outcome)
        }
        (None, None) => {
            return Err(SeftError::Invalid(
                "[model] needs exactly one of path or scratch".into(),
            ));
        }
    };

    let mut starting_sft = None;
    let start = match &cfg.starting_policy {
        Some(sp) => {
            let r = stage(out, "starting_policy", "starting policy SFT", |dir| {
                sft(
                    cfg,
                    &base,
                    &data_dir.join("annotated.jsonl"),
                    &sp.train,
                    sp.lora.as_ref(),
                    sp.max_len,
                    dir,
                )
            })?;
            note("starting_policy", r.seconds);
            let path = model_str(&r.outcome.model);
            starting_sft = Some(r.outcome);
            path
        }
        None => base.clone(),
    };

    let reviser_base = match cfg.reviser.base {
        ReviserBase::Base => base.clone(),
        ReviserBase::StartingPolicy => start.clone(),
    };
    let reviser = stage(out, "reviser", "reviser SFT", |dir| {
        sft(
            cfg,
            &reviser_base,
            &data_dir.join("reviser_train.jsonl"),
            &cfg.reviser.train,
            cfg.reviser.lora.as_ref(),
            cfg.reviser.max_len,
            dir,
        )
    })?;
    note("reviser", reviser.seconds);

    let gate = match &cfg.gate {
        Some(section) => {
            let embedder = match section.embedder.as_str() {
                "policy" => start.clone(),
                "reviser" => model_str(&reviser.outcome.model),
                spec => spec.to_string(),
            };
            let r = stage(out, "gate", "train the quality gate", |dir| {
                let pairs: Vec<PreferencePair> = read_jsonl(&data_dir.join("preferences.jsonl"))?;
                train_gate_stage(
                    section,
                    &embedder,
                    &pairs,
                    |p, r| cfg.reviser.format.user_turn(p, r),
                    cfg.seed,
                    cfg.evolution.batch_size,
                    &device,
                    dir,
                )
            })?;
            note("gate", r.seconds);
            let scorer = GateScorer::load(
                &out.join("gate"),
                &embedder,
                cfg.evolution.batch_size,
                &device,
            )?;
            Some(LoadedGate {
                outcome: r.outcome,
                scorer,
            })
        }
        None => None,
    };

    let pool: Vec<PromptRow> = read_jsonl(&data_dir.join("pool.jsonl"))?;
    let selection = stage(out, "selection", "select the evolution prompts", |dir| {
        select_stage(cfg, &start, &pool, &device, dir)
    })?;
    note("selection", selection.seconds);
    let mut arms = vec![Arm::Seft];
    if cfg.evolution.compare_identity {
        arms.push(Arm::Identity);
    }
    let mut iterations: Vec<IterationReport> = Vec::new();
    let mut final_policy: Vec<(Arm, Vec<String>)> = Vec::new();
    for &arm in &arms {
        let mut policy = start.clone();
        let mut policies = Vec::new();
        for t in 1..=cfg.iterations {
            let rel = format!("{}/iter-{t}", arm.name());
            let dir = out.join(&rel);
            let prompts: Vec<PromptRow> = selection.outcome.iterations[t - 1]
                .iter()
                .map(|&i| pool[i].clone())
                .collect();
            let label = |s: &str| format!("{} iteration {t}/{}: {s}", arm.name(), cfg.iterations);
            let generated: StageRecord<usize> = stage(
                out,
                &format!("{rel}/generate"),
                &label("policy answers"),
                |sdir| generate_answers(cfg, arm, t, &policy, &prompts, &device, out, sdir),
            )?;
            note(
                &format!("{}/iter-{t}/generate", arm.name()),
                generated.seconds,
            );
            let responses: Vec<ResponseRow> =
                read_jsonl(&dir.join("generate").join("responses.jsonl"))?;
            let arm_gate = gate.as_ref().filter(|_| arm == Arm::Seft);
            let revised = stage(out, &format!("{rel}/revise"), &label("revise"), |sdir| {
                revise(
                    cfg,
                    arm,
                    &reviser.outcome.model,
                    &responses,
                    arm_gate,
                    &device,
                    sdir,
                )
            })?;
            note(&format!("{}/iter-{t}/revise", arm.name()), revised.seconds);
            let revisions: Vec<RevisionRow> =
                read_jsonl(&dir.join("revise").join("revisions.jsonl"))?;
            let filtered = stage(out, &format!("{rel}/sft_data"), &label("SFT set"), |sdir| {
                build_sft_set(cfg, &revisions, arm_gate, sdir)
            })?;
            let trained = stage(
                out,
                &format!("{rel}/policy"),
                &label("policy SFT"),
                |sdir| {
                    sft(
                        cfg,
                        &policy,
                        &dir.join("sft_data").join("sft.jsonl"),
                        &cfg.evolution.train,
                        cfg.evolution.lora.as_ref(),
                        cfg.evolution.max_len,
                        sdir,
                    )
                },
            )?;
            note(&format!("{}/iter-{t}/policy", arm.name()), trained.seconds);
            policy = model_str(&trained.outcome.model);
            policies.push(policy.clone());
            iterations.push(IterationReport {
                arm: arm.name().to_string(),
                iteration: t,
                prompts: prompts.len(),
                revisions: revised.outcome,
                filters: filtered.outcome,
                sft: trained.outcome,
                accuracy: None,
            });
        }
        final_policy.push((arm, policies));
    }

    // Evaluation on held-out prompts (programmatic grading needs a task family).
    let mut evals: Vec<PolicyEval> = Vec::new();
    let mut reviser_eval: Option<ReviserEval> = None;
    let held_out: Vec<PromptRow> = read_jsonl(&data_dir.join("held_out.jsonl"))?;
    if cfg.task.is_some() && !held_out.is_empty() {
        let eval_dir = out.join("eval");
        let eval_one = |name: &str, path: &str| -> Result<StageRecord<PolicyEval>> {
            stage(
                out,
                &format!("eval/{name}"),
                &format!("evaluate {name}"),
                |dir| {
                    let model = LanguageModel::load(path, &device)?;
                    eval_policy(
                        &model,
                        name,
                        &held_out,
                        &cfg.evolution.sampling,
                        cfg.eval.batch_size,
                        dir,
                    )
                },
            )
        };
        let before = eval_one("start", &start)?;
        note("eval/start", before.seconds);
        evals.push(before.outcome);
        for (arm, policies) in &final_policy {
            for (i, p) in policies.iter().enumerate() {
                let t = i + 1;
                if !cfg.eval.every_iteration && t != policies.len() {
                    continue;
                }
                let name = format!("{}-iter-{t}", arm.name());
                let r = eval_one(&name, p)?;
                note(&format!("eval/{name}"), r.seconds);
                if let Some(it) = iterations
                    .iter_mut()
                    .find(|it| it.arm == arm.name() && it.iteration == t)
                {
                    it.accuracy = Some(r.outcome.accuracy);
                }
                evals.push(r.outcome);
            }
        }
        let start_rows: Vec<GradedRow> =
            read_jsonl(&eval_dir.join("start").join("responses.jsonl"))?;
        let r = stage(out, "eval/reviser", "evaluate the reviser", |dir| {
            let model = LanguageModel::load(&model_str(&reviser.outcome.model), &device)?;
            eval_reviser(
                &model,
                &cfg.reviser.format,
                &start_rows,
                &cfg.reviser.sampling,
                cfg.reviser.batch_size,
                dir,
            )
        })?;
        note("eval/reviser", r.seconds);
        reviser_eval = Some(r.outcome);
    }
    // Without a task there is no grader: the starting and final policies answer the held-out
    // prompts, for a judge (`seft judge`) or a person to compare.
    let mut answer_sets: Vec<AnswerSet> = Vec::new();
    if cfg.task.is_none() && !held_out.is_empty() {
        let mut targets = vec![("start".to_string(), start.clone())];
        for (arm, policies) in &final_policy {
            if let Some(last) = policies.last() {
                targets.push((
                    format!("{}-iter-{}", arm.name(), policies.len()),
                    last.clone(),
                ));
            }
        }
        for (name, path) in targets {
            let r = stage(
                out,
                &format!("eval/{name}"),
                &format!("answer held-out prompts: {name}"),
                |dir| answer_held_out(cfg, &name, &path, &held_out, &device, dir),
            )?;
            note(&format!("eval/{name}"), r.seconds);
            answer_sets.push(r.outcome);
        }
    }
    let revised_by_prompt = collect_tags(out, cfg)?;
    let mut report = Report::assemble(
        cfg,
        out,
        data.outcome,
        starting_sft,
        reviser.outcome,
        iterations,
        evals,
        reviser_eval,
        answer_sets,
        stages,
        started.elapsed().as_secs_f64(),
    )?;
    report.gate = gate.map(|g| g.outcome);
    report.selection = Some(SelectionReport::new(
        &selection.outcome,
        &pool,
        &revised_by_prompt,
        out.join("selection").join("pool_embeddings.npy").as_path(),
    )?);
    write_report(&report, out)?;
    Ok(report)
}

/// Answers of one policy to the held-out prompts (no grading), in `dir/responses.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerSet {
    pub model: String,
    pub prompts: usize,
    pub mean_response_chars: f64,
    pub mean_response_tokens: f64,
    /// Answers cut off by max_new_tokens.
    pub cut_off: usize,
}

/// Answers of `model` to `prompts`, appended to `path` (resumable, see generate_rows).
#[allow(clippy::too_many_arguments)]
fn answer_prompts(
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
        path,
        label,
        fault,
        |i, g| ResponseRow {
            id: prompts[i].id.clone(),
            prompt: prompts[i].prompt.clone(),
            response: g.text.clone(),
            response_tokens: g.token_ids.len(),
            finish_reason: g.finish_reason,
        },
    )
}

fn answer_held_out(
    cfg: &RunConfig,
    name: &str,
    path: &str,
    held_out: &[PromptRow],
    device: &burn::tensor::Device,
    dir: &Path,
) -> Result<AnswerSet> {
    let model = LanguageModel::load(path, device)?;
    let rows = answer_prompts(
        &model,
        held_out,
        &cfg.evolution.sampling,
        cfg.eval.batch_size,
        &dir.join("responses.jsonl"),
        &format!("eval {name}"),
        "eval",
    )?;
    let n = rows.len().max(1) as f64;
    Ok(AnswerSet {
        model: name.to_string(),
        prompts: rows.len(),
        mean_response_chars: rows
            .iter()
            .map(|r| r.response.chars().count())
            .sum::<usize>() as f64
            / n,
        mean_response_tokens: rows.iter().map(|r| r.response_tokens).sum::<usize>() as f64 / n,
        cut_off: rows
            .iter()
            .filter(|r| r.finish_reason == FinishReason::Length)
            .count(),
    })
}

/// The policy's answers for one iteration. The control arm's first iteration asks the same
/// starting policy the same prompts with the same seeds as the SEFT arm: its answers are
/// copied from there instead of being generated twice.
#[allow(clippy::too_many_arguments)]
fn generate_answers(
    cfg: &RunConfig,
    arm: Arm,
    t: usize,
    policy: &str,
    prompts: &[PromptRow],
    device: &burn::tensor::Device,
    out: &Path,
    dir: &Path,
) -> Result<usize> {
    let path = dir.join("responses.jsonl");
    let twin = out.join(Arm::Seft.name()).join("iter-1").join("generate");
    if arm == Arm::Identity && t == 1 && twin.join("done.json").exists() {
        let rows: Vec<ResponseRow> = read_jsonl(&twin.join("responses.jsonl"))?;
        write_jsonl(&path, &rows)?;
        return Ok(rows.len());
    }
    let model = LanguageModel::load(policy, device)?;
    let sampling = SamplingConfig {
        seed: cfg.evolution.sampling.seed.wrapping_add((t as u64) << 32),
        ..cfg.evolution.sampling.clone()
    };
    let rows = answer_prompts(
        &model,
        prompts,
        &sampling,
        cfg.evolution.batch_size,
        &path,
        "generate",
        "generate",
    )?;
    Ok(rows.len())
}
