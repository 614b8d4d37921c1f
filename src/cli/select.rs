//! `seft select`: SEFT's prompt selectors on a pool of texts or an embedding matrix, without
//! running SEFT: which rows each iteration would train on, and the cluster coverage.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::evolution::selection::{Selector, select};

#[derive(clap::Args, Debug)]
pub struct SelectArgs {
    // The prompt pool.
    #[command(flatten)]
    pub points: super::embed::PointsArgs,
    /// random, kmeans (every cluster each iteration), kde (least like what was used),
    /// kmeans+kde (the least covered prompt of every cluster).
    #[arg(long, default_value = "kmeans")]
    pub selector: Selector,
    /// Prompts per iteration (also the number of clusters).
    #[arg(long)]
    pub count: usize,
    /// Iterations to select for (each one prefers prompts not used before).
    #[arg(long, default_value_t = 1)]
    pub iterations: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write one JSON line per selected row: iteration, index (0-based row of --input), text.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Print the summary as one JSON line (default: pretty-printed).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SelectArgs) -> Result<()> {
    if args.count == 0 || args.iterations == 0 {
        anyhow::bail!("--count and --iterations must be at least 1");
    }
    let (points, texts) = args.points.load()?;
    if args.count > points.n() {
        anyhow::bail!(
            "{}: --count {} is larger than the pool ({} rows)",
            args.points.input.display(),
            args.count,
            points.n()
        );
    }
    let (chosen, stats) = select(
        args.selector,
        Some(&points),
        points.n(),
        args.count,
        args.iterations,
        args.seed,
    )?;
    let stats = stats.ok_or_else(|| anyhow::anyhow!("the selector returned no statistics"))?;
    if let Some(path) = &args.output {
        let mut lines = String::new();
        for (t, picks) in chosen.iter().enumerate() {
            for &i in picks {
                let mut row = json!({"iteration": t + 1, "index": i});
                if let Some(texts) = &texts {
                    row["text"] = json!(texts[i]);
                }
                lines.push_str(&format!("{row}\n"));
            }
        }
        crate::data::jsonl::write_atomic(path, lines.as_bytes())?;
    }
    let mut summary = json!({
        "n": points.n(),
        "d": points.d(),
        "selector": args.selector,
        "count": args.count,
        "iterations": args.iterations,
        "seed": args.seed,
        "selection_seconds": stats.seconds,
        "coverage_per_iteration": stats.coverage_per_iteration,
        "mean_coverage": stats.mean_coverage,
    });
    match &args.output {
        Some(path) => summary["output"] = json!(path.display().to_string()),
        None => summary["selected"] = json!(chosen),
    }
    if args.json {
        println!("{summary}");
    } else {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}
