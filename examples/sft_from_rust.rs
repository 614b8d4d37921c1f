//! Supervised fine-tuning from Rust, without a TOML file: a tiny decoder initialized from
//! scratch learns to answer `add a b` with the sum. Prints the mean training loss of the first
//! and the last logged steps.
//!
//!     cargo run --release --example sft_from_rust [run-dir]

use std::path::Path;

use seft::evolution::run_config::ScratchModel;
use seft::evolution::scratch::write_scratch_model;
use seft::train::{Schedule, SftOutcome, SftParams, TrainSection, Trainer};

/// Trains in `dir` (model, data and run directory all go there) and returns the outcome.
pub fn run(dir: &Path) -> seft::Result<SftOutcome> {
    let spec = ScratchModel {
        hidden_size: 32,
        intermediate_size: 64,
        layers: 1,
        heads: 2,
        max_positions: 64,
        init_std: 0.1,
    };
    let model = dir.join("scratch");
    write_scratch_model(&spec, 0, &model)?;
    let rows: Vec<String> = (0..64)
        .map(|i| {
            let (a, b) = (i % 8, i / 8);
            serde_json::json!({"prompt": format!("add {a} {b}"), "completion": (a + b).to_string()})
                .to_string()
        })
        .collect();
    let data = dir.join("train.jsonl");
    std::fs::write(&data, rows.join("\n")).map_err(|e| seft::SeftError::io(&data, e))?;
    let train = TrainSection::full_preset()
        .with_seed(1)
        .with_max_steps(60)
        .with_batch(16, 1)
        .with_lr(3e-3, Schedule::Cosine, 5)
        .with_cadence(5, 0, 0);
    let params = SftParams::new(
        &model.to_string_lossy(),
        &data.to_string_lossy(),
        dir.join("run"),
    )
    .with_train(train)
    .with_max_len(32)
    .with_eval_fraction(0.0)
    .validated()?;
    Trainer::new(params).run()
}

fn main() -> seft::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "runs/sft_from_rust".into());
    let outcome = run(Path::new(&dir))?;
    let (first, last) = outcome.loss_ends();
    println!(
        "steps {} first loss {first:.4} last loss {last:.4}",
        outcome.steps
    );
    println!("model: {}", outcome.model_dir.display());
    Ok(())
}
