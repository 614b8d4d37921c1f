//! Reading rows from JSON arrays and JSONL files (plain or .gz), keeping each row's line number
//! so errors point at `file:line`.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_json::value::RawValue;

use crate::data::formats::{Record, parse_prompt, parse_row};
use crate::error::{Result, SeftError};

#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Skip malformed rows (they are counted in the report) instead of failing on the first.
    pub skip_bad_rows: bool,
}

/// What reading a file found besides the records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadReport {
    pub rows: usize,
    pub skipped: usize,
    /// The first few skipped rows as `file:line: reason`.
    pub skipped_examples: Vec<String>,
}

/// A user's text file as a string: gunzipped when it ends in `.gz`, UTF-8 checked, and without
/// a leading byte-order mark (Windows tools write one; Python reads such files with
/// `utf-8-sig`).
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| SeftError::io(path, e))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| SeftError::file(path, format!("invalid gzip data: {e}")))?;
        out
    } else {
        bytes
    };
    let text =
        String::from_utf8(bytes).map_err(|e| SeftError::file(path, format!("not UTF-8: {e}")))?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// (line number, row) pairs of a JSON array or of a JSONL file.
fn rows(path: &Path, text: &str) -> Result<Vec<(usize, std::result::Result<Value, String>)>> {
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
                (
                    line,
                    serde_json::from_str(raw.get()).map_err(|e| e.to_string()),
                )
            })
            .collect())
    } else {
        Ok(text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                (
                    i + 1,
                    serde_json::from_str(l).map_err(|e| format!("invalid JSON: {e}")),
                )
            })
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
    let text = read_text(path)?;
    let mut records = Vec::new();
    let mut report = ReadReport::default();
    for (line, row) in rows(path, &text)? {
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
