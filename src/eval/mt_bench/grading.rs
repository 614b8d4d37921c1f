//! Single-answer grading as FastChat's `llm_judge` does it: turn 1 with `single-v1` (or
//! `single-math-v1` and the reference answer for math, reasoning and coding), turn 2 with the
//! `-multi-turn` variants showing the whole conversation; the rating is the number in `[[n]]`
//! (falling back to `[n]`), and a verdict without one scores -1, is reported and excluded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::data::{Answer, JudgePrompt, NEED_REF_CATS, Question};
use crate::error::{Result, SeftError};
use crate::eval::judges::Judge;
use crate::model::Message;

/// FastChat's `one_score_pattern` then `one_score_pattern_backup`: the first `[[n]]`, else the
/// first `[n]`; n is an integer or a decimal.
pub fn parse_rating(judgment: &str) -> Option<f64> {
    for (open, close) in [("[[", "]]"), ("[", "]")] {
        let mut rest = judgment;
        while let Some(start) = rest.find(open) {
            let after = &rest[start + open.len()..];
            if let Some(end) = after.find(close) {
                let inner = &after[..end];
                if is_number(inner) {
                    return inner.parse().ok();
                }
            }
            rest = &rest[start + 1..];
        }
    }
    None
}

/// `\d+\.?\d*`
fn is_number(s: &str) -> bool {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let rest = &s[digits..];
    match rest.strip_prefix('.') {
        Some(frac) => frac.bytes().all(|b| b.is_ascii_digit()),
        None => rest.is_empty(),
    }
}

/// One graded turn, in FastChat's `model_judgment/*_single.jsonl` schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgment {
    pub question_id: u64,
    pub model: String,
    pub judge: (String, String),
    pub user_prompt: String,
    pub judgment: String,
    /// 1–10, or -1 when the verdict had no rating.
    pub score: f64,
    pub turn: usize,
    #[serde(default)]
    pub category: String,
}

/// Which prompt grades this turn of this question.
pub fn prompt_name(category: &str, turn: usize) -> String {
    let math = NEED_REF_CATS.contains(&category);
    let base = if math { "single-math-v1" } else { "single-v1" };
    if turn == 1 {
        base.to_string()
    } else {
        format!("{base}-multi-turn")
    }
}

/// Renders a FastChat template (Python `str.format` with named fields) in one pass.
fn format_template(template: &str, fields: &[(&str, &str)]) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err("a lone '}' in the template".into());
        }
        let end = tail.find('}').ok_or("an unclosed '{' in the template")?;
        let key = &tail[1..end];
        let value = fields.iter().find(|(k, _)| *k == key).ok_or_else(|| {
            format!("the template needs {{{key}}}, which this turn does not have")
        })?;
        out.push_str(value.1);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The judge conversation grading `turn` (1 or 2) of an answer.
pub fn judge_messages(
    prompt: &JudgePrompt,
    question: &Question,
    answer: &Answer,
    reference: Option<&Answer>,
    turn: usize,
) -> std::result::Result<Vec<Message>, String> {
    let q = &question.turns;
    let a = answer.turns();
    let r = reference.map(|r| r.turns()).unwrap_or(&[]);
    let get = |v: &[String], i: usize, what: &str| {
        v.get(i)
            .cloned()
            .ok_or_else(|| format!("question {}: no {what} {}", question.question_id, i + 1))
    };
    let mut fields: Vec<(&str, String)> = Vec::new();
    if turn == 1 {
        fields.push(("question", get(q, 0, "question turn")?));
        fields.push(("answer", get(a, 0, "answer turn")?));
        if prompt.prompt_template.contains("{ref_answer_1}") {
            fields.push(("ref_answer_1", get(r, 0, "reference turn")?));
        }
    } else {
        fields.push(("question_1", get(q, 0, "question turn")?));
        fields.push(("question_2", get(q, 1, "question turn")?));
        fields.push(("answer_1", get(a, 0, "answer turn")?));
        fields.push(("answer_2", get(a, 1, "answer turn")?));
        if prompt.prompt_template.contains("{ref_answer_1}") {
            fields.push(("ref_answer_1", get(r, 0, "reference turn")?));
            fields.push(("ref_answer_2", get(r, 1, "reference turn")?));
        }
    }
    let borrowed: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let user = format_template(&prompt.prompt_template, &borrowed)?;
    let mut messages = Vec::new();
    if !prompt.system_prompt.is_empty() {
        messages.push(Message::new("system", &prompt.system_prompt));
    }
    messages.push(Message::new("user", &user));
    Ok(messages)
}

