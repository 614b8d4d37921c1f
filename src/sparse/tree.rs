//! Firing trees: for every training point x_i, a max-tree over the m inner products
//! ⟨w_r, x_i⟩, so the neurons with ⟨w_r, x_i⟩ > b are found without looking at the others.
//!
//! Each tree is a 16-ary max-tree stored level by level in one flat array per point: level 0
//! holds the m values, entry j of level l + 1 is the max of the 16 entries 16j..16j + 16 of
//! level l, up to a top level of at most 16 entries; every level is padded to whole groups of
//! 16 with −∞. A query compares a whole group with b at once (one SIMD compare and a bit
//! mask) and descends only into the entries above b: O(k · 16 · log₁₆ m) for k firing
//! neurons, with far fewer unpredictable branches than a binary tree. An update rewrites the
//! changed values and walks up from each, stopping where a max is unchanged; when that would
//! cost more than rebuilding the point's tree (O(m)), it rebuilds. Comparisons are strict
//! (`value > b`): a value equal to b does not fire, as σ(b) = 0 and the dense paths use the
//! same test.

use rayon::prelude::*;

use super::products::PointMatrix;
use crate::error::{Result, SeftError};
use crate::numeric::validate::{check_finite, check_shape};

/// Children per tree node (and values per leaf group).
pub const FANOUT: usize = 16;

/// Where each level of a point's tree starts in its flat array.
#[derive(Clone, Debug)]
struct Levels {
    /// Start of each level; level 0 holds the m values.
    offsets: Vec<usize>,
    /// Entries of each level before padding.
    lens: Vec<usize>,
    /// Floats per point: all levels, padded to whole groups.
    per_point: usize,
}

impl Levels {
    fn new(m: usize) -> Self {
        let (mut offsets, mut lens, mut start, mut len) = (Vec::new(), Vec::new(), 0, m);
        loop {
            offsets.push(start);
            lens.push(len);
            start += len.div_ceil(FANOUT) * FANOUT;
            if len <= FANOUT {
                break;
            }
            len = len.div_ceil(FANOUT);
        }
        Levels {
            offsets,
            lens,
            per_point: start,
        }
    }

    fn top(&self) -> usize {
        self.lens.len() - 1
    }

    /// The 16 entries of `group` at `level`.
    fn group<'a>(&self, tree: &'a [f32], level: usize, group: usize) -> &'a [f32; FANOUT] {
        let start = self.offsets[level] + group * FANOUT;
        tree[start..start + FANOUT].try_into().expect("whole group")
    }
}

/// Neurons whose products one gemm recomputes after a step: 2048 rows of d ≤ 512 keep the
/// gathered weights at 4 MB and the products at 1 MB for 128 points, instead of buffers that
/// grow with m (first-touching 94 MB of fresh pages cost 0.07–0.45 s on this VM, more than
/// a dense step at d 512, m 64k, n 128).
pub(crate) const NEURON_BLOCK: usize = 2048;

/// The n firing trees of a training set, with a copy of the points to recompute products.
#[derive(Clone, Debug)]
pub struct FiringTrees {
    points: PointMatrix,
    n: usize,
    m: usize,
    d: usize,
    levels: Levels,
    /// `n × levels.per_point`: each point's tree, level 0 first.
    trees: Vec<f32>,
    /// Scratch for updates: gathered weight rows and their products.
    rows: Vec<f32>,
    products: Vec<f32>,
}

impl FiringTrees {
    /// Builds the trees of `x` (`n × d`, row-major) against the neurons `w` (`m × d`), from
    /// one matrix multiply X·Wᵀ (one gemm call per 512 of depth d).
    pub fn build(x: &[f32], n: usize, d: usize, w: &[f32], m: usize) -> Result<Self> {
        check_shape("x", x.len(), n, d, "points")?;
        check_shape("w", w.len(), m, d, "neurons")?;
        check_finite("x", x)?;
        check_finite("w", w)?;
        let points = PointMatrix::new(x, n, d);
        let (mut rows, mut products) = (Vec::new(), Vec::new());
        let columns = points.all_products(w, m, &mut rows, &mut products);
        Ok(Self::from_products(
            points, n, m, d, &products, columns, rows,
        ))
    }

