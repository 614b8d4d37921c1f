//! Scoring: the prompts with their instructions (IFEval's `input_data.jsonl`), a model's
//! responses joined to them on the exact prompt text, strict and loose verdicts per instruction
//! (`evaluation_lib.test_instruction_following_strict` / `_loose`), and the accuracies
//! `evaluation_lib.print_report` prints: prompt level (all of a prompt's instructions followed),
//! instruction level, and per instruction group and type.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::instructions::Instruction;
use super::pytext::strip;
use crate::error::{Result, SeftError};

/// One IFEval prompt with its parsed instructions.
#[derive(Debug, Clone)]
pub struct IfevalPrompt {
    pub key: i64,
    pub prompt: String,
    pub instruction_ids: Vec<String>,
    pub instructions: Vec<Instruction>,
}

#[derive(Deserialize)]
struct InputRow {
    key: i64,
    prompt: String,
    instruction_id_list: Vec<String>,
    kwargs: Vec<Value>,
}

/// Parses IFEval's input data (one JSON object per line: `key`, `prompt`,
/// `instruction_id_list`, `kwargs`); any unusable row is an error naming its line and key.
pub fn parse_input_data(text: &str, path: &Path) -> Result<Vec<IfevalPrompt>> {
    let mut prompts = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |msg: String| SeftError::file(path, format!("line {}: {msg}", i + 1));
        let row: InputRow =
            serde_json::from_str(line).map_err(|e| at(format!("not an IFEval input row: {e}")))?;
        if row.instruction_id_list.len() != row.kwargs.len() {
            return Err(at(format!(
                "key {}: {} instruction ids but {} kwargs",
                row.key,
                row.instruction_id_list.len(),
                row.kwargs.len()
            )));
        }
        if let Some(first) = seen.insert(row.prompt.clone(), i + 1) {
            return Err(at(format!(
                "key {}: the same prompt text as line {first} (responses are joined on it)",
                row.key
            )));
        }
        let instructions = row
            .instruction_id_list
            .iter()
            .zip(&row.kwargs)
            .map(|(id, kw)| Instruction::parse(id, kw))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| at(format!("key {}: {e}", row.key)))?;
        prompts.push(IfevalPrompt {
            key: row.key,
            prompt: row.prompt,
            instruction_ids: row.instruction_id_list,
            instructions,
        });
    }
    if prompts.is_empty() {
        return Err(SeftError::file(path, "no IFEval prompts in the file"));
    }
    Ok(prompts)
}

pub fn read_input_data(path: &Path) -> Result<Vec<IfevalPrompt>> {
    parse_input_data(&crate::data::read_text(path)?, path)
}

/// A row of the reference's response file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptResponse {
    pub prompt: String,
    pub response: String,
}

/// Reads `{"prompt", "response"}` JSONL; a prompt given twice keeps its last response, as the
/// reference's dictionary does.
pub fn read_responses(path: &Path) -> Result<HashMap<String, String>> {
    let text = crate::data::read_text(path)?;
    let mut map = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: PromptResponse = serde_json::from_str(line).map_err(|e| {
            SeftError::file(
                path,
                format!(
                    "line {}: not a {{\"prompt\", \"response\"}} row: {e}",
                    i + 1
                ),
            )
        })?;
        map.insert(row.prompt, row.response);
    }
    Ok(map)
}

/// One prompt's verdicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub key: i64,
    pub prompt: String,
    pub response: String,
    pub instruction_id_list: Vec<String>,
    pub follow_instruction_list_strict: Vec<bool>,
    pub follow_all_instructions_strict: bool,
    pub follow_instruction_list_loose: Vec<bool>,
    pub follow_all_instructions_loose: bool,
}

/// The eight variants the loose score accepts, in the reference's order: the response, without
/// its first line, last line or both, each also with every `*` removed.
pub fn loose_variants(response: &str) -> [String; 8] {
    let lines: Vec<&str> = response.split('\n').collect();
    let n = lines.len();
    let join = |ls: &[&str]| strip(&ls.join("\n")).to_string();
    let remove_first = join(&lines[1.min(n)..]);
    let remove_last = join(&lines[..n.saturating_sub(1)]);
    let remove_both = if n >= 2 {
        join(&lines[1..n - 1])
    } else {
        String::new()
    };
    [
        response.to_string(),
        response.replace('*', ""),
        remove_first.clone(),
        remove_last.clone(),
        remove_both.clone(),
        remove_first.replace('*', ""),
        remove_last.replace('*', ""),
        remove_both.replace('*', ""),
    ]
}

/// Strict and loose verdicts of one response.
pub fn judge(prompt: &IfevalPrompt, response: &str) -> Verdict {
    let variants = loose_variants(response);
    let followed = |r: &str, i: &Instruction| !strip(r).is_empty() && i.check(r);
    let strict: Vec<bool> = prompt
        .instructions
        .iter()
        .map(|i| followed(response, i))
        .collect();
    let loose: Vec<bool> = prompt
        .instructions
        .iter()
        .map(|i| variants.iter().any(|r| followed(r, i)))
        .collect();
    Verdict {
        key: prompt.key,
        prompt: prompt.prompt.clone(),
        response: response.to_string(),
        instruction_id_list: prompt.instruction_ids.clone(),
        follow_all_instructions_strict: strict.iter().all(|&b| b),
        follow_instruction_list_strict: strict,
        follow_all_instructions_loose: loose.iter().all(|&b| b),
        follow_instruction_list_loose: loose,
    }
}

