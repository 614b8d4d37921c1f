//! The firing sets of one iteration in both directions: per point, the neurons that fire
//! (for the forward pass), and per neuron of their union, the points that fire it (for the
//! weight gradient). Buffers are kept across iterations so training does not allocate.

use rayon::prelude::*;

use super::tree::FiringTrees;
use crate::error::{Result, SeftError};

const NOT_IN_UNION: u32 = u32::MAX;

/// Firing neurons per point, their union, and the points firing each union neuron.
#[derive(Clone, Debug, Default)]
pub struct FiringSets {
    neurons: usize,
    /// Per point, the firing neurons in increasing order.
    per_point: Vec<Vec<u32>>,
    /// Neurons firing on at least one point, in increasing order.
    union: Vec<u32>,
    /// `points[offsets[s]..offsets[s + 1]]`: the points firing `union[s]`, increasing.
    offsets: Vec<usize>,
    points: Vec<u32>,
    /// Scratch: slot of a neuron in `union` while indexing, [`NOT_IN_UNION`] otherwise.
    slot_of: Vec<u32>,
    /// Scratch: bit r set while indexing if neuron r fired on some point.
    seen: Vec<u64>,
    cursor: Vec<usize>,
}

impl FiringSets {
    /// Empty sets for `n` points and `m` neurons.
    pub fn new(n: usize, m: usize) -> Self {
        FiringSets {
            neurons: m,
            per_point: vec![Vec::new(); n],
            slot_of: vec![NOT_IN_UNION; m],
            seen: vec![0; m.div_ceil(64)],
            ..Self::default()
        }
    }

    /// Queries every tree at threshold b (in parallel over points) and indexes the result.
    pub fn collect(&mut self, trees: &FiringTrees, b: f32) -> Result<()> {
        if trees.points() != self.per_point.len() || trees.neurons() != self.neurons {
            return Err(SeftError::Invalid(format!(
                "firing sets for {} points × {} neurons cannot hold trees of {} × {}",
                self.per_point.len(),
                self.neurons,
                trees.points(),
                trees.neurons()
            )));
        }
        if b.is_nan() {
            return Err(SeftError::Invalid("firing threshold b is NaN".into()));
        }
        self.per_point
            .par_iter_mut()
            .enumerate()
            .for_each(|(i, firing)| {
                firing.clear();
                trees.visit_firing(i, b, |r, _| firing.push(r));
            });
        self.index();
        Ok(())
    }

    /// The neurons firing on point i, in increasing order.
    pub fn neurons_of_point(&self, point: usize) -> Result<&[u32]> {
        self.per_point.get(point).map(Vec::as_slice).ok_or_else(|| {
            SeftError::Invalid(format!(
                "point {point} is out of range: the sets hold {} points",
                self.per_point.len()
            ))
        })
    }

    /// The neurons firing on at least one point, in increasing order.
    pub fn union(&self) -> &[u32] {
        &self.union
    }

    /// The points firing neuron `union()[slot]`, in increasing order.
    pub fn points_of_slot(&self, slot: usize) -> Result<&[u32]> {
        if slot >= self.union.len() {
            return Err(SeftError::Invalid(format!(
                "slot {slot} is out of range: the union holds {} neurons",
                self.union.len()
            )));
        }
        Ok(self.slot_points(slot))
    }

    /// [`FiringSets::points_of_slot`] without the range check.
    pub(crate) fn slot_points(&self, slot: usize) -> &[u32] {
        &self.points[self.offsets[slot]..self.offsets[slot + 1]]
    }

    /// Mean over points of the firing fraction k_i / m.
    pub fn firing_fraction(&self) -> f64 {
        let pairs: usize = self.per_point.iter().map(Vec::len).sum();
        pairs as f64 / (self.per_point.len() * self.neurons).max(1) as f64
    }

    /// Per-point lists to fill directly (then call [`FiringSets::index`]).
    pub(crate) fn per_point_mut(&mut self) -> &mut [Vec<u32>] {
        &mut self.per_point
    }

