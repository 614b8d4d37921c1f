//! k-means++ seeding benchmark of `seft::select::kmeans`: seeding time, seeding cost and
//! cost after Lloyd's iterations, one JSON line per (method, k, seed) and a mean table.
//!
//! cargo run --release --example kmeans_bench -- \
//!     (--data X.npy | --n 100000 --d 16 --blobs 100) --k 10,100,1000 --seeds 5 \
//!     --method exact,greedy,fast [--lloyd-iters 10] [--sketch-dim M] \
//!     [--local-search-steps Z] [--greedy-trials T] [--out results.jsonl]
//!
//! Threads: rayon's default (all cores) unless RAYON_NUM_THREADS is set.
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use seft::numeric::Matrix;
use seft::select::kmeans::{KMeansParams, Seeding};
use seft::select::synthetic::gaussian_blobs;

fn main() {
    if let Err(err) = run() {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

/// `--key value` pairs.
fn parse_args() -> Result<HashMap<String, String>, String> {
    let mut args = HashMap::new();
    let mut iter = std::env::args().skip(1);
    while let Some(key) = iter.next() {
        let name = key
            .strip_prefix("--")
            .ok_or_else(|| format!("expected --key value, got {key}"))?;
        let value = iter
            .next()
            .ok_or_else(|| format!("--{name} needs a value"))?;
        args.insert(name.to_string(), value);
    }
    Ok(args)
}

fn get<T: std::str::FromStr>(
    args: &HashMap<String, String>,
    key: &str,
    default: T,
) -> Result<T, String> {
    args.get(key).map_or(Ok(default), |v| {
        v.parse()
            .map_err(|_| format!("--{key}: cannot parse {v:?}"))
    })
}

fn list<T: std::str::FromStr>(
    args: &HashMap<String, String>,
    key: &str,
    default: &str,
) -> Result<Vec<T>, String> {
    args.get(key)
        .map_or(default, String::as_str)
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| format!("--{key}: cannot parse {v:?}"))
        })
        .collect()
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let data = match args.get("data") {
        Some(path) => Matrix::read_npy(&PathBuf::from(path))?,
        None => gaussian_blobs(
            get(&args, "n", 100_000)?,
            get(&args, "d", 16)?,
            get(&args, "blobs", 100)?,
            0,
        )?,
    };
    let ks: Vec<usize> = list(&args, "k", "10,100")?;
    let methods: Vec<String> = list(&args, "method", "exact,greedy,fast")?;
    let seeds: u64 = get(&args, "seeds", 5)?;
    let lloyd_iters: usize = get(&args, "lloyd-iters", 10)?;
    let mut out: Box<dyn Write> = match args.get("out") {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
        None => Box::new(std::io::sink()),
    };
    let data_name = args.get("data").cloned().unwrap_or_else(|| "blobs".into());
    println!(
        "n = {}, d = {}, threads = {}",
        data.n(),
        data.d(),
        rayon::current_num_threads()
    );
    println!("| method | k | seeding s | seeding cost | cost after Lloyd | seeds |");
    println!("|---|---|---|---|---|---|");
    for &k in &ks {
        for method_name in &methods {
            let method: Seeding = method_name.parse()?;
            let mut params = KMeansParams::new(k).method(method).lloyd_iters(lloyd_iters);
            if let Some(m) = args.get("sketch-dim") {
                params = params.sketch_dim(m.parse()?);
            }
            if let Some(z) = args.get("local-search-steps") {
                params = params.local_search_steps(z.parse()?);
            }
            if let Some(t) = args.get("greedy-trials") {
                params = params.greedy_trials(t.parse()?);
            }
            let (mut time, mut seeding_cost, mut final_cost) = (0.0, 0.0, 0.0);
            for seed in 0..seeds {
                let model = params.clone().seed(seed).fit(&data)?;
                let last = *model.cost_history().last().expect("cost history");
                let record = serde_json::json!({
                    "impl": "seft", "method": method_name, "data": data_name,
                    "n": data.n(), "d": data.d(), "k": k, "seed": seed,
                    "threads": rayon::current_num_threads(),
                    "seeding_seconds": model.seeding_seconds(),
                    "seeding_cost": model.seeding_cost(),
                    "lloyd_iters": model.cost_history().len() - 1,
                    "lloyd_cost": last,
                    "lloyd_seconds": model.lloyd_seconds(),
                });
                writeln!(out, "{record}")?;
                time += model.seeding_seconds();
                seeding_cost += model.seeding_cost();
                final_cost += last;
            }
            let runs = seeds.max(1) as f64;
            println!(
                "| {method_name} | {k} | {:.4} | {:.6e} | {:.6e} | {seeds} |",
                time / runs,
                seeding_cost / runs,
                final_cost / runs
            );
        }
    }
    Ok(())
}
