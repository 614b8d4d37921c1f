//! The SFT set of one iteration: enhanced answers that pass the filters. An answer is dropped
//! (with the first reason that applies, in this order) when it is empty, degenerate (stuck in
//! a loop), a duplicate of an earlier (prompt, answer), a revision whose length is too far from
//! the response's, or rejected by the quality gate.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::jsonl::write_jsonl;
use crate::error::{Result, SeftError};
use crate::evolution::evolve::RevisionRow;
use crate::evolution::gate::LoadedGate;
use crate::evolution::layout::files;
use crate::evolution::run_config::{Filters, RunConfig};
use crate::model::generate::FinishReason;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterOutcome {
    pub rows: usize,
    pub dropped_empty: usize,
    pub dropped_degenerate: usize,
    pub dropped_duplicate: usize,
    pub dropped_length_ratio: usize,
    /// Enhanced answers the quality gate rejected (gate.filter_precision).
    #[serde(default)]
    pub dropped_gate: usize,
}

/// Why an answer left the SFT set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Empty,
    Degenerate,
    Duplicate,
    LengthRatio,
    Gate,
}

impl DropReason {
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Empty => "empty",
            DropReason::Degenerate => "degenerate",
            DropReason::Duplicate => "duplicate",
            DropReason::LengthRatio => "length_ratio",
            DropReason::Gate => "gate",
        }
    }
}

impl FilterOutcome {
    fn count(&mut self, reason: DropReason) {
        *match reason {
            DropReason::Empty => &mut self.dropped_empty,
            DropReason::Degenerate => &mut self.dropped_degenerate,
            DropReason::Duplicate => &mut self.dropped_duplicate,
            DropReason::LengthRatio => &mut self.dropped_length_ratio,
            DropReason::Gate => &mut self.dropped_gate,
        } += 1;
    }
}

/// Is `text` stuck in a loop? Few distinct word trigrams among many.
pub fn is_repetitive(text: &str, min_unique_share: f64) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() < 10 {
        return false;
    }
    let trigrams: Vec<&[&str]> = words.windows(3).collect();
    let unique: HashSet<&[&str]> = trigrams.iter().copied().collect();
    (unique.len() as f64) < min_unique_share * trigrams.len() as f64
}

/// The filters of one pass over an iteration's rows; `seen` remembers (prompt, answer) pairs.
pub struct SftFilter<'a> {
    filters: &'a Filters,
    seen: HashSet<(String, String)>,
}

impl<'a> SftFilter<'a> {
    pub fn new(filters: &'a Filters) -> Self {
        SftFilter {
            filters,
            seen: HashSet::new(),
        }
    }

    /// Why `row` leaves the set, if it does; `gate_rejects` is the gate filter's verdict.
    pub fn reason(&mut self, row: &RevisionRow, gate_rejects: bool) -> Option<DropReason> {
        let f = self.filters;
        let text = row.enhanced.trim();
        let revised = row.enhanced != row.response;
        // A revision is judged by how the reviser stopped; a kept answer by how the policy did.
        let cut_off = if revised {
            row.reviser_finish == Some(FinishReason::Length)
        } else {
            row.response_finish == FinishReason::Length
        };
        let chars = |s: &str| s.chars().count().max(1) as f64;
        let ratio = chars(&row.enhanced) / chars(&row.response);
        if f.drop_empty && text.is_empty() {
            Some(DropReason::Empty)
        } else if f.drop_degenerate
            && ((cut_off && is_repetitive(text, 0.5)) || is_repetitive(text, 0.3))
        {
            Some(DropReason::Degenerate)
        } else if f.drop_duplicates && !self.seen.insert((row.prompt.clone(), text.to_string())) {
            Some(DropReason::Duplicate)
        } else if revised
            && f.max_length_ratio > 0.0
            && (ratio > f.max_length_ratio || ratio < 1.0 / f.max_length_ratio)
        {
            Some(DropReason::LengthRatio)
        } else if gate_rejects {
            Some(DropReason::Gate)
        } else {
            None
        }
    }
}

/// Writes the SFT set (`sft.jsonl`: prompt, completion) and the dropped rows with their reason
/// (`filtered.jsonl`) into `dir`.
pub fn build_sft_set(
    cfg: &RunConfig,
    rows: &[RevisionRow],
    gate: Option<&LoadedGate>,
    dir: &Path,
) -> Result<FilterOutcome> {
    let gate_rejects = gate_verdicts(cfg, rows, gate)?;
    let mut filter = SftFilter::new(&cfg.evolution.filters);
    let mut out = FilterOutcome::default();
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (index, r) in rows.iter().enumerate() {
        match filter.reason(r, gate_rejects.get(index).copied().unwrap_or(false)) {
            Some(reason) => {
                out.count(reason);
                dropped.push(serde_json::json!({"id": r.id, "reason": reason.name()}));
            }
            None => {
                kept.push(serde_json::json!({"prompt": r.prompt, "completion": r.enhanced.trim()}))
            }
        }
    }
    out.rows = kept.len();
    write_jsonl(&dir.join(files::SFT_SET), &kept)?;
    write_jsonl(&dir.join(files::FILTERED), &dropped)?;
    if kept.is_empty() {
        return Err(SeftError::Invalid(format!(
            "{}: every answer was filtered out, nothing to fine-tune on",
            dir.display()
        )));
    }
    Ok(out)
}

