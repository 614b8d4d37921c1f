//! The dense vector kernels every layer uses: dot products and squared distances written so the
//! compiler vectorizes them (16 independent accumulators, AVX2+FMA when the CPU has it), and
//! GEMM blocks (gemm crate) for many-to-many distances, which run at matrix-multiply speed
//! instead of one pair at a time.

use rayon::prelude::*;

use super::gemm::{MatMut, MatRef, Threads, gemm};

/// Independent accumulators: two AVX registers of f32, enough to hide FMA latency.
const LANES: usize = 16;

/// Σ aᵢbᵢ.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { dot_avx2(a, b) };
    }
    dot_body::<false>(a, b)
}

/// ‖a − b‖², computed from the differences (exact up to rounding, unlike the GEMM form).
#[inline]
pub fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { squared_distance_avx2(a, b) };
    }
    squared_distance_body::<false>(a, b)
}

/// Whether AVX2 and FMA can be used. The crate is built for baseline x86-64 (SSE2), so
/// the hot loops are compiled twice and picked at run time (the check is a cached load).
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_body::<true>(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn squared_distance_avx2(a: &[f32], b: &[f32]) -> f32 {
    squared_distance_body::<true>(a, b)
}

/// Replaces every value x by eˣ. Brute-force KDE spends most of its time here: with AVX2
/// the values go 8 at a time through Cephes' `expf` (range reduction to [−ln2/2, ln2/2],
/// degree-6 polynomial, relative error below 4·10⁻⁷ in the tests); otherwise `f32::exp` one by one.
/// Arguments below −87.3 (results under f32's smallest normal) give 0; arguments above 88.3
/// are clamped to it (KDE only passes arguments ≤ 0).
pub fn exp_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        unsafe { exp_in_place_avx2(values) };
        return;
    }
    values.iter_mut().for_each(|v| *v = v.exp());
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_in_place_avx2(values: &mut [f32]) {
    use std::arch::x86_64::*;
    let mut chunks = values.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // SAFETY: the chunk holds 8 floats; unaligned loads and stores.
        unsafe {
            let x = _mm256_loadu_ps(chunk.as_ptr());
            _mm256_storeu_ps(chunk.as_mut_ptr(), exp8(x));
        }
    }
    for v in chunks.into_remainder() {
        *v = v.exp();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp8(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let underflow = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(-87.336_54));
    let x = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(-87.336_54)),
        _mm256_set1_ps(88.3),
    );
    // n = round(x / ln 2); r = x − n·ln 2, with ln 2 split in two for precision.
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut y = _mm256_set1_ps(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ] {
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
    }
    let y = _mm256_fmadd_ps(
        y,
        _mm256_mul_ps(r, r),
        _mm256_add_ps(r, _mm256_set1_ps(1.0)),
    );
    // 2ⁿ from the exponent bits: n ∈ [−126, 127] after the clamps above.
    let scale = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    )));
    _mm256_andnot_ps(underflow, _mm256_mul_ps(y, scale))
}

/// `acc + x·y`, as one fused instruction where the caller was compiled with FMA (elsewhere
/// `mul_add` would be a slow library call).
#[inline(always)]
fn multiply_add<const FMA: bool>(x: f32, y: f32, acc: f32) -> f32 {
    if FMA { x.mul_add(y, acc) } else { acc + x * y }
}

