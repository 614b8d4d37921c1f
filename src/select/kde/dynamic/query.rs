//! One query: the density guesses it tries, the passes that read the buckets, and the
//! per-thread scratch it reuses.

use super::*;

/// Which density guesses each pass of a query reads together, and their rates.
///
/// Reading a guess visits every bucket once whatever it reads (about as costly as reading
/// a few dozen entries), while the entries a guess reads double from one guess to the next.
/// The first guesses read almost nothing, so a pass takes in the next guess while the
/// entries it is expected to read stay within [`READ_AHEAD_SAMPLES`]·m per copy; the last
/// guesses before the answer, which read the most, get a pass each. The expected count uses
/// the bucket lengths: priorities are uniform, so a cut at rate p reads about
/// held·p/(storage rate) of a bucket's entries.
pub(super) struct GuessSchedule<'a> {
    pub(super) plan: &'a Plan,
    pub(super) n: f64,
    /// Per level: entries held in the query's buckets (all copies) over their storage rate.
    pub(super) held_per_rate: Vec<f64>,
    /// Expected entries one pass may read, all copies together.
    pub(super) budget: f64,
    /// [guess][level], for the guesses reached so far.
    pub(super) rates: Vec<Rate>,
}

impl<'a> GuessSchedule<'a> {
    pub(super) fn new(kde: &'a DynamicKde, states: &[QueryState]) -> Self {
        let plan = &kde.plan;
        let n_floor = storage_floor(kde.storage_n);
        let mut held_per_rate = vec![0.0f64; plan.levels];
        for state in states {
            let mut buckets = state.buckets.iter();
            for (held, &tables) in held_per_rate.iter_mut().zip(&plan.level_tables) {
                let entries: usize = buckets.by_ref().take(tables).map(|b| b.len()).sum();
                *held += entries as f64;
            }
        }
        for (level, held) in held_per_rate.iter_mut().enumerate() {
            *held /= storage_rate(plan, level, n_floor, kde.tau).rate;
        }
        GuessSchedule {
            plan,
            n: kde.len as f64,
            held_per_rate,
            budget: kde.read_ahead_samples * plan.samples_per_level as f64 * states.len() as f64,
            rates: Vec::with_capacity(plan.guesses * plan.levels),
        }
    }

    /// The rates of guesses `guesses`, [guess][level] (computed by [`Self::pass_end`]).
    pub(super) fn rates(&self, guesses: std::ops::Range<usize>) -> &[Rate] {
        let levels = self.plan.levels;
        &self.rates[guesses.start * levels..guesses.end * levels]
    }

    /// The last guess of the pass starting at guess `first`, after `read` entries.
    pub(super) fn pass_end(&mut self, first: usize, read: usize) -> usize {
        self.reach(first);
        let mut last = first;
        while last + 1 < self.plan.guesses {
            self.reach(last + 1);
            let expected: f64 = self
                .rates(last + 1..last + 2)
                .iter()
                .zip(&self.held_per_rate)
                .map(|(rate, &per_rate)| per_rate * rate.rate)
                .sum();
            if expected - read as f64 > self.budget {
                break;
            }
            last += 1;
        }
        last
    }

    /// μ̂ of guess `g`: 2⁻ᵍ.
    pub(super) fn density(g: usize) -> f64 {
        power_of_two(-(g as i32))
    }

    /// Computes the rates of every guess up to `guess`.
    pub(super) fn reach(&mut self, guess: usize) {
        let (plan, n) = (self.plan, self.n);
        while self.rates.len() <= guess * plan.levels {
            let density = Self::density(self.rates.len() / plan.levels);
            self.rates
                .extend((0..plan.levels).map(|level| rate(plan, level, n, density)));
        }
    }
}

/// A pass takes in another guess while the entries the pass is expected to read stay
/// within this many times m per copy (below the ≈ 9·m entries a query has read by its
/// accepted guess at n = 100k).
/// Measured in experiments/kde against one guess per pass at n = 100k, d 16 and 64: 5·m
/// took 6–8% off the query time, 3·m and 8·m less.
pub(super) const READ_AHEAD_SAMPLES: f64 = 5.0;

/// One copy's progress through a query's guesses.
///
/// Each pass (one or more consecutive guesses, see [`GuessSchedule`]) reads bucket prefixes
/// in two steps: first it collects the entries below the pass's rates and keeps the points
/// not seen before, each with the first (nearest) level whose tables found it; then it
/// evaluates their kernel values in one vectorized batch (requesting each point's
/// coordinates a few rows ahead) and adds each to that level's sum, weighted by 1/P[found]
/// (see [`QueryState::advance`]). Every point is evaluated and counted at most once per
/// query.
pub(super) struct QueryState<'a> {
    /// [level][table] flattened: the bucket q falls in (empty if none).
    pub(super) buckets: Vec<&'a [Entry]>,
    /// Pooled working memory (cursors, sums, the ids read).
    pub(super) scratch: Scratch,
    pub(super) candidates: usize,
}