    /// Trees over already computed products (`products[i · columns + r]`, canonical layout),
    /// stored in `storage` (a spare buffer, any content: reusing one saves paging in memory).
    pub(crate) fn from_products(
        points: PointMatrix,
        n: usize,
        m: usize,
        d: usize,
        products: &[f32],
        columns: usize,
        storage: Vec<f32>,
    ) -> Self {
        let levels = Levels::new(m);
        let mut trees = storage;
        trees.clear();
        trees.resize(n * levels.per_point, f32::NEG_INFINITY);
        trees
            .par_chunks_mut(levels.per_point)
            .enumerate()
            .for_each(|(i, tree)| {
                tree[..m].copy_from_slice(&products[i * columns..i * columns + m]);
                rebuild(tree, &levels);
            });
        FiringTrees {
            points,
            n,
            m,
            d,
            levels,
            trees,
            rows: Vec::new(),
            products: Vec::new(),
        }
    }

    /// Number of training points (trees).
    pub fn points(&self) -> usize {
        self.n
    }

    /// Number of neurons (values per tree).
    pub fn neurons(&self) -> usize {
        self.m
    }

    /// The neurons with ⟨w_r, x_i⟩ > b for point i, in increasing order.
    pub fn query(&self, point: usize, b: f32) -> Result<Vec<u32>> {
        let mut firing = Vec::new();
        self.for_each_firing(point, b, |r, _| firing.push(r))?;
        Ok(firing)
    }

    /// Calls `f(r, ⟨w_r, x_i⟩)` for every neuron r with ⟨w_r, x_i⟩ > b, in increasing r.
    pub fn for_each_firing(&self, point: usize, b: f32, f: impl FnMut(u32, f32)) -> Result<()> {
        self.check_point(point)?;
        if b.is_nan() {
            return Err(SeftError::Invalid("firing threshold b is NaN".into()));
        }
        self.visit_firing(point, b, f);
        Ok(())
    }

    /// The m inner products ⟨w_r, x_i⟩ of point i.
    pub fn values(&self, point: usize) -> Result<&[f32]> {
        self.check_point(point)?;
        Ok(self.row(point))
    }

    /// Recomputes ⟨w_r, x_i⟩ for the `changed` neurons (any order, repeats allowed) from the
    /// new weights `w` (`m × d`) with gemms over those neurons, then fixes their tree paths.
    pub fn update(&mut self, changed: &[u32], w: &[f32]) -> Result<()> {
        check_shape("w", w.len(), self.m, self.d, "neurons")?;
        let mut changed = changed.to_vec();
        changed.sort_unstable();
        changed.dedup();
        if let Some(&r) = changed.iter().find(|&&r| r as usize >= self.m) {
            return Err(SeftError::Invalid(format!(
                "changed neuron {r} is out of range: the trees hold {} neurons",
                self.m
            )));
        }
        for &r in &changed {
            let row = &w[r as usize * self.d..(r as usize + 1) * self.d];
            check_finite(&format!("w row {r}"), row)?;
        }
        self.update_sorted(&changed, w);
        Ok(())
    }

    /// [`FiringTrees::update`] for sorted, distinct, in-range `changed` neurons: gathers
    /// their rows [`NEURON_BLOCK`] at a time, so the scratch stays a few MB at any m.
    pub(crate) fn update_sorted(&mut self, changed: &[u32], w: &[f32]) {
        let mut rows = std::mem::take(&mut self.rows);
        for block in changed.chunks(NEURON_BLOCK) {
            let columns = self.points.gather(w, block, &mut rows);
            self.set_values(block, &rows, columns);
        }
        self.rows = rows;
        self.fix_levels(changed);
    }

    /// Writes the products of the `neurons` (sorted, distinct), whose new weights are the
    /// first rows of `rows` (canonical layout, `columns` rows), into the trees' leaves; the
    /// levels above stay stale until [`FiringTrees::fix_levels`].
    pub(crate) fn set_values(&mut self, neurons: &[u32], rows: &[f32], columns: usize) {
        if neurons.is_empty() {
            return;
        }
        let mut products = std::mem::take(&mut self.products);
        self.points.products(rows, columns, &mut products);
        self.trees
            .par_chunks_mut(self.levels.per_point)
            .enumerate()
            .for_each(|(i, tree)| {
                let fresh = &products[i * columns..i * columns + neurons.len()];
                for (&r, &v) in neurons.iter().zip(fresh) {
                    tree[r as usize] = v;
                }
            });
        self.products = products;
    }

    /// Brings every level above the leaves up to date after [`FiringTrees::set_values`]
    /// changed the sorted, distinct `changed` leaves: walks their paths, or rebuilds whole
    /// trees where that is cheaper.
    pub(crate) fn fix_levels(&mut self, changed: &[u32]) {
        if changed.is_empty() {
            return;
        }
        let levels = &self.levels;
        let walk_cost = changed.len() * FANOUT * levels.top().max(1);
        let incremental = walk_cost < levels.per_point;
        self.trees
            .par_chunks_mut(levels.per_point)
            .for_each(|tree| {
                if incremental {
                    fix_paths(tree, levels, changed);
                } else {
                    rebuild(tree, levels);
                }
            });
    }