#[inline(always)]
fn dot_body<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let mut tail = 0.0;
    for (x, y) in a_chunks.remainder().iter().zip(b_chunks.remainder()) {
        tail = multiply_add::<FMA>(*x, *y, tail);
    }
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES {
            acc[lane] = multiply_add::<FMA>(x[lane], y[lane], acc[lane]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn squared_distance_body<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let mut tail = 0.0;
    for (x, y) in a_chunks.remainder().iter().zip(b_chunks.remainder()) {
        let diff = x - y;
        tail = multiply_add::<FMA>(diff, diff, tail);
    }
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES {
            let diff = x[lane] - y[lane];
            acc[lane] = multiply_add::<FMA>(diff, diff, acc[lane]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `out[i·b_rows + j] = aᵢ · bⱼ` for row-major `a` (a_rows×d) and `b` (b_rows×d), on the
/// calling thread (callers parallelize over blocks).
pub fn dot_block(a: &[f32], b: &[f32], d: usize, out: &mut [f32]) {
    let (a_rows, b_rows) = (a.len() / d, b.len() / d);
    assert!(a.len() == a_rows * d && b.len() == b_rows * d && out.len() == a_rows * b_rows);
    if a_rows == 0 || b_rows == 0 {
        return;
    }
    // lhs is a (a_rows×d row-major), rhs is bᵀ (d×b_rows, element (p, j) at b[j·d + p]).
    gemm(
        MatMut::row_major(out, a_rows, b_rows),
        None,
        MatRef::row_major(a, a_rows, d),
        MatRef::transposed(b, d, b_rows),
        1.0,
        Threads::Caller,
    );
}

/// Rows per GEMM block: 256 rows × up to 256 centers of f32 keep the block in L2.
pub const BLOCK_ROWS: usize = 256;

/// For each row of `points` (n×d), the index of the nearest row of `centers` (k×d) and the
/// squared distance to it. Distances come from ‖x‖² − 2x·c + ‖c‖² (GEMM) and are then
/// recomputed from differences for the winner, so the returned distance is exact.
pub fn nearest_rows(points: &[f32], centers: &[f32], d: usize) -> (Vec<u32>, Vec<f32>) {
    let n = points.len() / d;
    let k = centers.len() / d;
    let center_norms: Vec<f32> = centers.chunks_exact(d).map(|c| dot(c, c)).collect();
    let mut labels = vec![0u32; n];
    let mut dist = vec![0f32; n];
    points
        .par_chunks(BLOCK_ROWS * d)
        .zip(labels.par_chunks_mut(BLOCK_ROWS))
        .zip(dist.par_chunks_mut(BLOCK_ROWS))
        .for_each(|((block, labels), dist)| {
            let rows = block.len() / d;
            let mut best = vec![f32::INFINITY; rows];
            let mut products = vec![0f32; rows * BLOCK_ROWS.min(k)];
            for (chunk_index, chunk) in centers.chunks(BLOCK_ROWS * d).enumerate() {
                let chunk_rows = chunk.len() / d;
                let products = &mut products[..rows * chunk_rows];
                dot_block(block, chunk, d, products);
                let first = chunk_index * BLOCK_ROWS;
                for r in 0..rows {
                    let row_products = &products[r * chunk_rows..(r + 1) * chunk_rows];
                    for (j, &p) in row_products.iter().enumerate() {
                        // ‖x‖² is the same for every center: compare ‖c‖² − 2x·c only.
                        let partial = center_norms[first + j] - 2.0 * p;
                        if partial < best[r] {
                            best[r] = partial;
                            labels[r] = (first + j) as u32;
                        }
                    }
                }
            }
            for r in 0..rows {
                let c = labels[r] as usize;
                dist[r] =
                    squared_distance(&block[r * d..(r + 1) * d], &centers[c * d..(c + 1) * d]);
            }
        });
    (labels, dist)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_in_place_matches_f32_exp() {
        let mut values: Vec<f32> = (0..2001).map(|i| -100.0 + 0.0937 * i as f32).collect(); // up to 87.4
        values.extend([0.0, -0.0, 1e-8, -87.33, -87.34, -1e4, 88.0, 88.29]);
        let expected: Vec<f32> = values.iter().map(|v| v.exp()).collect();
        exp_in_place(&mut values);
        for (got, want) in values.iter().zip(&expected) {
            let tolerance = 4e-7 * want.abs() + f32::MIN_POSITIVE;
            assert!((got - want).abs() <= tolerance, "{got} vs {want}");
        }
    }

    #[test]
    fn kernels_match_naive_loops() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.3 - 2.0).collect();
        let b: Vec<f32> = (0..19).map(|i| (i * i) as f32 * 0.01).collect();
        let naive_dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let naive_dist: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((dot(&a, &b) - naive_dot).abs() < 1e-4);
        assert!((squared_distance(&a, &b) - naive_dist).abs() < 1e-4);
    }

    #[test]
    fn nearest_rows_matches_brute_force() {
        let d = 5;
        let points: Vec<f32> = (0..600 * d)
            .map(|i| ((i * 7919) % 101) as f32 * 0.1)
            .collect();
        let centers: Vec<f32> = (0..300 * d)
            .map(|i| ((i * 104_729) % 97) as f32 * 0.1)
            .collect();
        let (labels, dist) = nearest_rows(&points, &centers, d);
        for (i, x) in points.chunks_exact(d).enumerate() {
            let best = centers
                .chunks_exact(d)
                .map(|c| squared_distance(x, c))
                .fold(f32::INFINITY, f32::min);
            assert!((dist[i] - best).abs() <= 1e-3 * best.max(1.0), "row {i}");
            let chosen = &centers[labels[i] as usize * d..(labels[i] as usize + 1) * d];
            assert_eq!(squared_distance(x, chosen), dist[i]);
        }
    }
}
