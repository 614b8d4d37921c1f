//! A SEFT run from Rust: the quickstart's configuration, made small enough for a minute on two
//! cores (one iteration, fewer pairs and prompts), run into a directory. Prints the held-out
//! accuracy of the starting and the evolved policy and what the reviser did.
//!
//!     cargo run --release --example seft_from_rust [run-dir]

use std::path::Path;

use seft::evolution::{Report, RunConfig, run};

/// Runs the small configuration into `out` and returns its report.
pub fn run_small(out: &Path) -> seft::Result<Report> {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.toml");
    let overrides: Vec<String> = [
        "iterations=1",
        "task.preference_pairs=600",
        "task.pool=200",
        "task.held_out=60",
        "reviser.train.epochs=2",
        "evolution.prompts_per_iteration=100",
        "evolution.compare_identity=false",
    ]
    .map(String::from)
    .to_vec();
    let cfg = RunConfig::load(&config, &overrides)?;
    run(&cfg, out)
}

fn main() -> seft::Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "runs/seft_from_rust".into());
    let report = run_small(Path::new(&out))?;
    let percent = |a: Option<f64>| a.map_or("-".into(), |a| format!("{:.1}%", 100.0 * a));
    println!(
        "held-out accuracy: start {} → SEFT {}",
        percent(report.before_accuracy),
        percent(report.after_accuracy)
    );
    for it in &report.iterations {
        let r = &it.revisions;
        println!(
            "iteration {}: {} answers, keep {} minor {} major {}, {} trained on",
            it.iteration, r.rows, r.keep, r.minor, r.major, it.filters.rows
        );
    }
    Ok(())
}
