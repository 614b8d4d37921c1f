//! What an SFT run trains and how: [`SftParams`], built in Rust with its builders
//! (`SftParams::new(model, data, dir).with_train(TrainSection::lora_preset()...)`) or read from
//! a TOML file (configs/sft_example.toml documents every field), whose unknown keys are
//! rejected by name and whose `--set section.key=value` overrides apply before validation.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Result, SeftError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftParams {
    pub model: ModelSection,
    pub data: DataSection,
    #[serde(default)]
    pub train: TrainSection,
    /// Present: train LoRA adapters instead of all weights (merged into the weights on save).
    #[serde(default)]
    pub lora: Option<LoraSection>,
    pub output: OutputSection,
    /// Present: train on preference pairs with this loss instead of SFT (see
    /// [`PreferenceSection`]); absent: token cross-entropy on the targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preference: Option<PreferenceSection>,
}

/// The loss a training run minimizes; both are computed by the same loop
/// ([`crate::train::trainer`]) with the same optimizer, schedule, accumulation, checkpoints
/// and metrics file.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Objective {
    /// Mean −log p(target) over the target tokens of the accumulated step.
    Sft,
    /// A pairwise preference loss over (chosen, rejected) completions of the same prompt
    /// ([`crate::train::preference`]), averaged over the pairs of the accumulated step.
    Preference(PreferenceLoss),
}

/// The preference losses, with TRL's definitions (see [`crate::train::preference`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreferenceLossKind {
    /// DPO, TRL's `sigmoid`: −(1−ε)·log σ(βΔ) − ε·log σ(−βΔ) (ε = label_smoothing, cDPO).
    Dpo,
    /// Robust DPO: (−(1−ε)·log σ(βΔ) + ε·log σ(−βΔ)) / (1 − 2ε).
    Robust,
    /// IPO: (Δ − 1/(2β))² with log-probabilities averaged per completion token.
    Ipo,
    /// SimPO (reference-free): −log σ(β·(avg_c − avg_r) − γ).
    Simpo,
    /// ORPO (reference-free): NLL(chosen) − β·log σ(log-odds ratio), averaged log-probs.
    Orpo,
}

impl PreferenceLossKind {
    /// Whether the loss compares the policy with a reference model.
    pub fn uses_reference(self) -> bool {
        matches!(self, Self::Dpo | Self::Robust | Self::Ipo)
    }

    /// Whether sequence log-probabilities are averaged over completion tokens (else summed).
    pub fn averages_log_probs(self) -> bool {
        matches!(self, Self::Ipo | Self::Simpo | Self::Orpo)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Dpo => "dpo",
            Self::Robust => "robust",
            Self::Ipo => "ipo",
            Self::Simpo => "simpo",
            Self::Orpo => "orpo",
        }
    }
}

/// A preference loss and its constants, as the training step needs them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreferenceLoss {
    pub kind: PreferenceLossKind,
    pub beta: f64,
    pub label_smoothing: f64,
    pub simpo_gamma: f64,
}

/// `[preference]`: train on (prompt, chosen, rejected) pairs. Defaults are TRL's (β 0.1,
/// SimPO's γ 0.5, no label smoothing; `train.lr` defaults to 1e-6 here, as DPOConfig's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreferenceSection {
    pub loss: PreferenceLossKind,
    /// β: the inverse temperature of the reward (ORPO: λ, the weight of the odds-ratio term,
    /// which TRL's ORPOConfig also calls beta).
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// ε in [0, 0.5): dpo, robust and simpo only.
    #[serde(default)]
    pub label_smoothing: f64,
    /// SimPO's target reward margin γ.
    #[serde(default = "default_simpo_gamma")]
    pub simpo_gamma: f64,
    /// The reference model of dpo/robust/ipo: "initial" (the starting weights; with LoRA the
    /// base with adapters off, no second copy) or a model path (GGUF, folder or hub id).
    #[serde(default = "default_reference")]
    pub reference: String,
    /// Compute the reference log-probabilities once before training (resumable, cached in
    /// the run directory) so that training holds one model.
    #[serde(default)]
    pub precompute_ref: bool,
}