/// Verdicts for every prompt; a prompt without a response is an error naming it (the
/// reference's `KeyError`).
pub fn judge_all(
    prompts: &[IfevalPrompt],
    responses: &HashMap<String, String>,
    responses_path: &Path,
) -> Result<Vec<Verdict>> {
    let missing: Vec<i64> = prompts
        .iter()
        .filter(|p| !responses.contains_key(&p.prompt))
        .map(|p| p.key)
        .collect();
    if let Some(first) = missing.first() {
        let p = prompts
            .iter()
            .find(|p| p.key == *first)
            .expect("found above");
        let preview: String = p.prompt.chars().take(60).collect();
        return Err(SeftError::file(
            responses_path,
            format!(
                "no response for {} of {} prompts, first key {first} ({preview:?}…); keys: {}",
                missing.len(),
                prompts.len(),
                missing
                    .iter()
                    .take(10)
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(prompts
        .iter()
        .map(|p| judge(p, &responses[&p.prompt]))
        .collect())
}

/// Followed / total, strict and loose.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub total: usize,
    pub strict: usize,
    pub loose: usize,
}

impl Tally {
    fn add(&mut self, strict: bool, loose: bool) {
        self.total += 1;
        self.strict += usize::from(strict);
        self.loose += usize::from(loose);
    }
}

/// The four IFEval accuracies (fractions in [0, 1]) and the breakdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IfevalMetrics {
    /// Always `"ifeval"`: tells this `metrics.json` from AlpacaEval's in a leaderboard.
    pub benchmark: String,
    /// Who answered (model spec or file name).
    pub model: String,
    pub prompt_level_strict: f64,
    pub inst_level_strict: f64,
    pub prompt_level_loose: f64,
    pub inst_level_loose: f64,
    pub prompts: Tally,
    pub instructions: Tally,
    /// Per instruction group (`keywords`, `length_constraints`, …).
    pub by_group: BTreeMap<String, Tally>,
    /// Per instruction id.
    pub by_instruction: BTreeMap<String, Tally>,
}

fn fraction(n: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 / total as f64
    }
}

pub fn metrics(model: &str, verdicts: &[Verdict]) -> IfevalMetrics {
    let mut prompts = Tally::default();
    let mut instructions = Tally::default();
    let mut by_group: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_instruction: BTreeMap<String, Tally> = BTreeMap::new();
    for v in verdicts {
        prompts.add(
            v.follow_all_instructions_strict,
            v.follow_all_instructions_loose,
        );
        for ((id, &s), &l) in v
            .instruction_id_list
            .iter()
            .zip(&v.follow_instruction_list_strict)
            .zip(&v.follow_instruction_list_loose)
        {
            instructions.add(s, l);
            let group = id.split(':').next().unwrap_or(id);
            by_group.entry(group.to_string()).or_default().add(s, l);
            by_instruction.entry(id.clone()).or_default().add(s, l);
        }
    }
    IfevalMetrics {
        benchmark: "ifeval".to_string(),
        model: model.to_string(),
        prompt_level_strict: fraction(prompts.strict, prompts.total),
        inst_level_strict: fraction(instructions.strict, instructions.total),
        prompt_level_loose: fraction(prompts.loose, prompts.total),
        inst_level_loose: fraction(instructions.loose, instructions.total),
        prompts,
        instructions,
        by_group,
        by_instruction,
    }
}

/// `metrics.md`: the four accuracies, then the per-group and per-instruction tables.
pub fn markdown(m: &IfevalMetrics) -> String {
    let pct = |n: usize, t: usize| format!("{:.1}", 100.0 * fraction(n, t));
    let mut s = format!(
        "# IFEval: {}\n\n{} prompts, {} instructions.\n\n\
         | level | strict | loose |\n|---|---:|---:|\n\
         | prompt | {} | {} |\n| instruction | {} | {} |\n",
        m.model,
        m.prompts.total,
        m.instructions.total,
        pct(m.prompts.strict, m.prompts.total),
        pct(m.prompts.loose, m.prompts.total),
        pct(m.instructions.strict, m.instructions.total),
        pct(m.instructions.loose, m.instructions.total),
    );
    for (title, table) in [("group", &m.by_group), ("instruction", &m.by_instruction)] {
        s.push_str(&format!(
            "\n| {title} | n | strict | loose |\n|---|---:|---:|---:|\n"
        ));
        for (id, t) in table {
            s.push_str(&format!(
                "| {id} | {} | {} | {} |\n",
                t.total,
                pct(t.strict, t.total),
                pct(t.loose, t.total)
            ));
        }
    }
    s
}
