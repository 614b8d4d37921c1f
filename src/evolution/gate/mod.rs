//! The quality gate in SEFT: a wide shifted-ReLU classifier ([`crate::sparse::QualityGate`],
//! trained through the firing-neuron trees of arXiv:2211.14227 or densely) on frozen
//! embeddings of (prompt, response) texts from the preference data: chosen = good, rejected =
//! needs revision. The embeddings never change during training, which is the trees'
//! assumption.
//!
//! SEFT uses it twice, each time only at a precision measured on held-out preference pairs:
//! - **skip**: a policy answer scoring at or above `skip_score` is kept without calling the
//!   reviser (the reviser's `keep` would be the likely outcome anyway, and it is the most
//!   expensive call of an iteration);
//! - **filter** (optional): an enhanced answer scoring at or below `filter_score` is left out of
//!   the iteration's SFT data.
//!
//! Both thresholds are chosen on the held-out pairs as the most permissive score whose
//! precision (share of chosen answers above, of rejected answers below) reaches the configured
//! target with at least [`MIN_SUPPORT`] held-out answers on that side; a gate that cannot
//! reach it gets no threshold and changes nothing.

use std::path::Path;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::data::jsonl::write_atomic;
use crate::embed::TextEmbedder;
use crate::error::{Result, SeftError};
use crate::evolution::layout::stages;
use crate::evolution::reviser::PreferencePair;
use crate::evolution::stage::Run;
use crate::numeric::Matrix;
use crate::sparse::{GateParams, QualityGate, ShiftedReluNet, TrainPath};

mod calibrate;
mod saved;

pub use calibrate::{GateFit, GateOutcome, calibrate, fit_and_calibrate, fit_gate};
pub use saved::{GateScorer, load_gate, save_gate};

/// Held-out answers a threshold must cover, so that one lucky score does not set it.
pub const MIN_SUPPORT: usize = 10;

/// Tokens of a (prompt, response) text the embedder reads (decoders; BERT keeps its own 512).
pub const GATE_MAX_TOKENS: usize = 512;

/// `[gate]` of a SEFT config (see configs/seft_example.toml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSection {
    /// How the gate's network is trained: `dense` (gemm over all neurons), `firing-tree`
    /// (only the firing neurons, through the trees; the default) or `auto`.
    #[serde(default = "default_train_path")]
    pub train: TrainPath,
    /// What embeds the (prompt, response) texts: "policy" (the starting policy's mean-pooled
    /// hidden states), "reviser" (the trained reviser's), or a model spec (e.g. an
    /// all-MiniLM-L6-v2 folder).
    #[serde(default = "default_embedder")]
    pub embedder: String,
    /// Neurons m of the hidden layer.
    #[serde(default = "default_width")]
    pub width: usize,
    /// Full-batch gradient-descent steps.
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Shift b of the ReLU; default √(0.4 ln m), the paper's sparse regime.
    #[serde(default)]
    pub threshold: Option<f32>,
    /// Share of the preference pairs held out to measure and calibrate the gate.
    #[serde(default = "default_held_out")]
    pub held_out_fraction: f64,
    /// Skip the reviser for answers the gate passes at this held-out precision (0 = never).
    #[serde(default = "default_skip_precision")]
    pub skip_precision: f64,
    /// Drop enhanced answers the gate rejects at this held-out precision (0 = never).
    #[serde(default)]
    pub filter_precision: f64,
    /// Also train through the other path and report both held-out accuracies.
    #[serde(default = "default_true")]
    pub compare_paths: bool,
}

fn default_train_path() -> TrainPath {
    TrainPath::FiringTree
}
fn default_embedder() -> String {
    "policy".into()
}
fn default_width() -> usize {
    4096
}
fn default_steps() -> usize {
    200
}
fn default_held_out() -> f64 {
    0.2
}
fn default_skip_precision() -> f64 {
    0.9
}
fn default_true() -> bool {
    true
}

