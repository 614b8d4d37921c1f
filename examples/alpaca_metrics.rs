//! AlpacaEval's head-to-head metrics of an `annotations.json` (alpaca_eval's own format, or
//! what `seft eval alpaca-eval` writes): the weighted win rate with its standard error, the
//! discrete win rate, and the model's average output length. The length-controlled win rate
//! also needs the AlpacaEval instruction set: `seft eval alpaca-eval --annotations FILE`.
//!
//!     cargo run --release --example alpaca_metrics -- annotations.json

use std::path::Path;

use seft::eval::alpaca::annotations::{avg_length, read_annotations};
use seft::eval::alpaca::metrics::{WinRate, win_rate};

/// The win rates of the evaluated model (`output_2`) over the baseline, and its mean length.
pub fn run(path: &Path) -> seft::Result<(WinRate, usize)> {
    let annotations = read_annotations(path)?;
    let preferences: Vec<Option<f64>> = annotations.iter().map(|a| a.preference).collect();
    let length = avg_length(annotations.iter().map(|a| a.output_2.as_str()));
    Ok((win_rate(&preferences), length))
}

fn main() -> seft::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| seft::SeftError::Invalid("usage: alpaca_metrics ANNOTATIONS.json".into()))?;
    let (w, length) = run(Path::new(&path))?;
    println!(
        "win rate {:.2} ± {:.2}, discrete {:.2} ({} wins, {} losses, {} draws of {}), avg length {length}",
        w.win_rate,
        w.standard_error,
        w.discrete_win_rate,
        w.n_wins,
        w.n_wins_base,
        w.n_draws,
        w.n_total
    );
    Ok(())
}
