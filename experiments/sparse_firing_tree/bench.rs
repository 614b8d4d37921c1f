//! Time per training iteration of the dense gemm path vs the firing-tree path (and the `Auto`
//! dispatcher) for the shifted-ReLU network of `seft::sparse`, side by side in one run.
//!
//! Run: `cargo run --release --example sparse_bench -- [--quick] [--threads 2] [--out FILE]`.
//! Prints a markdown table and writes the same rows as JSON (default
//! `experiments/sparse_firing_tree/results/{quick,full}.json`). Every configuration trains
//! copies of one network for the same steps through each path, several times: times per
//! iteration are medians over all steps but each run's first (which warms caches and gemm's
//! buffers up), totals (tree build and every step) are medians over the runs.

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};

use seft::sparse::{ShiftedReluNet, TrainData, TrainParams, TrainPath, TrainReport, train};

/// A threshold: the N(0, 1) quantile leaving a target sparsity, or the theory's √(0.4 ln m).
#[derive(Clone, Copy)]
enum Threshold {
    Sparsity(f64),
    Theory,
}

impl Threshold {
    fn value(self, m: usize) -> f32 {
        match self {
            // ⟨w_r, x⟩ ~ N(0, 1) for unit-norm x and N(0, I) weights.
            Threshold::Sparsity(s) => normal_quantile(s) as f32,
            Threshold::Theory => ShiftedReluNet::theory_threshold(m),
        }
    }

    /// The name `--thresholds` takes: the sparsity in percent, or `theory`.
    fn short_label(self) -> String {
        match self {
            Threshold::Sparsity(s) => format!("{}", (1000.0 * s).round() / 10.0),
            Threshold::Theory => "theory".into(),
        }
    }

    fn label(self) -> String {
        match self {
            Threshold::Sparsity(s) => format!("{:.1}%", 100.0 * s),
            Threshold::Theory => "√(0.4 ln m)".into(),
        }
    }
}

/// Standard normal quantiles of the sparsity targets used here.
fn normal_quantile(p: f64) -> f64 {
    const TABLE: [(f64, f64); 4] = [
        (0.5, 0.0),
        (0.9, 1.281_551_565_5),
        (0.99, 2.326_347_874_0),
        (0.999, 3.090_232_306_2),
    ];
    TABLE
        .iter()
        .find(|(q, _)| (q - p).abs() < 1e-12)
        .map(|&(_, z)| z)
        .unwrap_or_else(|| panic!("no quantile tabulated for {p}"))
}

struct Grid {
    dims: Vec<usize>,
    widths: Vec<usize>,
    points: Vec<usize>,
    thresholds: Vec<Threshold>,
    steps: usize,
    repeats: usize,
}

impl Grid {
    fn quick() -> Self {
        Grid {
            dims: vec![128],
            widths: vec![1024, 16384],
            points: vec![4, 64],
            thresholds: vec![
                Threshold::Sparsity(0.9),
                Threshold::Sparsity(0.99),
                Threshold::Theory,
            ],
            steps: 6,
            repeats: 5,
        }
    }

    fn full() -> Self {
        let sparsities = [0.5, 0.9, 0.99, 0.999].map(Threshold::Sparsity);
        Grid {
            dims: vec![128, 512],
            widths: vec![1024, 4096, 16384, 65536],
            points: vec![4, 32, 128, 512],
            thresholds: sparsities.into_iter().chain([Threshold::Theory]).collect(),
            steps: 8,
            repeats: 5,
        }
    }
}

struct Args {
    quick: bool,
    threads: usize,
    out: String,
    /// Restrict the grid to these values (comma-separated; empty = the whole grid).
    only_d: Vec<usize>,
    only_m: Vec<usize>,
    only_n: Vec<usize>,
    /// Restrict the thresholds to these labels (`50`, `90`, `99`, `99.9` percent or `theory`).
    only_thresholds: Vec<String>,
    /// Overrides the runs per path (default 5).
    repeats: Option<usize>,
}

fn list(v: Option<String>) -> Vec<usize> {
    v.unwrap_or_else(|| usage())
        .split(',')
        .map(|x| x.trim().parse().unwrap_or_else(|_| usage()))
        .collect()
}

