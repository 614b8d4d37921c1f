//! Fitting the gate on the training pairs (through the configured path and, for comparison,
//! the other) and calibrating its skip and filter thresholds on the held-out pairs.

use super::*;

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
