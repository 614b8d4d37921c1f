//! Dynamic KDE (`seft::select::kde::DynamicKde`) against exact brute force: build, insertion
//! and deletion cost per point, query time, relative errors, memory; and an adaptive-query
//! experiment where an adversary perturbs queries toward the largest error it has seen.
//!
//! cargo run --release --example kde_bench -- --data X.npy --queries Q.npy --bandwidth H \
//!     [--kernel gaussian] [--epsilon 0.1] [--delta 0.1] [--tau 1e-3] [--copies R] \
//!     [--samples M] [--recall R] [--width-factor 4] [--max-tables 16] [--updates 1000] [--adaptive-steps 200] [--adaptive-starts 5] \
//!     [--truth-out truth.npy] [--max-entries 4e8] [--config-name NAME] [--out results.jsonl] \
//!     [--query-repeats 5] [--exact-repeats (as --query-repeats)]
//! Batched query times are the median of --query-repeats passes over all queries (one pass of
//! 1,000 queries takes 40–130 ms, about this VM's timer noise).
//! Without --data: --n, --d, --blobs make Gaussian blobs (queries: jittered data points).
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use seft::numeric::Matrix;
use seft::select::kde::{DynamicKde, DynamicKdeParams, ExactKde, ExactKdeParams, Kernel};
use seft::select::synthetic::gaussian_blobs;