impl<'a> QueryState<'a> {
    pub(super) fn new(
        copy: &'a StructureCopy,
        plan: &Plan,
        query: &[f32],
        d: usize,
        slots: usize,
    ) -> Self {
        let proj = copy.projections(query, d);
        let buckets: Vec<&[Entry]> = (0..plan.levels)
            .flat_map(|level| (0..plan.level_tables[level]).map(move |table| (level, table)))
            .map(|(level, table)| {
                copy.tables[level][table]
                    .get(&copy.key(plan, &proj, level, table))
                    .map_or(&[][..], Vec::as_slice)
            })
            .collect();
        for bucket in &buckets {
            prefetch_entries(bucket);
        }
        let mut scratch = Scratch::take();
        scratch.seen.reserve_ids(slots);
        scratch.cursors.resize(buckets.len(), 0);
        scratch.level_sums.resize(plan.levels, 0.0);
        QueryState {
            buckets,
            scratch,
            candidates: 0,
        }
    }

    /// Reads the entries below the rates of a pass of consecutive guesses (`rates` is
    /// [guess][level]) and leaves this copy's estimate for each guess of the pass in
    /// `scratch.estimates`.
    ///
    /// Given the hash functions, a point x is read first at ℓ(x), the nearest level whose
    /// tables it collides with, and it is read by a guess iff its priority is below that
    /// level's rate p_ℓ (rates fall with the level, so every guess that reads x reads it at
    /// ℓ(x) first). Counting x once with weight 1/(n p_ℓ) is therefore unbiased over the
    /// priorities, whichever level found it. Only points with ℓ(x) ≤ b(x), the level of the
    /// band holding k(x, q), count: their weight is at most that of the paper's estimator
    /// (which counts x only when its own level b finds it, at rate p_b ≤ p_ℓ), so its variance
    /// bound carries over, while the points a nearer level finds at its higher rate (on
    /// clustered data most of them: a band's points sit just outside the previous level's
    /// radius) now count too instead of being read and dropped. The points no level up to
    /// b(x) finds are the LSH misses; they are corrected by 1/P[found by levels 1..=b] at
    /// x's distance (Horvitz–Thompson).
    ///
    /// A pass reads each bucket once, up to its last guess's rate, and files each point under
    /// the first guess of the pass whose rate its priority passes; guess g's estimate sums
    /// the points filed under guesses ≤ g. The estimates are those of reading the guesses
    /// one at a time (up to the order of floating-point additions), for one visit per bucket
    /// instead of one per guess.
    ///
    /// One function on purpose: it is the query's inner loop (≈ 5 ns per bucket entry read,
    /// experiments/kde), whose state (cursors, filed points, prefetch distance) lives in
    /// locals across the whole pass; its timings in experiments/kde are of this form.
    pub(super) fn advance(&mut self, kde: &DynamicKde, query: &[f32], rates: &[Rate], n: f64) {
        let plan = &kde.plan;
        let d = kde.d;
        let levels = plan.levels;
        let pass = rates.len() / levels;
        let (earlier, last) = rates.split_at((pass - 1) * levels);
        let Scratch {
            seen,
            fresh,
            squared_distances,
            values,
            level_sums,
            pass_sums,
            estimates,
            cursors,
        } = &mut self.scratch;
        // `fresh` keeps every point read by this query; this pass's are the tail.
        let first_new = fresh.len();
        let mut read = 0;
        let mut bucket_index = 0;
        for (level, read_cut) in last.iter().map(|rate| rate.cut).enumerate() {
            for _ in 0..plan.level_tables[level] {
                let bucket = self.buckets[bucket_index];
                let cursor = &mut cursors[bucket_index];
                bucket_index += 1;
                let start = *cursor;
                let taken = bucket[start..]
                    .iter()
                    .take_while(|e| (e.priority as u64) < read_cut)
                    .count();
                *cursor += taken;
                read += taken;
                // The next pass reads on from here: request those entries now.
                prefetch_entries(&bucket[*cursor..]);
                // Branch-free dedupe: every entry is written, only new ids advance the
                // end (whether an id is new is a coin flip the branch predictor loses).
                let mut end = fresh.len();
                fresh.resize(end + taken, (0, 0));
                // The guesses of the pass whose rates a priority misses come first.
                let filed_under = |priority: u32| {
                    earlier
                        .iter()
                        .skip(level)
                        .step_by(levels)
                        .filter(|rate| priority as u64 >= rate.cut)
                        .count()
                };
                for entry in &bucket[start..start + taken] {
                    let guess = filed_under(entry.priority);
                    fresh[end] = (entry.id, pack_level_guess(level, guess));
                    end += usize::from(seen.insert(entry.id));
                }
                fresh.truncate(end);
            }
        }
        self.candidates += read;
        // Kernel values of the new points: distances, then exponentials in bulk.
        squared_distances.clear();
        let new_points = &fresh[first_new..];
        let row = |id: u32| &kde.points[id as usize * d..(id as usize + 1) * d];
        for &(id, _) in new_points.iter().take(PREFETCH_AHEAD) {
            prefetch_row(row(id));
        }
        squared_distances.extend(new_points.iter().enumerate().map(|(i, &(id, _))| {
            if let Some(&(ahead, _)) = new_points.get(i + PREFETCH_AHEAD) {
                prefetch_row(row(ahead));
            }
            squared_distance(row(id), query)
        }));
        values.clear();
        values.extend(
            squared_distances
                .iter()
                .map(|&dist2| kde.kernel.exponent(dist2, kde.bandwidth)),
        );
        exp_in_place(values);
        pass_sums.clear();
        pass_sums.resize(pass * levels, 0.0);
        let lowest = power_of_two(-(levels as i32)) as f32;
        for ((&(_, packed), &value), &dist2) in fresh[first_new..]
            .iter()
            .zip(values.iter())
            .zip(squared_distances.iter())
        {
            // Band b holds (2⁻ᵇ⁻¹, 2⁻ᵇ] (0-based): count x if b ≥ ℓ(x) and b < J.
            let (level, guess) = unpack_level_guess(packed);
            let mut band_upper = power_of_two(-(level as i32)) as f32;
            if value > band_upper || value <= lowest {
                continue;
            }
            let mut band = level;
            while value <= band_upper * 0.5 {
                band_upper *= 0.5;
                band += 1;
            }
            pass_sums[guess * levels + level] += (value * find_weight(plan, band, dist2)) as f64;
        }
        estimates.clear();
        for (guess_sums, guess_rates) in pass_sums
            .chunks_exact(levels)
            .zip(rates.chunks_exact(levels))
        {
            for (sum, added) in level_sums.iter_mut().zip(guess_sums) {
                *sum += added;
            }
            let estimate = level_sums
                .iter()
                .zip(guess_rates)
                .map(|(sum, rate)| sum / (n * rate.rate))
                .sum();
            estimates.push(estimate);
        }
    }
}

