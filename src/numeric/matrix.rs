//! The dense data set the selection algorithms and embeddings share: n points of dimension d, row-major f32.
//!
//! Construction validates once (n > 0, d > 0, every value finite) so that the algorithms can
//! assume clean input and never panic on user data.

use std::path::Path;

use crate::error::{Result, SeftError};

use super::npy;

/// n points × d features, row-major (`row(i)` is one contiguous slice).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    data: Vec<f32>,
    n: usize,
    d: usize,
}

impl Matrix {
    /// Wraps `data` (length n·d, row-major); errors on empty shapes, a length mismatch or a
    /// NaN/infinite value.
    pub fn new(data: Vec<f32>, n: usize, d: usize) -> Result<Self> {
        if n == 0 || d == 0 {
            return Err(SeftError::Invalid(format!(
                "a matrix needs at least one point and one dimension, got {n}×{d}"
            )));
        }
        if n.checked_mul(d) != Some(data.len()) {
            return Err(SeftError::Invalid(format!(
                "a {n}×{d} matrix needs {} values, got {}",
                n.saturating_mul(d),
                data.len()
            )));
        }
        if let Some(position) = data.iter().position(|v| !v.is_finite()) {
            return Err(SeftError::Invalid(format!(
                "value at row {}, column {} is {} (only finite values are allowed)",
                position / d,
                position % d,
                data[position]
            )));
        }
        let limit = Self::max_abs_value(d);
        if let Some(position) = data.iter().position(|v| v.abs() > limit) {
            return Err(SeftError::Invalid(format!(
                "value at row {}, column {} is {}: beyond ±{limit:.3e}, squared distances in {d} dimensions would overflow f32 (scale the data down)",
                position / d,
                position % d,
                data[position]
            )));
        }
        Ok(Matrix { data, n, d })
    }

    /// The largest magnitude a value may have in `d` dimensions: any squared distance
    /// ‖a − b‖² ≤ d·(2·max)² then stays below f32::MAX, so k-means and KDE never see ∞.
    pub fn max_abs_value(d: usize) -> f32 {
        (f32::MAX / (4.0 * d as f32)).sqrt()
    }

    /// Builds a matrix from equally long rows.
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Self> {
        let d = rows.first().map_or(0, Vec::len);
        if let Some(bad) = rows.iter().position(|row| row.len() != d) {
            return Err(SeftError::Invalid(format!(
                "row {bad} has {} values, row 0 has {d}",
                rows[bad].len()
            )));
        }
        Matrix::new(rows.concat(), rows.len(), d)
    }

    /// Reads a 2-D float32 or float64 `.npy` array (converted to f32); errors name the file.
    pub fn read_npy(path: &Path) -> Result<Self> {
        let (data, n, d) = npy::read_f32_matrix(path)?;
        Matrix::new(data, n, d).map_err(|err| SeftError::file(path, err.to_string()))
    }

    /// Writes the matrix as a float32 `.npy` array that `numpy.load` reads.
    pub fn write_npy(&self, path: &Path) -> Result<()> {
        npy::write_f32_matrix(path, &self.data, self.n, self.d)
    }

    /// Number of points.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Dimension of each point.
    pub fn d(&self) -> usize {
        self.d
    }

    /// Point `i` (panics if `i >= n`, like slice indexing).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.d..(i + 1) * self.d]
    }

    /// All values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// The rows at `indices`, in that order (indices must be `< n`).
    pub fn select_rows(&self, indices: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(indices.len() * self.d);
        for &i in indices {
            data.extend_from_slice(self.row(i));
        }
        Matrix {
            data,
            n: indices.len(),
            d: self.d,
        }
    }

    /// Errors unless `other` has this matrix's dimension (`what` names the other operand).
    pub(crate) fn check_same_dim(&self, d: usize, what: &str) -> Result<()> {
        if d != self.d {
            return Err(SeftError::Invalid(format!(
                "dimension mismatch: {what} has dimension {d}, the data has {}",
                self.d
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::validate::check_point;

    #[test]
    fn rejects_bad_shapes_and_values() {
        assert!(Matrix::new(vec![], 0, 3).is_err());
        assert!(Matrix::new(vec![1.0], 1, 0).is_err());
        assert!(Matrix::new(vec![1.0, 2.0, 3.0], 2, 2).is_err());
        let nan = Matrix::new(vec![1.0, f32::NAN], 1, 2)
            .unwrap_err()
            .to_string();
        assert!(
            nan.contains("row 0, column 1") && nan.contains("NaN"),
            "{nan}"
        );
        let inf = Matrix::new(vec![1.0, 2.0, f32::INFINITY, 0.0], 2, 2).unwrap_err();
        assert!(inf.to_string().contains("row 1, column 0"), "{inf}");
        let ragged = Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0]]).unwrap_err();
        assert!(ragged.to_string().contains("row 1"), "{ragged}");
        assert!(Matrix::from_rows(&[]).is_err());
    }

    #[test]
    fn npy_round_trip_and_file_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npy");
        let matrix = Matrix::new((0..12).map(|v| v as f32 * 0.5).collect(), 4, 3).unwrap();
        matrix.write_npy(&path).unwrap();
        assert_eq!(Matrix::read_npy(&path).unwrap(), matrix);

        // A NaN inside an .npy file is reported with the file's name.
        let bad = Matrix {
            data: vec![1.0, f32::NAN],
            n: 1,
            d: 2,
        };
        let bad_path = dir.path().join("nan.npy");
        bad.write_npy(&bad_path).unwrap();
        let err = Matrix::read_npy(&bad_path).unwrap_err().to_string();
        assert!(err.contains("nan.npy") && err.contains("NaN"), "{err}");
    }

    #[test]
    fn check_point_reports_dimension_and_values() {
        assert!(check_point(&[1.0, 2.0], 2, "query").is_ok());
        let err = check_point(&[1.0], 2, "query").unwrap_err().to_string();
        assert!(err.contains("dimension mismatch"), "{err}");
        let err = check_point(&[1.0, f32::NAN], 2, "query")
            .unwrap_err()
            .to_string();
        assert!(err.contains("non-finite"), "{err}");
    }

    #[test]
    fn values_whose_squared_distances_overflow_are_refused() {
        let limit = Matrix::max_abs_value(2);
        assert!(Matrix::new(vec![limit, -limit, 0.0, 0.0], 2, 2).is_ok());
        let err = Matrix::new(vec![3e38, 0.0, -3e38, 0.0], 2, 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("row 0, column 0") && err.contains("overflow"),
            "{err}"
        );
    }
}
