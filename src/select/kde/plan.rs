//! The sizes of a [`DynamicKde`](super::DynamicKde), derived from (ε, δ, τ) so that each
//! query's estimate is within (1 ± ε) of KDE(q) with probability ≥ 1 − δ when KDE(q) ≥ τ.
//!
//! Levels: level j ∈ 1..=J holds the points with k(x, q) ∈ (2⁻ʲ, 2⁻ʲ⁺¹]; points below 2⁻ᴶ
//! are ignored, which loses at most 2⁻ᴶ ≤ ετ/4 ≤ εμ/4 (μ = KDE(q)).
//!
//! Per copy and guess μ̂ of μ, level j samples each point with probability
//! pⱼ = min(1, m / (n μ̂ 2ʲ)) and finds the sampled points near q with LSH tables; a point x
//! whose kernel value lies in level b's band counts once, at the nearest level ℓ ≤ b that
//! finds it, as k(x, q) / (n p_ℓ) (see `QueryState::advance`). Error budget, for μ̂ ≤ 2μ:
//! - sampling: given the hash functions, x counts iff u(x) < p_ℓ, and adds at most
//!   k/(n p_b) ≤ 2μ̂/m, so Var ≤ 2μμ̂/m ≤ 4μ²/m, and m = ⌈128/ε²⌉ gives
//!   P(|error| > εμ/2) ≤ 1/8 (Chebyshev);
//! - LSH misses: a level-b point that no level up to b finds is missed, with probability
//!   ≤ 1 − F_b ≤ ε/32 (level b alone: L tables of K concatenated hashes), so the expected
//!   missed mass is ≤ εμ/32 and P(> εμ/4) ≤ 1/8 (Markov). Counted points are weighted by
//!   1/Q_b, Q_b = 1 − Π_{j≤b} (1 − F_j) at their distance (Horvitz–Thompson), which removes
//!   most of the misses' bias and scales the estimate by at most 1/(1 − ε/32): at most
//!   (ε/31)(1 + ε)μ < εμ/4 more error, inside the slack the two bounds above leave. Q_b
//!   treats the levels as independent, but they share projection directions. Given the
//!   projections, their misses are independent (own offsets), and each level's miss
//!   probability grows with every |projection|, so by Harris's inequality the misses are
//!   positively correlated: the true find probability lies in [F_b, Q_b], and the bias the
//!   weights leave is between −(1 − F_b) and 0.
//! - too-large guesses μ̂ > 2μ are accepted (estimate ≥ μ̂) with probability ≤ 4/m.
//!
//! So one copy fails with probability ≤ 1/4; the median of R copies fails only if half of
//! them do, and R is the smallest odd number with P[Binomial(R, 1/4) ≥ R/2] ≤ δ / (number of
//! guesses · net size) (exact binomial tail). The net size is 1 for a fixed query; for
//! adaptively chosen queries the paper takes a union bound over an ε-net of the query region
//! (KDE is Lipschitz), i.e. ln(net size) = O(d log(diameter / (ετh))).
//!
//! An opt-in lower LSH recall r (the find probability at a level's outer radius, instead of
//! 1 − ε/32) takes fewer tables, so a query reads fewer buckets and entries. The weighting
//! keeps the estimate nearly unbiased (up to the levels' correlation above), but misses of
//! nearby points are correlated (they share the query's buckets), so the variance grows in a
//! data-dependent way the bound above does not cover: like a smaller m, it trades the
//! guarantee for speed, and experiments/kde measures it.

use serde::Serialize;

use super::Kernel;
use super::lsh::{collision_probability, find_probability};
use crate::error::{Result, SeftError};

