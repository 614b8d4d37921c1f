//! Reading and writing 2-D float arrays in NumPy's `.npy` format.
//!
//! Hand-written instead of a crate: the only arrays `select` exchanges with NumPy are
//! little-endian float32/float64 n×d matrices, which take a ~100-line reader, while the
//! general-purpose `npyz` crate would add a Python-literal parser (pest) to the build.
//! Format: <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Result, SeftError};

const MAGIC: &[u8] = b"\x93NUMPY";

/// The parts of an `.npy` header that `select` supports.
struct Header {
    float64: bool,
    fortran_order: bool,
    shape: (usize, usize),
}

/// Reads a 2-D little-endian float32 or float64 array as row-major f32 values and its shape.
pub(crate) fn read_f32_matrix(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(|cause| SeftError::io(path, cause))?;
    let (header, body) = parse_header(&bytes).map_err(|msg| SeftError::file(path, msg))?;
    let (rows, cols) = header.shape;
    let count = rows
        .checked_mul(cols)
        .ok_or_else(|| SeftError::file(path, "array shape overflows"))?;
    let width = if header.float64 { 8 } else { 4 };
    if body.len() != count * width {
        return Err(SeftError::file(
            path,
            format!(
                "shape ({rows}, {cols}) needs {} data bytes, the file has {}",
                count * width,
                body.len()
            ),
        ));
    }
    let mut values: Vec<f32> = if header.float64 {
        body.chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8-byte chunk")) as f32)
            .collect()
    } else {
        body.chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4-byte chunk")))
            .collect()
    };
    if header.fortran_order {
        values = transpose(&values, cols, rows);
    }
    Ok((values, rows, cols))
}

/// Writes row-major f32 values as a version-1.0 little-endian float32 `.npy` array.
pub(crate) fn write_f32_matrix(
    path: &Path,
    values: &[f32],
    rows: usize,
    cols: usize,
) -> Result<()> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + dict + padding + '\n' is a multiple of 64.
    let unpadded = MAGIC.len() + 4 + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let header_len = dict.len() + padding + 1;
    let mut out = Vec::with_capacity(unpadded + padding + values.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padding));
    out.push(b'\n');
    for value in values {
        out.extend_from_slice(&value.to_le_bytes());
    }
    std::fs::File::create(path)
        .and_then(|mut file| file.write_all(&out))
        .map_err(|cause| SeftError::io(path, cause))
}

fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

fn parse_header(bytes: &[u8]) -> std::result::Result<(Header, &[u8]), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not an .npy file (bad magic)".into());
    }
    let major = bytes[6];
    let (len, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(format!("unsupported .npy version {major}")),
    };
    let end = start
        .checked_add(len)
        .filter(|&end| end <= bytes.len())
        .ok_or("truncated .npy header")?;
    let dict = std::str::from_utf8(&bytes[start..end]).map_err(|_| "header is not UTF-8")?;
    let descr = dict_value(dict, "descr").ok_or("header has no 'descr'")?;
    let float64 = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f4" => false,
        "<f8" => true,
        other => {
            return Err(format!(
                "dtype {other} is not supported (little-endian float32 '<f4' or float64 '<f8')"
            ));
        }
    };
    let fortran_order = match dict_value(dict, "fortran_order") {
        Some("False") => false,
        Some("True") => true,
        _ => return Err("header has no valid 'fortran_order'".into()),
    };
    let shape = dict_value(dict, "shape").ok_or("header has no 'shape'")?;
    let dims: Vec<usize> = shape
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape {shape}")))
        .collect::<std::result::Result<_, _>>()?;
    let shape = match dims[..] {
        [rows, cols] => (rows, cols),
        _ => return Err(format!("expected a 2-D array (n, d), got shape {shape}")),
    };
    let header = Header {
        float64,
        fortran_order,
        shape,
    };
    Ok((header, &bytes[end..]))
}

/// The raw text of `key`'s value in NumPy's header dict (a Python literal without nesting
/// except the shape tuple).
fn dict_value<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let after_key = dict.split_once(&format!("'{key}'"))?.1;
    let value = after_key.trim_start().strip_prefix(':')?.trim_start();
    let end = if value.starts_with('(') {
        value.find(')')? + 1
    } else {
        value.find([',', '}']).unwrap_or(value.len())
    };
    Some(value[..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_parse() {
        let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }";
        assert_eq!(dict_value(dict, "descr"), Some("'<f8'"));
        assert_eq!(dict_value(dict, "fortran_order"), Some("False"));
        assert_eq!(dict_value(dict, "shape"), Some("(3, 2)"));
    }

    #[test]
    fn float64_and_fortran_order_are_read_as_row_major_f32() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.npy");
        let dict = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }";
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(dict.len() as u16 + 1).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.push(b'\n');
        // Column-major storage of [[1, 2, 3], [4, 5, 6]].
        for v in [1.0f64, 4.0, 2.0, 5.0, 3.0, 6.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(&path, bytes).unwrap();
        let (values, rows, cols) = read_f32_matrix(&path).unwrap();
        assert_eq!((rows, cols), (2, 3));
        assert_eq!(values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn bad_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.npy");
        std::fs::write(&path, b"hello").unwrap();
        let err = read_f32_matrix(&path).unwrap_err().to_string();
        assert!(err.contains("bad.npy") && err.contains("magic"), "{err}");

        let int_path = dir.path().join("int.npy");
        let dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 1), }\n";
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.extend_from_slice(&7i64.to_le_bytes());
        std::fs::write(&int_path, bytes).unwrap();
        let err = read_f32_matrix(&int_path).unwrap_err().to_string();
        assert!(err.contains("int.npy") && err.contains("<i8"), "{err}");

        let missing = dir.path().join("missing.npy");
        let err = read_f32_matrix(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.npy"), "{err}");
    }
}
