//! The one door to the `gemm` crate: `dst = dst_scale·dst + scale·lhs·rhs` over strided f32
//! views. Every caller in seft (k-means distances, the firing-neuron products, the sparse
//! trainer's dense update, the fused matmul's panels) goes through here, so the crate's
//! pointer-and-stride interface and its safety argument are written once.

/// Who runs a product: the calling thread, or the gemm crate over rayon's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// On the calling thread (callers that parallelize over blocks themselves).
    Caller,
    /// Split by the gemm crate over rayon's threads.
    Rayon,
}

impl Threads {
    fn parallelism(self) -> gemm::Parallelism {
        match self {
            Threads::Caller => gemm::Parallelism::None,
            Threads::Rayon => gemm::Parallelism::Rayon(0),
        }
    }
}

/// Checks that a `rows × cols` view with these strides stays inside `len` values. A view
/// outside its buffer is a bug in seft, never a property of user input, hence the panic.
fn check_extent(len: usize, rows: usize, cols: usize, row_stride: usize, col_stride: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    let last = (rows - 1).checked_mul(row_stride).and_then(|r| {
        (cols - 1)
            .checked_mul(col_stride)
            .and_then(|c| r.checked_add(c))
    });
    assert!(
        last.is_some_and(|last| last < len),
        "a {rows}×{cols} view with strides ({row_stride}, {col_stride}) reaches past {len} values"
    );
}

/// A read-only `rows × cols` view: element (i, j) is `data[i·row_stride + j·col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        check_extent(data.len(), rows, cols, row_stride, col_stride);
        MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// `data` as a row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transpose of the row-major `cols × rows` matrix in `data`, as `rows × cols`.
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, 1, rows)
    }
}

/// A writable `rows × cols` view, strides as [`MatRef`].
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatMut<'a> {
    pub fn new(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        check_extent(data.len(), rows, cols, row_stride, col_stride);
        MatMut {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }
}

/// `dst = scale·lhs·rhs` when `dst_scale` is None, else `dst = dst_scale·dst + scale·lhs·rhs`.
pub fn gemm(
    dst: MatMut<'_>,
    dst_scale: Option<f32>,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    scale: f32,
    threads: Threads,
) {
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    assert!(
        lhs.rows == m && rhs.rows == k && rhs.cols == n,
        "gemm shapes: dst {m}×{n}, lhs {}×{}, rhs {}×{}",
        lhs.rows,
        lhs.cols,
        rhs.rows,
        rhs.cols
    );
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: each view was checked against its slice when it was made, and `dst` is a unique
    // borrow, so it overlaps neither operand.
    unsafe {
        gemm_raw(
            Dims { m, n, k },
            dst.data.as_mut_ptr(),
            (dst.row_stride as isize, dst.col_stride as isize),
            dst_scale,
            lhs.data.as_ptr(),
            (lhs.row_stride as isize, lhs.col_stride as isize),
            rhs.data.as_ptr(),
            (rhs.row_stride as isize, rhs.col_stride as isize),
            scale,
            threads,
        );
    }
}

/// The sizes of `dst[m×n] (+)= lhs[m×k]·rhs[k×n]`.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// [`gemm`] on raw pointers, for callers whose operands are tensor buffers written in panels
/// from several threads (the fused matmul). Strides are (row, column) in elements.
///
/// # Safety
/// Every element the strides reach must be valid for reads (and `dst` for writes), and `dst`
/// must not overlap `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_raw(
    dims: Dims,
    dst: *mut f32,
    dst_strides: (isize, isize),
    dst_scale: Option<f32>,
    lhs: *const f32,
    lhs_strides: (isize, isize),
    rhs: *const f32,
    rhs_strides: (isize, isize),
    scale: f32,
    threads: Threads,
) {
    // SAFETY: forwarded from the caller; the gemm crate computes
    // dst = alpha·dst + beta·lhs·rhs, reading dst only when asked to.
    unsafe {
        gemm::gemm(
            dims.m,
            dims.n,
            dims.k,
            dst,
            dst_strides.1,
            dst_strides.0,
            dst_scale.is_some(),
            lhs,
            lhs_strides.1,
            lhs_strides.0,
            rhs,
            rhs_strides.1,
            rhs_strides.0,
            dst_scale.unwrap_or(0.0),
            scale,
            false,
            false,
            false,
            threads.parallelism(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_product_matches_the_definition() {
        // lhs 2×3 row-major, rhs = transpose of a 2×3 row-major (so 3×2), dst accumulates.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, -1.0, 2.0, 1.0, 0.5];
        let mut c = [1.0f32; 4];
        gemm(
            MatMut::row_major(&mut c, 2, 2),
            Some(2.0),
            MatRef::row_major(&a, 2, 3),
            MatRef::transposed(&b, 3, 2),
            -1.0,
            Threads::Caller,
        );
        let dot = |i: usize, j: usize| (0..3).map(|l| a[i * 3 + l] * b[j * 3 + l]).sum::<f32>();
        for i in 0..2 {
            for j in 0..2 {
                assert_eq!(c[i * 2 + j], 2.0 - dot(i, j));
            }
        }
    }

    #[test]
    #[should_panic(expected = "reaches past")]
    fn a_view_past_its_buffer_is_refused() {
        MatRef::new(&[0.0; 5], 2, 3, 3, 1);
    }
}
