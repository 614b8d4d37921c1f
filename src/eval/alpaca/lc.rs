//! AlpacaEval's length-controlled win rate (`length_controlled_v1`, Dubois et al. 2024,
//! "Length-Controlled AlpacaEval", arXiv 2404.04475): fit
//!
//! ```text
//!   P(model beats baseline on instruction i) = σ(θ_len · tanh(Δlenᵢ / sd(Δlen)) + θ_diff · dᵢ + θ_model)
//! ```
//!
//! with Δlen = len(baseline) − len(model) and dᵢ the instruction's difficulty, then predict
//! with Δlen = 0 and average: the win rate the model would have if it were as long as the
//! baseline. alpaca_eval also regularizes the fit towards two "gamed" (verbose / concise)
//! baselines whose annotations (df_gamed.csv) live only on the Hugging Face hub; without them
//! the fit is `length_controlled_noreg`'s, and reports say so.

use serde::{Deserialize, Serialize};

use super::annotations::{Annotation, text_len};
use super::glm::{Design, Targets, fit_l1_logistic_cv, sigmoid};
use super::metrics::{mean, sem};
use crate::error::{Result, SeftError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LengthControlled {
    /// Percent.
    pub length_controlled_winrate: f64,
    /// Percent: standard error of the mean of the per-instruction predictions.
    pub lc_standard_error: f64,
    /// Fitted coefficients: length, instruction difficulty, model bias.
    pub weight_length: f64,
    pub weight_difficulty: f64,
    pub weight_model: f64,
    /// The C chosen by cross-validation.
    pub c: f64,
}

/// Fewer judged pairs than this cannot support the GLM's 5-fold cross-validation.
pub const MIN_JUDGED: usize = 10;

/// Sample standard deviation (ddof = 1), as pandas' `std`.
pub fn std_dev(xs: &[f64]) -> f64 {
    sem(xs) * (xs.len() as f64).sqrt()
}

/// Baseline length minus model length, in characters, scaled by its standard deviation.
pub fn standardized_length_difference(annotations: &[Annotation]) -> Vec<f64> {
    let delta: Vec<f64> = annotations
        .iter()
        .map(|a| text_len(&a.output_1) as f64 - text_len(&a.output_2) as f64)
        .collect();
    let sd = std_dev(&delta);
    delta
        .iter()
        .map(|d| if sd > 0.0 { d / sd } else { 0.0 })
        .collect()
}

/// The length-controlled win rate of one model's annotations; `difficulty[i]` belongs to
/// `annotations[i]`.
pub fn length_controlled_winrate(
    annotations: &[Annotation],
    difficulty: &[f64],
) -> Result<LengthControlled> {
    if annotations.len() != difficulty.len() {
        return Err(SeftError::Invalid(format!(
            "{} annotations but {} instruction difficulties",
            annotations.len(),
            difficulty.len()
        )));
    }
    let first = annotations
        .first()
        .ok_or_else(|| SeftError::Invalid("no annotations".into()))?;
    if annotations
        .iter()
        .any(|a| a.generator_2 != first.generator_2)
    {
        return Err(SeftError::Invalid(
            "the annotations mix several models (generator_2); give one model's annotations".into(),
        ));
    }
    if first.generator_1 == first.generator_2 {
        // The baseline against itself is 50% by construction.
        return Ok(LengthControlled {
            length_controlled_winrate: 50.0,
            lc_standard_error: 0.0,
            weight_length: 0.0,
            weight_difficulty: 0.0,
            weight_model: 0.0,
            c: f64::NAN,
        });
    }
    let length = standardized_length_difference(annotations);
    let train: Vec<usize> = (0..annotations.len())
        .filter(|&i| annotations[i].preference.is_some())
        .collect();
    if train.len() < MIN_JUDGED {
        return Err(SeftError::Invalid(format!(
            "only {} judged pairs; the length-controlled GLM needs at least {MIN_JUDGED}",
            train.len()
        )));
    }
    let p: Vec<f64> = train
        .iter()
        .map(|&i| {
            let pref = annotations[i].preference.expect("judged");
            if pref == 0.0 { 0.5 } else { pref - 1.0 }
        })
        .collect();
    let mut x = Design::new(train.len());
    let column = |f: &dyn Fn(usize) -> f64| train.iter().map(|&i| f(i)).collect::<Vec<_>>();
    x.push_dense("np.tanh(std_delta_len)", &column(&|i| length[i].tanh()));
    x.push_dense("instruction_difficulty", &column(&|i| difficulty[i]));
    x.push_dense("not_gamed_baseline.astype(float)", &column(&|_| 1.0));
    let fit = fit_l1_logistic_cv(
        &x,
        &Targets {
            p: &p,
            weight: None,
        },
        5,
    );
    let [w_len, w_diff, w_model] = fit.coefficients[..] else {
        unreachable!("three features")
    };
    let predicted: Vec<f64> = difficulty
        .iter()
        .map(|d| sigmoid(w_diff * d + w_model))
        .collect();
    Ok(LengthControlled {
        length_controlled_winrate: mean(&predicted) * 100.0,
        lc_standard_error: sem(&predicted) * 100.0,
        weight_length: w_len,
        weight_difficulty: w_diff,
        weight_model: w_model,
        c: fit.c,
    })
}

/// alpaca_eval's `predict_winrate`: the LC win rate implied by already fitted GLM weights
/// (e.g. the published `baseline_gpt4_1106_preview.csv`) and instruction difficulties.
pub fn predict_winrate(weight_difficulty: f64, weight_model: f64, difficulty: &[f64]) -> f64 {
    let p: Vec<f64> = difficulty
        .iter()
        .map(|d| sigmoid(weight_difficulty * d + weight_model))
        .collect();
    mean(&p) * 100.0
}
