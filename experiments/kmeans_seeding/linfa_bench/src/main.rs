//! linfa's KMeans initialisations (`KMeansInit::KMeansPlusPlus` and `KMeansInit::KMeansPara`,
//! linfa-clustering 0.7.1) on the same float32 .npy files as seft's `kmeans_bench` and
//! scikit-learn's `sklearn_bench.py`, writing the same JSON-lines records.
//!
//! linfa keeps its initialisation private (`KMeansInit::run` is `pub(crate)`), so it is
//! measured through the public `fit`:
//! - fit with `max_n_iterations(1)` runs the seeding and one Lloyd step; the inertia it
//!   reports is the mean squared distance to the *seeds* (the loop's distance step runs
//!   before the centroid update), so n × inertia is the seeding cost;
//! - fit with `KMeansInit::Precomputed` (the first k rows) and one iteration times that Lloyd
//!   step alone (it loops over all k centroids per point, whatever they are); the seeding time
//!   is the first time minus this one;
//! - fit with `max_n_iterations(ITERS + 1)` reports the cost of the centers after ITERS Lloyd
//!   updates (the tolerance is the smallest positive float, so only a fixed point stops early,
//!   where later iterations would change nothing).
//!
//! Threads: linfa parallelises with rayon; set `RAYON_NUM_THREADS`.
//!
//!     linfa_kmeans_bench --data X.npy --k 10,100 --seeds 5 --method linfa-kmeans++,linfa-kmeans||
//!         --lloyd-iters 10 --out results.jsonl [--max-pair-evals 2e10]

use std::io::Write;
use std::time::Instant;

use linfa::traits::Fit;
use linfa::DatasetBase;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::{s, Array2};
use ndarray_npy::read_npy;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;

struct Args {
    data: String,
    ks: Vec<usize>,
    seeds: u64,
    methods: Vec<String>,
    lloyd_iters: u64,
    out: Option<String>,
    /// Skip linfa's k-means++ where n·k²/2 point–center distances exceed this (its seeding
    /// recomputes every point's distance to all chosen centers at each step).
    max_pair_evals: f64,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        data: String::new(),
        ks: vec![10, 100],
        seeds: 5,
        methods: vec!["linfa-kmeans++".into(), "linfa-kmeans||".into()],
        lloyd_iters: 10,
        out: None,
        max_pair_evals: 2e10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--data" => args.data = value,
            "--k" => {
                args.ks = value
                    .split(',')
                    .map(|k| k.parse().map_err(|e| bad(&e)))
                    .collect::<Result<_, _>>()?
            }
            "--seeds" => args.seeds = value.parse().map_err(|e| bad(&e))?,
            "--method" => args.methods = value.split(',').map(String::from).collect(),
            "--lloyd-iters" => args.lloyd_iters = value.parse().map_err(|e| bad(&e))?,
            "--out" => args.out = Some(value),
            "--max-pair-evals" => args.max_pair_evals = value.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.data.is_empty() {
        return Err("--data is required".into());
    }
    Ok(args)
}

fn init_of(method: &str) -> Result<KMeansInit<f32>, String> {
    match method {
        "linfa-kmeans++" => Ok(KMeansInit::KMeansPlusPlus),
        "linfa-kmeans||" => Ok(KMeansInit::KMeansPara),
        _ => Err(format!(
            "unknown method {method} (linfa-kmeans++ or linfa-kmeans||)"
        )),
    }
}

/// One fit: its wall time and n × the inertia it reports.
fn fit(
    data: &DatasetBase<Array2<f32>, ()>,
    k: usize,
    seed: u64,
    init: KMeansInit<f32>,
    iterations: u64,
) -> Result<(f64, f64), String> {
    let started = Instant::now();
    let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
        .n_runs(1)
        .max_n_iterations(iterations)
        .tolerance(f32::MIN_POSITIVE)
        .init_method(init)
        .fit(data)
        .map_err(|e| format!("linfa fit: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let n = data.records().nrows() as f64;
    Ok((seconds, f64::from(model.inertia()) * n))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args = parse()?;
    let x: Array2<f32> = read_npy(&args.data).map_err(|e| format!("{}: {e}", args.data))?;
    let (n, d) = x.dim();
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    println!("n = {n}, d = {d}, rayon threads = {threads}");
    println!("| method | k | seeding s | seeding cost | cost after Lloyd | seeds |");
    println!("|---|---|---|---|---|---|");
    let largest_k = args.ks.iter().copied().max().unwrap_or(0).min(n);
    let first_rows = x.slice(s![..largest_k, ..]).to_owned();
    let data = DatasetBase::new(x, ());
    let mut out = match &args.out {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("{path}: {e}"))?,
        ),
        None => None,
    };
    for &k in &args.ks {
        for method in &args.methods {
            let init = init_of(method)?;
            let pair_evals = n as f64 * (k * k) as f64 / 2.0;
            if method == "linfa-kmeans++" && pair_evals > args.max_pair_evals {
                println!(
                    "| {method} | {k} | skipped: n·k²/2 = {pair_evals:.1e} distances > --max-pair-evals {:.1e} | | | |",
                    args.max_pair_evals
                );
                continue;
            }
            let mut totals = [0.0; 3];
            for seed in 0..args.seeds {
                let (with_step, seeding_cost) = fit(&data, k, seed, init.clone(), 1)?;
                let precomputed = KMeansInit::Precomputed(first_rows.slice(s![..k, ..]).to_owned());
                let (step, _) = fit(&data, k, seed, precomputed, 1)?;
                let seconds = (with_step - step).max(0.0);
                let (_, lloyd_cost) = fit(&data, k, seed, init.clone(), args.lloyd_iters + 1)?;
                let record = serde_json::json!({
                    "impl": "linfa", "method": method, "data": args.data, "n": n, "d": d,
                    "k": k, "seed": seed, "threads": threads, "seeding_seconds": seconds,
                    "seeding_plus_lloyd_step_seconds": with_step, "lloyd_step_seconds": step,
                    "seeding_cost": seeding_cost, "lloyd_iters": args.lloyd_iters,
                    "lloyd_cost": lloyd_cost,
                });
                if let Some(file) = out.as_mut() {
                    writeln!(file, "{record}").map_err(|e| format!("write: {e}"))?;
                }
                totals[0] += seconds;
                totals[1] += seeding_cost;
                totals[2] += lloyd_cost;
            }
            let runs = args.seeds.max(1) as f64;
            println!(
                "| {method} | {k} | {:.4} | {:.6e} | {:.6e} | {} |",
                totals[0] / runs,
                totals[1] / runs,
                totals[2] / runs,
                args.seeds
            );
        }
    }
    Ok(())
}
