//! Kernel density estimation (KDE): for data x₁…xₙ and a query q,
//!
//! KDE(q) = (1/n) Σᵢ k(xᵢ, q),  with  k(x, q) = exp(−‖x − q‖²/h²)  (Gaussian)
//!                                  or  k(x, q) = exp(−‖x − q‖/h)   (Laplacian/exponential).
//!
//! Normalization: k(x, x) = 1, so KDE(q) ∈ (0, 1] is the *average kernel value*, the quantity
//! the hashing-based estimators approximate with relative error. A probability density
//! (integrating to 1 over ℝᵈ) is KDE(q) times (πh²)^(−d/2) for the Gaussian kernel and
//! Γ(d/2) / (2π^(d/2) Γ(d) hᵈ) for the Laplacian one. scikit-learn's Gaussian kernel is
//! exp(−r²/(2b²)): its bandwidth b is h/√2 here.
//!
//! - [`ExactKde`]: the reference, a blocked brute-force sum (GEMM for the distances).
//! - [`DynamicKde`]: the dynamic hashing-based structure of Liang, Song, Xu, Yin, Zhuo,
//!   "Dynamic Maintenance of Kernel Density Estimation Data Structure: From Practice to
//!   Theory" (arXiv:2208.03915): insertions, deletions and (1 ± ε) queries robust to
//!   adaptively chosen queries (median over independent copies).

mod dynamic;
mod exact;
mod lsh;
mod plan;

pub use dynamic::{DynamicKde, DynamicKdeParams, KdeEstimate};
pub use exact::{ExactKde, ExactKdeParams};
pub use plan::Plan;

use crate::error::{Result, SeftError};

/// The kernel k(x, q) as a function of the distance, with bandwidth h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// exp(−‖x − q‖²/h²)
    Gaussian,
    /// exp(−‖x − q‖/h)
    Laplacian,
}

impl Kernel {
    /// k at squared distance `dist2`.
    #[inline]
    pub fn value(self, dist2: f32, bandwidth: f32) -> f32 {
        self.exponent(dist2, bandwidth).exp()
    }

    /// ln k at squared distance `dist2` (what brute force exponentiates in bulk).
    #[inline]
    pub fn exponent(self, dist2: f32, bandwidth: f32) -> f32 {
        match self {
            Kernel::Gaussian => -dist2 / (bandwidth * bandwidth),
            Kernel::Laplacian => -dist2.max(0.0).sqrt() / bandwidth,
        }
    }

    /// The distance at which k falls to `value` ∈ (0, 1].
    pub fn radius_at(self, value: f64, bandwidth: f64) -> f64 {
        let log_inverse = (1.0 / value).ln().max(0.0);
        match self {
            Kernel::Gaussian => bandwidth * log_inverse.sqrt(),
            Kernel::Laplacian => bandwidth * log_inverse,
        }
    }
}

impl std::str::FromStr for Kernel {
    type Err = SeftError;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "gaussian" => Ok(Kernel::Gaussian),
            "laplacian" | "exponential" => Ok(Kernel::Laplacian),
            other => Err(SeftError::Invalid(format!(
                "unknown kernel {other:?} (expected gaussian or laplacian)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::validate::check_bandwidth;

    #[test]
    fn kernel_values_and_radii_agree() {
        for kernel in [Kernel::Gaussian, Kernel::Laplacian] {
            let r = kernel.radius_at(0.25, 2.0);
            let k = kernel.value((r * r) as f32, 2.0);
            assert!((k - 0.25).abs() < 1e-5, "{kernel:?}: {k}");
            assert_eq!(kernel.value(0.0, 2.0), 1.0);
        }
        assert!("laplacian".parse::<Kernel>().is_ok());
        assert!("cosine".parse::<Kernel>().is_err());
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(check_bandwidth(bad).is_err(), "{bad}");
        }
    }
}
