//! A SEFT experiment's configuration (`seft run configs/<name>.toml`). Every field is
//! described in configs/seft_example.toml; unknown keys are rejected by name and
//! `--set section.key=value` overrides are applied before validation.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Result, SeftError};
use crate::evolution::reviser::{ReviserFormat, RevisionLevels};
use crate::evolution::task::TaskConfig;
use crate::model::generate::SamplingConfig;
use crate::train::params::{LoraSection, TrainSection, parse_toml};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Seeds data shuffling, prompt selection, initialization and sampling.
    #[serde(default)]
    pub seed: u64,
    /// Self-evolution iterations T.
    pub iterations: usize,
    #[serde(default)]
    pub backend: Backend,
    pub model: ModelSpec,
    /// A built-in task family (data made and graded by seft); without it, [data] names files.
    #[serde(default)]
    pub task: Option<TaskConfig>,
    #[serde(default)]
    pub data: DataFiles,
    /// SFT of the base model on annotated examples before evolving (a weak starting policy).
    #[serde(default)]
    pub starting_policy: Option<StartingPolicy>,
    pub reviser: ReviserConfig,
    pub evolution: EvolutionConfig,
    /// A quality gate on frozen (prompt, response) embeddings that skips the reviser for
    /// answers it passes with confidence (and optionally filters SFT data); absent = off.
    #[serde(default)]
    pub gate: Option<GateSection>,
    #[serde(default)]
    pub eval: EvalConfig,
    /// Comparison arms trained on the same preference pairs (`[[baselines]]`: sft-chosen,
    /// dpo, robust, ipo, simpo, orpo, from the starting or the final SEFT policy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baselines: Vec<crate::evolution::baselines::BaselineSection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// A checkpoint (GGUF, Hugging Face folder, hub id) used as policy and reviser base...
    #[serde(default)]
    pub path: Option<String>,
    /// ...or a small decoder initialized from scratch with seft's byte-level tokenizer.
    #[serde(default)]
    pub scratch: Option<ScratchModel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScratchModel {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    #[serde(default = "default_max_positions")]
    pub max_positions: usize,
    /// Standard deviation of the normal initialization of every matrix.
    #[serde(default = "default_init_std")]
    pub init_std: f64,
}

fn default_max_positions() -> usize {
    512
}
fn default_init_std() -> f64 {
    0.02
}

/// Data files for experiments on real data (JSON/JSONL, .gz, or `org/name:file` on the hub).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataFiles {
    /// Preference pairs for the reviser (prompt/chosen/rejected, HH text, ShareGPT pairs).
    pub preferences: Vec<String>,
    /// At most this many pairs per file, after a seeded shuffle (0 = all).
    pub max_pairs_per_file: usize,
    /// Unannotated prompts: any row format; only the prompt (first user turn) is used.
    pub prompts: Vec<String>,
    /// At most this many prompts per file, after a seeded shuffle (0 = all).
    pub max_prompts_per_file: usize,
    /// Annotated conversations for [starting_policy].
    pub annotated: Option<String>,
    /// Prompts held out for evaluation (any row format).
    pub eval_prompts: Option<String>,
    /// At most this many held-out prompts, after a seeded shuffle (0 = all).
    pub max_eval_prompts: usize,
    /// Skip malformed rows (counted in the report) instead of stopping.
    pub skip_bad_rows: bool,
    /// The most a data file may hold once decompressed, in MiB.
    pub max_file_mib: u64,
    /// The longest row a data file may have, in MiB (a longer row is a bad row).
    pub max_row_mib: u64,
}

impl Default for DataFiles {
    fn default() -> Self {
        DataFiles {
            preferences: Vec::new(),
            max_pairs_per_file: 0,
            prompts: Vec::new(),
            max_prompts_per_file: 0,
            annotated: None,
            eval_prompts: None,
            max_eval_prompts: 0,
            skip_bad_rows: false,
            max_file_mib: crate::data::DEFAULT_MAX_FILE_MIB,
            max_row_mib: crate::data::DEFAULT_MAX_ROW_MIB,
        }
    }
}

