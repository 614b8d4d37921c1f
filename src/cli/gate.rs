//! `seft gate`: trains the quality gate on preference pairs through the firing-neuron trees
//! and densely, on the same frozen embeddings and splits, and reports each path's held-out
//! accuracy: the check that training through the trees loses nothing.

use std::path::PathBuf;

use anyhow::{Context, Result};
use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::data::{ReadOptions, read_preferences, resolve_dataset};
use crate::embed::TextEmbedder;
use crate::evolution::gate::{
    GATE_MAX_TOKENS, GateFit, GateOutcome, GateSection, fit_and_calibrate, gate_examples,
    gate_text, split_by_pair,
};
use crate::evolution::reviser::PreferencePair;
use crate::numeric::Matrix;
use crate::sparse::TrainPath;

#[derive(clap::Args, Debug)]
pub struct GateArgs {
    /// Preference files (prompt/chosen/rejected, Anthropic HH text, ShareGPT pairs; JSON,
    /// JSONL, .gz, or `org/name:file` on the hub).
    #[arg(long, required = true, num_args = 1..)]
    pub preferences: Vec<String>,
    /// What embeds (prompt, response): an all-MiniLM-L6-v2 folder, or a decoder seft loads.
    #[arg(long)]
    pub embedder: String,
    /// At most this many pairs per file, after a seeded shuffle (0 = all).
    #[arg(long, default_value_t = 0)]
    pub max_pairs: usize,
    /// The path whose gate is calibrated: dense, firing-tree or auto (the other one is
    /// trained too, for comparison).
    #[arg(long, default_value = "firing-tree")]
    pub train: TrainPath,
    /// Neurons m.
    #[arg(long, default_value_t = 4096)]
    pub width: usize,
    /// Gradient-descent steps.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// ReLU shift b (default √(0.4 ln m)).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Share of pairs held out.
    #[arg(long, default_value_t = 0.2)]
    pub held_out_fraction: f64,
    /// Independent splits (and initialisations): seeds 0..splits.
    #[arg(long, default_value_t = 1)]
    pub splits: u64,
    /// Held-out precision at which the reviser would be skipped.
    #[arg(long, default_value_t = 0.9)]
    pub skip_precision: f64,
    /// Keeps the embeddings (reused when the texts and embedder match) and results.json here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Texts per embedding forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[command(flatten)]
    pub compute: super::BackendArgs,
    /// Skip malformed rows (counted in the output) instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The pairs, and the number of malformed rows skipped.
fn read_pairs(args: &GateArgs) -> Result<(Vec<PreferencePair>, usize)> {
    let mut rng = StdRng::seed_from_u64(0);
    let mut pairs = Vec::new();
    let mut skipped = 0;
    let options = ReadOptions {
        skip_bad_rows: args.skip_bad_rows,
        ..ReadOptions::default()
    };
    for spec in &args.preferences {
        let (mut prefs, report) = read_preferences(&resolve_dataset(spec)?, &options)?;
        skipped += report.skipped;
        prefs.shuffle(&mut rng);
        if args.max_pairs > 0 {
            prefs.truncate(args.max_pairs);
        }
        pairs.extend(prefs.iter().map(PreferencePair::from_preference));
    }
    Ok((pairs, skipped))
}

/// Embeddings of `texts`, from `out/embeddings.npy` when it was made from the same texts
/// and embedder.
fn embeddings(args: &GateArgs, texts: &[String]) -> Result<(Matrix, f64, bool)> {
    let mut hash = Sha256::new();
    hash.update(args.embedder.as_bytes());
    for t in texts {
        hash.update((t.len() as u64).to_le_bytes());
        hash.update(t.as_bytes());
    }
    let key = format!("{:x}", hash.finalize());
    let cached = args
        .out
        .as_ref()
        .map(|o| (o.join("embeddings.npy"), o.join("embeddings.key")));
    if let Some((npy, key_path)) = &cached
        && std::fs::read_to_string(key_path).is_ok_and(|k| k.trim() == key)
    {
        return Ok((Matrix::read_npy(npy)?, 0.0, true));
    }
    let device = args.compute.device()?;
    let started = std::time::Instant::now();
    let embedder = TextEmbedder::load(&args.embedder, &device, GATE_MAX_TOKENS)?;
    let rows = super::embed::embed_with_progress(&embedder, texts, args.batch_size.max(1))?;
    let matrix = Matrix::from_rows(&rows)?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some((npy, key_path)) = &cached {
        std::fs::create_dir_all(npy.parent().expect("a folder"))
            .with_context(|| format!("creating {}", npy.display()))?;
        matrix.write_npy(npy)?;
        std::fs::write(key_path, &key)
            .with_context(|| format!("writing {}", key_path.display()))?;
    }
    Ok((matrix, seconds, false))
}

pub fn run(args: GateArgs) -> Result<()> {
    if args.splits == 0 {
        anyhow::bail!("--splits must be at least 1");
    }
    let section = GateSection {
        train: args.train,
        embedder: args.embedder.clone(),
        width: args.width,
        steps: args.steps,
        threshold: args.threshold,
        held_out_fraction: args.held_out_fraction,
        skip_precision: args.skip_precision,
        filter_precision: 0.0,
        compare_paths: true,
    };
    section.validate()?;
    let (pairs, skipped_rows) = read_pairs(&args)?;
    let (texts, labels) = gate_examples(&pairs, gate_text);
    let (matrix, embed_seconds, reused) = embeddings(&args, &texts)?;
    let mut runs = Vec::new();
    for seed in 0..args.splits {
        let (train, held_out) = split_by_pair(pairs.len(), args.held_out_fraction, seed)?;
        let outcome =
            fit_and_calibrate(&section, &matrix, &labels, &train, &held_out, seed, |_| {
                Ok(())
            })?;
        runs.push(outcome);
    }
    let summary = path_means(&runs, [args.train, args.train.other()]);
    let agreement = runs.iter().filter_map(|r| r.agreement).sum::<f64>() / runs.len() as f64;
    let result = json!({
        "pairs": pairs.len(),
        "skipped_rows": skipped_rows,
        "embedder": args.embedder,
        "dim": matrix.d(),
        "embed_seconds": embed_seconds,
        "embeddings_reused": reused,
        "width": args.width,
        "steps": args.steps,
        "splits": args.splits,
        "held_out_fraction": args.held_out_fraction,
        "mean": summary,
        "agreement": agreement,
        "runs": runs,
    });
    if let Some(out) = &args.out {
        let path = out.join("results.json");
        std::fs::write(&path, serde_json::to_string_pretty(&result)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{result}");
        return Ok(());
    }
    print_table(&args, &result, &summary, agreement);
    Ok(())
}

/// Per training path, the mean over the splits of each fit's measurements.
fn path_means(runs: &[GateOutcome], paths: [TrainPath; 2]) -> Vec<serde_json::Value> {
    let mean = |path: TrainPath, f: &dyn Fn(&GateFit) -> f64| {
        let values: Vec<f64> = runs
            .iter()
            .flat_map(|r| r.fits.iter().filter(|f| f.path == path.name()).map(f))
            .collect();
        values.iter().sum::<f64>() / values.len().max(1) as f64
    };
    paths
        .iter()
        .map(|&p| {
            json!({
                "path": p.name(),
                "held_out_accuracy": mean(p, &|f| f.held_out_accuracy),
                "train_accuracy": mean(p, &|f| f.train_accuracy),
                "train_seconds": mean(p, &|f| f.train_seconds),
                "tree_steps": mean(p, &|f| f.tree_steps as f64),
                "firing_fraction": mean(p, &|f| f.firing_fraction),
                "union_fraction": mean(p, &|f| f.union_fraction),
            })
        })
        .collect()
}

/// The human-readable summary (the same numbers as `--json`).
fn print_table(
    args: &GateArgs,
    result: &serde_json::Value,
    summary: &[serde_json::Value],
    agreement: f64,
) {
    println!(
        "{} pairs ({} malformed rows skipped), {} (dimension {}), m = {}, {} steps, {} split(s) holding out {:.0}%",
        result["pairs"],
        result["skipped_rows"],
        args.embedder,
        result["dim"],
        args.width,
        args.steps,
        args.splits,
        100.0 * args.held_out_fraction
    );
    println!(
        "| path | held-out accuracy | train accuracy | train s | tree steps | k/m | union/m |"
    );
    println!("|---|---|---|---|---|---|---|");
    for s in summary {
        println!(
            "| {} | {:.2}% | {:.2}% | {:.3} | {:.0} | {:.4} | {:.3} |",
            s["path"].as_str().unwrap_or(""),
            100.0 * s["held_out_accuracy"].as_f64().unwrap_or(f64::NAN),
            100.0 * s["train_accuracy"].as_f64().unwrap_or(f64::NAN),
            s["train_seconds"].as_f64().unwrap_or(f64::NAN),
            s["tree_steps"].as_f64().unwrap_or(f64::NAN),
            s["firing_fraction"].as_f64().unwrap_or(f64::NAN),
            s["union_fraction"].as_f64().unwrap_or(f64::NAN),
        );
    }
    println!(
        "Both paths classify {:.2}% of held-out answers alike.",
        100.0 * agreement
    );
}
