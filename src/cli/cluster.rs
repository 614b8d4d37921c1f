use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::select::kmeans::{KMeansParams, Seeding};

#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub points: super::embed::PointsArgs,
    /// Number of clusters.
    #[arg(long)]
    pub k: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seeding: exact (k-means++), greedy (scikit-learn's default), fast (FastKmeans++).
    #[arg(long, default_value = "fast")]
    pub method: String,
    /// Lloyd iterations after seeding.
    #[arg(long, default_value_t = 10)]
    pub lloyd_iters: usize,
    /// Write each point's cluster (one per line) here.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Write the centroids as a k×d float32 .npy here.
    #[arg(long)]
    pub centroids: Option<PathBuf>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ClusterArgs) -> Result<()> {
    let (data, _) = args.points.load()?;
    let method: Seeding = args.method.parse()?;
    let model = KMeansParams::new(args.k)
        .seed(args.seed)
        .method(method)
        .lloyd_iters(args.lloyd_iters)
        .fit(&data)?;
    if let Some(path) = &args.labels {
        let text: String = model.labels().iter().map(|l| format!("{l}\n")).collect();
        crate::data::jsonl::write_atomic(path, text.as_bytes())?;
    }
    if let Some(path) = &args.centroids {
        model.centroids().write_npy(path)?;
    }
    let mut sizes = vec![0usize; args.k];
    for &l in model.labels() {
        sizes[l] += 1;
    }
    let result = json!({
        "n": data.n(),
        "d": data.d(),
        "k": args.k,
        "method": args.method,
        "seed": args.seed,
        "seeding_seconds": model.seeding_seconds(),
        "seeding_cost": model.seeding_cost(),
        "lloyd_iterations": args.lloyd_iters,
        "lloyd_seconds": model.lloyd_seconds(),
        "cost": model.cost_history().last().copied().unwrap_or(model.seeding_cost()),
        "cluster_sizes": sizes,
    });
    if args.json {
        println!("{result}");
    } else {
        println!("{}", serde_json::to_string_pretty(&result)?);
    }
    Ok(())
}
