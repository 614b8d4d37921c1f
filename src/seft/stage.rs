//! Resumable stages and the JSONL artifacts they leave behind.
//!
//! A stage owns a directory; when it finishes, `done.json` records its outcome and duration.
//! A rerun returns the recorded outcome instead of redoing the work, so a pipeline killed at
//! any point restarts at the first unfinished stage.

use std::path::Path;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::data::jsonl::{
    append_jsonl, complete_rows, io, read_jsonl, write_atomic, write_jsonl,
};
use crate::error::{Result, SeftError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord<T> {
    pub stage: String,
    /// Wall time of the run that finished the stage.
    pub seconds: f64,
    pub outcome: T,
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
