//! A sum tree over non-negative weights (the current D² values) for drawing index i with
//! probability wᵢ / Σw in O(log n), with updates that touch only the changed weights.
//!
//! Leaves are grouped in blocks of [`BLOCK`] weights: the tree sums blocks (f64), and a draw
//! walks the tree to a block and then scans it. Scanning 64 contiguous f32 values costs about
//! what 6 more tree levels of scattered f64 loads would, and the tree is 64× smaller, so it
//! stays in cache. Updated blocks are summed again from their leaves (no drift from repeated
//! `+=`), then their ancestors.

/// Leaves per block.
const BLOCK: usize = 64;

pub(crate) struct SampleTree {
    /// Heap-ordered block sums: node 1 is the root, node `leaf_base + b` is block b.
    nodes: Vec<f64>,
    leaf_base: usize,
    blocks: usize,
    dirty: Vec<bool>,
    dirty_list: Vec<usize>,
}

impl SampleTree {
    /// A tree over `weights` (all must be finite and ≥ 0).
    pub(crate) fn new(weights: &[f32]) -> Self {
        let blocks = weights.len().div_ceil(BLOCK).max(1);
        let leaf_base = blocks.next_power_of_two();
        let mut tree = SampleTree {
            nodes: vec![0.0; 2 * leaf_base],
            leaf_base,
            blocks,
            dirty: vec![false; blocks],
            dirty_list: Vec::new(),
        };
        tree.rebuild(weights);
        tree
    }

    /// Σ of all weights as of the last refresh.
    pub(crate) fn total(&self) -> f64 {
        self.nodes[1]
    }

    /// Records that weight `i` changed; call [`refresh`](Self::refresh) before the next draw.
    #[inline]
    pub(crate) fn mark(&mut self, i: usize) {
        let block = i / BLOCK;
        if !self.dirty[block] {
            self.dirty[block] = true;
            self.dirty_list.push(block);
        }
    }

    /// Re-sums the marked blocks from `weights` and updates their ancestors.
    pub(crate) fn refresh(&mut self, weights: &[f32]) {
        if self.dirty_list.len() * 8 > self.blocks {
            // Many blocks changed: one bottom-up pass is cheaper than many root paths.
            self.dirty_list.clear();
            self.dirty.fill(false);
            self.rebuild(weights);
            return;
        }
        for block in std::mem::take(&mut self.dirty_list) {
            self.dirty[block] = false;
            let mut node = self.leaf_base + block;
            self.nodes[node] = block_sum(weights, block);
            while node > 1 {
                node /= 2;
                self.nodes[node] = self.nodes[2 * node] + self.nodes[2 * node + 1];
            }
        }
    }

    /// The index i with cumulative weight interval containing `target` ∈ [0, total); indices
    /// of zero weight are never returned (falls back to the last positive weight on rounding).
    pub(crate) fn find(&self, weights: &[f32], mut target: f64) -> usize {
        let mut node = 1;
        while node < self.leaf_base {
            let left = self.nodes[2 * node];
            if target < left || self.nodes[2 * node + 1] <= 0.0 {
                node *= 2;
            } else {
                target -= left;
                node = 2 * node + 1;
            }
        }
        let block = (node - self.leaf_base).min(self.blocks - 1);
        let start = block * BLOCK;
        let end = (start + BLOCK).min(weights.len());
        let mut last_positive = None;
        for (i, &w) in weights[start..end].iter().enumerate() {
            if w > 0.0 {
                last_positive = Some(start + i);
                if target < w as f64 {
                    return start + i;
                }
                target -= w as f64;
            }
        }
        last_positive.unwrap_or(start)
    }

    fn rebuild(&mut self, weights: &[f32]) {
        for block in 0..self.blocks {
            self.nodes[self.leaf_base + block] = block_sum(weights, block);
        }
        for node in (1..self.leaf_base).rev() {
            self.nodes[node] = self.nodes[2 * node] + self.nodes[2 * node + 1];
        }
    }

    /// Bytes held (for memory reports).
    #[allow(dead_code)]
    pub(crate) fn memory_bytes(&self) -> usize {
        self.nodes.capacity() * 8 + self.dirty.capacity() + self.dirty_list.capacity() * 8
    }
}

fn block_sum(weights: &[f32], block: usize) -> f64 {
    let start = block * BLOCK;
    let end = (start + BLOCK).min(weights.len());
    weights
        .get(start..end)
        .map_or(0.0, |w| w.iter().map(|&v| v as f64).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_inverts_the_cumulative_sum_after_updates() {
        let mut weights: Vec<f32> = (0..300).map(|i| (i % 7) as f32).collect();
        let mut tree = SampleTree::new(&weights);
        weights[5] = 100.0;
        tree.mark(5);
        weights[299] = 0.5;
        tree.mark(299);
        tree.refresh(&weights);
        let total: f64 = weights.iter().map(|&w| w as f64).sum();
        assert!((tree.total() - total).abs() < 1e-9);
        let mut cumulative = 0.0;
        for (i, &w) in weights.iter().enumerate() {
            if w > 0.0 {
                // The middle of each index's interval maps back to it.
                assert_eq!(tree.find(&weights, cumulative + w as f64 / 2.0), i);
            }
            cumulative += w as f64;
        }
    }

    #[test]
    fn zero_weights_are_never_drawn() {
        let weights = vec![0.0, 0.0, 3.0, 0.0];
        let tree = SampleTree::new(&weights);
        for target in [0.0, 1.0, 2.999, 3.0, 10.0] {
            assert_eq!(tree.find(&weights, target), 2);
        }
    }
}