    /// The points matrix the trees were built from.
    pub(crate) fn point_matrix(&self) -> &PointMatrix {
        &self.points
    }

    /// Point i's m products (unchecked index).
    pub(crate) fn row(&self, point: usize) -> &[f32] {
        let start = point * self.levels.per_point;
        &self.trees[start..start + self.m]
    }

    /// Visits point i's firing neurons in increasing order (unchecked index, b not NaN).
    pub(crate) fn visit_firing(&self, point: usize, b: f32, mut f: impl FnMut(u32, f32)) {
        let per_point = self.levels.per_point;
        let tree = &self.trees[point * per_point..(point + 1) * per_point];
        visit_group(tree, &self.levels, self.levels.top(), 0, b, &mut f);
    }

    fn check_point(&self, point: usize) -> Result<()> {
        if point >= self.n {
            return Err(SeftError::Invalid(format!(
                "point {point} is out of range: the trees hold {} points",
                self.n
            )));
        }
        Ok(())
    }
}

/// Bit j set where `group[j] > b` (compiles to a vector compare and a mask extraction).
fn above(group: &[f32; FANOUT], b: f32) -> u32 {
    group
        .iter()
        .enumerate()
        .fold(0, |mask, (j, &v)| mask | (u32::from(v > b) << j))
}

fn group_max(group: &[f32; FANOUT]) -> f32 {
    group.iter().fold(f32::NEG_INFINITY, |max, &v| max.max(v))
}

/// Reports the entries above b in `group` of `level`, descending into their child groups.
fn visit_group(
    tree: &[f32],
    levels: &Levels,
    level: usize,
    group: usize,
    b: f32,
    f: &mut impl FnMut(u32, f32),
) {
    let entries = levels.group(tree, level, group);
    let mut mask = above(entries, b);
    while mask != 0 {
        let j = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        let child = group * FANOUT + j;
        if level == 0 {
            f(child as u32, entries[j]);
        } else {
            visit_group(tree, levels, level - 1, child, b, f);
        }
    }
}

/// Recomputes every level above the values of one point's tree.
fn rebuild(tree: &mut [f32], levels: &Levels) {
    for level in 1..=levels.top() {
        for entry in 0..levels.lens[level] {
            let max = group_max(levels.group(tree, level - 1, entry));
            tree[levels.offsets[level] + entry] = max;
        }
    }
}

