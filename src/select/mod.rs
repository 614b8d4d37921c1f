//! Data selection primitives: clustering and density estimation over dense point sets.
//!
//! - [`matrix`]: the validated n×d f32 data set, with `.npy` input and output.
//! - [`kmeans`]: k-means++ seeding (exact, greedy, FastKmeans++) and Lloyd's iterations.
//! - [`kde`]: kernel density estimation, exact and with a dynamic hashing-based structure.
//! - [`embed`]: sentence embeddings (all-MiniLM-L6-v2, or mean-pooled decoder states).
//! - [`synthetic`]: Gaussian blobs for tests and benchmarks.

pub mod embed;
pub mod kde;
pub mod kmeans;
pub mod linalg;
pub mod matrix;
mod npy;
pub mod synthetic;

pub use matrix::Matrix;
