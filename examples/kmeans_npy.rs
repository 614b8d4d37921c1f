//! k-means++ (FastKmeans++ seeding, then Lloyd) on an n×d float32 or float64 `.npy` matrix.
//! Without a file, it writes three Gaussian blobs to `blobs.npy` first. Prints the cost and
//! the size of every cluster.
//!
//!     cargo run --release --example kmeans_npy -- [points.npy] [k]

use std::path::{Path, PathBuf};

use seft::numeric::Matrix;
use seft::select::kmeans::{KMeansParams, Seeding};
use seft::select::synthetic::gaussian_blobs;

/// Cluster sizes (largest first) and the final cost of k-means on the matrix in `path`.
pub fn run(path: &Path, k: usize) -> seft::Result<(Vec<usize>, f64)> {
    let points = Matrix::read_npy(path)?;
    let model = KMeansParams::new(k)
        .seed(0)
        .method(Seeding::Fast)
        .lloyd_iters(20)
        .fit(&points)?;
    let mut sizes = vec![0usize; k];
    for &label in model.labels() {
        sizes[label] += 1;
    }
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    Ok((sizes, model.cost(&points)?))
}

fn main() -> seft::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = match args.next() {
        Some(p) => PathBuf::from(p),
        None => {
            let path = PathBuf::from("blobs.npy");
            gaussian_blobs(3000, 16, 3, 7)?.write_npy(&path)?;
            path
        }
    };
    let k = match args.next() {
        Some(k) => k
            .parse()
            .map_err(|_| seft::SeftError::Invalid(format!("k must be a number, got '{k}'")))?,
        None => 3,
    };
    let (sizes, cost) = run(&path, k)?;
    println!(
        "{}: k {k} cost {cost:.3} cluster sizes {sizes:?}",
        path.display()
    );
    Ok(())
}