impl PreferenceSection {
    /// `loss` with TRL's defaults (β 0.1, γ 0.5, ε 0, the starting weights as reference).
    pub fn new(loss: PreferenceLossKind) -> Self {
        PreferenceSection {
            loss,
            beta: default_beta(),
            label_smoothing: 0.0,
            simpo_gamma: default_simpo_gamma(),
            reference: default_reference(),
            precompute_ref: false,
        }
    }

    pub fn with_beta(mut self, beta: f64) -> Self {
        self.beta = beta;
        self
    }

    pub fn with_precompute_ref(mut self, precompute: bool) -> Self {
        self.precompute_ref = precompute;
        self
    }

    pub fn loss(&self) -> PreferenceLoss {
        PreferenceLoss {
            kind: self.loss,
            beta: self.beta,
            label_smoothing: self.label_smoothing,
            simpo_gamma: self.simpo_gamma,
        }
    }

    /// The reference model's path, or `None` for the starting weights.
    pub fn reference_model(&self) -> Option<&str> {
        Some(self.reference.as_str()).filter(|r| *r != "initial")
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.beta > 0.0 && self.beta.is_finite()) {
            return Err(format!("preference.beta must be > 0, got {}", self.beta));
        }
        if !(0.0..0.5).contains(&self.label_smoothing) {
            return Err(format!(
                "preference.label_smoothing must be in [0, 0.5), got {}",
                self.label_smoothing
            ));
        }
        let kind = self.loss;
        if self.label_smoothing != 0.0
            && !matches!(
                kind,
                PreferenceLossKind::Dpo | PreferenceLossKind::Robust | PreferenceLossKind::Simpo
            )
        {
            return Err(format!(
                "preference.label_smoothing applies to dpo, robust and simpo, not {}",
                kind.name()
            ));
        }
        if !(self.simpo_gamma >= 0.0 && self.simpo_gamma.is_finite()) {
            return Err(format!(
                "preference.simpo_gamma must be ≥ 0, got {}",
                self.simpo_gamma
            ));
        }
        if !kind.uses_reference() && (self.precompute_ref || self.reference != "initial") {
            return Err(format!(
                "preference.loss = \"{}\" is reference-free: remove preference.reference and preference.precompute_ref",
                kind.name()
            ));
        }
        if self.reference.trim().is_empty() {
            return Err("preference.reference is empty (\"initial\" or a model path)".into());
        }
        Ok(())
    }
}

fn default_beta() -> f64 {
    0.1
}

fn default_simpo_gamma() -> f64 {
    0.5
}

fn default_reference() -> String {
    "initial".into()
}

/// TRL's DPOConfig learning rate, the default of `train.lr` under `[preference]`.
pub const PREFERENCE_DEFAULT_LR: f64 = 1e-6;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSection {
    pub rank: usize,
    /// The adapter's contribution is scaled by alpha / rank.
    pub alpha: f64,
    /// Projections that get adapters (by name): q_proj, k_proj, v_proj, o_proj, gate_proj,
    /// up_proj, down_proj. Everything else stays frozen.
    #[serde(default = "default_lora_targets")]
    pub targets: Vec<String>,
}

impl LoraSection {
    /// Adapters of `rank` on the attention projections (q, k, v, o), scaled by alpha / rank.
    pub fn new(rank: usize, alpha: f64) -> Self {
        LoraSection {
            rank,
            alpha,
            targets: default_lora_targets(),
        }
    }

    /// Adapt these projections instead (names from [`LORA_TARGETS`]).
    pub fn with_targets(mut self, targets: &[&str]) -> Self {
        self.targets = targets.iter().map(|t| t.to_string()).collect();
        self
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.rank == 0 || self.alpha.is_nan() || self.alpha <= 0.0 {
            return Err("lora.rank and lora.alpha must be positive".into());
        }
        if self.targets.is_empty() {
            return Err("lora.targets is empty".into());
        }
        if let Some(bad) = self
            .targets
            .iter()
            .find(|t| !LORA_TARGETS.contains(&t.as_str()))
        {
            return Err(format!(
                "lora.targets: unknown projection '{bad}' (expected one of {LORA_TARGETS:?})"
            ));
        }
        Ok(())
    }
}

