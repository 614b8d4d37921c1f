//! The evolution loop: for t = 1..T the policy answers its slice of the pool, the reviser
//! enhances the answers (the identity in the control arm), the filters build the SFT set and
//! the policy is fine-tuned on it. Each of the four steps is a resumable stage.

use serde::{Deserialize, Serialize};

use crate::data::generation::{RowsOutput, generate_rows};
use crate::data::jsonl::{read_jsonl, write_jsonl};
use crate::error::{Result, SeftError};
use crate::evolution::data::PromptRow;
use crate::evolution::filters::{FilterOutcome, build_sft_set};
use crate::evolution::gate::LoadedGate;
use crate::evolution::generation::{ResponseRow, answer_prompts, user};
use crate::evolution::layout::{Arm, Step, files, stages};
use crate::evolution::reviser::Tag;
use crate::evolution::sft::{SftJob, SftStage, fine_tune};
use crate::evolution::stage::Run;
use crate::model::LanguageModel;
use crate::model::generate::{FinishReason, Generation, SamplingConfig};

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
    pub fn kept(r: &ResponseRow) -> Self {
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

    /// The reviser's generation `g` applied to the response `r`.
    fn revised(r: &ResponseRow, g: &Generation, run: &Run, gate_score: Option<f32>) -> Self {
        let (tag, enhanced) = run.cfg.reviser.format.apply(&g.text, &r.response);
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
            gate_score,
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

impl RevisionOutcome {
    fn of(rows: &[RevisionRow]) -> Self {
        let n = rows.len().max(1) as f64;
        let count = |t: Option<Tag>| rows.iter().filter(|r| r.tag == t).count();
        let keep_tokens: Vec<usize> = rows
            .iter()
            .filter(|r| r.tag == Some(Tag::Keep) && !r.gate_skipped)
            .map(|r| r.reviser_tokens)
            .collect();
        let mean_chars = |text: fn(&RevisionRow) -> &str| {
            rows.iter().map(|r| text(r).chars().count()).sum::<usize>() as f64 / n
        };
        RevisionOutcome {
            rows: rows.len(),
            keep: count(Some(Tag::Keep)),
            minor: count(Some(Tag::Minor)),
            major: count(Some(Tag::Major)),
            untagged: count(None),
            empty_revision: rows
                .iter()
                .filter(|r| {
                    matches!(r.tag, Some(Tag::Minor | Tag::Major)) && r.enhanced == r.response
                })
                .count(),
            mean_response_chars: mean_chars(|r| &r.response),
            mean_enhanced_chars: mean_chars(|r| &r.enhanced),
            mean_reviser_tokens_keep: keep_tokens.iter().sum::<usize>() as f64
                / keep_tokens.len().max(1) as f64,
            gate_skipped: rows.iter().filter(|r| r.gate_skipped).count(),
        }
    }
}

/// One iteration of one arm, in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationReport {
    pub arm: String,
    pub iteration: usize,
    pub prompts: usize,
    pub revisions: RevisionOutcome,
    pub filters: FilterOutcome,
    pub sft: SftStage,
    /// Held-out accuracy of this iteration's policy (task runs).
    pub accuracy: Option<f64>,
}

/// Every arm's iterations.
pub struct Evolution {
    pub iterations: Vec<IterationReport>,
    /// Per arm, the policy (model path) after each iteration.
    pub policies: Vec<(Arm, Vec<String>)>,
    /// Whether the SEFT arm's reviser changed (minor/major) each prompt it saw, by prompt id.
    pub revised_by_prompt: Vec<(String, bool)>,
}

/// What the loop needs besides the run: the starting policy, the reviser and the prompts.
pub struct EvolutionInputs<'a> {
    pub start: &'a str,
    pub reviser: &'a str,
    pub gate: Option<&'a LoadedGate>,
    pub pool: &'a [PromptRow],
    /// Pool indices of each iteration's prompts.
    pub selection: &'a [Vec<usize>],
}

/// Runs every arm's T iterations (the SEFT arm first, then the identity control if asked).
pub fn evolve(run: &Run, inputs: &EvolutionInputs) -> Result<Evolution> {
    let mut arms = vec![Arm::Seft];
    if run.cfg.evolution.compare_identity {
        arms.push(Arm::Identity);
    }
    let mut evolution = Evolution {
        iterations: Vec::new(),
        policies: Vec::new(),
        revised_by_prompt: Vec::new(),
    };
    // The control arm's first iteration asks the same starting policy the same prompts with
    // the same seeds as the SEFT arm: it reuses those answers instead of generating them twice.
    let mut first_answers: Option<Vec<ResponseRow>> = None;
    for arm in arms {
        let mut policy = inputs.start.to_string();
        let mut policies = Vec::new();
        for t in 1..=run.cfg.iterations {
            let prompts: Vec<PromptRow> = inputs.selection[t - 1]
                .iter()
                .map(|&i| inputs.pool[i].clone())
                .collect();
            let reuse = first_answers.as_deref().filter(|_| t == 1);
            let responses = generate_stage(run, arm, t, &policy, &prompts, reuse)?;
            if arm == Arm::Seft && t == 1 && run.cfg.evolution.compare_identity {
                first_answers = Some(responses.clone());
            }
            let gate = inputs.gate.filter(|_| arm == Arm::Seft);
            let (revisions, rows) = revise_stage(run, arm, t, inputs.reviser, &responses, gate)?;
            if arm == Arm::Seft {
                evolution.revised_by_prompt.extend(
                    rows.iter()
                        .map(|r| (r.id.clone(), matches!(r.tag, Some(Tag::Minor | Tag::Major)))),
                );
            }
            let label = iteration_label(run, arm, t);
            let filters = run.stage(
                &stages::iteration(arm, t, Step::SftData),
                &label("SFT set"),
                |dir| build_sft_set(run.cfg, &rows, gate, dir),
            )?;
            let sft = run.stage(
                &stages::iteration(arm, t, Step::Policy),
                &label("policy SFT"),
                |dir| {
                    let job = SftJob {
                        model: &policy,
                        data: &run.layout.sft_set(arm, t),
                        train: &run.cfg.evolution.train,
                        lora: run.cfg.evolution.lora.as_ref(),
                        max_len: run.cfg.evolution.max_len,
                        preference: None,
                    };
                    fine_tune(run, job, dir)
                },
            )?;
            policy = sft.model.to_string_lossy().into_owned();
            policies.push(policy.clone());
            evolution.iterations.push(IterationReport {
                arm: arm.name().to_string(),
                iteration: t,
                prompts: prompts.len(),
                revisions,
                filters,
                sft,
                accuracy: None,
            });
        }
        evolution.policies.push((arm, policies));
    }
    Ok(evolution)
}