/// Derived sizes (public for reports).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// J, the number of kernel-value levels.
    pub levels: usize,
    /// m, the sample budget per level and copy.
    pub samples_per_level: usize,
    /// R, independent copies whose median is returned.
    pub copies: usize,
    /// Guesses μ̂ = 1, 1/2, …, down to ≤ τ.
    pub guesses: usize,
    /// Per level: distance at which the kernel falls to 2⁻ʲ.
    pub level_radius: Vec<f64>,
    /// Per level: LSH bucket width w.
    pub level_width: Vec<f64>,
    /// Per level: K, hashes concatenated per table.
    pub level_hashes: Vec<usize>,
    /// Per level: L, tables (a point is found if it collides in any).
    pub level_tables: Vec<usize>,
    /// Probability that a point at a level's outer radius collides with the query in at least
    /// one of the level's tables.
    pub lsh_recall: f64,
    /// Per band b: 1/Q_b, Q_b = P[found by levels 1..=b] (levels taken as independent), over
    /// the band, at [`FIND_WEIGHT_STEPS`] + 1 even steps of the distance from the band's
    /// inner radius (that of level b − 1, 0 for b = 1) to its outer one. (Steps in the kernel
    /// value would be too coarse near distance 0, where the Gaussian's distance grows like a
    /// square root of it.)
    #[serde(skip)]
    pub(crate) band_find_weights: Vec<Vec<f32>>,
}

/// Steps of the per-band 1/Q_b tables (a query interpolates linearly between them).
pub(crate) const FIND_WEIGHT_STEPS: usize = 64;

/// What a plan is derived from.
pub(crate) struct PlanInputs {
    pub kernel: Kernel,
    pub bandwidth: f64,
    pub epsilon: f64,
    pub delta: f64,
    pub tau: f64,
    pub copies: Option<usize>,
    pub samples_per_level: Option<usize>,
    pub width_factor: f64,
    pub max_tables: usize,
    pub log_net_size: f64,
    /// Overrides the LSH recall 1 − ε/32.
    pub recall: Option<f64>,
}

impl Plan {
    pub(crate) fn new(inputs: &PlanInputs) -> Result<Plan> {
        let PlanInputs {
            kernel,
            bandwidth,
            epsilon,
            delta,
            tau,
            ..
        } = *inputs;
        let in_open_unit = |v: f64| v > 0.0 && v < 1.0;
        if !(in_open_unit(epsilon) && in_open_unit(delta) && tau > 0.0 && tau <= 1.0) {
            return Err(SeftError::Invalid(format!(
                "need 0 < ε < 1, 0 < δ < 1 and 0 < τ ≤ 1, got ε = {epsilon}, δ = {delta}, τ = {tau}"
            )));
        }
        if !(inputs.width_factor.is_finite() && inputs.width_factor > 0.0) || inputs.max_tables == 0
        {
            return Err(SeftError::Invalid(
                "width factor must be positive and max tables at least 1".into(),
            ));
        }
        if inputs.copies == Some(0) || inputs.samples_per_level == Some(0) {
            return Err(SeftError::Invalid(
                "copies and samples per level must be at least 1".into(),
            ));
        }
        let lsh_recall = inputs.recall.unwrap_or(1.0 - epsilon / 32.0);
        if !(lsh_recall > 0.0 && lsh_recall < 1.0) {
            return Err(SeftError::Invalid(format!(
                "LSH recall must be in (0, 1), got {lsh_recall}"
            )));
        }
        if !(inputs.log_net_size.is_finite() && inputs.log_net_size >= 0.0) {
            return Err(SeftError::Invalid("the net size's log must be ≥ 0".into()));
        }
        let levels = (4.0 / (epsilon * tau)).log2().ceil().max(1.0) as usize;
        let guesses = (1.0 / tau).log2().ceil() as usize + 1;
        let samples_per_level = inputs
            .samples_per_level
            .unwrap_or((128.0 / (epsilon * epsilon)).ceil() as usize);
        let log_target = delta.ln() - (guesses as f64).ln() - inputs.log_net_size;
        let copies = inputs.copies.unwrap_or_else(|| copies_for(log_target));
        // Every level has the same near/far collision probabilities (widths scale with radii).
        let near = collision_probability(1.0, inputs.width_factor);
        let far = collision_probability(2.0, inputs.width_factor);
        let tables_for = |k: usize| -> usize {
            let found = near.powi(k as i32);
            (-(1.0 - lsh_recall).ln() / -(1.0 - found).ln())
                .ceil()
                .max(1.0) as usize
        };
        let mut plan = Plan {
            levels,
            samples_per_level,
            copies,
            guesses,
            level_radius: Vec::with_capacity(levels),
            level_width: Vec::with_capacity(levels),
            level_hashes: Vec::with_capacity(levels),
            level_tables: Vec::with_capacity(levels),
            lsh_recall,
            band_find_weights: Vec::with_capacity(levels),
        };
        for j in 1..=levels {
            let radius = kernel.radius_at(0.5f64.powi(j as i32), bandwidth);
            // Level j keeps at most m/(τ2ʲ) points per table; add hashes until points at twice
            // the level's radius would bring at most m of them, within the table budget.
            let stored_over_budget = 1.0 / (tau * 2f64.powi(j as i32));
            let mut k = 1;
            while stored_over_budget * far.powi(k as i32) > 1.0
                && tables_for(k + 1) <= inputs.max_tables
            {
                k += 1;
            }
            plan.level_radius.push(radius);
            plan.level_width.push(inputs.width_factor * radius);
            plan.level_hashes.push(k);
            plan.level_tables.push(tables_for(k));
        }
        for band in 0..levels {
            let (inner, outer) = plan.band_radii(band);
            let find_weights = (0..=FIND_WEIGHT_STEPS)
                .map(|step| {
                    let t = step as f64 / FIND_WEIGHT_STEPS as f64;
                    let found = plan.found_by_levels_up_to(band, inner + t * (outer - inner));
                    (1.0 / found.max(f64::MIN_POSITIVE)) as f32
                })
                .collect();
            plan.band_find_weights.push(find_weights);
        }
        Ok(plan)
    }

