//! Does computing only the firing rows make batch-1 generation of seft's ReLU-MLP decoder
//! variant faster? Dense (Burn's two matmuls) vs firing rows
//! (`seft::sparse::enable_firing_rows_decode`), side by side in one run, interleaved.
//!
//! Run: `cargo run --release --example relu_decode_bench -- --model SmolLM2.gguf
//! [--widths 1536,6144] [--firing 0.5,0.3,0.1,0.01] [--tokens 64] [--runs 5] [--out FILE]`.
//! The GGUF supplies the shape (hidden size, layers, heads, vocabulary) and the tokenizer; the
//! ReLU variant's weights are random (N(0, 0.02²), norms 1), so the tokens are meaningless
//! but both paths must produce the same ones. Its threshold b is set per run so that a
//! target fraction of neurons fires: the up projection's inputs are RMS-normalized (norm
//! weights 1), so up(x)_r ~ N(0, 0.02²·h) and b is that distribution's quantile.

use std::time::Instant;

use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, StandardNormal};
use serde_json::json;

use burn::tensor::{Device, Tensor, TensorData};
use seft::model::LanguageModel;
use seft::model::config::MlpKind;
use seft::model::generate::{SamplingConfig, generate};
use seft::model::weights::{InitSource, build_model};
use seft::numeric::to_f32_vec;

const INIT_STD: f64 = 0.02;

struct Args {
    model: String,
    widths: Vec<usize>,
    firing: Vec<f64>,
    tokens: usize,
    runs: usize,
    out: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        model: String::new(),
        widths: vec![1536, 6144],
        firing: vec![0.5, 0.3, 0.1, 0.01],
        tokens: 64,
        runs: 5,
        out: "experiments/relu_decode/results/results.jsonl".into(),
    };
    let mut it = std::env::args().skip(1);
    let next = |it: &mut std::iter::Skip<std::env::Args>| it.next().unwrap_or_else(|| usage());
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--model" => args.model = next(&mut it),
            "--widths" => args.widths = list(&next(&mut it)),
            "--firing" => args.firing = list(&next(&mut it)),
            "--tokens" => args.tokens = next(&mut it).parse().unwrap_or_else(|_| usage()),
            "--runs" => args.runs = next(&mut it).parse().unwrap_or_else(|_| usage()),
            "--out" => args.out = next(&mut it),
            _ => usage(),
        }
    }
    if args.model.is_empty() || args.tokens < 2 || args.runs == 0 {
        usage();
    }
    args
}

fn list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split(',')
        .map(|v| v.trim().parse().unwrap_or_else(|_| usage()))
        .collect()
}

fn usage() -> ! {
    eprintln!(
        "usage: relu_decode_bench --model M.gguf [--widths 1536,6144] [--firing 0.5,0.3,0.1,0.01] \
         [--tokens 64] [--runs 5] [--out FILE.jsonl]"
    );
    std::process::exit(2)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}

/// The threshold at which a fraction `firing` of N(0, σ²) values lies above: empirical
/// quantile of 10⁶ draws (error ~1e-3 σ, far below what the measured fraction shows).
fn threshold_for(firing: f64, sigma: f64) -> f64 {
    let mut rng = StdRng::seed_from_u64(7);
    let mut draws: Vec<f64> = (0..1_000_000)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    draws.sort_by(f64::total_cmp);
    let idx = ((1.0 - firing) * draws.len() as f64) as usize;
    sigma * draws[idx.min(draws.len() - 1)]
}

fn set_threshold(model: &mut LanguageModel, b: f64, firing_rows: bool) {
    model.config.relu_threshold = b;
    for layer in &mut model.net.layers {
        layer.mlp.relu_threshold = b;
        layer.mlp.relu_hook = None;
    }
    if firing_rows {
        assert!(seft::sparse::enable_firing_rows_decode(&mut model.net));
    }
}

/// Seconds for `tokens` new tokens and for 1 (both greedy, EOS suppressed), and the tokens.
fn time_generation(model: &LanguageModel, prompt: &[u32], tokens: usize) -> (f64, f64, Vec<u32>) {
    let run = |n: usize| {
        let cfg = SamplingConfig {
            max_new_tokens: n,
            min_new_tokens: n,
            temperature: 0.0,
            ..SamplingConfig::default()
        };
        let start = Instant::now();
        let out = generate(model, &[prompt.to_vec()], &cfg, |_, _| {}).expect("generate");
        (start.elapsed().as_secs_f64(), out[0].token_ids.clone())
    };
    let (one, _) = run(1);
    let (all, ids) = run(tokens);
    (all, one, ids)
}