impl LoraSection {
    /// A rank above a targeted projection's smaller side adds parameters without adding rank
    /// (and a rank of millions would allocate without bound), so it is refused.
    pub fn check_fits(&self, cfg: &crate::model::ModelConfig) -> std::result::Result<(), String> {
        let q = cfg.num_attention_heads * cfg.head_dim;
        let kv = cfg.num_key_value_heads * cfg.head_dim;
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        for target in &self.targets {
            let (rows, cols) = match target.as_str() {
                "q_proj" => (q, h),
                "k_proj" | "v_proj" => (kv, h),
                "o_proj" => (h, q),
                "gate_proj" | "up_proj" => (i, h),
                _ => (h, i),
            };
            let most = rows.min(cols);
            if self.rank > most {
                return Err(format!(
                    "lora.rank {} exceeds {target}'s {rows}×{cols} shape: at most {most}",
                    self.rank
                ));
            }
        }
        Ok(())
    }
}

fn default_lora_targets() -> Vec<String> {
    ["q_proj", "k_proj", "v_proj", "o_proj"]
        .map(String::from)
        .to_vec()
}

/// Every projection LoRA can adapt.
pub const LORA_TARGETS: &[&str] = &[
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// GGUF file, Hugging Face folder or hub id.
    pub path: String,
    #[serde(default)]
    pub backend: Backend,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Training file (JSON/JSONL, .gz allowed) or `org/name:file.jsonl` on the hub.
    pub train: String,
    /// Held-out file; when absent, `eval_fraction` of the training rows is held out.
    #[serde(default)]
    pub eval: Option<String>,
    #[serde(default = "default_eval_fraction")]
    pub eval_fraction: f64,
    /// Only the first N training rows (after shuffling with the seed) are used; 0 = all.
    #[serde(default)]
    pub max_rows: usize,
    /// Sequences longer than this are truncated (and counted).
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Train on every token, prompts included (default: assistant tokens only).
    #[serde(default)]
    pub train_on_prompt: bool,
    /// Skip malformed rows (reported with their count) instead of stopping at the first.
    #[serde(default)]
    pub skip_bad_rows: bool,
    /// The most a data file may hold once decompressed, in MiB.
    #[serde(default = "default_max_file_mib")]
    pub max_file_mib: u64,
    /// The longest row a data file may have, in MiB (a longer row is a bad row).
    #[serde(default = "default_max_row_mib")]
    pub max_row_mib: u64,
    /// Pack several training sequences into each row of up to `max_len` tokens (no attention
    /// across sequences, positions restart): less padding, same loss.
    #[serde(default)]
    pub packing: bool,
}

impl DataSection {
    /// How the data files are read.
    pub fn read_options(&self) -> crate::data::ReadOptions {
        crate::data::ReadOptions {
            skip_bad_rows: self.skip_bad_rows,
            max_file_mib: self.max_file_mib,
            max_row_mib: self.max_row_mib,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    #[default]
    Cosine,
    Linear,
    Constant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    pub seed: u64,
    pub epochs: usize,
    /// Train for exactly this many optimizer steps, cycling through the data as needed; it
    /// overrides `epochs` as in transformers (0 = run `epochs` epochs).
    pub max_steps: usize,
    /// Sequences per forward/backward pass.
    pub micro_batch: usize,
    /// Micro-batches per optimizer step (effective batch = micro_batch × grad_accum).
    pub grad_accum: usize,
    /// Batch examples of similar length together (less padding, faster; see train::batch).
    pub group_by_length: bool,
    pub lr: f64,
    pub schedule: Schedule,
    /// Linear warmup steps from 0 to `lr`.
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global gradient-norm clip (0 = off).
    pub max_grad_norm: f64,
    pub log_every: usize,
    /// Evaluate on the held-out split every N steps (0 = only at the end).
    pub eval_every: usize,
    /// Write a resumable checkpoint every N steps (0 = only at the end).
    pub save_every: usize,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            seed: 0,
            epochs: 1,
            max_steps: 0,
            micro_batch: 4,
            grad_accum: 1,
            group_by_length: false,
            lr: 2e-5,
            schedule: Schedule::Cosine,
            warmup_steps: 0,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            max_grad_norm: 1.0,
            log_every: 1,
            eval_every: 0,
            save_every: 0,
        }
    }
}