fn parse_args() -> Args {
    let mut args = Args {
        quick: false,
        threads: 2,
        out: String::new(),
        only_d: Vec::new(),
        only_m: Vec::new(),
        only_n: Vec::new(),
        only_thresholds: Vec::new(),
        repeats: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--threads" => {
                args.threads = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--out" => args.out = it.next().unwrap_or_else(|| usage()),
            "--d" => args.only_d = list(it.next()),
            "--m" => args.only_m = list(it.next()),
            "--n" => args.only_n = list(it.next()),
            "--thresholds" => {
                args.only_thresholds = it
                    .next()
                    .unwrap_or_else(|| usage())
                    .split(',')
                    .map(|t| t.trim().to_string())
                    .collect()
            }
            "--repeats" => args.repeats = Some(list(it.next())[0].max(1)),
            _ => usage(),
        }
    }
    if args.out.is_empty() {
        let grid = if args.quick { "quick" } else { "full" };
        args.out = format!("experiments/sparse_firing_tree/results/{grid}.json");
    }
    args
}

fn usage() -> ! {
    eprintln!(
        "usage: sparse_bench [--quick] [--threads N] [--out FILE.json] [--d LIST] [--m LIST] [--n LIST] [--thresholds 50,90,99,99.9,theory] [--repeats R]"
    );
    std::process::exit(2)
}

/// n unit-norm Gaussian points in d dimensions and targets uniform in [−1, 1].
fn dataset(n: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut x: Vec<f32> = (0..n * d).map(|_| gaussian(&mut rng)).collect();
    for row in x.chunks_mut(d) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= norm);
    }
    let y = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    (x, y)
}

fn gaussian(rng: &mut StdRng) -> f32 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let angle = std::f64::consts::TAU * rng.random::<f64>();
    ((-2.0 * u.ln()).sqrt() * angle.cos()) as f32
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        0.5 * (values[mid - 1] + values[mid])
    }
}

/// Runs of one path: median step time after each run's first step, median total, the
/// first run's report (statistics are the same in every run) and its trained network.
struct Runs {
    step_seconds: f64,
    total_seconds: f64,
    /// The fastest run's total: interference on a shared VM only ever adds time.
    total_min_seconds: f64,
    build_seconds: f64,
    report: TrainReport,
    net: ShiftedReluNet,
}

