//! Evaluation: AlpacaEval 2.0-style win rates against a reference ([`alpaca`]), MT-Bench
//! single-answer grading ([`mt_bench`]), one table of both ([`leaderboard`]), judges behind one
//! trait, local or over HTTP ([`judges`]), pairwise preferences between two answer files
//! ([`judge`]), and where the benchmark files come from ([`data_source`]).
//!
//! Each benchmark has a `run` entry point taking typed options, so a Rust program evaluates
//! exactly as `seft eval` does.

pub mod alpaca;
pub mod data_source;
pub mod judge;
pub mod judges;
pub mod leaderboard;
pub mod mt_bench;

use crate::backend::Backend;
use crate::error::Result;
use crate::model::LanguageModel;

/// Loads a policy or judge model on `backend`, saying on stderr what was loaded and how long
/// it took (evaluations load models that take a while, and reports name them).
pub fn load_model(spec: &str, backend: Backend) -> Result<LanguageModel> {
    let device = backend.device()?;
    let started = std::time::Instant::now();
    let model = LanguageModel::load(spec, &device)?;
    eprintln!(
        "loaded {spec} ({} layers, {:.1}M parameters) in {:.1}s on {backend}",
        model.config.num_hidden_layers,
        model.config.parameter_count() as f64 / 1e6,
        started.elapsed().as_secs_f64(),
    );
    Ok(model)
}
