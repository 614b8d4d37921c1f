//! Matrix products with few rows, `C[m, n] = A[m, k] · B[k, n]` for m ≤ [`MAX_ROWS`]: a decode
//! step multiplies one row per running sequence by every weight matrix. Such a product reads
//! all of B to do little arithmetic with it, so its speed is how fast B streams from memory.
//! Burn flex's general GEMM (the `gemm` crate) costs about the same for 2 to 8 rows (97–98 ms
//! per SmolLM2 decode step, experiments/serve_load), which points at work per call on all of
//! B; these kernels read each element of B once per call and keep the partial sums in registers:
//!
//! - B row-major (`[k, n]`, a Linear weight): tiles of 4 rows × 16 columns, 8 AVX registers of
//!   sums; for each l, two vector loads of B's row l and one broadcast per row of A.
//! - B column-major (the transpose of a row-major `[n, k]`, the tied LM head): dot products of
//!   A's rows with B's columns, 4 rows × 2 columns at a time.
//!
//! Columns are split over rayon's threads. AVX2 + FMA only (detected at run time); elsewhere,
//! or for other strides, [`thin_matmul`] returns None and the caller keeps its general path.

use rayon::prelude::*;

/// The most rows these kernels take; larger products are the general GEMM's.
pub const MAX_ROWS: usize = 16;

/// How many rows of a row-major B ahead the tile kernel prefetches.
const PREFETCH_ROWS: usize = 16;

/// A pointer that may cross rayon's threads; each task writes its own columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint column ranges of the output (see `thin_matmul`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer, through a method so that closures capture the whole (Send) wrapper.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// `A · B` as a row-major `[m, n]` vector, or None where these kernels do not apply (more than
/// [`MAX_ROWS`] rows, no AVX2/FMA, strides that are neither layout). `a` holds A with unit
/// column stride and row stride `a_rs`; `b` holds B with strides `(b_rs, b_cs)`, one of them 1.
#[allow(clippy::too_many_arguments)]
pub fn thin_matmul(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
) -> Option<Vec<f32>> {
    if m == 0 || m > MAX_ROWS || n == 0 || k == 0 {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"))
        {
            return None;
        }
        let row_major = b_cs == 1 && b_rs >= n;
        let col_major = b_rs == 1 && b_cs >= k;
        if !(row_major || col_major) || a_rs < k {
            return None;
        }
        // Every element either kernel reads must be inside the slices.
        let a_end = (m - 1) * a_rs + k;
        let b_end = if row_major {
            (k - 1) * b_rs + n
        } else {
            (n - 1) * b_cs + k
        };
        if a.len() < a_end || b.len() < b_end {
            return None;
        }
        let mut out = vec![0f32; m * n];
        let ptr = OutPtr(out.as_mut_ptr());
        let threads = rayon::current_num_threads().max(1);
        // Chunks of whole 16-column tiles, a few per thread so uneven speeds even out.
        let chunk = n.div_ceil(threads * 4).div_ceil(16).max(1) * 16;
        let chunks: Vec<(usize, usize)> = (0..n)
            .step_by(chunk)
            .map(|j0| (j0, (j0 + chunk).min(n)))
            .collect();
        chunks.into_par_iter().for_each(|(j0, j1)| {
            // SAFETY: AVX2 and FMA were detected; the bounds of `a` and `b` were checked above
            // for every (row, l, column) the kernels touch; this task writes only columns
            // j0..j1 of each output row.
            unsafe {
                if row_major {
                    row_major_columns(m, k, a, a_rs, b, b_rs, ptr.get(), n, j0, j1);
                } else {
                    col_major_columns(m, k, a, a_rs, b, b_cs, ptr.get(), n, j0, j1);
                }
            }
        });
        Some(out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, a_rs, b, b_rs, b_cs);
        None
    }
}

/// Columns `j0..j1` of every row of C, B row-major.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn row_major_columns(
    m: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    b: &[f32],
    b_rs: usize,
    c: *mut f32,
    ldc: usize,
    j0: usize,
    j1: usize,
) {
    let mut j = j0;
    while j + 16 <= j1 {
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(4);
            // SAFETY: forwarded from the caller; rows i..i+rows, columns j..j+16.
            unsafe {
                match rows {
                    4 => tile_rm::<4>(k, a, a_rs, i, b, b_rs, j, c, ldc),
                    3 => tile_rm::<3>(k, a, a_rs, i, b, b_rs, j, c, ldc),
                    2 => tile_rm::<2>(k, a, a_rs, i, b, b_rs, j, c, ldc),
                    _ => tile_rm::<1>(k, a, a_rs, i, b, b_rs, j, c, ldc),
                }
            }
            i += rows;
        }
        j += 16;
    }
    // The last columns of a chunk that is not a whole tile.
    for i in 0..m {
        for jj in j..j1 {
            let mut sum = 0f32;
            for l in 0..k {
                sum += a[i * a_rs + l] * b[l * b_rs + jj];
            }
            // SAFETY: (i, jj) is inside C and in this task's columns.
            unsafe { *c.add(i * ldc + jj) = sum };
        }
    }
}