impl GateSection {
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(SeftError::Invalid(format!("[gate] {msg}")));
        if self.width == 0 || self.steps == 0 {
            return bad("width and steps must be at least 1".into());
        }
        if !(self.held_out_fraction > 0.0 && self.held_out_fraction < 1.0) {
            return bad(format!(
                "held_out_fraction must be in (0, 1), got {}",
                self.held_out_fraction
            ));
        }
        for (name, p) in [
            ("skip_precision", self.skip_precision),
            ("filter_precision", self.filter_precision),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{name} must be in [0, 1], got {p}"));
            }
        }
        if let Some(b) = self.threshold
            && !b.is_finite()
        {
            return bad(format!("threshold must be finite, got {b}"));
        }
        Ok(())
    }

    fn gate_config(&self, training: TrainPath, seed: u64) -> GateParams {
        GateParams {
            width: self.width,
            threshold: self.threshold,
            steps: self.steps,
            lr: None,
            path: training,
            seed,
        }
    }
}

/// A plain text for one answer, for gates outside a SEFT run (`seft gate`). In a run the gate
/// embeds what the reviser reads, the reviser format's user turn.
pub fn gate_text(prompt: &str, response: &str) -> String {
    format!("{}\n\n{}", prompt.trim(), response.trim())
}

/// Gate examples from preference pairs, `text(prompt, response)` each: for pair j, rows 2j
/// (chosen, good) and 2j+1 (rejected, needs revision).
pub fn gate_examples(
    pairs: &[PreferencePair],
    text: impl Fn(&str, &str) -> String,
) -> (Vec<String>, Vec<bool>) {
    let mut texts = Vec::with_capacity(2 * pairs.len());
    let mut labels = Vec::with_capacity(2 * pairs.len());
    for p in pairs {
        texts.push(text(&p.prompt, &p.chosen));
        labels.push(true);
        texts.push(text(&p.prompt, &p.rejected));
        labels.push(false);
    }
    (texts, labels)
}

/// Row indices (into [`gate_examples`]' rows) of the training and held-out pairs: a seeded
/// split by pair, so a pair's two answers stay on the same side.
pub fn split_by_pair(
    pairs: usize,
    held_out_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let held = ((pairs as f64) * held_out_fraction).round() as usize;
    if pairs < 2 || held == 0 || held == pairs {
        return Err(SeftError::Invalid(format!(
            "the quality gate needs preference pairs on both sides of a held_out_fraction of {held_out_fraction}: got {pairs} pairs"
        )));
    }
    let mut order: Vec<usize> = (0..pairs).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x6a7e));
    let rows = |ps: &[usize]| {
        let mut rows: Vec<usize> = ps.iter().flat_map(|&p| [2 * p, 2 * p + 1]).collect();
        rows.sort_unstable();
        rows
    };
    Ok((rows(&order[held..]), rows(&order[..held])))
}

/// The gate's training examples: preference pairs, each answer embedded as
/// `text(prompt, response)`.
pub struct GateExamples<'a> {
    pub pairs: &'a [PreferencePair],
    pub text: &'a dyn Fn(&str, &str) -> String,
    /// Seeds the train / held-out split and the gate's initialization.
    pub seed: u64,
    /// Texts per embedding forward pass.
    pub batch_size: usize,
}

/// Embeds the examples, trains the gate (and the comparison), calibrates it, and saves it in
/// `dir` (gate.json + weights.npy).
pub fn train_gate_stage(
    section: &GateSection,
    embedder_spec: &str,
    examples: &GateExamples,
    device: &burn::tensor::Device,
    dir: &Path,
) -> Result<GateOutcome> {
    let GateExamples {
        pairs,
        text,
        seed,
        batch_size,
    } = *examples;
    let (texts, labels) = gate_examples(pairs, text);
    let (train, held_out) = split_by_pair(pairs.len(), section.held_out_fraction, seed)?;
    let started = Instant::now();
    let embedder = TextEmbedder::load(embedder_spec, device, GATE_MAX_TOKENS)?;
    let embeddings = Matrix::from_rows(&embedder.embed(&texts, batch_size.max(1))?)?;
    let embed_seconds = started.elapsed().as_secs_f64();
    embeddings.write_npy(&dir.join("embeddings.npy"))?;
    let outcome = fit_and_calibrate(
        section,
        &embeddings,
        &labels,
        &train,
        &held_out,
        seed,
        |gate| save_gate(gate, dir),
    )?;
    Ok(GateOutcome {
        embedder: embedder_spec.to_string(),
        dim: embeddings.d(),
        pairs: pairs.len(),
        embed_seconds,
        ..outcome
    })
}

