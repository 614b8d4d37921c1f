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

use crate::data::jsonl::{io, write_atomic};
use crate::embed::TextEmbedder;
use crate::error::{Result, SeftError};
use crate::numeric::Matrix;
use crate::seft::layout::stages;
use crate::seft::reviser::PreferencePair;
use crate::seft::stage::Run;
use crate::sparse::{GateParams, QualityGate, ShiftedReluNet, TrainPath};

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

/// One training of the gate, measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateFit {
    /// `dense`, `firing-tree` or `auto`.
    pub path: String,
    pub width: usize,
    /// Shift b used.
    pub threshold: f32,
    pub steps: usize,
    /// Steps taken through the firing trees.
    pub tree_steps: usize,
    /// Mean over steps of the fraction of neurons firing per point.
    pub firing_fraction: f64,
    /// Mean over steps of the neurons firing on at least one point, over m.
    pub union_fraction: f64,
    pub first_loss: f64,
    pub final_loss: f64,
    /// Training wall time (tree build included).
    pub train_seconds: f64,
    pub train_accuracy: f64,
    pub held_out_accuracy: f64,
}

/// Trains a gate on rows `train` of `embeddings` and measures it on rows `held_out`.
pub fn fit_gate(
    embeddings: &Matrix,
    labels: &[bool],
    train: &[usize],
    held_out: &[usize],
    section: &GateSection,
    training: TrainPath,
    seed: u64,
) -> Result<(QualityGate, GateFit)> {
    let x = embeddings.select_rows(train);
    let y: Vec<bool> = train.iter().map(|&i| labels[i]).collect();
    let started = Instant::now();
    let (gate, report) = section
        .gate_config(training, seed)
        .fit(x.data(), &y, embeddings.d())?;
    let train_seconds = started.elapsed().as_secs_f64();
    let held = embeddings.select_rows(held_out);
    let held_y: Vec<bool> = held_out.iter().map(|&i| labels[i]).collect();
    let m = gate.network().width() as f64;
    let steps = report.steps.len().max(1) as f64;
    let fit = GateFit {
        path: training.name().into(),
        width: gate.network().width(),
        threshold: gate.network().threshold(),
        steps: report.steps.len(),
        tree_steps: report.tree_steps(),
        firing_fraction: report.steps.iter().map(|s| s.firing_fraction).sum::<f64>() / steps,
        union_fraction: report.steps.iter().map(|s| s.union as f64 / m).sum::<f64>() / steps,
        first_loss: report.steps.first().map_or(f64::NAN, |s| s.loss),
        final_loss: report.steps.last().map_or(f64::NAN, |s| s.loss),
        train_seconds,
        train_accuracy: gate.accuracy(x.data(), &y)?,
        held_out_accuracy: gate.accuracy(held.data(), &held_y)?,
    };
    Ok((gate, fit))
}

/// The most permissive score threshold at which at least `precision` of the held-out answers
/// on its side carry the wanted label, with at least [`MIN_SUPPORT`] of them. `passing`: the
/// side is "score ≥ t" and the wanted label is good; otherwise "score ≤ t" and bad.
pub fn calibrate(scores: &[f32], labels: &[bool], passing: bool, precision: f64) -> Option<f32> {
    if precision <= 0.0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // From the most confident answer outwards.
    order.sort_by(|&a, &b| {
        let (a, b) = (scores[a], scores[b]);
        if passing {
            b.total_cmp(&a)
        } else {
            a.total_cmp(&b)
        }
    });
    let (mut wanted, mut best) = (0usize, None);
    for (count, &i) in order.iter().enumerate() {
        wanted += usize::from(labels[i] == passing);
        let covered = count + 1;
        // Ties: a threshold cannot separate equal scores, so decide after the last of them.
        let tie_next = order.get(covered).is_some_and(|&j| scores[j] == scores[i]);
        if !tie_next && covered >= MIN_SUPPORT && wanted as f64 >= precision * covered as f64 {
            best = Some(scores[i]);
        }
    }
    best
}

/// What the gate stage produced (in the report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateOutcome {
    pub embedder: String,
    pub dim: usize,
    pub pairs: usize,
    pub train_rows: usize,
    pub held_out_rows: usize,
    pub embed_seconds: f64,
    /// The gate SEFT uses first, then the comparison path (with `compare_paths`).
    pub fits: Vec<GateFit>,
    /// Share of held-out answers both fits classify alike (with `compare_paths`).
    pub agreement: Option<f64>,
    /// Answers scoring at least this skip the reviser (None: the precision was not reached).
    pub skip_score: Option<f32>,
    pub skip_precision: f64,
    /// Held-out answers the skip threshold passes, and how many of them were chosen ones.
    pub held_out_skipped: usize,
    pub held_out_skipped_chosen: usize,
    /// Enhanced answers scoring at most this leave the SFT data (None: off or not reached).
    pub filter_score: Option<f32>,
    pub filter_precision: f64,
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