impl TrainSection {
    /// Checks every setting's range; the error names the key as `{prefix}train.<key>` (prefix
    /// "" for an SFT config, "reviser." etc. inside a SEFT config) and the allowed range.
    pub fn validate(&self, prefix: &str) -> std::result::Result<(), String> {
        let key = |k: &str| format!("{prefix}train.{k}");
        if self.micro_batch == 0 || self.grad_accum == 0 {
            return Err(format!(
                "{} and {} must be at least 1",
                key("micro_batch"),
                key("grad_accum")
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("{} must be > 0, got {}", key("lr"), self.lr));
        }
        if self.epochs == 0 && self.max_steps == 0 {
            return Err(format!("set {} or {}", key("epochs"), key("max_steps")));
        }
        if self.log_every == 0 {
            return Err(format!(
                "{} must be at least 1 (the run's losses are its logged steps)",
                key("log_every")
            ));
        }
        for (name, value) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&value) {
                return Err(format!("{} must be in [0, 1), got {value}", key(name)));
            }
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(format!("{} must be > 0, got {}", key("eps"), self.eps));
        }
        for (name, value) in [
            ("weight_decay", self.weight_decay),
            ("max_grad_norm", self.max_grad_norm),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(format!("{} must be ≥ 0, got {value}", key(name)));
            }
        }
        Ok(())
    }

    /// Full fine-tuning as transformers' `Trainer` defaults it: lr 2e-5, cosine schedule,
    /// one epoch, gradient clipping at 1 (the same as `TrainSection::default()`).
    pub fn full_preset() -> Self {
        TrainSection::default()
    }

    /// LoRA's usual learning rate (2e-4, as PEFT's examples), otherwise [`Self::full_preset`].
    pub fn lora_preset() -> Self {
        TrainSection {
            lr: 2e-4,
            ..TrainSection::default()
        }
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn with_epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }

    /// Exactly this many optimizer steps (0: `epochs` epochs).
    pub fn with_max_steps(mut self, steps: usize) -> Self {
        self.max_steps = steps;
        self
    }

    /// Sequences per forward pass, and micro-batches per optimizer step.
    pub fn with_batch(mut self, micro_batch: usize, grad_accum: usize) -> Self {
        self.micro_batch = micro_batch;
        self.grad_accum = grad_accum;
        self
    }

    pub fn with_lr(mut self, lr: f64, schedule: Schedule, warmup_steps: usize) -> Self {
        self.lr = lr;
        self.schedule = schedule;
        self.warmup_steps = warmup_steps;
        self
    }

    /// Log every `log_every` steps, evaluate every `eval_every` and checkpoint every
    /// `save_every` (0: only at the end).
    pub fn with_cadence(mut self, log_every: usize, eval_every: usize, save_every: usize) -> Self {
        self.log_every = log_every;
        self.eval_every = eval_every;
        self.save_every = save_every;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// Run directory: resolved config, metrics.jsonl, loss curve, checkpoints, final model.
    pub dir: PathBuf,
}

fn default_eval_fraction() -> f64 {
    0.05
}
fn default_max_file_mib() -> u64 {
    crate::data::DEFAULT_MAX_FILE_MIB
}

fn default_max_row_mib() -> u64 {
    crate::data::DEFAULT_MAX_ROW_MIB
}

fn default_max_len() -> usize {
    1024
}

/// Sets `a.b.c = value` in a TOML table; the value is parsed as TOML (number, bool, string...)
/// and taken as a plain string when it does not parse.
fn apply_override(root: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| SeftError::Invalid(format!("--set '{assignment}': expected key=value")))?;
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.trim().split('.').collect();
    let mut table = root;
    for part in &parts[..parts.len() - 1] {
        table = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| SeftError::Invalid(format!("--set {key}: '{part}' is not a section")))?;
    }
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// Parses a TOML config with `--set key=value` overrides applied first; errors on one line.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    overrides: &[String],
) -> std::result::Result<T, String> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
    for o in overrides {
        apply_override(&mut table, o).map_err(|e| e.to_string())?;
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| one_line(&e.to_string()))
}

