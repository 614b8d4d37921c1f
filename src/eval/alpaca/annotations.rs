//! alpaca_eval's file formats: model outputs (`model_outputs.json`: a JSON array of
//! `{instruction, output, generator, dataset}`) and judge annotations (`annotations.json`: one
//! object per instruction with `output_1` = the baseline, `output_2` = the evaluated model and
//! `preference` in [1, 2], 2 meaning the model won). Files may be gzip-compressed (`.gz`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::jsonl::io;
use crate::error::{Result, SeftError};

/// One row of alpaca_eval's `model_outputs.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOutput {
    pub instruction: String,
    pub output: String,
    pub generator: String,
    #[serde(default)]
    pub dataset: String,
}

/// One judged pair, in alpaca_eval's `annotations.json` schema (extra fields are kept so a
/// file written by seft can be read back by alpaca_eval and vice versa).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    pub instruction: String,
    /// The baseline's (reference) output.
    pub output_1: String,
    pub generator_1: String,
    /// The evaluated model's output.
    pub output_2: String,
    pub generator_2: String,
    #[serde(default)]
    pub dataset: String,
    #[serde(default)]
    pub annotator: String,
    /// 1 = baseline better, 2 = model better, values between are probabilities + 1; 0 or 1.5
    /// is a draw. `None` when the judge gave no usable answer.
    #[serde(default, deserialize_with = "preference_or_null")]
    pub preference: Option<f64>,
    /// Whether the two outputs were shown to the judge in swapped order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_switched_outputs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_completion: Option<Value>,
}

/// alpaca_eval writes preferences as numbers, but some files hold them as strings.
fn preference_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_f64()),
        Value::String(s) if s.trim().is_empty() || s.eq_ignore_ascii_case("nan") => Ok(None),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("preference {s:?} is not a number"))),
        other => Err(D::Error::custom(format!(
            "preference must be a number, got {other}"
        ))),
    }
}

/// Reads a JSON array of rows of type `T`; a bad row is an error naming its index.
pub fn read_json_rows<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = crate::data::read_text(path)?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| SeftError::file(path, format!("not valid JSON: {e}")))?;
    let Value::Array(rows) = value else {
        return Err(SeftError::file(path, "expected a JSON array of rows"));
    };
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            serde_json::from_value(row).map_err(|e| SeftError::file(path, format!("row {i}: {e}")))
        })
        .collect()
}

pub fn read_annotations(path: &Path) -> Result<Vec<Annotation>> {
    let rows: Vec<Annotation> = read_json_rows(path)?;
    if rows.is_empty() {
        return Err(SeftError::file(path, "no annotations"));
    }
    for (i, a) in rows.iter().enumerate() {
        if let Some(p) = a.preference
            && !(p == 0.0 || (1.0..=2.0).contains(&p))
        {
            return Err(SeftError::file(
                path,
                format!("row {i}: preference {p} is outside [1, 2] (or 0 for a draw)"),
            ));
        }
    }
    Ok(rows)
}

pub fn read_model_outputs(path: &Path) -> Result<Vec<ModelOutput>> {
    let rows: Vec<ModelOutput> = read_json_rows(path)?;
    if rows.is_empty() {
        return Err(SeftError::file(path, "no model outputs"));
    }
    Ok(rows)
}

/// alpaca_eval measures lengths with Python's `str.len`, i.e. in Unicode code points.
pub fn text_len(s: &str) -> usize {
    s.chars().count()
}

/// `int(mean(len(output)))`, the leaderboard's `avg_length`.
pub fn avg_length<'a>(outputs: impl IntoIterator<Item = &'a str>) -> usize {
    let (mut total, mut n) = (0usize, 0usize);
    for o in outputs {
        total += text_len(o);
        n += 1;
    }
    total.checked_div(n).unwrap_or(0)
}

/// Writes rows as a pretty JSON array (the layout alpaca_eval itself writes), atomically.
pub fn write_json_rows<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        io(dir, std::fs::create_dir_all(dir))?;
    }
    let text = serde_json::to_string_pretty(rows).expect("serializable rows");
    crate::data::jsonl::write_atomic(path, text.as_bytes())
}
