//! Comparison arms, the table the SEFT paper makes: the starting policy trained on the same
//! preference pairs the reviser learned from (`data/preferences.jsonl`), by SFT on the chosen
//! answers (`sft-chosen`) or a preference loss (`dpo`, `robust`, `ipo`, `simpo`, `orpo`,
//! [`crate::train::preference`]), or the final SEFT policy trained the same way
//! (`from = "seft"`, e.g. SEFT+DPO). Each arm sweeps its β and learning-rate lists (every
//! pair of values is one resumable training stage, `baselines/<name>/beta-<β>-lr-<lr>`),
//! and every trained policy is graded on the held-out prompts like the SEFT policies; the
//! report lists every sweep point and the best of each arm.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SeftError};
use crate::evolution::data::PromptRow;
use crate::evolution::evaluate::Evaluation;
use crate::evolution::layout::DataFile;
use crate::evolution::sft::{SftJob, fine_tune};
use crate::evolution::stage::Run;
use crate::train::{LoraSection, PreferenceLossKind, PreferenceSection, TrainSection};

/// How an arm trains on the preference pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaselineMethod {
    /// SFT on prompt + chosen (the rejected answers unused).
    SftChosen,
    Dpo,
    Robust,
    Ipo,
    Simpo,
    Orpo,
}

impl BaselineMethod {
    /// The name a config uses.
    pub fn name(self) -> &'static str {
        match self.loss() {
            Some(kind) => kind.name(),
            None => "sft-chosen",
        }
    }

    /// The preference loss, `None` for SFT on the chosen answers.
    fn loss(self) -> Option<PreferenceLossKind> {
        match self {
            BaselineMethod::SftChosen => None,
            BaselineMethod::Dpo => Some(PreferenceLossKind::Dpo),
            BaselineMethod::Robust => Some(PreferenceLossKind::Robust),
            BaselineMethod::Ipo => Some(PreferenceLossKind::Ipo),
            BaselineMethod::Simpo => Some(PreferenceLossKind::Simpo),
            BaselineMethod::Orpo => Some(PreferenceLossKind::Orpo),
        }
    }
}

/// Which policy an arm starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineStart {
    /// The starting policy (the one SEFT starts from).
    #[default]
    Start,
    /// The SEFT arm's final policy.
    Seft,
}

impl BaselineStart {
    pub fn name(self) -> &'static str {
        match self {
            BaselineStart::Start => "start",
            BaselineStart::Seft => "seft",
        }
    }
}

/// `[[baselines]]`: one comparison arm and its sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSection {
    /// The arm's name in the report and its stage folders.
    pub name: String,
    pub method: BaselineMethod,
    #[serde(default)]
    pub from: BaselineStart,
    /// β values to sweep (preference losses; ignored by sft-chosen).
    #[serde(default = "default_betas")]
    pub beta: Vec<f64>,
    /// Learning rates to sweep (each replaces `train.lr`).
    pub lr: Vec<f64>,
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    pub train: TrainSection,
    #[serde(default)]
    pub lora: Option<LoraSection>,
    /// Reference log-probabilities computed once per sweep point (dpo, robust, ipo).
    #[serde(default)]
    pub precompute_ref: bool,
}

fn default_betas() -> Vec<f64> {
    vec![0.1]
}

fn default_max_len() -> usize {
    1024
}

impl BaselineSection {
    /// The (β, lr) points of the sweep; β is `None` for sft-chosen.
    fn points(&self) -> Vec<(Option<f64>, f64)> {
        let betas: Vec<Option<f64>> = match self.method.loss() {
            Some(_) => self.beta.iter().copied().map(Some).collect(),
            None => vec![None],
        };
        betas
            .iter()
            .flat_map(|&b| self.lr.iter().map(move |&lr| (b, lr)))
            .collect()
    }

    fn preference(&self, beta: f64) -> Option<PreferenceSection> {
        let kind = self.method.loss()?;
        let precompute = self.precompute_ref && kind.uses_reference();
        Some(
            PreferenceSection::new(kind)
                .with_beta(beta)
                .with_precompute_ref(precompute),
        )
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        let key = |k: &str| format!("baselines '{}': {k}", self.name);
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_+".contains(c))
        {
            return Err(format!(
                "baselines: name '{}' must be letters, digits, '-', '_' or '+'",
                self.name
            ));
        }
        if self.lr.is_empty() || self.beta.is_empty() {
            return Err(key("lr and beta need at least one value"));
        }
        self.train.validate(&format!("baselines.{}.", self.name))?;
        for &lr in &self.lr {
            if !(lr > 0.0 && lr.is_finite()) {
                return Err(key(&format!("lr must be > 0, got {lr}")));
            }
        }
        for &beta in &self.beta {
            if let Some(p) = self.preference(beta) {
                p.validate().map_err(|e| key(&e))?;
            }
        }
        if let Some(l) = &self.lora {
            l.validate().map_err(|e| key(&e))?;
        }
        if self.max_len < 2 {
            return Err(key("max_len must be at least 2"));
        }
        Ok(())
    }
}

