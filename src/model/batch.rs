//! [`Batch`]: token ids as the decoder consumes them, and the one place batches are built:
//! left-padded prompts for scoring next tokens, right-padded (optionally packed) rows for training and
//! embedding, single sequences and prefill chunks.

/// Token ids of a batch with per-row validity, as the model consumes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// [batch][seq] token ids (padding positions hold any id).
    pub ids: Vec<Vec<u32>>,
    /// [batch][past + seq]: whether each position (cached and new) is a real token.
    pub valid: Vec<Vec<bool>>,
    /// [batch][seq] rotary positions of the new tokens.
    pub positions: Vec<Vec<usize>>,
    /// [batch][past + seq] segment ids of packed rows: attention never crosses segments.
    pub segments: Option<Vec<Vec<u32>>>,
}

impl Batch {
    /// One sequence, no padding.
    pub fn single(ids: &[u32]) -> Self {
        let n = ids.len();
        Batch {
            ids: vec![ids.to_vec()],
            valid: vec![vec![true; n]],
            positions: vec![(0..n).collect()],
            segments: None,
        }
    }

    /// Prompts left-padded with `pad` to the longest, padding masked out, rotary positions
    /// counted per row from its first real token (as generation needs).
    pub fn left_padded(prompts: &[Vec<u32>], pad: u32) -> Self {
        let max_len = prompts.iter().map(Vec::len).max().unwrap_or(0);
        Batch {
            ids: prompts
                .iter()
                .map(|p| {
                    std::iter::repeat_n(pad, max_len - p.len())
                        .chain(p.iter().copied())
                        .collect()
                })
                .collect(),
            valid: prompts
                .iter()
                .map(|p| (0..max_len).map(|j| j >= max_len - p.len()).collect())
                .collect(),
            positions: prompts
                .iter()
                .map(|p| {
                    (0..max_len)
                        .map(|j| (j + p.len()).saturating_sub(max_len))
                        .collect()
                })
                .collect(),
            segments: None,
        }
    }

    /// Rows right-padded with `pad` to `width` tokens, padding masked out, positions from 0.
    pub fn right_padded(rows: &[&[u32]], width: usize, pad: u32) -> Self {
        Batch {
            ids: rows
                .iter()
                .map(|r| {
                    let mut row = r.to_vec();
                    row.resize(width, pad);
                    row
                })
                .collect(),
            valid: rows
                .iter()
                .map(|r| (0..width).map(|j| j < r.len()).collect())
                .collect(),
            positions: rows.iter().map(|_| (0..width).collect()).collect(),
            segments: None,
        }
    }

    /// [`Self::right_padded`] rows that each pack several sequences: at every index of
    /// `boundaries[r]` a new sequence starts in row r, its positions restart at 0 and it
    /// attends only within itself.
    pub fn packed(rows: &[&[u32]], boundaries: &[&[usize]], width: usize, pad: u32) -> Self {
        let mut batch = Self::right_padded(rows, width, pad);
        let mut segments = Vec::with_capacity(rows.len());
        for (positions, starts) in batch.positions.iter_mut().zip(boundaries) {
            let (mut segment, mut start) = (0u32, 0usize);
            let mut row = Vec::with_capacity(width);
            for (j, position) in positions.iter_mut().enumerate() {
                if starts.contains(&j) {
                    segment += 1;
                    start = j;
                }
                *position = j - start;
                row.push(segment);
            }
            segments.push(row);
        }
        batch.segments = Some(segments);
        batch
    }

    /// Tokens `start..end` of every row, after `past` cached positions.
    pub fn chunk(&self, start: usize, end: usize, past: usize) -> Self {
        Batch {
            ids: self.ids.iter().map(|r| r[start..end].to_vec()).collect(),
            valid: self
                .valid
                .iter()
                .map(|r| r[..past + end].to_vec())
                .collect(),
            positions: self
                .positions
                .iter()
                .map(|r| r[start..end].to_vec())
                .collect(),
            segments: self
                .segments
                .as_ref()
                .map(|s| s.iter().map(|r| r[..past + end].to_vec()).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_padding_masks_the_pads_and_counts_positions_from_the_first_token() {
        let b = Batch::left_padded(&[vec![5, 6, 7], vec![9]], 0);
        assert_eq!(b.ids, [vec![5, 6, 7], vec![0, 0, 9]]);
        assert_eq!(b.valid[1], [false, false, true]);
        assert_eq!(b.positions, [vec![0, 1, 2], vec![0, 0, 0]]);
    }

    #[test]
    fn packed_rows_restart_positions_and_segments_at_each_boundary() {
        let b = Batch::packed(&[&[1, 2, 3, 4], &[5]], &[&[2], &[]], 4, 0);
        assert_eq!(b.positions, [vec![0, 1, 0, 1], vec![0, 1, 2, 3]]);
        assert_eq!(b.segments, Some(vec![vec![0, 0, 1, 1], vec![0, 0, 0, 0]]));
        assert_eq!(b.valid[1], [true, false, false, false]);
        assert_eq!(b.ids[1], [5, 0, 0, 0]);
    }
}