    /// Upper estimate of the bucket entries a bulk build of n points stores: every copy,
    /// level and table keeps each point with probability min(1, 2m/(n μ̂ₘᵢₙ 2ʲ)), μ̂ₘᵢₙ being
    /// the smallest guess. Memory is about 8 bytes per entry plus the points.
    pub fn bucket_entries_bound(&self, n: usize) -> f64 {
        let smallest_guess = 0.5f64.powi(self.guesses as i32 - 1);
        let n = n as f64;
        let per_copy: f64 = (0..self.levels)
            .map(|level| {
                let rate = 2.0 * self.samples_per_level as f64
                    / (n * smallest_guess * 2f64.powi(level as i32 + 1));
                self.level_tables[level] as f64 * n * rate.min(1.0)
            })
            .sum();
        self.copies as f64 * per_copy
    }

    /// Level index `level`'s band of distances (inner, outer): from the previous level's
    /// radius (0 for the first level) to its own.
    #[inline]
    pub(crate) fn band_radii(&self, level: usize) -> (f64, f64) {
        let inner = if level == 0 {
            0.0
        } else {
            self.level_radius[level - 1]
        };
        (inner, self.level_radius[level])
    }

    /// P[some table of levels 1..=band + 1 finds a point at `distance`], taking the levels'
    /// tables as independent: 1 − Πⱼ (1 − Fⱼ). (They share projection directions, which makes
    /// the true probability a little lower, down to the band's own Fⱼ; see the module docs.)
    pub(crate) fn found_by_levels_up_to(&self, band: usize, distance: f64) -> f64 {
        let missed_by_all: f64 = (0..=band)
            .map(|j| {
                1.0 - find_probability(
                    distance,
                    self.level_width[j],
                    self.level_hashes[j],
                    self.level_tables[j],
                )
            })
            .product();
        1.0 - missed_by_all
    }

    pub(crate) fn max_hashes(&self) -> usize {
        self.level_hashes.iter().copied().max().unwrap_or(1)
    }

    pub(crate) fn max_tables(&self) -> usize {
        self.level_tables.iter().copied().max().unwrap_or(1)
    }
}

/// Smallest odd R with ln P[Binomial(R, 1/4) ≥ (R + 1)/2] ≤ `log_target`.
fn copies_for(log_target: f64) -> usize {
    let mut r = 1;
    while log_majority_fails(r) > log_target {
        r += 2;
    }
    r
}