impl SftParams {
    /// Trains `model` (a GGUF file, Hugging Face folder or hub id) on `train_data` (a data
    /// file or `org/name:file`) into the run directory `out`, with every other field at the
    /// TOML file's default.
    pub fn new(model: &str, train_data: &str, out: impl AsRef<Path>) -> Self {
        SftParams {
            model: ModelSection {
                path: model.to_string(),
                backend: Backend::default(),
            },
            data: DataSection {
                train: train_data.to_string(),
                eval: None,
                eval_fraction: default_eval_fraction(),
                max_rows: 0,
                max_len: default_max_len(),
                train_on_prompt: false,
                skip_bad_rows: false,
                max_file_mib: default_max_file_mib(),
                max_row_mib: default_max_row_mib(),
                packing: false,
            },
            train: TrainSection::default(),
            lora: None,
            output: OutputSection {
                dir: out.as_ref().to_path_buf(),
            },
            preference: None,
        }
    }

    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.model.backend = backend;
        self
    }

    pub fn with_train(mut self, train: TrainSection) -> Self {
        self.train = train;
        self
    }

    /// Train on preference pairs with this loss (the data must be preference rows).
    pub fn with_preference(mut self, preference: PreferenceSection) -> Self {
        self.preference = Some(preference);
        self
    }

    /// What each optimizer step minimizes.
    pub fn objective(&self) -> Objective {
        match &self.preference {
            Some(p) => Objective::Preference(p.loss()),
            None => Objective::Sft,
        }
    }

    pub fn with_lora(mut self, lora: LoraSection) -> Self {
        self.lora = Some(lora);
        self
    }

    /// Sequences longer than `max_len` tokens are truncated (and counted).
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        self.data.max_len = max_len;
        self
    }

    /// Hold out this share of the training rows for evaluation (0: none).
    pub fn with_eval_fraction(mut self, fraction: f64) -> Self {
        self.data.eval_fraction = fraction;
        self
    }

    /// Evaluate on this file instead of a share of the training rows.
    pub fn with_eval_data(mut self, eval_data: &str) -> Self {
        self.data.eval = Some(eval_data.to_string());
        self
    }

    /// The same checks a TOML file goes through, as one error line.
    pub fn validated(self) -> Result<Self> {
        self.validate().map_err(SeftError::Invalid)?;
        Ok(self)
    }

    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = crate::input::read_metadata(path)?;
        Self::parse(&text, overrides).map_err(|msg| SeftError::file(path, msg))
    }

    pub fn parse(text: &str, overrides: &[String]) -> std::result::Result<Self, String> {
        let mut cfg: SftParams = parse_toml(text, overrides)?;
        if cfg.preference.is_some() && !sets_key(text, overrides, "train", "lr") {
            cfg.train.lr = PREFERENCE_DEFAULT_LR;
        }
        cfg.validate()?;
        Ok(cfg.with_home_expanded())
    }

    /// `~/` at the start of a path means the home directory, as in a shell.
    fn with_home_expanded(mut self) -> Self {
        let home = std::env::var("HOME").unwrap_or_default();
        let expand = |s: &mut String| {
            if let Some(rest) = s.strip_prefix("~/") {
                *s = format!("{home}/{rest}");
            }
        };
        expand(&mut self.model.path);
        expand(&mut self.data.train);
        if let Some(e) = self.data.eval.as_mut() {
            expand(e);
        }
        if let Some(rest) = self.output.dir.to_str().and_then(|d| d.strip_prefix("~/")) {
            self.output.dir = PathBuf::from(format!("{home}/{rest}"));
        }
        self
    }

    fn validate(&self) -> std::result::Result<(), String> {
        self.train.validate("")?;
        if !(0.0..1.0).contains(&self.data.eval_fraction) {
            return Err(format!(
                "data.eval_fraction must be in [0, 1), got {}",
                self.data.eval_fraction
            ));
        }
        if let Some(l) = &self.lora {
            l.validate()?;
        }
        self.data.read_options().validate()?;
        if self.data.max_len < 2 {
            return Err("data.max_len must be at least 2".into());
        }
        if let Some(p) = &self.preference {
            p.validate()?;
            if self.data.train_on_prompt || self.data.packing {
                return Err("data.train_on_prompt and data.packing do not apply to [preference] training: the loss is on the completions, one pair per row".into());
            }
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }
}