/// Rows i..i+R, columns j..j+16 of C, B row-major: 2R registers of sums over all of k.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_rm<const R: usize>(
    k: usize,
    a: &[f32],
    a_rs: usize,
    i: usize,
    b: &[f32],
    b_rs: usize,
    j: usize,
    c: *mut f32,
    ldc: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let (a, b) = (a.as_ptr(), b.as_ptr());
    for l in 0..k {
        // SAFETY: l < k, j + 16 ≤ n, rows below m: inside the checked extents.
        unsafe {
            let row = b.add(l * b_rs + j);
            // B's rows are `b_rs` floats apart: fetch a few rows ahead, which the hardware's
            // stride prefetchers do not do across pages. A prefetch past the end is harmless.
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(PREFETCH_ROWS * b_rs) as *const i8);
            let w0 = _mm256_loadu_ps(row);
            let w1 = _mm256_loadu_ps(row.add(8));
            for (r, sums) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*a.add((i + r) * a_rs + l));
                sums[0] = _mm256_fmadd_ps(x, w0, sums[0]);
                sums[1] = _mm256_fmadd_ps(x, w1, sums[1]);
            }
        }
    }
    for (r, sums) in acc.iter().enumerate() {
        // SAFETY: row i + r < m, columns j..j+16 inside this task's range.
        unsafe {
            let out = c.add((i + r) * ldc + j);
            _mm256_storeu_ps(out, sums[0]);
            _mm256_storeu_ps(out.add(8), sums[1]);
        }
    }
}

/// Columns `j0..j1` of every row of C, B column-major (column jj of B contiguous at
/// `jj * b_cs`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn col_major_columns(
    m: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    b: &[f32],
    b_cs: usize,
    c: *mut f32,
    ldc: usize,
    j0: usize,
    j1: usize,
) {
    let mut j = j0;
    while j < j1 {
        let cols = (j1 - j).min(2);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(4);
            let mut sums = [[0f32; 2]; 4];
            // SAFETY: forwarded from the caller; rows i..i+rows, columns j..j+cols.
            unsafe {
                let second = if cols == 2 { j + 1 } else { j };
                match rows {
                    4 => dots::<4>(k, a, a_rs, i, b, b_cs, j, second, &mut sums),
                    3 => dots::<3>(k, a, a_rs, i, b, b_cs, j, second, &mut sums),
                    2 => dots::<2>(k, a, a_rs, i, b, b_cs, j, second, &mut sums),
                    _ => dots::<1>(k, a, a_rs, i, b, b_cs, j, second, &mut sums),
                }
                for (r, pair) in sums.iter().enumerate().take(rows) {
                    for (q, &v) in pair.iter().enumerate().take(cols) {
                        *c.add((i + r) * ldc + j + q) = v;
                    }
                }
            }
            i += rows;
        }
        j += cols;
    }
}

/// Dot products of rows i..i+R of A with columns `j` and `j2` of B (column-major).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn dots<const R: usize>(
    k: usize,
    a: &[f32],
    a_rs: usize,
    i: usize,
    b: &[f32],
    b_cs: usize,
    j: usize,
    j2: usize,
    out: &mut [[f32; 2]; 4],
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let (col0, col1) = (j * b_cs, j2 * b_cs);
    let whole = k / 8 * 8;
    let mut l = 0;
    while l < whole {
        // SAFETY: l + 8 ≤ k; rows below m and columns below n: inside the checked extents.
        unsafe {
            let b0 = _mm256_loadu_ps(bp.add(col0 + l));
            let b1 = _mm256_loadu_ps(bp.add(col1 + l));
            for (r, sums) in acc.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(ap.add((i + r) * a_rs + l));
                sums[0] = _mm256_fmadd_ps(x, b0, sums[0]);
                sums[1] = _mm256_fmadd_ps(x, b1, sums[1]);
            }
        }
        l += 8;
    }
    for (r, sums) in acc.iter().enumerate() {
        for q in 0..2 {
            let mut lanes = [0f32; 8];
            // SAFETY: an 8-float store into a local array.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sums[q]) };
            let col = if q == 0 { col0 } else { col1 };
            let mut total: f32 = lanes.iter().sum();
            for ll in whole..k {
                total += a[(i + r) * a_rs + ll] * b[col + ll];
            }
            out[r][q] = total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        b: &dyn Fn(usize, usize) -> f32,
    ) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|l| a[i * k + l] as f64 * b(l, j) as f64)
                    .sum::<f64>() as f32;
            }
        }
        c
    }

    /// Both layouts of B, every row count up to MAX_ROWS, widths that leave partial tiles and
    /// depths that leave partial vectors, against a float64 reference.
    #[test]
    fn thin_products_match_the_reference() {
        let has_avx2 = cfg!(target_arch = "x86_64")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        let value = |s: usize| ((s * 2654435761) % 1000) as f32 / 500.0 - 1.0;
        for m in [1, 2, 3, 4, 5, 7, 16] {
            for (n, k) in [(16, 8), (37, 13), (130, 64), (64, 577)] {
                let a: Vec<f32> = (0..m * k).map(value).collect();
                let b_rm: Vec<f32> = (0..k * n).map(|s| value(s + 7)).collect();
                let b_cm: Vec<f32> = (0..n * k).map(|s| value(s + 11)).collect();
                let want_rm = reference(m, n, k, &a, &|l, j| b_rm[l * n + j]);
                let want_cm = reference(m, n, k, &a, &|l, j| b_cm[j * k + l]);
                let got_rm = thin_matmul(m, n, k, &a, k, &b_rm, n, 1);
                let got_cm = thin_matmul(m, n, k, &a, k, &b_cm, 1, k);
                if !has_avx2 {
                    assert!(got_rm.is_none() && got_cm.is_none());
                    continue;
                }
                for (got, want) in [(got_rm.unwrap(), want_rm), (got_cm.unwrap(), want_cm)] {
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                            "m {m} n {n} k {k}: {g} vs {w}"
                        );
                    }
                }
            }
        }
        assert!(thin_matmul(17, 16, 8, &[0.0; 17 * 8], 8, &[0.0; 128], 16, 1).is_none());
        assert!(
            thin_matmul(1, 16, 8, &[0.0; 8], 8, &[0.0; 100], 16, 1).is_none(),
            "B too short"
        );
    }
}