/// Per row, whether the gate's filter rejects its enhanced answer (empty without a filter).
fn gate_verdicts(
    cfg: &RunConfig,
    rows: &[RevisionRow],
    gate: Option<&LoadedGate>,
) -> Result<Vec<bool>> {
    let Some((gate, threshold)) = gate.and_then(|g| g.outcome.filter_score.map(|t| (g, t))) else {
        return Ok(Vec::new());
    };
    let texts: Vec<String> = rows
        .iter()
        .map(|r| cfg.reviser.format.user_turn(&r.prompt, &r.enhanced))
        .collect();
    Ok(gate
        .scorer
        .scores(&texts)?
        .into_iter()
        .map(|s| s <= threshold)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evolution::generation::ResponseRow;
    use crate::evolution::reviser::Tag;

    fn filters() -> Filters {
        Filters {
            drop_empty: true,
            drop_degenerate: true,
            drop_duplicates: true,
            max_length_ratio: 3.0,
        }
    }

    /// A row whose response is `response` and whose training answer is `enhanced`.
    fn row(prompt: &str, response: &str, enhanced: &str) -> RevisionRow {
        let response = ResponseRow {
            id: "x".into(),
            prompt: prompt.into(),
            response: response.into(),
            response_tokens: 1,
            finish_reason: FinishReason::Stop,
        };
        RevisionRow {
            enhanced: enhanced.into(),
            tag: Some(if enhanced == response.response {
                Tag::Keep
            } else {
                Tag::Major
            }),
            reviser_finish: Some(FinishReason::Stop),
            ..RevisionRow::kept(&response)
        }
    }

    #[test]
    fn an_empty_answer_is_dropped_as_empty() {
        let f = filters();
        assert_eq!(
            SftFilter::new(&f).reason(&row("p", "a", "  \n"), false),
            Some(DropReason::Empty)
        );
    }

    #[test]
    fn a_looping_answer_is_dropped_as_degenerate_and_a_varied_one_is_kept() {
        let f = filters();
        let looping = "the cat sat ".repeat(8);
        assert_eq!(
            SftFilter::new(&f).reason(&row("p", &looping, &looping), false),
            Some(DropReason::Degenerate)
        );
        let varied = "one two three four five six seven eight nine ten eleven twelve";
        assert_eq!(
            SftFilter::new(&f).reason(&row("p", varied, varied), false),
            None
        );
    }

    #[test]
    fn the_same_prompt_and_answer_twice_drops_the_second() {
        let f = filters();
        let mut filter = SftFilter::new(&f);
        assert_eq!(filter.reason(&row("p", "a", "b"), false), None);
        assert_eq!(
            filter.reason(&row("p", "c", " b "), false),
            Some(DropReason::Duplicate)
        );
        // Another prompt with the same answer is not a duplicate.
        assert_eq!(filter.reason(&row("q", "a", "b"), false), None);
    }

    #[test]
    fn a_revision_far_longer_or_shorter_than_the_response_is_dropped() {
        let f = filters();
        let long = "x".repeat(31);
        assert_eq!(
            SftFilter::new(&f).reason(&row("p", "0123456789", &long), false),
            Some(DropReason::LengthRatio)
        );
        assert_eq!(
            SftFilter::new(&f).reason(&row("p", &long, "abc"), false),
            Some(DropReason::LengthRatio)
        );
        // Within the ratio, and a kept answer of any length, stay.
        assert_eq!(
            SftFilter::new(&f).reason(&row("p", "0123456789", &"y".repeat(30)), false),
            None
        );
        assert_eq!(
            SftFilter::new(&f).reason(&row("p", &long, &long), false),
            None
        );
    }

    #[test]
    fn the_gate_verdict_drops_only_answers_no_other_filter_dropped() {
        let f = filters();
        assert_eq!(
            SftFilter::new(&f).reason(&row("p", "a", "b"), true),
            Some(DropReason::Gate)
        );
        assert_eq!(
            SftFilter::new(&f).reason(&row("p", "a", ""), true),
            Some(DropReason::Empty)
        );
    }

    #[test]
    fn switched_off_filters_keep_what_they_would_drop() {
        let off = Filters {
            drop_empty: false,
            drop_degenerate: false,
            drop_duplicates: false,
            max_length_ratio: 0.0,
        };
        let mut filter = SftFilter::new(&off);
        assert_eq!(filter.reason(&row("p", "a", ""), false), None);
        assert_eq!(filter.reason(&row("p", "a", ""), false), None);
        assert_eq!(filter.reason(&row("p", "a", &"z".repeat(100)), false), None);
    }
}
