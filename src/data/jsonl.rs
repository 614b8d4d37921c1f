//! JSON-lines files and atomic writes: run artifacts, metrics and stage records. Files are
//! written to a temporary name and renamed, so a crash never leaves a half-written file that
//! looks complete; appends write whole lines in one call and readers drop a torn last line.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Result, SeftError};

pub fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|e| SeftError::io(path, e))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.partial"));
    io(&tmp, std::fs::write(&tmp, bytes))?;
    io(path, std::fs::rename(&tmp, path))
}

fn lines<T: Serialize>(rows: &[T]) -> String {
    let mut text = String::new();
    for r in rows {
        text.push_str(&serde_json::to_string(r).expect("serializable"));
        text.push('\n');
    }
    text
}

/// Writes rows as JSON lines (atomically).
pub fn write_jsonl<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    write_atomic(path, lines(rows).as_bytes())
}

pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = crate::data::read_text(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| SeftError::file(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

/// The complete rows already in an append-only JSONL file, dropping a torn last line.
pub fn complete_rows<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = io(path, std::fs::read_to_string(path))?;
    let mut rows = Vec::new();
    for line in text.split_inclusive('\n') {
        if !line.ends_with('\n') {
            break;
        }
        match serde_json::from_str(line) {
            Ok(r) => rows.push(r),
            Err(_) => break,
        }
    }
    Ok(rows)
}

/// Appends rows to a JSONL file in one write.
pub fn append_jsonl<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let text = lines(rows);
    let mut f = io(
        path,
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path),
    )?;
    io(path, f.write_all(text.as_bytes()))?;
    io(path, f.flush())
}