/// Fits the configured path (and the other one), calibrates the first; `keep` receives the
/// gate SEFT will use.
pub fn fit_and_calibrate(
    section: &GateSection,
    embeddings: &Matrix,
    labels: &[bool],
    train: &[usize],
    held_out: &[usize],
    seed: u64,
    keep: impl FnOnce(&QualityGate) -> Result<()>,
) -> Result<GateOutcome> {
    let (gate, fit) = fit_gate(
        embeddings,
        labels,
        train,
        held_out,
        section,
        section.train,
        seed,
    )?;
    let held = embeddings.select_rows(held_out);
    let held_labels: Vec<bool> = held_out.iter().map(|&i| labels[i]).collect();
    let scores = gate.scores(held.data())?;
    let mut fits = vec![fit];
    let mut agreement = None;
    if section.compare_paths {
        let other = section.train.other();
        let (other_gate, other_fit) =
            fit_gate(embeddings, labels, train, held_out, section, other, seed)?;
        let theirs = other_gate.scores(held.data())?;
        let same = scores
            .iter()
            .zip(&theirs)
            .filter(|(a, b)| (**a > 0.0) == (**b > 0.0))
            .count();
        agreement = Some(same as f64 / scores.len().max(1) as f64);
        fits.push(other_fit);
    }
    let skip_score = calibrate(&scores, &held_labels, true, section.skip_precision);
    let filter_score = calibrate(&scores, &held_labels, false, section.filter_precision);
    let skipped: Vec<usize> = match skip_score {
        Some(t) => (0..scores.len()).filter(|&i| scores[i] >= t).collect(),
        None => Vec::new(),
    };
    keep(&gate)?;
    Ok(GateOutcome {
        embedder: String::new(),
        dim: embeddings.d(),
        pairs: labels.len() / 2,
        train_rows: train.len(),
        held_out_rows: held_out.len(),
        embed_seconds: 0.0,
        fits,
        agreement,
        skip_score,
        skip_precision: section.skip_precision,
        held_out_skipped: skipped.len(),
        held_out_skipped_chosen: skipped.iter().filter(|&&i| held_labels[i]).count(),
        filter_score,
        filter_precision: section.filter_precision,
    })
}

/// What gate.json holds besides the weights.
#[derive(Debug, Serialize, Deserialize)]
struct SavedGate {
    threshold: f32,
    output_weights: Vec<f32>,
    mean: Vec<f32>,
}

/// Writes `dir/weights.npy` (m × d first layer) and `dir/gate.json`.
pub fn save_gate(gate: &QualityGate, dir: &Path) -> Result<()> {
    let net = gate.network();
    Matrix::new(net.weights().to_vec(), net.width(), net.dim())?
        .write_npy(&dir.join("weights.npy"))?;
    let saved = SavedGate {
        threshold: net.threshold(),
        output_weights: net.output_weights().to_vec(),
        mean: gate.mean().to_vec(),
    };
    let text = serde_json::to_string(&saved).map_err(|e| SeftError::Invalid(e.to_string()))?;
    write_atomic(&dir.join("gate.json"), text.as_bytes())
}

/// Reads what [`save_gate`] wrote.
pub fn load_gate(dir: &Path) -> Result<QualityGate> {
    let path = dir.join("gate.json");
    let text = io(&path, std::fs::read_to_string(&path))?;
    let saved: SavedGate =
        serde_json::from_str(&text).map_err(|e| SeftError::file(&path, e.to_string()))?;
    let w = Matrix::read_npy(&dir.join("weights.npy"))?;
    let d = w.d();
    let net = ShiftedReluNet::new(w.into_data(), saved.output_weights, d, saved.threshold)
        .map_err(|e| SeftError::file(&path, e.to_string()))?;
    QualityGate::from_parts(net, saved.mean).map_err(|e| SeftError::file(&path, e.to_string()))
}

/// A trained gate with its embedder, for scoring answers during the run.
pub struct GateScorer {
    gate: QualityGate,
    embedder: TextEmbedder,
    batch_size: usize,
}

impl GateScorer {
    pub fn load(
        dir: &Path,
        embedder_spec: &str,
        batch_size: usize,
        device: &burn::tensor::Device,
    ) -> Result<Self> {
        Ok(GateScorer {
            gate: load_gate(dir)?,
            embedder: TextEmbedder::load(embedder_spec, device, GATE_MAX_TOKENS)?,
            batch_size: batch_size.max(1),
        })
    }

    /// Gate scores (positive = good) of answers, each as the text the gate was trained on.
    pub fn scores(&self, texts: &[String]) -> Result<Vec<f32>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let embeddings = Matrix::from_rows(&self.embedder.embed(texts, self.batch_size)?)?;
        self.gate.scores(embeddings.data())
    }
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