impl DataFiles {
    /// How the data files are read.
    pub fn read_options(&self) -> crate::data::ReadOptions {
        crate::data::ReadOptions {
            skip_bad_rows: self.skip_bad_rows,
            max_file_mib: self.max_file_mib,
            max_row_mib: self.max_row_mib,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartingPolicy {
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    pub train: TrainSection,
    /// Train LoRA adapters (merged on save) instead of all weights.
    #[serde(default)]
    pub lora: Option<LoraSection>,
}

fn default_max_len() -> usize {
    1024
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReviserBase {
    /// The base model (checkpoint or fresh initialization).
    #[default]
    Base,
    /// The starting policy (after its SFT on annotated examples).
    StartingPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviserConfig {
    #[serde(default)]
    pub base: ReviserBase,
    #[serde(default)]
    pub format: ReviserFormat,
    #[serde(default)]
    pub levels: RevisionLevels,
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Drop preference pairs whose prompt + chosen + rejected exceed this many characters
    /// (0 = keep all): a reviser example cut at max_len loses its target, the revision.
    #[serde(default)]
    pub max_pair_chars: usize,
    pub train: TrainSection,
    /// Train LoRA adapters (merged on save) instead of all weights.
    #[serde(default)]
    pub lora: Option<LoraSection>,
    /// Decoding of revisions (greedy by default); the keep tag ends generation at once.
    #[serde(default)]
    pub sampling: SamplingConfig,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
}

fn default_batch() -> usize {
    16
}

pub use crate::evolution::gate::GateSection;
pub use crate::evolution::selection::Selector;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvolutionConfig {
    pub prompts_per_iteration: usize,
    #[serde(default)]
    pub selector: Selector,
    /// What embeds the pool's prompts for the selector and the report's prompt clusters:
    /// "policy" (the starting policy's mean-pooled hidden states), or a model spec (e.g. an
    /// all-MiniLM-L6-v2 folder). Default: "policy" when the selector needs embeddings, else
    /// none (no clusters in the report).
    #[serde(default)]
    pub embedder: Option<String>,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Decoding of the policy's answers.
    #[serde(default)]
    pub sampling: SamplingConfig,
    #[serde(default)]
    pub filters: Filters,
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Policy SFT on the enhanced answers of each iteration (continues from the last policy).
    pub train: TrainSection,
    /// Train LoRA adapters (merged into the policy after each iteration) instead of all weights.
    #[serde(default)]
    pub lora: Option<LoraSection>,
    /// Also run the loop with the reviser replaced by the identity (plain self-training on
    /// the policy's own answers): the control that shows what the reviser adds.
    #[serde(default)]
    pub compare_identity: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filters {
    /// Drop rows whose enhanced answer is empty.
    pub drop_empty: bool,
    /// Drop degenerate answers: cut off by max_new_tokens while repeating itself.
    pub drop_degenerate: bool,
    /// Drop repeated (prompt, answer) rows.
    pub drop_duplicates: bool,
    /// Drop revisions more than this many times longer or shorter than the original (0 = off).
    pub max_length_ratio: f64,
}

impl Default for Filters {
    fn default() -> Self {
        Filters {
            drop_empty: true,
            drop_degenerate: true,
            drop_duplicates: true,
            max_length_ratio: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Grade every iteration's policy, not only the first and last.
    pub every_iteration: bool,
    pub batch_size: usize,
    /// How held-out answers are graded in a run without a [task]: "constraints" reads
    /// data.eval_prompts as IFEval-format prompts (`seft eval constraint-prompts`) and grades
    /// each answer with IFEval's checkers: correct = every instruction followed, slip = some,
    /// wrong = none. Without it such runs only answer the held-out prompts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grader: Option<GraderKind>,
    /// Score the starting policy, each arm's final policy and each comparison arm's best sweep
    /// point on IFEval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ifeval: Option<IfevalEvalConfig>,
    /// How policies answer the held-out prompts (default: evolution.sampling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<SamplingConfig>,
}

impl EvalConfig {
    /// The held-out answers' decoding: `eval.sampling`, else the evolution's.
    pub fn sampling<'a>(&'a self, evolution: &'a SamplingConfig) -> &'a SamplingConfig {
        self.sampling.as_ref().unwrap_or(evolution)
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            every_iteration: true,
            batch_size: 32,
            grader: None,
            ifeval: None,
            sampling: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GraderKind {
    Constraints,
}

/// `[eval.ifeval]`: IFEval's prompts answered greedily by each graded policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IfevalEvalConfig {
    /// IFEval's input_data.jsonl (default: the benchmark data folder or the hub's google/IFEval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_data: Option<String>,
    /// The reference setup generates up to 1280 tokens; fewer is cheaper, and changes the
    /// scores of models that write long answers.
    pub max_new_tokens: usize,
    pub batch_size: usize,
    /// Only the first N prompts (0 = all 541).
    pub limit: usize,
}

impl Default for IfevalEvalConfig {
    fn default() -> Self {
        IfevalEvalConfig {
            input_data: None,
            max_new_tokens: 1280,
            batch_size: 16,
            limit: 0,
        }
    }
}

fn expand_home(s: &mut String) {
    if let Some(rest) = s.strip_prefix("~/") {
        *s = format!("{}/{rest}", std::env::var("HOME").unwrap_or_default());
    }
}

impl RunConfig {
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = crate::input::read_metadata(path)?;
        Self::parse(&text, overrides).map_err(|msg| SeftError::file(path, msg))
    }

    pub fn parse(text: &str, overrides: &[String]) -> std::result::Result<Self, String> {
        let mut cfg: RunConfig = parse_toml(text, overrides)?;
        cfg.validate()?;
        if let Some(p) = cfg.model.path.as_mut() {
            expand_home(p);
        }
        let d = &mut cfg.data;
        d.preferences.iter_mut().for_each(expand_home);
        d.prompts.iter_mut().for_each(expand_home);
        d.annotated.iter_mut().for_each(expand_home);
        d.eval_prompts.iter_mut().for_each(expand_home);
        if let Some(i) = cfg.eval.ifeval.as_mut() {
            i.input_data.iter_mut().for_each(expand_home);
        }
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        match (&self.model.path, &self.model.scratch) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => return Err("[model] needs exactly one of path or scratch".into()),
        }
        if let Some(s) = &self.model.scratch {
            if s.hidden_size == 0 || s.layers == 0 || s.heads == 0 || s.intermediate_size == 0 {
                return Err("model.scratch sizes must be at least 1".into());
            }
            if s.hidden_size % s.heads != 0 || (s.hidden_size / s.heads) % 2 != 0 {
                return Err(format!(
                    "model.scratch.hidden_size {} must split into {} heads of even size",
                    s.hidden_size, s.heads
                ));
            }
        }
        if self.iterations == 0 {
            return Err("iterations must be at least 1".into());
        }
        self.data.read_options().validate()?;
        match &self.task {
            Some(t) => t.validate()?,
            None => {
                if self.data.preferences.is_empty() {
                    return Err("data.preferences is empty (and no [task] is set)".into());
                }
                if self.data.prompts.is_empty() {
                    return Err("data.prompts is empty (and no [task] is set)".into());
                }
                if self.starting_policy.is_some() && self.data.annotated.is_none() {
                    return Err("[starting_policy] needs data.annotated (or a [task])".into());
                }
            }
        }
        if self.eval.grader == Some(GraderKind::Constraints) {
            if self.task.is_some() {
                return Err("eval.grader = \"constraints\" is for runs without a [task]".into());
            }
            if self.data.eval_prompts.is_none() {
                return Err(
                    "eval.grader = \"constraints\" needs data.eval_prompts (IFEval-format prompts)"
                        .into(),
                );
            }
        }
        if let Some(i) = &self.eval.ifeval
            && (i.max_new_tokens == 0 || i.batch_size == 0)
        {
            return Err("eval.ifeval: max_new_tokens and batch_size must be at least 1".into());
        }
        if self.model.scratch.is_some() && self.starting_policy.is_none() {
            return Err(
                "a scratch model needs [starting_policy]: an untrained policy has nothing to evolve"
                    .into(),
            );
        }
        if self.reviser.base == ReviserBase::StartingPolicy && self.starting_policy.is_none() {
            return Err("reviser.base = \"starting_policy\" needs [starting_policy]".into());
        }
        self.reviser.format.validate()?;
        self.reviser.levels.validate()?;
        if let Some(gate) = &self.gate {
            gate.validate().map_err(|e| e.to_string())?;
        }
        self.reviser
            .sampling
            .validate()
            .map_err(|e| format!("reviser.sampling: {e}"))?;
        self.evolution
            .sampling
            .validate()
            .map_err(|e| format!("evolution.sampling: {e}"))?;
        if let Some(sampling) = &self.eval.sampling {
            sampling
                .validate()
                .map_err(|e| format!("eval.sampling: {e}"))?;
        }
        if self.evolution.prompts_per_iteration == 0 {
            return Err("evolution.prompts_per_iteration must be at least 1".into());
        }
        if self.evolution.batch_size == 0 || self.reviser.batch_size == 0 {
            return Err("batch_size must be at least 1".into());
        }
        let stages = [
            ("reviser", &self.reviser.train, &self.reviser.lora),
            ("evolution", &self.evolution.train, &self.evolution.lora),
        ]
        .into_iter()
        .chain(
            self.starting_policy
                .iter()
                .map(|s| ("starting_policy", &s.train, &s.lora)),
        );
        for (name, t, lora) in stages {
            t.validate(&format!("{name}."))?;
            if let Some(l) = lora {
                l.validate().map_err(|e| format!("{name}.{e}"))?;
            }
        }
        for (i, arm) in self.baselines.iter().enumerate() {
            arm.validate()?;
            if self.baselines[..i].iter().any(|a| a.name == arm.name) {
                return Err(format!("baselines: the name '{}' is used twice", arm.name));
            }
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }
}