fn main() {
    if let Err(err) = run() {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

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

/// Runs `pass` `repeats` times; returns its last result and the median seconds of a pass.
fn median_timed<T>(repeats: usize, mut pass: impl FnMut() -> T) -> (T, f64) {
    let mut seconds = Vec::with_capacity(repeats.max(1));
    let mut result = None;
    for _ in 0..repeats.max(1) {
        let started = Instant::now();
        result = Some(pass());
        seconds.push(started.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    (
        result.expect("at least one pass"),
        seconds[seconds.len() / 2],
    )
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

/// Relative errors of `estimates` against `truth` over the queries with truth ≥ τ.
fn error_stats(estimates: &[f64], truth: &[f64], tau: f64, epsilon: f64) -> serde_json::Value {
    let signed: Vec<f64> = estimates
        .iter()
        .zip(truth)
        .filter(|(_, t)| **t >= tau)
        .map(|(e, t)| (e - t) / t)
        .collect();
    let errors: Vec<f64> = signed.iter().map(|e| e.abs()).collect();
    let count = errors.len().max(1) as f64;
    serde_json::json!({
        "queries_above_tau": errors.len(),
        "mean_relative_error": errors.iter().sum::<f64>() / count,
        "mean_signed_relative_error": signed.iter().sum::<f64>() / count,
        "max_relative_error": errors.iter().copied().fold(0.0, f64::max),
        "fraction_within_epsilon": errors.iter().filter(|&&e| e <= epsilon).count() as f64 / count,
    })
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let data = match args.get("data") {
        Some(path) => Matrix::read_npy(&PathBuf::from(path))?,
        None => gaussian_blobs(
            get(&args, "n", 20_000)?,
            get(&args, "d", 16)?,
            get(&args, "blobs", 20)?,
            0,
        )?,
    };
    let (n, d) = (data.n(), data.d());
    // --seed draws the generated queries and the structure's hashes and priorities.
    let seed: u64 = get(&args, "seed", 0)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let queries = match args.get("queries") {
        Some(path) => Matrix::read_npy(&PathBuf::from(path))?,
        None => {
            let jitter = Normal::new(0.0f32, 0.5)?;
            let rows: Vec<Vec<f32>> = (0..get(&args, "query-count", 200)?)
                .map(|_| {
                    data.row(rng.random_range(0..n))
                        .iter()
                        .map(|v| v + jitter.sample(&mut rng))
                        .collect()
                })
                .collect();
            Matrix::from_rows(&rows)?
        }
    };
    let kernel: Kernel = get(&args, "kernel", "gaussian".to_string())?.parse()?;
    let bandwidth: f32 = get(&args, "bandwidth", (2.0 * d as f32).sqrt())?;
    let (epsilon, delta, tau) = (
        get(&args, "epsilon", 0.1)?,
        get(&args, "delta", 0.1)?,
        get(&args, "tau", 1e-3)?,
    );
    let mut params = DynamicKdeParams::new(kernel, bandwidth)
        .epsilon(epsilon)
        .delta(delta)
        .tau(tau)
        .seed(seed);
    if let Some(r) = args.get("copies") {
        params = params.copies(r.parse()?);
    }
    if let Some(m) = args.get("samples") {
        params = params.samples_per_level(m.parse()?);
    }
    if let Some(w) = args.get("width-factor") {
        params = params.width_factor(w.parse()?);
    }
    let recall_override: Option<f64> = args.get("recall").map(|r| r.parse()).transpose()?;
    if let Some(recall) = recall_override {
        params = params.lsh_recall(recall);
    }
    if let Some(t) = args.get("max-tables") {
        params = params.max_tables(t.parse()?);
    }
    let mut out: Box<dyn Write> = match args.get("out") {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
        None => Box::new(std::io::sink()),
    };
    let threads = rayon::current_num_threads();
    let config_name = get(&args, "config-name", String::new())?;
    println!(
        "n = {n}, d = {d}, queries = {}, h = {bandwidth}, threads = {threads}",
        queries.n()
    );

    // Exact brute force.
    let started = Instant::now();
    let exact = ExactKdeParams::new(kernel, bandwidth).fit(&data)?;
    let exact_build = started.elapsed().as_secs_f64();
    let repeats: usize = get(&args, "query-repeats", 5usize)?;
    // Fewer exact passes (--exact-repeats 1) leave a profile of the structure's queries.
    let exact_repeats: usize = get(&args, "exact-repeats", repeats)?;
    let (truth, exact_pass) = median_timed(exact_repeats, || exact.query_batch(&queries));
    let truth = truth?;
    let exact_query = exact_pass / queries.n() as f64;
    if let Some(path) = args.get("truth-out") {
        let values: Vec<f32> = truth.iter().map(|&t| t as f32).collect();
        Matrix::new(values, queries.n(), 1)?.write_npy(&PathBuf::from(path))?;
    }
    let truth_median = {
        let mut sorted = truth.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let record = serde_json::json!({
        "impl": "seft", "method": "exact", "n": n, "d": d, "bandwidth": bandwidth,
        "threads": threads, "build_seconds": exact_build, "query_seconds": exact_query,
        "query_repeats": repeats,
        "memory_bytes": exact.memory_bytes(),
        "truth_min": truth.iter().copied().fold(f64::INFINITY, f64::min),
        "truth_median": truth_median,
    });
    writeln!(out, "{record}")?;
    println!(
        "exact: {exact_query:.6} s/query (batched), truth median {}",
        record["truth_median"]
    );

    // Dynamic structure: bulk build, then delete and re-insert `updates` points.
    let plan = params.plan()?;
    println!("plan: {}", serde_json::to_string(&plan)?);
    let entries = plan.bucket_entries_bound(n);
    let max_entries: f64 = get(&args, "max-entries", 4e8)?;
    if entries > max_entries {
        return Err(format!(
            "the plan stores up to {entries:.3e} bucket entries (~{:.1} GB), over --max-entries \
             {max_entries:.1e}: raise it, or ε/τ, or pass --samples/--copies",
            entries * 8.0 / 1e9
        )
        .into());
    }
    let started = Instant::now();
    let mut kde = params.fit(&data)?;
    let build_seconds = started.elapsed().as_secs_f64();
    let updates: usize = get(&args, "updates", 1000usize)?.min(n);
    let ids: Vec<usize> = (0..updates)
        .map(|_| rng.random_range(0..n))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let started = Instant::now();
    for &id in &ids {
        kde.delete(id)?;
    }
    let delete_seconds = started.elapsed().as_secs_f64() / ids.len().max(1) as f64;
    let started = Instant::now();
    for &id in ids.iter().rev() {
        // Freed ids are reused last-in first-out, so re-inserting in reverse restores them.
        let new_id = kde.insert(data.row(id))?;
        debug_assert_eq!(new_id, id);
    }
    let insert_seconds = started.elapsed().as_secs_f64() / ids.len().max(1) as f64;
    let (answers, query_pass) = median_timed(repeats, || kde.query_batch(&queries));
    let answers = answers?;
    let query_seconds = query_pass / queries.n() as f64;
    // One query at a time (copies in parallel): the latency path.
    let started = Instant::now();
    let single: Vec<_> = queries
        .data()
        .chunks_exact(d)
        .map(|q| kde.query(q))
        .collect::<Result<_, _>>()?;
    let single_query_seconds = started.elapsed().as_secs_f64() / queries.n() as f64;
    assert!(
        single
            .iter()
            .zip(&answers)
            .all(|(a, b)| a.density == b.density),
        "query and query_batch disagree"
    );
    let estimates: Vec<f64> = answers.iter().map(|a| a.density).collect();
    let per_query = |f: fn(&seft::select::kde::KdeEstimate) -> usize| {
        answers.iter().map(f).sum::<usize>() as f64 / answers.len() as f64
    };
    let record = serde_json::json!({
        "impl": "seft", "method": "dynamic", "config": config_name, "n": n, "d": d,
        "bandwidth": bandwidth, "seed": seed,
        "threads": threads, "epsilon": epsilon, "delta": delta, "tau": tau, "plan": plan,
        "recall_override": recall_override,
        "build_seconds_per_point": build_seconds / n as f64,
        "insert_seconds_per_point": insert_seconds, "delete_seconds_per_point": delete_seconds,
        "updates": ids.len(), "query_seconds": query_seconds, "query_repeats": repeats,
        "single_query_seconds": single_query_seconds,
        "kernel_evaluations_per_query": per_query(|a| a.kernel_evaluations),
        "candidates_per_query": per_query(|a| a.candidates),
        "memory_bytes": kde.memory_bytes(), "stored_entries": kde.stored_entries(),
        "bucket_entries_bound": entries,
        "errors": error_stats(&estimates, &truth, tau, epsilon),
    });
    writeln!(out, "{record}")?;
    println!("dynamic: {}", serde_json::to_string_pretty(&record)?);

    let steps: usize = get(&args, "adaptive-steps", 0)?;
    if steps > 0 {
        let starts: usize = get(&args, "adaptive-starts", 5)?;
        let single = params.clone().copies(1).fit(&data)?;
        for structure in [&single, &kde] {
            let copies = structure.plan().copies;
            let result = adaptive_attack(
                structure, &exact, &data, steps, starts, tau, epsilon, bandwidth, &mut rng,
            )?;
            let record = serde_json::json!({
                "impl": "seft", "method": "adaptive", "config": config_name, "copies": copies,
                "n": n, "d": d,
                "steps": steps, "starts": starts, "epsilon": epsilon, "tau": tau, "result": result,
            });
            writeln!(out, "{record}")?;
            println!("adaptive, {copies} copies: {result}");
        }
    }
    Ok(())
}

/// Hill climbing on the relative error: from a data point, propose q + noise and keep the
/// proposal when the structure's error (against the exact KDE) grows. The adversary sees
/// every answer and the truth, the strongest form of "queries chosen from earlier answers".
#[allow(clippy::too_many_arguments)]
fn adaptive_attack(
    kde: &DynamicKde,
    exact: &ExactKde,
    data: &Matrix,
    steps: usize,
    starts: usize,
    tau: f64,
    epsilon: f64,
    bandwidth: f32,
    rng: &mut StdRng,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let d = data.d();
    let step = Normal::new(0.0f32, 0.3 * bandwidth / (d as f32).sqrt())?;
    let (mut visited, mut failures, mut worst) = (0usize, 0usize, 0f64);
    let mut error_of = |q: &[f32]| -> Result<Option<f64>, Box<dyn std::error::Error>> {
        let truth = exact.query(q)?;
        if truth < tau {
            return Ok(None);
        }
        let error = (kde.query(q)?.density - truth).abs() / truth;
        visited += 1;
        failures += usize::from(error > epsilon);
        worst = worst.max(error);
        Ok(Some(error))
    };
    for _ in 0..starts {
        let mut current = data.row(rng.random_range(0..data.n())).to_vec();
        let mut current_error = error_of(&current)?.unwrap_or(0.0);
        for _ in 0..steps {
            let proposal: Vec<f32> = current.iter().map(|v| v + step.sample(rng)).collect();
            if let Some(error) = error_of(&proposal)?
                && error > current_error
            {
                (current, current_error) = (proposal, error);
            }
        }
    }
    Ok(serde_json::json!({
        "queries_above_tau": visited,
        "fraction_above_epsilon": failures as f64 / visited.max(1) as f64,
        "max_relative_error": worst,
    }))
}
