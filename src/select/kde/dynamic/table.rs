//! The hash tables of one copy of the structure: every stored point under its bucket key in
//! each table, and the per-level lookups a query reads.

use super::*;

/// A bucket entry: a point id and its priority in this copy.
/// Priorities are uniform u32 values (a rate p keeps priorities below p·2³²): exact to
/// 2⁻³², where f32 priorities would bias rates near 10⁻⁶ by several percent.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) priority: u32,
    pub(super) id: u32,
}

pub(super) fn entry_order(a: &Entry, b: &Entry) -> std::cmp::Ordering {
    (a.priority, a.id).cmp(&(b.priority, b.id))
}

/// Multiply-xor hasher for keys that are ids or already-mixed bucket keys (SipHash would
/// dominate the query time).
#[derive(Default)]
pub(super) struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

pub(super) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<MixHasher>>;
pub(super) type Buckets = FastMap<u64, Vec<Entry>>;

/// ⌊v⌋ as an i32 (clamped to ±2³⁰), inline: `f32::floor` is a libm call without SSE4.1 and
/// showed in the profile (a query hashes Σⱼ Lⱼ·Kⱼ values).
#[inline]
#[allow(clippy::manual_clamp)] // `clamp` would pass NaN through; `max`/`min` drop it.
pub(super) fn floor_to_i32(v: f32) -> i32 {
    // Clamped first so the truncation cannot overflow (`as` would add range and NaN checks
    // per value); `max`/`min` return the non-NaN operand, so the result is never NaN. Past
    // ±2³⁰ widths f32 has no integer resolution left, so those values share edge buckets.
    const LIMIT: f32 = (1u32 << 30) as f32;
    let v = v.max(-LIMIT).min(LIMIT);
    // SAFETY: v is finite and within ±2³⁰, inside i32's range.
    let truncated: i32 = unsafe { v.to_int_unchecked() };
    truncated - i32::from(v < truncated as f32)
}

/// One independent copy: its hash functions, priorities and tables.
pub(super) struct StructureCopy {
    pub(super) rng: StdRng,
    /// (max tables × max hashes) Gaussian directions of length d; level j's table t uses
    /// rows t·max_hashes .. t·max_hashes + Kⱼ with its own widths and offsets.
    pub(super) directions: Vec<f32>,
    /// Per level: Lⱼ·Kⱼ offsets in [0, wⱼ).
    pub(super) offsets: Vec<Vec<f32>>,
    /// Per point slot.
    pub(super) priority: Vec<u32>,
    /// [level][table] buckets.
    pub(super) tables: Vec<Vec<Buckets>>,
}

impl StructureCopy {
    pub(super) fn new(plan: &Plan, d: usize, seed: u64, copy: usize) -> Self {
        let mut rng =
            StdRng::seed_from_u64(seed ^ (copy as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let rows = plan.max_tables() * plan.max_hashes();
        let directions = (0..rows * d)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect::<Vec<f32>>();
        let offsets = (0..plan.levels)
            .map(|j| {
                let width = plan.level_width[j] as f32;
                (0..plan.level_tables[j] * plan.level_hashes[j])
                    .map(|_| rng.random::<f32>() * width)
                    .collect()
            })
            .collect();
        let tables = (0..plan.levels)
            .map(|j| {
                (0..plan.level_tables[j])
                    .map(|_| Buckets::default())
                    .collect()
            })
            .collect();
        StructureCopy {
            rng,
            directions,
            offsets,
            priority: Vec::new(),
            tables,
        }
    }

    pub(super) fn projections(&self, x: &[f32], d: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.directions.len() / d];
        dot_block(x, &self.directions, d, &mut out);
        out
    }

    /// Bucket key of level `level`'s table `table` for a point with projections `proj`.
    pub(super) fn key(&self, plan: &Plan, proj: &[f32], level: usize, table: usize) -> u64 {
        let k = plan.level_hashes[level];
        let inverse_width = (1.0 / plan.level_width[level]) as f32;
        let row = table * plan.max_hashes();
        let offsets = &self.offsets[level][table * k..(table + 1) * k];
        bucket_key(
            proj[row..row + k]
                .iter()
                .zip(offsets)
                .map(|(p, b)| floor_to_i32((p + b) * inverse_width)),
        )
    }

    pub(super) fn insert(&mut self, plan: &Plan, proj: &[f32], entry: Entry, levels: usize) {
        for level in 0..levels {
            for table in 0..plan.level_tables[level] {
                let key = self.key(plan, proj, level, table);
                let bucket = self.tables[level][table].entry(key).or_default();
                let at = bucket.partition_point(|e| entry_order(e, &entry).is_lt());
                bucket.insert(at, entry);
            }
        }
    }

    pub(super) fn remove(&mut self, plan: &Plan, proj: &[f32], entry: Entry, levels: usize) {
        for level in 0..levels {
            for table in 0..plan.level_tables[level] {
                let key = self.key(plan, proj, level, table);
                let buckets = &mut self.tables[level][table];
                if let Some(bucket) = buckets.get_mut(&key) {
                    let at = bucket.partition_point(|e| entry_order(e, &entry).is_lt());
                    if at < bucket.len() && bucket[at].id == entry.id {
                        bucket.remove(at);
                    }
                    if bucket.is_empty() {
                        buckets.remove(&key);
                    }
                }
            }
        }
    }

    pub(super) fn memory_bytes(&self) -> usize {
        let mut bytes = (self.directions.capacity() + self.priority.capacity()) * 4;
        bytes += self.offsets.iter().map(|o| o.capacity() * 4).sum::<usize>();
        for buckets in self.tables.iter().flatten() {
            // hashbrown: key + value + 1 control byte per slot.
            bytes += buckets.capacity() * (8 + std::mem::size_of::<Vec<Entry>>() + 1);
            bytes += buckets.values().map(|b| b.capacity() * 8).sum::<usize>();
        }
        bytes
    }
}
