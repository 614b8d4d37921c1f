//! AlpacaEval 2.0 (Dubois et al. 2024, arXiv 2404.04475; tatsu-lab/alpaca_eval) in seft: a
//! model answers the 805 AlpacaEval instructions, a judge compares each answer with the
//! reference (gpt-4-1106-preview's) answer through the `alpaca_eval_clf` prompt, and the
//! preference is read from the judge's probabilities of the tokens `m` (first output) and `M`
//! (second output), the two outputs shown in an order randomized per instruction exactly as
//! alpaca_eval randomizes it. Metrics: weighted win rate with its standard error, discrete win
//! rate, average length and the length-controlled win rate. [`run`] does all of it and writes
//! alpaca_eval's files; [`metrics_of_annotations`] computes the metrics of existing annotations.

pub mod annotations;
pub mod difficulty;
pub mod glm;
pub mod lc;
pub mod metrics;
pub mod pipeline;
pub mod protocol;
pub mod pyrandom;

pub use pipeline::{
    AlpacaEvalOptions, AlpacaEvalOutcome, AnnotationMetricsOptions, DifficultyChoice,
    DifficultyOptions, OutputsSource, estimate_difficulty, metrics_of_annotations, run,
};