/// Summarises the repeated runs of one path.
fn runs(mut reports: Vec<(ShiftedReluNet, TrainReport)>) -> Runs {
    let steps = reports
        .iter()
        .flat_map(|(_, r)| r.steps.iter().skip(1).map(|s| s.seconds))
        .collect();
    let total_seconds = median(reports.iter().map(|(_, r)| r.total_seconds()).collect());
    let total_min_seconds = reports
        .iter()
        .map(|(_, r)| r.total_seconds())
        .fold(f64::INFINITY, f64::min);
    let build_seconds = median(reports.iter().map(|(_, r)| r.build_seconds).collect());
    let (net, report) = reports.swap_remove(0);
    Runs {
        step_seconds: median(steps),
        total_seconds,
        total_min_seconds,
        build_seconds,
        report,
        net,
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    sum / count.max(1) as f64
}

fn run(
    net: &ShiftedReluNet,
    data: &TrainData<'_>,
    lr: f32,
    steps: usize,
    path: TrainPath,
) -> (ShiftedReluNet, TrainReport) {
    let mut net = net.clone();
    let report = train(&mut net, data, &TrainParams { lr, steps, path })
        .unwrap_or_else(|e| panic!("{path:?} training failed: {e}"));
    (net, report)
}

fn max_relative_difference(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    f64::from(diff / scale.max(f32::MIN_POSITIVE))
}

fn measure(d: usize, m: usize, n: usize, threshold: Threshold, grid: &Grid) -> Value {
    let b = threshold.value(m);
    let (x, y) = dataset(n, d, (d * 31 + m * 7 + n) as u64);
    let data = TrainData::new(&x, &y, d).expect("valid data");
    let net = ShiftedReluNet::random(m, d, b, 1).expect("valid network");
    // 1/(n·p) bounds the step by the kernel's trace (as seft::sparse::QualityGate does).
    let lr = (1.0 / (n as f64 * net.expected_firing_fraction().max(1e-6))) as f32;

    // Repeats interleave the paths (dense, tree, auto, dense, ...) so that a slow phase of
    // the machine hits every path alike instead of one path's whole series.
    let paths = [TrainPath::Dense, TrainPath::FiringTree, TrainPath::Auto];
    let mut reports: [Vec<(ShiftedReluNet, TrainReport)>; 3] = Default::default();
    for _ in 0..grid.repeats {
        for (path, out) in paths.iter().zip(reports.iter_mut()) {
            out.push(run(&net, &data, lr, grid.steps, *path));
        }
    }
    let [dense, tree, auto] = reports.map(runs);
    let stats = &tree.report.steps;
    let weights_difference = max_relative_difference(tree.net.weights(), dense.net.weights());
    json!({
        "d": d, "m": m, "n": n,
        "threshold": threshold.label(), "b": b, "lr": lr,
        "steps": grid.steps, "repeats": grid.repeats,
        "firing_fraction": mean(stats.iter().map(|s| s.firing_fraction)),
        "union_fraction": mean(stats.iter().map(|s| s.union as f64 / m as f64)),
        "dense_ms": 1e3 * dense.step_seconds,
        "tree_ms": 1e3 * tree.step_seconds,
        "speedup": dense.step_seconds / tree.step_seconds,
        "build_ms": 1e3 * tree.build_seconds,
        "build_in_dense_steps": tree.build_seconds / dense.step_seconds,
        "dense_total_ms": 1e3 * dense.total_seconds,
        "tree_total_ms": 1e3 * tree.total_seconds,
        "auto_total_ms": 1e3 * auto.total_seconds,
        "auto_over_dense": auto.total_seconds / dense.total_seconds,
        "dense_total_min_ms": 1e3 * dense.total_min_seconds,
        "auto_total_min_ms": 1e3 * auto.total_min_seconds,
        "auto_over_dense_min": auto.total_min_seconds / dense.total_min_seconds,
        "auto_tree_steps": auto.report.tree_steps(),
        "auto_build_ms": 1e3 * auto.build_seconds,
        "auto_step_ms": auto.report.steps.iter().map(|s| 1e3 * s.seconds).collect::<Vec<_>>(),
        "tree_vs_dense_weights_rel_diff": weights_difference,
    })
}

fn print_row(row: &Value) {
    let f = |key: &str| row[key].as_f64().unwrap_or(f64::NAN);
    println!(
        "| {} | {} | {} | {} | {:.3} | {:.4} | {:.3} | {:.3} | {:.3} | {:.2}× | {:.1} | {:.2} | {:.2} | {}/{} |",
        row["d"],
        row["m"],
        row["n"],
        row["threshold"].as_str().unwrap_or(""),
        f("b"),
        f("firing_fraction"),
        f("union_fraction"),
        f("dense_ms"),
        f("tree_ms"),
        f("speedup"),
        f("build_in_dense_steps"),
        f("auto_over_dense"),
        f("auto_over_dense_min"),
        row["auto_tree_steps"],
        row["steps"],
    );
}

fn main() {
    let args = parse_args();
    let mut grid = if args.quick {
        Grid::quick()
    } else {
        Grid::full()
    };
    let keep = |values: &mut Vec<usize>, only: &[usize]| {
        if !only.is_empty() {
            values.retain(|v| only.contains(v));
        }
    };
    keep(&mut grid.dims, &args.only_d);
    keep(&mut grid.widths, &args.only_m);
    keep(&mut grid.points, &args.only_n);
    if !args.only_thresholds.is_empty() {
        grid.thresholds
            .retain(|t| args.only_thresholds.contains(&t.short_label()));
    }
    if let Some(r) = args.repeats {
        grid.repeats = r;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .expect("thread pool");
    println!(
        "threads: {}, steps per run: {}, runs per path: {}\n",
        args.threads, grid.steps, grid.repeats
    );
    println!(
        "| d | m | n | sparsity target | b | k/m | union/m | dense ms/iter | tree ms/iter | speedup | \
         tree build (dense iters) | auto/dense (median total) | auto/dense (min total) | auto tree steps |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let rows: Vec<Value> = pool.install(|| {
        let mut rows = Vec::new();
        for &d in &grid.dims {
            for &m in &grid.widths {
                for &n in &grid.points {
                    for &threshold in &grid.thresholds {
                        let row = measure(d, m, n, threshold, &grid);
                        print_row(&row);
                        rows.push(row);
                    }
                }
            }
        }
        rows
    });
    let report = json!({
        "grid": if args.quick { "quick" } else { "full" },
        "threads": args.threads,
        "steps": grid.steps,
        "repeats": grid.repeats,
        "rows": rows,
    });
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    let text = serde_json::to_string_pretty(&report).expect("json");
    std::fs::write(&args.out, text).unwrap_or_else(|e| panic!("{}: {e}", args.out));
    println!("\nwrote {}", args.out);
}