/// Walks up from the sorted `changed` values, stopping where an entry keeps its value: the
/// levels above saw the same maximum before.
fn fix_paths(tree: &mut [f32], levels: &Levels, changed: &[u32]) {
    let mut previous_group = usize::MAX;
    for &r in changed {
        let mut entry = r as usize;
        if entry / FANOUT == previous_group {
            continue;
        }
        previous_group = entry / FANOUT;
        for level in 1..=levels.top() {
            let group = entry / FANOUT;
            let max = group_max(levels.group(tree, level - 1, group));
            let slot = &mut tree[levels.offsets[level] + group];
            if slot.to_bits() == max.to_bits() {
                break;
            }
            *slot = max;
            entry = group;
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;
    use crate::sparse::random::gaussian_vec;

    fn setup(n: usize, d: usize, m: usize, seed: u64) -> (Vec<f32>, Vec<f32>, FiringTrees) {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = gaussian_vec(&mut rng, n * d);
        let w = gaussian_vec(&mut rng, m * d);
        let trees = FiringTrees::build(&x, n, d, &w, m).unwrap();
        (x, w, trees)
    }

    fn brute_force(trees: &FiringTrees, point: usize, b: f32) -> Vec<u32> {
        let values = trees.values(point).unwrap();
        (0..values.len() as u32)
            .filter(|&r| values[r as usize] > b)
            .collect()
    }

    fn assert_queries_match(trees: &FiringTrees, b: f32) {
        for i in 0..trees.points() {
            assert_eq!(
                trees.query(i, b).unwrap(),
                brute_force(trees, i, b),
                "point {i}, b {b}"
            );
        }
    }

    /// The threshold leaving a `sparsity` fraction of all products at or below it.
    fn quantile(trees: &FiringTrees, sparsity: f64) -> f32 {
        let mut all: Vec<f32> = (0..trees.points())
            .flat_map(|i| trees.values(i).unwrap().to_vec())
            .collect();
        all.sort_by(f32::total_cmp);
        all[((sparsity * all.len() as f64) as usize).min(all.len() - 1)]
    }

    #[test]
    fn values_are_the_inner_products() {
        let (n, d, m) = (3, 40, 70);
        let (x, w, trees) = setup(n, d, m, 1);
        for i in 0..n {
            for r in 0..m {
                let exact: f32 = (0..d).map(|j| x[i * d + j] * w[r * d + j]).sum();
                let stored = trees.values(i).unwrap()[r];
                assert!(
                    (stored - exact).abs() < 1e-4,
                    "i {i} r {r}: {stored} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn queries_match_brute_force_at_each_sparsity() {
        let (_, _, trees) = setup(5, 24, 3000, 2);
        for sparsity in [0.5, 0.9, 0.99, 0.999] {
            let b = quantile(&trees, sparsity);
            assert_queries_match(&trees, b);
            let fired: usize = (0..5).map(|i| trees.query(i, b).unwrap().len()).sum();
            let expected = (1.0 - sparsity) * 5.0 * 3000.0;
            assert!(
                (fired as f64 - expected).abs() <= 1.0 + 0.01 * expected,
                "{fired} vs {expected}"
            );
        }
    }

    #[test]
    fn edge_shapes_and_extreme_thresholds() {
        for (n, d, m) in [
            (1, 1, 1),
            (1, 3, 16),
            (3, 2, 17),
            (2, 5, 1),
            (4, 7, 33),
            (1, 9, 256),
            (2, 4, 257),
            (1, 3, 4097),
        ] {
            let (_, _, trees) = setup(n, d, m, 3);
            for b in [f32::NEG_INFINITY, -1.0, 0.0, 0.5, f32::MAX, f32::INFINITY] {
                assert_queries_match(&trees, b);
            }
            assert_eq!(trees.query(0, f32::NEG_INFINITY).unwrap().len(), m);
            assert!(trees.query(0, f32::INFINITY).unwrap().is_empty());
        }
    }

    #[test]
    fn a_value_equal_to_b_does_not_fire() {
        let (_, _, trees) = setup(2, 8, 50, 4);
        let tie = trees.values(1).unwrap()[23];
        assert!(!trees.query(1, tie).unwrap().contains(&23));
        assert!(trees.query(1, tie.next_down()).unwrap().contains(&23));
        assert_queries_match(&trees, tie);
    }

    #[test]
    fn update_equals_a_fresh_build() {
        let (n, d, m) = (4, 10, 1000);
        let (x, mut w, mut trees) = setup(n, d, m, 5);
        let mut rng = StdRng::seed_from_u64(6);
        for changes in [0, 1, 5, 200, 1000] {
            let mut changed: Vec<u32> = (0..changes)
                .map(|_| rng.random_range(0..m as u32))
                .collect();
            changed.extend(changed.first().copied());
            for &r in &changed {
                for v in &mut w[r as usize * d..(r as usize + 1) * d] {
                    *v += rng.random_range(-0.5..0.5);
                }
            }
            trees.update(&changed, &w).unwrap();
            let fresh = FiringTrees::build(&x, n, d, &w, m).unwrap();
            assert_eq!(bits(&trees.trees), bits(&fresh.trees), "{changes} changes");
            assert_queries_match(&trees, quantile(&trees, 0.95));
        }
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn bad_input_is_an_error() {
        let (x, w) = (vec![0.5; 6], vec![0.25; 9]);
        let cases = [
            FiringTrees::build(&x, 2, 3, &w, 2).err(),
            FiringTrees::build(&x, 3, 3, &w, 3).err(),
            FiringTrees::build(&[], 0, 3, &w, 3).err(),
            FiringTrees::build(&x, 2, 3, &[], 0).err(),
            FiringTrees::build(&[], 2, 0, &[], 3).err(),
            FiringTrees::build(&[0.5, f32::NAN, 0.5, 0.5, 0.5, 0.5], 2, 3, &w, 3).err(),
            FiringTrees::build(&x, 2, 3, &[f32::INFINITY; 9], 3).err(),
        ];
        for (case, error) in cases.into_iter().enumerate() {
            let message = error
                .unwrap_or_else(|| panic!("case {case} accepted"))
                .to_string();
            assert!(!message.is_empty() && !message.contains('\n'), "{message}");
        }
        let mut trees = FiringTrees::build(&x, 2, 3, &w, 3).unwrap();
        assert!(trees.query(2, 0.0).is_err());
        assert!(trees.query(0, f32::NAN).is_err());
        assert!(trees.update(&[3], &w).is_err());
        assert!(trees.update(&[0], &w[..6]).is_err());
        let mut bad = w.clone();
        bad[4] = f32::NAN;
        assert!(trees.update(&[1], &bad).is_err());
        assert!(trees.update(&[0], &bad).is_ok(), "row 0 is finite");
    }
}