/// A point's first level and its guess within a pass, in the u32 beside its id.
#[inline]
pub(super) fn pack_level_guess(level: usize, guess: usize) -> u32 {
    // Levels and guesses are ≈ log₂(1/τ) (tens), far below 2¹⁶.
    debug_assert!(level < 1 << 16 && guess < 1 << 16);
    level as u32 | (guess as u32) << 16
}

#[inline]
pub(super) fn unpack_level_guess(packed: u32) -> (usize, usize) {
    ((packed & 0xffff) as usize, (packed >> 16) as usize)
}

impl Drop for QueryState<'_> {
    fn drop(&mut self) {
        std::mem::replace(&mut self.scratch, Scratch::EMPTY).recycle();
    }
}

/// 1/P[found by the levels up to its own] for a point of band (0-based level index) `band`
/// at squared distance `dist2`: linear interpolation in the band position t ∈ [0, 1]
/// between the band's inner and outer radius.
#[inline]
pub(super) fn find_weight(plan: &Plan, band: usize, dist2: f32) -> f32 {
    let weights = &plan.band_find_weights[band];
    let (inner, outer) = plan.band_radii(band);
    let (inner, outer) = (inner as f32, outer as f32);
    let steps = FIND_WEIGHT_STEPS as f32;
    let u = ((dist2.max(0.0).sqrt() - inner) / (outer - inner)).clamp(0.0, 1.0) * steps;
    let below = (u as usize).min(FIND_WEIGHT_STEPS - 1);
    let t = u - below as f32;
    weights[below] + t * (weights[below + 1] - weights[below])
}