    /// Builds the union and the per-neuron view from the per-point lists, in O(pairs + m/64).
    pub(crate) fn index(&mut self) {
        for firing in &self.per_point {
            for &r in firing {
                self.seen[r as usize / 64] |= 1 << (r % 64);
            }
        }
        self.union.clear();
        for (word_index, word) in self.seen.iter_mut().enumerate() {
            let mut bits = std::mem::take(word);
            while bits != 0 {
                self.union
                    .push((word_index * 64) as u32 + bits.trailing_zeros());
                bits &= bits - 1;
            }
        }
        for (slot, &r) in self.union.iter().enumerate() {
            self.slot_of[r as usize] = slot as u32;
        }
        self.offsets.clear();
        self.offsets.resize(self.union.len() + 1, 0);
        for firing in &self.per_point {
            for &r in firing {
                self.offsets[self.slot_of[r as usize] as usize + 1] += 1;
            }
        }
        for slot in 0..self.union.len() {
            self.offsets[slot + 1] += self.offsets[slot];
        }
        self.points.resize(self.offsets[self.union.len()], 0);
        self.cursor.clear();
        self.cursor
            .extend_from_slice(&self.offsets[..self.union.len()]);
        for (i, firing) in self.per_point.iter().enumerate() {
            for &r in firing {
                let slot = self.slot_of[r as usize] as usize;
                self.points[self.cursor[slot]] = i as u32;
                self.cursor[slot] += 1;
            }
        }
        for &r in &self.union {
            self.slot_of[r as usize] = NOT_IN_UNION;
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;
    use crate::sparse::random::gaussian_vec;

    #[test]
    fn collect_matches_the_trees_in_both_directions() {
        let (n, d, m, b) = (6, 5, 700, 1.5);
        let mut rng = StdRng::seed_from_u64(1);
        let x = gaussian_vec(&mut rng, n * d);
        let w = gaussian_vec(&mut rng, m * d);
        let trees = FiringTrees::build(&x, n, d, &w, m).unwrap();
        let mut sets = FiringSets::new(n, m);
        sets.collect(&trees, b).unwrap();
        for i in 0..n {
            assert_eq!(
                sets.neurons_of_point(i).unwrap(),
                trees.query(i, b).unwrap()
            );
        }
        let mut slots = 0;
        for r in 0..m as u32 {
            let points: Vec<u32> = (0..n as u32)
                .filter(|&i| trees.values(i as usize).unwrap()[r as usize] > b)
                .collect();
            if let Ok(slot) = sets.union().binary_search(&r) {
                assert_eq!(sets.points_of_slot(slot).unwrap(), points);
                slots += 1;
            } else {
                assert!(points.is_empty());
            }
        }
        assert_eq!(slots, sets.union().len());
        assert!(sets.collect(&trees, f32::NAN).is_err());
        assert!(FiringSets::new(n, m + 1).collect(&trees, b).is_err());
    }

    #[test]
    fn index_inverts_the_per_point_lists() {
        let mut sets = FiringSets::new(3, 10);
        sets.per_point_mut()[0].extend([1, 4, 9]);
        sets.per_point_mut()[2].extend([0, 4]);
        sets.index();
        assert_eq!(sets.union(), &[0, 1, 4, 9]);
        let by_neuron: Vec<&[u32]> = (0..4).map(|s| sets.points_of_slot(s).unwrap()).collect();
        assert_eq!(by_neuron, vec![&[2][..], &[0], &[0, 2], &[0]]);
        assert_eq!(sets.neurons_of_point(2).unwrap(), &[0, 4]);
        assert!(sets.points_of_slot(4).is_err() && sets.neurons_of_point(3).is_err());
        assert!((sets.firing_fraction() - 5.0 / 30.0).abs() < 1e-12);
        for list in sets.per_point_mut() {
            list.clear();
        }
        sets.index();
        assert!(sets.union().is_empty());
    }
}
