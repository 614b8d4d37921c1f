//! Argument checks shared by the sparse module: each failure is one line naming the argument.

use crate::error::{Result, SeftError};

/// `len` must equal `rows × cols`, with both non-zero (`what` names the rows, e.g. "points").
pub(crate) fn check_shape(
    name: &str,
    len: usize,
    rows: usize,
    cols: usize,
    what: &str,
) -> Result<()> {
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

/// Every value must be finite (NaN or ±∞ would make the firing sets meaningless).
pub(crate) fn check_finite(name: &str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(at) => Err(SeftError::Invalid(format!(
            "{name}[{at}] is {}, expected a finite number",
            values[at]
        ))),
    }
}

/// A scalar setting must be finite (and positive where `positive`).
pub(crate) fn check_scalar(name: &str, value: f32, positive: bool) -> Result<()> {
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
