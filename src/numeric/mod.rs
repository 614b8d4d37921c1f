//! The ground floor: CPU primitives every other module builds on, and nothing of seft's above.
//!
//! - [`kernels`]: dot products, squared distances and a vectorized `exp` (AVX2+FMA when the CPU
//!   has it, chosen at run time), blocked nearest-row search.
//! - [`gemm`]: the one wrapper around the `gemm` crate, over strided views.
//! - [`thin_gemm`]: products with at most 16 rows (decode steps), streaming the weights once
//!   (AVX2+FMA, chosen at run time).
//! - [`matrix`]: the validated n×d f32 data set, with `.npy` input and output ([`npy`]).
//! - [`validate`]: the argument checks the numeric algorithms share (one error line each).
//! - [`to_f32_vec`]: a Burn tensor read back as f32 values.

pub mod gemm;
pub mod kernels;
pub mod matrix;
mod npy;
pub mod thin_gemm;
pub mod validate;

pub use matrix::Matrix;

use burn::tensor::Tensor;

/// Reads a tensor back as f32 values in row-major order.
pub fn to_f32_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32 just above")
}