/// One trained and graded sweep point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineResult {
    pub name: String,
    pub method: BaselineMethod,
    pub from: BaselineStart,
    pub beta: Option<f64>,
    pub lr: f64,
    /// Held-out accuracy (task runs).
    pub accuracy: Option<f64>,
    pub steps: usize,
    pub first_loss: f64,
    pub final_loss: f64,
}

/// The stage folder and policy name of one sweep point.
fn point_name(name: &str, beta: Option<f64>, lr: f64) -> String {
    match beta {
        Some(b) => format!("{name}-beta-{b}-lr-{lr}"),
        None => format!("{name}-lr-{lr}"),
    }
}

/// An arm's best sweep point by held-out accuracy (the last of equals), as the report shows it.
pub fn best_point<'a>(points: &[&'a BaselineResult]) -> Option<&'a BaselineResult> {
    points
        .iter()
        .max_by(|a, b| {
            a.accuracy
                .unwrap_or(f64::NAN)
                .total_cmp(&b.accuracy.unwrap_or(f64::NAN))
        })
        .copied()
}

/// Trains and grades every sweep point of every `[[baselines]]` arm. `seft_final` is the SEFT
/// arm's final policy (for arms with `from = "seft"`).
pub fn run_baselines(
    run: &Run,
    start: &str,
    seft_final: Option<&str>,
    held_out: &[PromptRow],
    evaluation: &mut Evaluation,
) -> Result<Vec<BaselineResult>> {
    let pairs = run.layout.data(DataFile::Preferences);
    let mut results: Vec<BaselineResult> = Vec::new();
    let mut paths = Vec::new();
    for arm in &run.cfg.baselines {
        let first = results.len();
        let model = match arm.from {
            BaselineStart::Start => start,
            BaselineStart::Seft => seft_final.ok_or_else(|| {
                SeftError::Invalid(format!(
                    "baselines '{}': from = \"seft\" needs the SEFT arm's final policy",
                    arm.name
                ))
            })?,
        };
        for (beta, lr) in arm.points() {
            let point = point_name(&arm.name, beta, lr);
            let preference = beta.and_then(|b| arm.preference(b));
            let mut train = arm.train.clone();
            train.lr = lr;
            let stage = run.stage(
                &format!("baselines/{point}"),
                &format!("train {point}"),
                |dir| {
                    let job = SftJob {
                        model,
                        data: &pairs,
                        train: &train,
                        lora: arm.lora.as_ref(),
                        max_len: arm.max_len,
                        preference: preference.as_ref(),
                    };
                    fine_tune(run, job, dir)
                },
            )?;
            let accuracy = if evaluation.grader.is_some() && !held_out.is_empty() {
                Some(evaluation.grade(run, held_out, &point, &stage.model.to_string_lossy())?)
            } else {
                None
            };
            results.push(BaselineResult {
                name: arm.name.clone(),
                method: arm.method,
                from: arm.from,
                beta,
                lr,
                accuracy,
                steps: stage.steps,
                first_loss: stage.first_loss,
                final_loss: stage.final_loss,
            });
            paths.push(stage.model.to_string_lossy().into_owned());
        }
        // IFEval for the arm's best sweep point; for every point when the run does not grade
        // held-out answers (there is no best).
        let points: Vec<&BaselineResult> = results[first..].iter().collect();
        let scored: Vec<usize> = if points.iter().any(|p| p.accuracy.is_some()) {
            best_point(&points)
                .and_then(|best| points.iter().position(|p| std::ptr::eq(*p, best)))
                .into_iter()
                .collect()
        } else {
            (0..points.len()).collect()
        };
        for i in scored {
            let r = &results[first + i];
            let point = point_name(&r.name, r.beta, r.lr);
            evaluation.score_ifeval(run, &point, &paths[first + i])?;
        }
    }
    Ok(results)
}
