//! Data selection: clustering and density estimation over dense point sets ([`Matrix`] from
//! [`crate::numeric`]), a numeric library that knows nothing of models or text.
//!
//! - [`kmeans`]: k-means++ seeding (exact, greedy, FastKmeans++) and Lloyd's iterations.
//! - [`kde`]: kernel density estimation, exact and with a dynamic hashing-based structure.
//! - [`synthetic`]: Gaussian blobs for tests and benchmarks.

pub mod kde;
pub mod kmeans;
pub mod synthetic;

pub use crate::numeric::Matrix;