fn iteration_label(run: &Run, arm: Arm, t: usize) -> impl Fn(&str) -> String {
    let total = run.cfg.iterations;
    move |s: &str| format!("{} iteration {t}/{total}: {s}", arm.name())
}

/// The policy's answers for iteration `t` (or `reuse`, already generated elsewhere).
fn generate_stage(
    run: &Run,
    arm: Arm,
    t: usize,
    policy: &str,
    prompts: &[PromptRow],
    reuse: Option<&[ResponseRow]>,
) -> Result<Vec<ResponseRow>> {
    let name = stages::iteration(arm, t, Step::Generate);
    let label = iteration_label(run, arm, t)("policy answers");
    let (_count, rows) = run.stage_with(
        &name,
        &label,
        |dir| {
            let path = dir.join(files::RESPONSES);
            let rows = match reuse {
                Some(rows) => {
                    write_jsonl(&path, rows)?;
                    rows.to_vec()
                }
                None => {
                    let model = LanguageModel::load(policy, &run.device)?;
                    let sampling = SamplingConfig {
                        seed: run
                            .cfg
                            .evolution
                            .sampling
                            .seed
                            .wrapping_add((t as u64) << 32),
                        ..run.cfg.evolution.sampling.clone()
                    };
                    let batch = run.cfg.evolution.batch_size;
                    answer_prompts(
                        &model, prompts, &sampling, batch, &path, "generate", "generate",
                    )?
                }
            };
            Ok((rows.len(), rows))
        },
        |dir| read_jsonl(&dir.join(files::RESPONSES)),
    )?;
    Ok(rows)
}

/// The reviser pass of iteration `t` (the identity for the control arm).
fn revise_stage(
    run: &Run,
    arm: Arm,
    t: usize,
    reviser: &str,
    responses: &[ResponseRow],
    gate: Option<&LoadedGate>,
) -> Result<(RevisionOutcome, Vec<RevisionRow>)> {
    let name = stages::iteration(arm, t, Step::Revise);
    let label = iteration_label(run, arm, t)("revise");
    run.stage_with(
        &name,
        &label,
        |dir| {
            let rows = match arm {
                Arm::Identity => {
                    let rows: Vec<RevisionRow> = responses.iter().map(RevisionRow::kept).collect();
                    write_jsonl(&dir.join(files::REVISIONS), &rows)?;
                    rows
                }
                Arm::Seft => revise_with_reviser(run, reviser, responses, gate, dir)?,
            };
            let outcome = RevisionOutcome::of(&rows);
            if outcome.untagged > 0 {
                eprintln!(
                    "note: {} of {} reviser outputs had no tag; their responses are kept as they are",
                    outcome.untagged, outcome.rows
                );
            }
            Ok((outcome, rows))
        },
        |dir| read_jsonl(&dir.join(files::REVISIONS)),
    )
}

/// The reviser's revisions of `responses`, in `dir/revisions.jsonl`. With a quality gate, the
/// responses it passes skip the reviser and are kept; the reviser's own rows then go to their
/// own (resumable) file and are merged with the skipped ones.
fn revise_with_reviser(
    run: &Run,
    reviser: &str,
    responses: &[ResponseRow],
    gate: Option<&LoadedGate>,
    dir: &std::path::Path,
) -> Result<Vec<RevisionRow>> {
    let format = &run.cfg.reviser.format;
    let scores = match gate {
        Some(g) => {
            let texts: Vec<String> = responses
                .iter()
                .map(|r| format.user_turn(&r.prompt, &r.response))
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
    let model = LanguageModel::load(reviser, &run.device)?;
    let inputs: Vec<_> = to_revise
        .iter()
        .map(|&i| user(&format.user_turn(&responses[i].prompt, &responses[i].response)))
        .collect();
    let path = dir.join(files::REVISIONS);
    let reviser_path = match gate {
        Some(_) => dir.join(files::REVISER_OUTPUTS),
        None => path.clone(),
    };
    let revised = generate_rows(
        &model,
        &inputs,
        &format.decoding(&run.cfg.reviser.sampling),
        run.cfg.reviser.batch_size,
        RowsOutput {
            path: &reviser_path,
            label: "revise",
            fault: "revise",
        },
        |j, g| {
            let i = to_revise[j];
            RevisionRow::revised(&responses[i], g, run, scores.as_ref().map(|s| s[i]))
        },
    )?;
    let Some(scores) = &scores else {
        return Ok(revised);
    };
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
                    SeftError::file(&reviser_path, "fewer reviser rows than responses to revise")
                })
            }
        })
        .collect::<Result<_>>()?;
    write_jsonl(&path, &rows)?;
    Ok(rows)
}
