//! Resumable stages and the JSONL artifacts they leave behind.
//!
//! A stage owns a directory; when it finishes, `done.json` records its outcome and duration.
//! A rerun returns the recorded outcome instead of redoing the work, so a pipeline killed at
//! any point restarts at the first unfinished stage. Files are written to a temporary name
//! and renamed, so a crash never leaves a half-written artifact that looks complete.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SeftError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord<T> {
    pub stage: String,
    /// Wall time of the run that finished the stage.
    pub seconds: f64,
    pub outcome: T,
}

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

/// Runs `work` in `run_dir/name` unless its `done.json` says it already finished.
pub fn stage<T: Serialize + DeserializeOwned>(
    run_dir: &Path,
    name: &str,
    label: &str,
    work: impl FnOnce(&Path) -> Result<T>,
) -> Result<StageRecord<T>> {
    let dir = &run_dir.join(name);
    let marker = dir.join("done.json");
    if marker.exists() {
        let text = io(&marker, std::fs::read_to_string(&marker))?;
        let record: StageRecord<T> = serde_json::from_str(&text).map_err(|e| {
            SeftError::file(
                &marker,
                format!("unreadable stage record: {e} (delete it to redo the stage)"),
            )
        })?;
        eprintln!("== {label}: already done ({:.1}s), skipped", record.seconds);
        return Ok(record);
    }
    io(dir, std::fs::create_dir_all(dir))?;
    eprintln!("== {label}");
    crate::fault::set_scope(name);
    let started = Instant::now();
    let outcome = work(dir)?;
    let record = StageRecord {
        stage: label.to_string(),
        seconds: started.elapsed().as_secs_f64(),
        outcome,
    };
    write_atomic(
        &marker,
        serde_json::to_string_pretty(&record)
            .expect("serializable")
            .as_bytes(),
    )?;
    Ok(record)
}

/// Writes rows as JSON lines (atomically).
pub fn write_jsonl<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut text = String::new();
    for r in rows {
        text.push_str(&serde_json::to_string(r).expect("serializable"));
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = io(path, std::fs::read_to_string(path))?;
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
    let mut text = String::new();
    for r in rows {
        text.push_str(&serde_json::to_string(r).expect("serializable"));
        text.push('\n');
    }
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