/// ln P[Binomial(r, 1/4) ≥ (r + 1)/2], summed in log space (targets can be e^(−1000)).
fn log_majority_fails(r: usize) -> f64 {
    let (p, q) = (0.25f64, 0.75f64);
    let log_choose = |k: usize| -> f64 {
        (1..=k)
            .map(|i| ((r - k + i) as f64).ln() - (i as f64).ln())
            .sum()
    };
    let terms: Vec<f64> = (r.div_ceil(2)..=r)
        .map(|k| log_choose(k) + k as f64 * p.ln() + (r - k) as f64 * q.ln())
        .collect();
    let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(epsilon: f64, delta: f64, tau: f64) -> PlanInputs {
        PlanInputs {
            kernel: Kernel::Gaussian,
            bandwidth: 1.0,
            epsilon,
            delta,
            tau,
            copies: None,
            samples_per_level: None,
            width_factor: 4.0,
            max_tables: 16,
            log_net_size: 0.0,
            recall: None,
        }
    }

    #[test]
    fn sizes_follow_the_parameters() {
        let plan = Plan::new(&inputs(0.5, 0.1, 0.01)).unwrap();
        assert_eq!(plan.levels, 10); // 2⁻¹⁰ ≤ 0.5·0.01/4
        assert_eq!(plan.guesses, 8); // 1, ½, …, 2⁻⁷ ≤ 0.01
        assert_eq!(plan.samples_per_level, 512);
        assert_eq!(plan.copies % 2, 1);
        assert!(log_majority_fails(plan.copies) <= (0.1f64 / 8.0).ln());
        assert!(log_majority_fails(plan.copies - 2) > (0.1f64 / 8.0).ln());
        // Every level finds its points with probability ≥ 1 − ε/32.
        for j in 0..plan.levels {
            let miss = 1.0
                - find_probability(
                    plan.level_radius[j],
                    plan.level_width[j],
                    plan.level_hashes[j],
                    plan.level_tables[j],
                );
            assert!(miss <= 0.5 / 32.0 + 1e-12, "level {j}: {miss}");
        }
        let stricter = Plan::new(&inputs(0.5, 0.001, 0.01)).unwrap();
        assert!(stricter.copies > plan.copies);
    }

    #[test]
    fn a_lower_recall_takes_fewer_tables_and_weighs_misses() {
        let default = Plan::new(&inputs(0.2, 0.1, 0.01)).unwrap();
        let mut low = inputs(0.2, 0.1, 0.01);
        low.recall = Some(0.8);
        let low = Plan::new(&low).unwrap();
        assert!((default.lsh_recall - (1.0 - 0.2 / 32.0)).abs() < 1e-12);
        assert!(low.level_tables.iter().sum::<usize>() < default.level_tables.iter().sum());
        for plan in [&default, &low] {
            for j in 0..plan.levels {
                let weights = &plan.band_find_weights[j];
                assert_eq!(weights.len(), FIND_WEIGHT_STEPS + 1);
                // Nearer points are found more often: weights rise from ≈ 1 toward 1/recall.
                assert!(weights.windows(2).all(|w| w[0] <= w[1] + 1e-6), "level {j}");
                assert!(weights[0] >= 1.0);
                let outer = *weights.last().unwrap() as f64;
                assert!(outer <= 1.0 / plan.lsh_recall + 1e-4, "level {j}: {outer}");
            }
        }
        let mut bad = inputs(0.2, 0.1, 0.01);
        for recall in [0.0, 1.0, f64::NAN] {
            bad.recall = Some(recall);
            assert!(Plan::new(&bad).is_err(), "{recall}");
        }
    }

    #[test]
    fn bad_parameters_are_errors() {
        for (e, d, t) in [
            (0.0, 0.1, 0.1),
            (1.0, 0.1, 0.1),
            (0.1, 0.0, 0.1),
            (0.1, 0.1, 0.0),
            (0.1, 0.1, 2.0),
        ] {
            assert!(Plan::new(&inputs(e, d, t)).is_err(), "{e} {d} {t}");
        }
        let mut zero_copies = inputs(0.1, 0.1, 0.1);
        zero_copies.copies = Some(0);
        assert!(Plan::new(&zero_copies).is_err());
    }
}