/// Asks the cache for the line holding `value` (a hint: prefetches never fault).
#[inline]
pub(super) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: prefetch instructions are hints that never fault.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(value as *const T as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Prefetches the first bucket entries of `entries`.
#[inline]
pub(super) fn prefetch_entries(entries: &[Entry]) {
    if let Some(first) = entries.first() {
        prefetch(first);
    }
}

/// How many rows ahead of the distance loop their cache lines are requested.
pub(super) const PREFETCH_AHEAD: usize = 8;

/// Prefetches the first two cache lines of a point's row; the hardware prefetcher follows
/// the rest of a long row once it is being read.
#[inline]
pub(super) fn prefetch_row(row: &[f32]) {
    for value in [row.first(), row.get(16)].into_iter().flatten() {
        prefetch(value);
    }
}

/// One copy's per-query working memory, reused from query to query through a per-thread
/// pool ([`Scratch::take`]) instead of being allocated (and, for the table, filled) again:
/// both showed in the profile.
pub(super) struct Scratch {
    /// The ids read so far, one kernel evaluation each.
    pub(super) seen: IdBits,
    /// The points read so far, each once: (id, the first level that found it and the guess
    /// of its pass it is filed under, packed); the current pass's new points are the tail.
    pub(super) fresh: Vec<(u32, u32)>,
    /// The current pass's new points' squared distances to the query, then their kernel
    /// values.
    pub(super) squared_distances: Vec<f32>,
    pub(super) values: Vec<f32>,
    /// Per level ℓ: Σ k(x, q)/P[found] over the counted points first found at level ℓ.
    pub(super) level_sums: Vec<f64>,
    /// The same sums over the current pass's new points, [guess of the pass][level].
    pub(super) pass_sums: Vec<f64>,
    /// This copy's estimate for each guess of the current pass.
    pub(super) estimates: Vec<f64>,
    /// Per bucket: entries already read.
    pub(super) cursors: Vec<usize>,
}

thread_local! {
    /// Cleared scratch returned by finished queries on this thread.
    pub(super) static SCRATCH_POOL: std::cell::RefCell<Vec<Scratch>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Scratch {
    /// Scratch kept per thread (one per copy a thread serves at a time is what gets reused).
    pub(super) const POOL_CAPACITY: usize = 32;
    pub(super) const EMPTY: Scratch = Scratch {
        seen: IdBits::EMPTY,
        fresh: Vec::new(),
        squared_distances: Vec::new(),
        values: Vec::new(),
        level_sums: Vec::new(),
        pass_sums: Vec::new(),
        estimates: Vec::new(),
        cursors: Vec::new(),
    };

    /// Empty scratch: a pooled one of this thread if there is one.
    pub(super) fn take() -> Self {
        SCRATCH_POOL
            .with(|pool| pool.borrow_mut().pop())
            .unwrap_or(Self::EMPTY)
    }

    /// Empties the scratch and gives it to this thread's pool, unless the pool is full. (A
    /// single query with copies in parallel takes scratch on worker threads and drops it on
    /// the caller's, so without the cap the caller's pool would grow without bound.)
    pub(super) fn recycle(mut self) {
        self.seen.clear(self.fresh.iter().map(|&(id, _)| id));
        self.fresh.clear();
        self.squared_distances.clear();
        self.values.clear();
        self.level_sums.clear();
        self.pass_sums.clear();
        self.estimates.clear();
        self.cursors.clear();
        SCRATCH_POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < Self::POOL_CAPACITY {
                pool.push(self);
            }
        });
    }
}

/// The point ids one query has read, one bit per point slot (n/8 bytes per pooled scratch).
/// [`IdBits::insert`] is branch-free; clearing resets only the words of the ids read.
pub(super) struct IdBits {
    pub(super) words: Vec<u64>,
}

impl IdBits {
    pub(super) const EMPTY: IdBits = IdBits { words: Vec::new() };

    /// Makes room for ids below `slots`.
    pub(super) fn reserve_ids(&mut self, slots: usize) {
        let words = slots.div_ceil(64);
        if self.words.len() < words {
            self.words.resize(words, 0);
        }
    }

    /// Adds `id` (below the reserved slots); true if it was not in the set.
    #[inline]
    pub(super) fn insert(&mut self, id: u32) -> bool {
        let word = &mut self.words[(id >> 6) as usize];
        let bit = 1u64 << (id & 63);
        let new = *word & bit == 0;
        *word |= bit;
        new
    }

    /// Empties the set, given every id in it.
    pub(super) fn clear(&mut self, ids: impl Iterator<Item = u32>) {
        for id in ids {
            if let Some(word) = self.words.get_mut((id >> 6) as usize) {
                *word = 0;
            }
        }
    }
}
