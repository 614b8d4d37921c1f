//! Micro-batches: examples are shuffled with the epoch's seed and cut into micro-batches. With
//! `group_by_length` they are first grouped in pools of 16 micro-batches and sorted by length
//! inside a pool (so padding stays small), and the micro-batches shuffled again. That is
//! faster, but batches then hold examples of similar length, which correlates with content
//! (a reviser's short "keep" targets end up batched together and the gradient flips between
//! batches), so it is off by default, as in transformers. The order is a pure function of
//! (seed, epoch), which is what lets a resumed run continue exactly.

use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};

use crate::model::batch::Batch;
use crate::train::tokenize::TokenizedExample;

const POOL: usize = 16;

/// Micro-batches of example indices for one epoch.
pub fn epoch_batches(
    lengths: &[usize],
    micro_batch: usize,
    seed: u64,
    epoch: usize,
    group_by_length: bool,
) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(&mut rng);
    if !group_by_length {
        return order.chunks(micro_batch).map(<[usize]>::to_vec).collect();
    }
    let mut batches = Vec::new();
    for pool in order.chunks(micro_batch * POOL) {
        let mut pool = pool.to_vec();
        pool.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        batches.extend(pool.chunks(micro_batch).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

/// A right-padded training batch: the model input (all tokens but the last) and the targets
/// (all tokens but the first; -1 where no loss is taken).
pub struct TrainBatch {
    pub input: Batch,
    pub targets: Vec<i64>,
    pub n_targets: usize,
    pub n_tokens: usize,
}

pub fn collate(examples: &[&TokenizedExample], pad_id: u32) -> TrainBatch {
    let width = examples
        .iter()
        .map(|e| e.ids.len())
        .max()
        .unwrap_or(1)
        .saturating_sub(1)
        .max(1);
    let packed = examples.iter().any(|e| !e.boundaries.is_empty());
    // The input is every token but the last; the target of position j is token j + 1.
    let inputs: Vec<&[u32]> = examples
        .iter()
        .map(|e| &e.ids[..e.ids.len().saturating_sub(1)])
        .collect();
    let input = if packed {
        let boundaries: Vec<&[usize]> = examples.iter().map(|e| e.boundaries.as_slice()).collect();
        Batch::packed(&inputs, &boundaries, width, pad_id)
    } else {
        Batch::right_padded(&inputs, width, pad_id)
    };
    let mut targets = Vec::with_capacity(examples.len() * width);
    let mut n_targets = 0;
    for (e, row) in examples.iter().zip(&inputs) {
        let n = row.len();
        for j in 0..width {
            let t = if j < n && e.is_target[j + 1] {
                n_targets += 1;
                e.ids[j + 1] as i64
            } else {
                -1
            };
            targets.push(t);
        }
    }
    TrainBatch {
        input,
        targets,
        n_targets,
        n_tokens: examples.iter().map(|e| e.ids.len()).sum(),
    }
}
