//! `seft bench`: prefill and decode throughput on fixed token ids, so the same inputs can be
//! timed in transformers side by side (experiments/generation_speed).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::json;

use crate::cli::ModelArgs;
use crate::model::batch::Batch;
use crate::model::generate::{SamplingConfig, generate};
use crate::model::llama::KvCache;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// JSON file {"prefill": [ids], "decode": [[ids], ...]} shared with the peer benchmark.
    #[arg(long)]
    pub prompts: PathBuf,
    #[arg(long, default_value_t = 128)]
    pub new_tokens: usize,
    /// Batch sizes to time decoding at (the first N prompts of "decode").
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub batch: Vec<usize>,
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Prompt tokens per prefill forward pass.
    #[arg(long, default_value_t = crate::model::generate::PREFILL_CHUNK)]
    pub prefill_chunk: usize,
}

#[derive(Deserialize)]
struct Prompts {
    prefill: Vec<u32>,
    decode: Vec<Vec<u32>>,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

pub fn run(args: BenchArgs) -> Result<()> {
    let text = crate::input::read_metadata(&args.prompts)?;
    let prompts: Prompts = serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid prompts JSON", args.prompts.display()))?;
    let model = args.model.load()?;
    let device = model.device();
    let n = prompts.prefill.len();
    // Prefill: one forward over the whole prompt with an empty cache, logits of the last position.
    let prefill_once = || {
        let mut cache = KvCache::new(&model.config, 1, n, &device);
        let batch = Batch::single(&prompts.prefill);
        let started = Instant::now();
        let last = model.net.prefill(&batch, &mut cache, args.prefill_chunk);
        let _ = model.net.logits(last).into_data();
        started.elapsed().as_secs_f64()
    };
    prefill_once(); // warm-up
    let prefill: Vec<f64> = (0..args.repeats).map(|_| prefill_once()).collect();
    let prefill_s = median(prefill);
    let mut results = vec![
        json!({"phase": "prefill", "batch": 1, "tokens": n, "seconds": prefill_s, "tokens_per_s": n as f64 / prefill_s}),
    ];
    let cfg = SamplingConfig {
        max_new_tokens: args.new_tokens,
        min_new_tokens: args.new_tokens,
        ..Default::default()
    };
    for &b in &args.batch {
        let batch: Vec<Vec<u32>> = prompts.decode.iter().take(b).cloned().collect();
        anyhow::ensure!(
            batch.len() == b,
            "{} has only {} decode prompts",
            args.prompts.display(),
            prompts.decode.len()
        );
        // Decode time = generation time minus the prefill of the same prompts.
        let time_generate = |max_new: usize| -> Result<f64> {
            let cfg = SamplingConfig {
                max_new_tokens: max_new,
                min_new_tokens: max_new,
                ..cfg.clone()
            };
            let started = Instant::now();
            generate(&model, &batch, &cfg, |_, _| {})?;
            Ok(started.elapsed().as_secs_f64())
        };
        time_generate(2)?; // warm-up
        let mut decode = Vec::new();
        for _ in 0..args.repeats {
            let full = time_generate(args.new_tokens)?;
            let first = time_generate(1)?;
            decode.push(full - first);
        }
        let secs = median(decode);
        let tokens = b * (args.new_tokens - 1);
        results.push(json!({"phase": "decode", "batch": b, "tokens": tokens, "seconds": secs, "tokens_per_s": tokens as f64 / secs}));
    }
    println!(
        "{}",
        serde_json::to_string(
            &json!({"engine": "seft", "backend": args.model.compute.backend.to_string(), "results": results})
        )?
    );
    Ok(())
}
