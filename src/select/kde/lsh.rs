//! p-stable Euclidean LSH (Datar, Immorlica, Indyk, Mirrokni, SoCG 2004; the "Andoni–Indyk"
//! family of the KDE papers): h(x) = ⌊(a·x + b)/w⌋ with a ~ N(0, I) and b ~ U[0, w).
//! Two points at distance r collide with probability p(w/r) (below), which falls with r;
//! concatenating K hashes raises it to the K-th power.

/// P[h(x) = h(y)] for ‖x − y‖ = `distance` and bucket width `width`:
/// p(t) = 1 − 2Φ(−t) − 2/(√(2π) t) · (1 − e^(−t²/2)), t = w/r.
pub(crate) fn collision_probability(distance: f64, width: f64) -> f64 {
    if distance <= 0.0 {
        return 1.0;
    }
    let t = width / distance;
    let tail = 0.5 * erfc(t / std::f64::consts::SQRT_2); // Φ(−t)
    let p = 1.0
        - 2.0 * tail
        - 2.0 / ((2.0 * std::f64::consts::PI).sqrt() * t) * (1.0 - (-t * t / 2.0).exp());
    p.clamp(0.0, 1.0)
}

/// P[a point at `distance` collides with the query in at least one of `tables` tables of
/// `hashes` concatenated hashes each]: 1 − (1 − p^K)^L.
pub(crate) fn find_probability(distance: f64, width: f64, hashes: usize, tables: usize) -> f64 {
    let collide = collision_probability(distance, width).powi(hashes as i32);
    1.0 - (1.0 - collide).powi(tables as i32)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, |relative error| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Bucket key of K hash values: Σᵢ vᵢ·cᵢ mod 2⁶⁴ with a fixed odd multiplier cᵢ per
/// position. The products are independent, where a chained mix serializes K multiplies per
/// table (a query hashes Σⱼ Lⱼ·Kⱼ values). Two different value tuples share a key only if
/// Σᵢ (uᵢ − vᵢ)·cᵢ ≡ 0 mod 2⁶⁴, ~2⁻⁶⁴ per pair of buckets; a shared key merges two buckets.
#[inline]
pub(crate) fn bucket_key(values: impl Iterator<Item = i32>) -> u64 {
    values.enumerate().fold(0u64, |key, (position, v)| {
        key.wrapping_add((v as i64 as u64).wrapping_mul(key_multiplier(position)))
    })
}

/// cᵢ = splitmix64(i + 1) made odd; the first 16 are tabulated.
#[inline]
fn key_multiplier(position: usize) -> u64 {
    const TABULATED: [u64; 16] = {
        let mut table = [0u64; 16];
        let mut i = 0;
        while i < 16 {
            table[i] = splitmix64(i as u64 + 1) | 1;
            i += 1;
        }
        table
    };
    match TABULATED.get(position) {
        Some(&c) => c,
        None => splitmix64(position as u64 + 1) | 1,
    }
}

const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};

    #[test]
    fn erfc_matches_known_values() {
        for (x, expected) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122),
            (1.0, 0.157_299_207),
            (-1.0, 1.842_700_793),
        ] {
            assert!((erfc(x) - expected).abs() < 1e-6, "erfc({x})");
        }
    }

    #[test]
    fn bucket_keys_of_nearby_tuples_differ() {
        // Every tuple of 1–4 values in −4..=4 (neighbouring buckets, permutations): no two of
        // the same length share a key. (Tuples that differ only by trailing zeros do, and
        // never meet: all of a table's tuples have its K values.)
        let mut keys = std::collections::HashMap::new();
        let range: Vec<i32> = (-4..=4).collect();
        let mut tuples: Vec<Vec<i32>> = vec![vec![]];
        for _ in 0..4 {
            tuples = tuples
                .iter()
                .flat_map(|t| {
                    range.iter().map(move |&v| {
                        let mut t = t.clone();
                        t.push(v);
                        t
                    })
                })
                .collect();
            for t in &tuples {
                if let Some(other) = keys.insert(bucket_key(t.iter().copied()), t.clone()) {
                    assert!(
                        other.len() != t.len() || other == *t,
                        "{other:?} and {t:?} share a key"
                    );
                }
            }
        }
        // Long tuples use computed multipliers past the tabulated 16.
        let long: Vec<i32> = (0..40).collect();
        let mut swapped = long.clone();
        swapped.swap(3, 19);
        assert_ne!(
            bucket_key(long.into_iter()),
            bucket_key(swapped.into_iter())
        );
    }

    #[test]
    fn collision_probability_matches_simulation() {
        let mut rng = StdRng::seed_from_u64(1);
        let (d, width, distance) = (8, 4.0f64, 2.5f64);
        let trials = 40_000;
        let mut hits = 0;
        for _ in 0..trials {
            let a: Vec<f64> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
            let b = rng.random_range(0.0..width);
            // x = 0, y = distance·e₀: a·x = 0, a·y = distance·a₀.
            let hx = (b / width).floor();
            let hy = ((distance * a[0] + b) / width).floor();
            hits += usize::from(hx == hy);
        }
        let empirical = hits as f64 / trials as f64;
        let p = collision_probability(distance, width);
        assert!((empirical - p).abs() < 0.01, "{empirical} vs {p}");
        assert!(collision_probability(1.0, 4.0) > collision_probability(2.0, 4.0));
        assert_eq!(collision_probability(0.0, 1.0), 1.0);
    }
}