/// What to grade: every question × turn of each model's answers.
pub struct GradingJob<'a> {
    pub questions: &'a [Question],
    pub answers: &'a BTreeMap<String, BTreeMap<u64, Answer>>,
    pub references: &'a BTreeMap<u64, Answer>,
    pub prompts: &'a BTreeMap<String, JudgePrompt>,
    pub max_tokens: usize,
    /// Text the judge's reply is forced to start with (local judges only), e.g. "Rating: [[".
    pub verdict_prefix: String,
}

/// Grades every turn; the judge sees all prompts at once (so a local judge batches them and an
/// HTTP judge runs them concurrently).
pub fn grade(
    job: &GradingJob,
    judge: &dyn Judge,
    on_done: &(dyn Fn(usize) + Sync),
) -> Result<Vec<Judgment>> {
    let mut items = Vec::new();
    let mut conversations = Vec::new();
    for (model, answers) in job.answers {
        for q in job.questions {
            let Some(answer) = answers.get(&q.question_id) else {
                continue;
            };
            for turn in 1..=q.turns.len().min(2) {
                let name = prompt_name(&q.category, turn);
                let prompt = job.prompts.get(&name).ok_or_else(|| {
                    SeftError::Invalid(format!("the judge prompts have no {name:?}"))
                })?;
                let reference = job.references.get(&q.question_id);
                if prompt.prompt_template.contains("{ref_answer_1}") && reference.is_none() {
                    return Err(SeftError::Invalid(format!(
                        "question {} ({}) needs a reference answer and there is none",
                        q.question_id, q.category
                    )));
                }
                let messages = judge_messages(prompt, q, answer, reference, turn)
                    .map_err(|e| SeftError::Invalid(format!("{model}: {e}")))?;
                items.push((
                    model.clone(),
                    q,
                    turn,
                    name,
                    messages.last().expect("user").content.clone(),
                ));
                conversations.push(messages);
            }
        }
    }
    let verdicts = judge.complete(&conversations, job.max_tokens, &job.verdict_prefix, on_done)?;
    Ok(items
        .into_iter()
        .zip(verdicts)
        .map(|((model, q, turn, name, user_prompt), verdict)| {
            let judgment = match verdict {
                Ok(text) => format!("{}{text}", job.verdict_prefix),
                Err(e) => format!("$ERROR$ {e}"),
            };
            Judgment {
                question_id: q.question_id,
                model,
                judge: (judge.name(), name),
                user_prompt,
                score: parse_rating(&judgment).unwrap_or(-1.0),
                judgment,
                turn,
                category: q.category.clone(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_follow_fastchat_patterns() {
        assert_eq!(parse_rating("Good answer. Rating: [[8]]"), Some(8.0));
        assert_eq!(parse_rating("Rating: [[7.5]] and later [[2]]"), Some(7.5));
        // Backup pattern when there is no [[n]].
        assert_eq!(parse_rating("Rating: [6]"), Some(6.0));
        // [[n]] wins over an earlier [n].
        assert_eq!(parse_rating("see [1] ... Rating: [[9]]"), Some(9.0));
        assert_eq!(parse_rating("Rating: [[10]]"), Some(10.0));
        assert_eq!(parse_rating("Rating: 8/10"), None);
        assert_eq!(parse_rating("Rating: [[eight]]"), None);
        assert_eq!(parse_rating("Rating: [[-3]]"), None);
        assert_eq!(parse_rating("Rating: [[.5]]"), None);
        assert_eq!(parse_rating("Rating: [[5.]]"), Some(5.0));
        assert_eq!(parse_rating("[[ 7 ]]"), None);
        assert_eq!(parse_rating(""), None);
        assert_eq!(parse_rating("[[[[4]]"), Some(4.0));
    }

    #[test]
    fn templates_format_like_python() {
        let t = "Q: {question}\n{{literal}} A: {answer}";
        assert_eq!(
            format_template(t, &[("question", "q {answer}"), ("answer", "a")]).unwrap(),
            "Q: q {answer}\n{literal} A: a"
        );
        assert!(format_template("{missing}", &[]).is_err());
    }

    #[test]
    fn prompt_names_follow_categories_and_turns() {
        assert_eq!(prompt_name("writing", 1), "single-v1");
        assert_eq!(prompt_name("math", 2), "single-math-v1-multi-turn");
        assert_eq!(prompt_name("coding", 1), "single-math-v1");
    }
}
