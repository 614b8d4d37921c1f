//! FastChat's MT-Bench files: questions (`question.jsonl`: question_id, category, turns),
//! answers (`model_answer/<model>.jsonl`: question_id, model_id, choices[0].turns), reference
//! answers (same schema) and judge prompts (`judge_prompts.jsonl`: name, system_prompt,
//! prompt_template, output_format).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::jsonl::read_jsonl;
use crate::error::{Result, SeftError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub question_id: u64,
    pub category: String,
    pub turns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub index: usize,
    pub turns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub question_id: u64,
    #[serde(default)]
    pub answer_id: String,
    #[serde(default)]
    pub model_id: String,
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub tstamp: f64,
}

impl Answer {
    pub fn turns(&self) -> &[String] {
        self.choices.first().map_or(&[], |c| &c.turns)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgePrompt {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub system_prompt: String,
    pub prompt_template: String,
    #[serde(default)]
    pub output_format: String,
}

/// Categories whose questions are graded against a reference answer (FastChat's NEED_REF_CATS).
pub const NEED_REF_CATS: [&str; 4] = ["math", "reasoning", "coding", "arena-hard-200"];

pub fn read_questions(path: &Path) -> Result<Vec<Question>> {
    let qs: Vec<Question> = read_jsonl(path)?;
    if qs.is_empty() {
        return Err(SeftError::file(path, "no questions"));
    }
    for q in &qs {
        if q.turns.is_empty() {
            return Err(SeftError::file(
                path,
                format!("question {} has no turns", q.question_id),
            ));
        }
    }
    Ok(qs)
}

/// Answers by question id; a question answered twice or an answer without turns is an error.
pub fn read_answers(path: &Path) -> Result<BTreeMap<u64, Answer>> {
    let rows: Vec<Answer> = read_jsonl(path)?;
    let mut out = BTreeMap::new();
    for a in rows {
        if a.turns().is_empty() {
            return Err(SeftError::file(
                path,
                format!("question {}: an answer without turns", a.question_id),
            ));
        }
        if out.insert(a.question_id, a).is_some() {
            return Err(SeftError::file(path, "a question is answered twice"));
        }
    }
    Ok(out)
}

pub fn read_judge_prompts(path: &Path) -> Result<BTreeMap<String, JudgePrompt>> {
    let rows: Vec<JudgePrompt> = read_jsonl(path)?;
    Ok(rows.into_iter().map(|p| (p.name.clone(), p)).collect())
}

/// A model's name as FastChat derives it: the answer file's stem.
pub fn model_name(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
}