/// A trained quality gate, ready to score answers.
pub struct LoadedGate {
    pub outcome: GateOutcome,
    pub scorer: GateScorer,
}

/// The gate stage of a run (with a `[gate]` section): trains the gate on the run's preference
/// pairs with the configured embedder (`policy` = the starting policy, `reviser`, or a model),
/// then loads it for scoring.
pub fn gate_stage(
    run: &Run,
    start: &str,
    reviser: &str,
    pairs: &[PreferencePair],
) -> Result<Option<LoadedGate>> {
    let Some(section) = &run.cfg.gate else {
        return Ok(None);
    };
    let embedder = match section.embedder.as_str() {
        "policy" => start,
        "reviser" => reviser,
        spec => spec,
    };
    let cfg = run.cfg;
    let outcome = run.stage(stages::GATE, "train the quality gate", |dir| {
        let examples = GateExamples {
            pairs,
            text: &|p, r| cfg.reviser.format.user_turn(p, r),
            seed: cfg.seed,
            batch_size: cfg.evolution.batch_size,
        };
        train_gate_stage(section, embedder, &examples, &run.device, dir)
    })?;
    let scorer = GateScorer::load(
        &run.layout.stage_dir(stages::GATE),
        embedder,
        cfg.evolution.batch_size,
        &run.device,
    )?;
    Ok(Some(LoadedGate { outcome, scorer }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_finds_the_most_permissive_threshold_at_the_precision() {
        // Scores 20..1 (high = confident good); the top 12 are good, then good/bad alternate.
        let scores: Vec<f32> = (1..=20).rev().map(|s| s as f32).collect();
        let labels: Vec<bool> = (0..20).map(|i| i < 12 || i % 2 == 0).collect();
        // 100%: the top 13 (all good, support 13 >= 10).
        assert_eq!(calibrate(&scores, &labels, true, 1.0), Some(8.0));
        // 90%: the top 15 have 14 good (93%), the top 16 only 14 (87.5%).
        assert_eq!(calibrate(&scores, &labels, true, 0.9), Some(6.0));
        // Not enough support on the bad side at 100% (bad answers are rare and mixed).
        assert_eq!(calibrate(&scores, &labels, false, 1.0), None);
        assert_eq!(calibrate(&scores, &labels, true, 0.0), None);
        // Ties are not split: equal scores all pass or none does.
        let tied = vec![1.0f32; 12];
        let mixed: Vec<bool> = (0..12).map(|i| i != 0).collect();
        assert_eq!(calibrate(&tied, &mixed, true, 0.95), None);
        assert_eq!(calibrate(&tied, &mixed, true, 0.9), Some(1.0));
    }

    #[test]
    fn split_keeps_pairs_together_and_is_seeded() {
        let (train, held) = split_by_pair(10, 0.2, 3).unwrap();
        assert_eq!((train.len(), held.len()), (16, 4));
        for rows in [&train, &held] {
            for &r in rows.iter() {
                assert!(rows.contains(&(r ^ 1)), "row {r} without its pair");
            }
        }
        assert_eq!(split_by_pair(10, 0.2, 3).unwrap().1, held);
        assert!(split_by_pair(1, 0.5, 0).is_err());
        assert!(split_by_pair(10, 0.01, 0).is_err());
    }

    #[test]
    fn saved_gate_scores_like_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let (d, n) = (8, 40);
        let x: Vec<f32> = (0..n * d).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
        let labels: Vec<bool> = (0..n).map(|i| x[i * d] > 0.0).collect();
        let config = GateParams {
            width: 256,
            steps: 5,
            ..GateParams::default()
        };
        let (gate, _) = config.fit(&x, &labels, d).unwrap();
        save_gate(&gate, dir.path()).unwrap();
        let loaded = load_gate(dir.path()).unwrap();
        assert_eq!(loaded.scores(&x).unwrap(), gate.scores(&x).unwrap());
        std::fs::write(dir.path().join("gate.json"), "{").unwrap();
        let err = load_gate(dir.path()).unwrap_err().to_string();
        assert!(err.contains("gate.json"), "{err}");
    }
}
