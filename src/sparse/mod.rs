//! Sparse training of a wide shifted-ReLU layer with firing-neuron trees.
//!
//! Algorithm, after Alman, Liang, Song, Zhang and Zhuo, "Bypass Exponential Time
//! Preprocessing: Fast Neural Network Training via Weight-Data Correlation Preprocessing"
//! (NeurIPS 2023, arXiv:2211.14227). The network is two-layer,
//! f(x) = (1/√m) Σ_r a_r σ(⟨w_r, x⟩) with the shifted ReLU σ(z) = max(z − b, 0), trained W
//! (m × d), fixed random signs a_r, and full-batch gradient descent on ½ Σ_i (f(x_i) − y_i)²
//! over n points: the regime of few points and a huge width m. With a threshold such as the
//! theory's b = √(0.4 ln m), only k ≪ m neurons fire (⟨w_r, x_i⟩ > b) on each point, and
//! only those contribute to f(x_i) or receive gradient from it.
//!
//! - Preprocessing ([`FiringTrees::build`]): all weight–data inner products from one matrix
//!   multiply X·Wᵀ (O(nmd)), kept per point in a max-tree over the m neurons (16-ary, flat).
//! - Each step ([`train`](fn@train) with [`TrainPath::FiringTree`]): query every point's
//!   tree for its firing neurons (O(k log m)), compute the outputs from them, invert the sets
//!   into the points firing each neuron ([`FiringSets`]), update only the union U of firing
//!   neurons, then recompute their inner products with gemms over blocks of U (O(n·|U|·d))
//!   and fix their tree paths. A dense step costs O(nmd).
//! - Firing is strict, ⟨w_r, x_i⟩ > b, everywhere: at equality σ is 0 and so is its
//!   derivative, taken as 0.
//! - Exactness: the tree path gives the dense result bit for bit ([`train_reference`] is the
//!   dense same-order check); the gemm baseline ([`TrainPath::Dense`]) differs only by float
//!   rounding of its gradient sums. All inner products come from gemm in one canonical call
//!   shape (see `products.rs`), so a stored product never depends on which neurons shared
//!   its gemm call.
//! - [`TrainPath::Auto`] (the default) starts dense and moves to the trees only where they
//!   measure faster: in the benchmark's 160 configurations it was 0.25–0.89× dense's time
//!   wherever it used the trees, and ran dense's own code everywhere else.
//! - [`QualityGate`]: the network as a binary classifier on frozen embeddings.
//! - [`FiringRowsDown`]: batch-1 decoding of the ReLU-MLP decoder variant through the
//!   firing set of each token (down-projection rows of the firing neurons only).

mod auto;
mod decode;
mod dense;
mod firing;
mod network;
mod products;
mod quality_gate;
mod random;
mod train;
mod tree;
mod tree_step;

pub use decode::{FiringRowsDown, enable_firing_rows_decode};
pub use firing::FiringSets;
pub use network::{ShiftedReluNet, TrainData};
pub use quality_gate::{GateParams, QualityGate};
pub use train::{StepPath, StepStats, TrainParams, TrainPath, TrainReport, train, train_reference};
pub use tree::{FANOUT, FiringTrees};
