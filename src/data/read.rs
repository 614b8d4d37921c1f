//! Reading rows from JSON arrays and JSONL files (plain or .gz), keeping each row's line number
//! so errors point at `file:line`.

use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_json::value::RawValue;

use crate::data::formats::{Record, parse_prompt, parse_row};
use crate::error::{Result, SeftError};
use crate::input::{Limit, MIB};

/// The default of `data.max_file_mib`: datasets are read whole, and parsed rows take a few
/// times their text's size in memory.
pub const DEFAULT_MAX_FILE_MIB: u64 = 2048;
/// The default of `data.max_row_mib`.
pub const DEFAULT_MAX_ROW_MIB: u64 = 16;

#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Skip malformed rows (they are counted in the report) instead of failing on the first.
    pub skip_bad_rows: bool,
    /// The most a file may hold once decompressed, in MiB (`data.max_file_mib`).
    pub max_file_mib: u64,
    /// The longest row (a JSONL line or an element of a JSON array), in MiB
    /// (`data.max_row_mib`); a longer row is a bad row.
    pub max_row_mib: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            skip_bad_rows: false,
            max_file_mib: DEFAULT_MAX_FILE_MIB,
            max_row_mib: DEFAULT_MAX_ROW_MIB,
        }
    }
}

impl ReadOptions {
    /// Both limits are at least 1 MiB (a limit of 0 would refuse every file).
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (key, value) in [
            ("data.max_file_mib", self.max_file_mib),
            ("data.max_row_mib", self.max_row_mib),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1, got 0"));
            }
        }
        Ok(())
    }

    fn file_limit(&self) -> Limit {
        Limit {
            bytes: self.max_file_mib.saturating_mul(MIB),
            setting: "data.max_file_mib",
        }
    }
}

/// What reading a file found besides the records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadReport {
    pub rows: usize,
    pub skipped: usize,
    /// The first few skipped rows as `file:line: reason`.
    pub skipped_examples: Vec<String>,
}

/// A user's dataset file as text, within the default limit (see [`crate::input::read_text`]).
pub fn read_text(path: &Path) -> Result<String> {
    crate::input::read_text(path, &ReadOptions::default().file_limit())
}

/// (line number, row) pairs of a JSON array or of a JSONL file.
fn rows(
    path: &Path,
    text: &str,
    max_row_bytes: u64,
) -> Result<Vec<(usize, std::result::Result<Value, String>)>> {
    let parse = |raw: &str| {
        if raw.len() as u64 > max_row_bytes {
            return Err(format!(
                "the row has {} bytes, more than the {} MiB limit (data.max_row_mib)",
                raw.len(),
                max_row_bytes.div_ceil(MIB)
            ));
        }
        serde_json::from_str(raw).map_err(|e| format!("invalid JSON: {e}"))
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let raws: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| {
            SeftError::file(path, format!("line {}: invalid JSON array: {e}", e.line()))
        })?;
        let line_starts: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Ok(raws
            .into_iter()
            .map(|raw| {
                let offset = raw.get().as_ptr() as usize - text.as_ptr() as usize;
                let line = line_starts.partition_point(|&s| s <= offset);
                (line, parse(raw.get()))
            })
            .collect())
    } else {
        Ok(text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, parse(l)))
            .collect())
    }
}

/// Reads every row of `path` with `parse`, stopping at the first bad row (or skipping and
/// counting bad rows) and refusing a file without a usable row.
fn read_with<T>(
    path: &Path,
    opts: &ReadOptions,
    parse: impl Fn(&Value) -> std::result::Result<T, String>,
) -> Result<(Vec<T>, ReadReport)> {
    let text = crate::input::read_text(path, &opts.file_limit())?;
    let max_row_bytes = opts.max_row_mib.saturating_mul(MIB);
    let mut records = Vec::new();
    let mut report = ReadReport::default();
    for (line, row) in rows(path, &text, max_row_bytes)? {
        report.rows += 1;
        match row.and_then(|v| parse(&v)) {
            Ok(r) => records.push(r),
            Err(reason) => {
                let msg = format!("{}:{line}: {reason}", path.display());
                if !opts.skip_bad_rows {
                    return Err(SeftError::Invalid(msg));
                }
                report.skipped += 1;
                if report.skipped_examples.len() < 5 {
                    report.skipped_examples.push(msg);
                }
            }
        }
    }
    if records.is_empty() {
        return Err(SeftError::file(
            path,
            format!(
                "no usable rows ({} rows, {} skipped)",
                report.rows, report.skipped
            ),
        ));
    }
    Ok((records, report))
}

/// Reads every row of `path` as a [`Record`].
pub fn read_records(path: &Path, opts: &ReadOptions) -> Result<(Vec<Record>, ReadReport)> {
    read_with(path, opts, parse_row)
}

/// Reads preference pairs; a row of another kind is an error naming its line.
pub fn read_preferences(
    path: &Path,
    opts: &ReadOptions,
) -> Result<(Vec<crate::data::Preference>, ReadReport)> {
    read_with(path, opts, |v| match parse_row(v)? {
        Record::Preference(p) => Ok(p),
        Record::Conversation(_) => {
            Err("not a preference pair: the row has no 'chosen' and 'rejected'".into())
        }
    })
}

/// Reads the prompt of every row of `path` (see [`parse_prompt`]).
pub fn read_prompts(path: &Path, opts: &ReadOptions) -> Result<(Vec<String>, ReadReport)> {
    read_with(path, opts, parse_prompt)
}

/// A dataset given as a local path, or as `org/name:path/in/repo.jsonl` on the Hugging Face
/// hub (dataset repos; read from the hf-hub cache, downloaded unless `HF_HUB_OFFLINE=1`).
pub fn resolve_dataset(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let Some((repo_id, file)) = spec
        .split_once(':')
        .filter(|(r, _)| r.matches('/').count() == 1)
    else {
        return Err(SeftError::file(path, "no such file or directory"));
    };
    let repo = hf_hub::Repo::new(repo_id.to_string(), hf_hub::RepoType::Dataset);
    if let Some(p) = hf_hub::Cache::from_env().repo(repo.clone()).get(file) {
        return Ok(p);
    }
    if std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1") {
        return Err(SeftError::Invalid(format!(
            "hub dataset {repo_id} file {file} is not in the cache and HF_HUB_OFFLINE=1"
        )));
    }
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .build()
        .map_err(|e| SeftError::Invalid(format!("hub dataset {repo_id}: {e}")))?;
    api.repo(repo)
        .get(file)
        .map_err(|e| SeftError::Invalid(format!("hub dataset {repo_id}: cannot fetch {file}: {e}")))
}
