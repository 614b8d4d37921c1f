//! `seft judge`: pairwise preferences between two answer files by a local judge model.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::data::generation::progress_bar;
use crate::data::jsonl::{read_jsonl, write_jsonl};
use crate::eval::judge::{judge_pairs, pair_by_id};
use crate::eval::judges::local::LocalJudge;

#[derive(clap::Args, Debug)]
pub struct JudgeArgs {
    #[command(flatten)]
    pub model: super::ModelArgs,
    /// Answers A (JSONL rows with id, prompt, response), e.g. a run's eval/<policy>/responses.jsonl.
    #[arg(long)]
    pub a: PathBuf,
    /// Answers B to the same prompts (matched by id).
    #[arg(long)]
    pub b: PathBuf,
    /// Where to write one judgment per pair (JSONL).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Prints the summary (JSON) on stdout.
pub fn run(args: JudgeArgs) -> Result<()> {
    let a: Vec<serde_json::Value> = read_jsonl(&args.a)?;
    let b: Vec<serde_json::Value> = read_jsonl(&args.b)?;
    let pairs = pair_by_id(&a, &b)
        .map_err(|e| anyhow::anyhow!("{} vs {}: {e}", args.a.display(), args.b.display()))?;
    // One prompt per forward pass: no padding, so each probability is the model's own.
    let judge = LocalJudge {
        model: args.model.load()?,
        label: args.model.model.clone(),
        batch_size: 1,
    };
    let bar = progress_bar(pairs.len(), "judge");
    let (judgments, summary) = judge_pairs(&judge, &pairs, &|i| bar.set_position(i as u64))?;
    bar.finish_and_clear();
    if let Some(out) = &args.out {
        write_jsonl(out, &judgments).with_context(|| format!("writing {}", out.display()))?;
    }
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
