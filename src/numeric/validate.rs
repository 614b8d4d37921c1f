//! The argument checks every numeric algorithm shares (k-means, KDE, the sparse networks):
//! each failure is one error line naming the argument and what was expected.

use crate::error::{Result, SeftError};

/// `len` must equal `rows × cols`, with both non-zero (`what` names the rows, e.g. "points").
pub fn check_shape(name: &str, len: usize, rows: usize, cols: usize, what: &str) -> Result<()> {
    if rows == 0 {
        return Err(SeftError::Invalid(format!("{name} is empty: 0 {what}")));
    }
    if cols == 0 {
        return Err(SeftError::Invalid(format!("{name} has dimension 0")));
    }
    match rows.checked_mul(cols) {
        Some(expected) if expected == len => Ok(()),
        _ => Err(SeftError::Invalid(format!(
            "{name} has {len} values, expected {rows} {what} × {cols} = {}",
            rows.saturating_mul(cols)
        ))),
    }
}

/// Every value must be finite (NaN or ±∞ would make distances and firing sets meaningless).
pub fn check_finite(name: &str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(at) => Err(SeftError::Invalid(format!(
            "{name}[{at}] is {}, expected a finite number",
            values[at]
        ))),
    }
}

/// A scalar setting must be finite (and positive where `positive`).
pub fn check_scalar(name: &str, value: f32, positive: bool) -> Result<()> {
    if !value.is_finite() || (positive && value <= 0.0) {
        let expected = if positive {
            "a finite number > 0"
        } else {
            "a finite number"
        };
        return Err(SeftError::Invalid(format!(
            "{name} is {value}, expected {expected}"
        )));
    }
    Ok(())
}

/// Errors unless `point` is finite and has dimension `d` (`what` names it in the message).
pub fn check_point(point: &[f32], d: usize, what: &str) -> Result<()> {
    if point.len() != d {
        return Err(SeftError::Invalid(format!(
            "dimension mismatch: {what} has dimension {}, expected {d}",
            point.len()
        )));
    }
    if let Some(position) = point.iter().position(|v| !v.is_finite()) {
        return Err(SeftError::Invalid(format!(
            "{what} has a non-finite value {} at index {position}",
            point[position]
        )));
    }
    Ok(())
}

/// A kernel bandwidth must be a positive finite number.
pub fn check_bandwidth(bandwidth: f32) -> Result<()> {
    if !(bandwidth.is_finite() && bandwidth > 0.0) {
        return Err(SeftError::Invalid(format!(
            "bandwidth must be a positive finite number, got {bandwidth}"
        )));
    }
    Ok(())
}
