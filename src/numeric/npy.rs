//! Reading and writing 2-D float arrays in NumPy's `.npy` format.
//!
//! Hand-written instead of a crate: the only arrays `select` exchanges with NumPy are
//! little-endian float32/float64 n×d matrices, which take a ~100-line reader, while the
//! general-purpose `npyz` crate would add a Python-literal parser (pest) to the build.
//! Format: <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>.

use std::io::Write;
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
    let bytes = crate::input::read_bytes(path, &crate::input::Limit::half_memory())?;
    let (header, body) = parse_header(&bytes).map_err(|msg| SeftError::file(path, msg))?;
    let (rows, cols) = header.shape;
    let width = if header.float64 { 8 } else { 4 };
    let needed = rows
        .checked_mul(cols)
        .and_then(|count| count.checked_mul(width));
    if needed != Some(body.len()) {
        let needed = needed.map_or("more than 2^64".to_string(), |n| n.to_string());
        return Err(SeftError::file(
            path,
            format!(
                "shape ({rows}, {cols}) needs {needed} data bytes, the file has {}",
                body.len()
            ),
        ));
    }
    // `chunks_exact(w)` yields w-byte slices only, so the conversions cannot fail.
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
    let fields = parse_dict(dict)?;
    let field = |key: &str| {
        fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("header has no '{key}'"))
    };
    // numpy's `read_array_header` insists on exactly these keys.
    if let Some((extra, _)) = fields
        .iter()
        .find(|(k, _)| !["descr", "fortran_order", "shape"].contains(&k.as_str()))
    {
        return Err(format!("header has an unexpected key '{extra}'"));
    }
    let float64 = match field("descr")? {
        Literal::Str(d) if d == "<f4" => false,
        Literal::Str(d) if d == "<f8" => true,
        other => {
            return Err(format!(
                "dtype {other:?} is not supported (little-endian float32 '<f4' or float64 '<f8')"
            ));
        }
    };
    let fortran_order = match field("fortran_order")? {
        Literal::Bool(b) => *b,
        other => {
            return Err(format!(
                "'fortran_order' must be True or False, got {other:?}"
            ));
        }
    };
    let shape = match field("shape")? {
        Literal::Tuple(dims) if dims.len() == 2 => (dims[0], dims[1]),
        other => return Err(format!("expected a 2-D array (n, d), got shape {other:?}")),
    };
    let header = Header {
        float64,
        fortran_order,
        shape,
    };
    Ok((header, &bytes[end..]))
}

/// A value of the header dict: the Python literals numpy writes there.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
    Int(usize),
    Tuple(Vec<usize>),
}

/// Parses the header, a Python dict literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }`, into (key, value) pairs in
/// file order (numpy's `ast.literal_eval` keeps the last of duplicated keys). Hand-written:
/// the grammar is this small and nothing in it nests beyond the shape tuple.
fn parse_dict(text: &str) -> std::result::Result<Vec<(String, Literal)>, String> {
    let mut p = LiteralParser {
        rest: text.trim_end(),
    };
    p.expect('{')?;
    let mut fields = Vec::new();
    loop {
        if p.eat('}') {
            break;
        }
        let key = match p.literal()? {
            Literal::Str(k) => k,
            other => return Err(format!("header key {other:?} is not a string")),
        };
        p.expect(':')?;
        fields.push((key, p.literal()?));
        if !p.eat(',') {
            p.expect('}')?;
            break;
        }
    }
    if !p.rest.trim().is_empty() {
        return Err(format!(
            "unexpected text after the header dict: {:?}",
            p.rest
        ));
    }
    Ok(fields)
}

struct LiteralParser<'a> {
    rest: &'a str,
}

impl LiteralParser<'_> {
    fn eat(&mut self, c: char) -> bool {
        self.rest = self.rest.trim_start();
        match self.rest.strip_prefix(c) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "malformed header: expected '{c}' at {:?}",
                self.rest
            ))
        }
    }

    fn int(&mut self) -> std::result::Result<usize, String> {
        self.rest = self.rest.trim_start();
        let end = self
            .rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(self.rest.len());
        let (digits, rest) = self.rest.split_at(end);
        let n = digits
            .parse::<usize>()
            .map_err(|_| format!("malformed header: expected a size at {:?}", self.rest))?;
        self.rest = rest;
        Ok(n)
    }

    fn literal(&mut self) -> std::result::Result<Literal, String> {
        self.rest = self.rest.trim_start();
        if let Some(quote) = self.rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
            let body = &self.rest[1..];
            let end = body
                .find(quote)
                .ok_or("malformed header: unterminated string")?;
            let s = &body[..end];
            if s.contains('\\') {
                return Err("malformed header: escapes in strings are not supported".into());
            }
            self.rest = &body[end + 1..];
            return Ok(Literal::Str(s.to_string()));
        }
        for (word, value) in [("True", true), ("False", false)] {
            if let Some(r) = self.rest.strip_prefix(word) {
                self.rest = r;
                return Ok(Literal::Bool(value));
            }
        }
        if self.eat('(') {
            let mut dims = Vec::new();
            loop {
                if self.eat(')') {
                    break;
                }
                dims.push(self.int()?);
                if !self.eat(',') {
                    self.expect(')')?;
                    break;
                }
            }
            return Ok(Literal::Tuple(dims));
        }
        self.int().map(Literal::Int)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_parse() {
        let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }";
        assert_eq!(
            parse_dict(dict).unwrap(),
            vec![
                ("descr".to_string(), Literal::Str("<f8".into())),
                ("fortran_order".to_string(), Literal::Bool(false)),
                ("shape".to_string(), Literal::Tuple(vec![3, 2])),
            ]
        );
    }

    fn header(dict: &str) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(dict.len() as u16 + 1).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.push(b'\n');
        bytes
    }

    /// numpy reads these headers as `shape (1, 1)` (the key inside a string is text, the last
    /// duplicate wins) or refuses them; a substring search read the first '(…)' after 'shape'.
    #[test]
    fn the_shape_is_the_dict_value_not_a_substring() {
        let mut bytes =
            header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), 'shape': (1, 1), }");
        bytes.extend_from_slice(&1.5f32.to_le_bytes());
        assert_eq!(parse_header(&bytes).unwrap().0.shape, (1, 1));
        let inside = header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), 'x': \"'shape': (9, 9)\"}",
        );
        let err = parse_header(&inside).err().unwrap();
        assert!(err.contains("unexpected key 'x'"), "{err}");
    }

    #[test]
    fn a_shape_whose_size_overflows_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.npy");
        // 2^62 rows of 8 bytes need 2^65 bytes, which wraps to 0 in u64: an empty body must
        // not pass for it.
        let bytes =
            header("{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 1), }");
        std::fs::write(&path, bytes).unwrap();
        let err = read_f32_matrix(&path).unwrap_err().to_string();
        assert!(err.contains("huge.npy") && err.contains("shape"), "{err}");
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