/// Whether the config text or an override sets `section.key` (to tell a default from a choice).
fn sets_key(text: &str, overrides: &[String], section: &str, key: &str) -> bool {
    let dotted = format!("{section}.{key}");
    let in_text = toml::from_str::<toml::Table>(text).ok().is_some_and(|t| {
        t.get(section)
            .and_then(toml::Value::as_table)
            .is_some_and(|s| s.contains_key(key))
    });
    in_text
        || overrides
            .iter()
            .any(|o| o.split_once('=').is_some_and(|(k, _)| k.trim() == dotted))
}

/// toml's messages span several lines (with a source excerpt); keep the first and the cause.
fn one_line(msg: &str) -> String {
    // The excerpt lines are `  |`, `1 | <the source line>` and `  ^`: the source line may be
    // the whole (hostile) file, so only the position and the cause are kept.
    let excerpt = |l: &str| {
        let numbered = l.trim_start_matches(|c: char| c.is_ascii_digit());
        l.starts_with('|') || (numbered.len() < l.len() && numbered.trim_start().starts_with('|'))
    };
    let lines: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !excerpt(l) && !l.chars().all(|c| c == '^' || c == ' '))
        .collect();
    lines.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str =
        "[model]\npath = \"m.gguf\"\n[data]\ntrain = \"d.jsonl\"\n[output]\ndir = \"runs/x\"\n";

    #[test]
    fn parse_errors_are_one_short_line_without_the_source_excerpt() {
        let deep = format!("x = {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let err = SftParams::parse(&deep, &[]).unwrap_err();
        assert!(err.len() < 500 && !err.contains('\n'), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn defaults_and_overrides() {
        let cfg = SftParams::parse(
            MIN,
            &[
                "train.lr=1e-4".into(),
                "train.schedule=linear".into(),
                "data.train=other.json".into(),
            ],
        )
        .unwrap();
        assert_eq!(cfg.train.lr, 1e-4);
        assert_eq!(cfg.train.schedule, Schedule::Linear);
        assert_eq!(cfg.data.train, "other.json");
        assert_eq!(cfg.train.micro_batch, 4);
        assert_eq!(SftParams::parse(&cfg.to_toml(), &[]).unwrap(), cfg);
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_named() {
        let err =
            SftParams::parse(&format!("{MIN}[train]\nlearning_rate = 1.0\n"), &[]).unwrap_err();
        assert!(err.contains("unknown field `learning_rate`"), "{err}");
        assert!(!err.contains('\n'));
        let err =
            SftParams::parse(&format!("{MIN}[train]\nmicro_batch = \"four\"\n"), &[]).unwrap_err();
        assert!(
            err.contains("micro_batch") || err.contains("invalid type"),
            "{err}"
        );
        let err = SftParams::parse(MIN, &["train.epochs=0".into()]).unwrap_err();
        assert!(err.contains("epochs"), "{err}");
    }

    #[test]
    fn optimizer_settings_out_of_range_are_named_with_their_range() {
        for (set, key, range) in [
            ("train.beta1=1", "train.beta1", "[0, 1)"),
            ("train.beta2=1.0", "train.beta2", "[0, 1)"),
            ("train.eps=0", "train.eps", "> 0"),
            ("train.weight_decay=-0.1", "train.weight_decay", "≥ 0"),
            ("train.max_grad_norm=-1", "train.max_grad_norm", "≥ 0"),
            ("train.log_every=0", "train.log_every", "at least 1"),
        ] {
            let err = SftParams::parse(MIN, &[set.into()]).unwrap_err();
            assert!(err.contains(key) && err.contains(range), "{set}: {err}");
        }
        // The same checks apply inside a SEFT config, with the stage's prefix.
        let err = TrainSection::default()
            .with_lr(1e-3, Schedule::Cosine, 0)
            .with_cadence(0, 0, 0)
            .validate("reviser.")
            .unwrap_err();
        assert!(err.contains("reviser.train.log_every"), "{err}");
    }
}