/// Median seconds of one MLP block at batch 1 (layer 0), dense and firing rows, and the
/// largest difference between their outputs.
fn time_block(model: &mut LanguageModel, b: f64, reps: usize) -> (f64, f64, f32) {
    let h = model.config.hidden_size;
    let mut rng = StdRng::seed_from_u64(11);
    let x: Vec<f32> = (0..h)
        .map(|_| {
            let v: f64 = StandardNormal.sample(&mut rng);
            v as f32
        })
        .collect();
    let x = Tensor::<3>::from_data(TensorData::new(x, [1, 1, h]), &Device::flex());
    set_threshold(model, b, true);
    let rows = model.net.layers[0].mlp.clone();
    let mut dense = rows.clone();
    dense.relu_hook = None;
    let mut times = [Vec::new(), Vec::new()];
    let mut outs = [Vec::new(), Vec::new()];
    for _ in 0..reps {
        for (path, mlp) in [&dense, &rows].into_iter().enumerate() {
            let start = Instant::now();
            let y = to_f32_vec(mlp.forward(x.clone()));
            times[path].push(start.elapsed().as_secs_f64());
            outs[path] = y;
        }
    }
    let max_diff = outs[0]
        .iter()
        .zip(&outs[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let [dense_times, rows_times] = times;
    (median(dense_times), median(rows_times), max_diff)
}

fn main() {
    let args = parse_args();
    let device = Device::flex();
    let mut model = LanguageModel::load(&args.model, &device).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let base = model.config.clone();
    let prompt = model
        .tokenizer
        .encode(
            "Explain why the sky is blue in two short paragraphs for a curious child.",
            false,
        )
        .expect("encode");
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir).expect("results folder");
    }
    let mut rows = Vec::new();
    println!(
        "shape: hidden {}, layers {}, vocab {}; prompt {} tokens, {} new tokens, {} runs per path\n",
        base.hidden_size,
        base.num_hidden_layers,
        base.vocab_size,
        prompt.len(),
        args.tokens,
        args.runs
    );
    println!(
        "| width m | target firing | measured firing | dense ms/token | firing-rows ms/token | speedup | block dense µs | block rows µs | block speedup | same tokens |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &width in &args.widths {
        let mut cfg = base.clone();
        cfg.mlp = MlpKind::Relu;
        cfg.intermediate_size = width;
        // The loaded model lends its tokenizer; its weights are replaced by the variant's.
        model.net = build_model(&cfg, &mut InitSource::new(5, INIT_STD), &device).expect("init");
        model.config = cfg.clone();
        let sigma = INIT_STD * (cfg.hidden_size as f64).sqrt();
        for &firing in &args.firing {
            let b = threshold_for(firing, sigma);
            let (mut dense, mut rows_t) = (Vec::new(), Vec::new());
            let (mut dense_ids, mut rows_ids) = (Vec::new(), Vec::new());
            let mut measured = f64::NAN;
            for _ in 0..args.runs {
                set_threshold(&mut model, b, false);
                let (all, one, ids) = time_generation(&model, &prompt, args.tokens);
                dense.push((all - one) / (args.tokens - 1) as f64);
                dense_ids = ids;
                set_threshold(&mut model, b, true);
                let (all, one, ids) = time_generation(&model, &prompt, args.tokens);
                rows_t.push((all - one) / (args.tokens - 1) as f64);
                rows_ids = ids;
                measured = model.net.firing_fraction(true).unwrap_or(f64::NAN);
            }
            let same = dense_ids
                .iter()
                .zip(&rows_ids)
                .take_while(|(a, b)| a == b)
                .count();
            let (block_dense, block_rows, block_diff) = time_block(&mut model, b, 200);
            let (d, r) = (median(dense), median(rows_t));
            println!(
                "| {width} | {:.0}% | {:.1}% | {:.2} | {:.2} | {:.2}× | {:.0} | {:.0} | {:.2}× | {same}/{} |",
                100.0 * firing,
                100.0 * measured,
                1e3 * d,
                1e3 * r,
                d / r,
                1e6 * block_dense,
                1e6 * block_rows,
                block_dense / block_rows,
                args.tokens,
            );
            rows.push(json!({
                "width": width, "target_firing": firing, "threshold": b,
                "measured_firing": measured,
                "dense_s_per_token": d, "firing_rows_s_per_token": r, "speedup": d / r,
                "block_dense_s": block_dense, "block_firing_rows_s": block_rows,
                "block_speedup": block_dense / block_rows, "block_max_abs_diff": block_diff,
                "same_tokens": same, "tokens": args.tokens, "runs": args.runs,
                "hidden": cfg.hidden_size, "layers": cfg.num_hidden_layers,
            }));
        }
    }
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&args.out, text).expect("write results");
    println!("\nrows: {}", args.out);
}
