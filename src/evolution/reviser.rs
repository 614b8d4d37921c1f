//! The adaptive reviser's data and output format.
//!
//! From a preference pair `(prompt, chosen, rejected)` the reviser learns two things:
//! `(prompt, rejected)` → a revision tag and `chosen`, and `(prompt, chosen)` → the keep tag
//! alone. With ratings, the gap `score_chosen - score_rejected` picks the tag: below
//! `min_gap` the pair is dropped (the two answers are about as good), from `major_gap` on it is
//! `major`, in between `minor`; without ratings every revision is `default_level`.
//!
//! The reviser sees one user turn, [`ReviserFormat::template`] with `{prompt}` and `{response}`
//! filled in, and answers `<tag>` or `<tag>\n<revised response>`. The tags are plain text (no
//! tokenizer change), the same strings in training and parsing. An output without a tag keeps
//! the original response and is counted as untagged, never guessed at.

use serde::{Deserialize, Serialize};

use crate::data::Preference;
use crate::model::Message;
use crate::model::generate::SamplingConfig;

/// What the reviser decided for one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tag {
    Keep,
    Minor,
    Major,
}

pub const DEFAULT_TEMPLATE: &str = "Below is an instruction and a response. If the response is already helpful, correct and well written, answer [keep]. Otherwise answer [minor] for small fixes or [major] for a rewrite, then give the improved response on the next line.\n\n### Instruction:\n{prompt}\n\n### Response:\n{response}";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviserFormat {
    /// The reviser's user turn; `{prompt}` and `{response}` are replaced (once each, in one
    /// pass, so braces inside them are left alone).
    pub template: String,
    pub keep_tag: String,
    pub minor_tag: String,
    pub major_tag: String,
}

impl Default for ReviserFormat {
    fn default() -> Self {
        ReviserFormat {
            template: DEFAULT_TEMPLATE.into(),
            keep_tag: "[keep]".into(),
            minor_tag: "[minor]".into(),
            major_tag: "[major]".into(),
        }
    }
}

/// The reviser's output, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRevision {
    /// `None`: the output starts with no known tag.
    pub tag: Option<Tag>,
    /// The revised response for minor/major (may be empty when the reviser gave none).
    pub revision: String,
}

impl ReviserFormat {
    pub fn validate(&self) -> std::result::Result<(), String> {
        for key in ["{prompt}", "{response}"] {
            if !self.template.contains(key) {
                return Err(format!("reviser.format.template has no {key} placeholder"));
            }
        }
        let tags = [&self.keep_tag, &self.minor_tag, &self.major_tag];
        for (i, a) in tags.iter().enumerate() {
            if a.trim().is_empty() || a.trim() != a.as_str() {
                return Err(format!(
                    "reviser tags must be non-empty without surrounding spaces, got {a:?}"
                ));
            }
            for b in &tags[i + 1..] {
                if a.starts_with(b.as_str()) || b.starts_with(a.as_str()) {
                    return Err(format!(
                        "reviser tags {a:?} and {b:?} cannot be told apart (one starts the other)"
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn tag_text(&self, tag: Tag) -> &str {
        match tag {
            Tag::Keep => &self.keep_tag,
            Tag::Minor => &self.minor_tag,
            Tag::Major => &self.major_tag,
        }
    }

    /// The reviser's user turn for one response.
    pub fn user_turn(&self, prompt: &str, response: &str) -> String {
        let mut out = String::with_capacity(self.template.len() + prompt.len() + response.len());
        let mut rest = self.template.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let tail = &rest[open..];
            if let Some(after) = tail.strip_prefix("{prompt}") {
                out.push_str(prompt);
                rest = after;
            } else if let Some(after) = tail.strip_prefix("{response}") {
                out.push_str(response);
                rest = after;
            } else {
                out.push('{');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
        out
    }

    /// What the reviser is trained to answer.
    pub fn target(&self, tag: Tag, revision: &str) -> String {
        match tag {
            Tag::Keep => self.keep_tag.clone(),
            _ => format!("{}\n{}", self.tag_text(tag), revision.trim()),
        }
    }

    /// The tag of a reviser `output` and the enhanced response: the revision for minor/major
    /// with text, otherwise `response` unchanged (keep, untagged, or an empty revision).
    pub fn apply(&self, output: &str, response: &str) -> (Option<Tag>, String) {
        let parsed = self.parse(output);
        let enhanced = match parsed.tag {
            Some(Tag::Minor | Tag::Major) if !parsed.revision.is_empty() => parsed.revision,
            _ => response.to_string(),
        };
        (parsed.tag, enhanced)
    }

    /// Decoding for the reviser: `sampling`, ended as soon as the keep tag is written.
    pub fn decoding(&self, sampling: &SamplingConfig) -> SamplingConfig {
        SamplingConfig {
            stop_when_exactly: vec![self.keep_tag.clone()],
            ..sampling.clone()
        }
    }

    /// The tag `text` starts with (after whitespace) and what follows it.
    fn split_tag<'a>(&self, text: &'a str) -> Option<(Tag, &'a str)> {
        let text = text.trim_start();
        [Tag::Keep, Tag::Minor, Tag::Major]
            .into_iter()
            .find_map(|tag| {
                text.strip_prefix(self.tag_text(tag))
                    .map(|rest| (tag, rest))
            })
    }

    /// Reads the tag and the revision. Tags repeated at the start of a revision (a confused
    /// reviser writing `[major] [keep]`) are not part of it: such a revision may be empty.
    pub fn parse(&self, output: &str) -> ParsedRevision {
        let Some((tag, mut rest)) = self.split_tag(output) else {
            return ParsedRevision {
                tag: None,
                revision: String::new(),
            };
        };
        while let Some((_, after)) = self.split_tag(rest) {
            rest = after;
        }
        ParsedRevision {
            tag: Some(tag),
            revision: if tag == Tag::Keep {
                String::new()
            } else {
                rest.trim().to_string()
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevisionLevels {
    /// Pairs whose rating gap is below this are dropped.
    pub min_gap: f64,
    /// A gap of at least this is a major revision, smaller ones minor.
    pub major_gap: f64,
    /// The tag of revisions from pairs without ratings.
    pub default_level: Tag,
}

impl Default for RevisionLevels {
    fn default() -> Self {
        RevisionLevels {
            min_gap: 1.0,
            major_gap: 4.0,
            default_level: Tag::Major,
        }
    }
}

impl RevisionLevels {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.default_level == Tag::Keep {
            return Err("reviser.levels.default_level must be minor or major".into());
        }
        if !(self.min_gap.is_finite() && self.major_gap.is_finite() && self.min_gap >= 0.0) {
            return Err("reviser.levels gaps must be finite and min_gap >= 0".into());
        }
        Ok(())
    }

    /// The revision tag for a pair, or `None` when it is dropped.
    pub fn level(&self, pair: &PreferencePair) -> Option<Tag> {
        match (pair.score_chosen, pair.score_rejected) {
            (Some(c), Some(r)) => {
                let gap = c - r;
                if gap < self.min_gap {
                    None
                } else if gap >= self.major_gap {
                    Some(Tag::Major)
                } else {
                    Some(Tag::Minor)
                }
            }
            _ => Some(self.default_level),
        }
    }
}

/// A preference pair flattened to text (the reviser sees single-turn text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_chosen: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_rejected: Option<f64>,
}

/// A conversation as one block of text: a single user turn is its content; longer dialogues
/// (Anthropic HH) become a `Human:`/`Assistant:` transcript.
pub fn prompt_text(messages: &[Message]) -> String {
    if let [only] = messages {
        return only.content.clone();
    }
    messages
        .iter()
        .map(|m| {
            let who = match m.role.as_str() {
                "user" => "Human",
                "assistant" => "Assistant",
                "system" => "System",
                other => other,
            };
            format!("{who}: {}", m.content)
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

impl PreferencePair {
    pub fn from_preference(p: &Preference) -> Self {
        let side = |m: &[Message]| {
            m.iter()
                .map(|m| m.content.trim())
                .collect::<Vec<_>>()
                .join("\n")
        };
        PreferencePair {
            prompt: prompt_text(&p.prompt),
            chosen: side(&p.chosen),
            rejected: side(&p.rejected),
            score_chosen: p.score_chosen,
            score_rejected: p.score_rejected,
        }
    }
}

/// How the reviser's training set was made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReviserDataSummary {
    pub pairs: usize,
    /// Pairs longer than reviser.max_pair_chars.
    #[serde(default)]
    pub dropped_too_long: usize,
    pub dropped_small_gap: usize,
    pub keep: usize,
    pub minor: usize,
    pub major: usize,
}

/// Reviser training conversations (user turn, assistant target) from preference pairs.
pub fn reviser_conversations(
    pairs: &[PreferencePair],
    levels: &RevisionLevels,
    format: &ReviserFormat,
    max_pair_chars: usize,
) -> (Vec<Vec<Message>>, ReviserDataSummary) {
    let mut out = Vec::with_capacity(pairs.len() * 2);
    let mut summary = ReviserDataSummary {
        pairs: pairs.len(),
        ..Default::default()
    };
    for pair in pairs {
        let chars = pair.prompt.chars().count()
            + pair.chosen.chars().count()
            + pair.rejected.chars().count();
        if max_pair_chars > 0 && chars > max_pair_chars {
            summary.dropped_too_long += 1;
            continue;
        }
        let Some(level) = levels.level(pair) else {
            summary.dropped_small_gap += 1;
            continue;
        };
        out.push(vec![
            Message::new("user", &format.user_turn(&pair.prompt, &pair.rejected)),
            Message::new("assistant", &format.target(level, &pair.chosen)),
        ]);
        out.push(vec![
            Message::new("user", &format.user_turn(&pair.prompt, &pair.chosen)),
            Message::new("assistant", &format.target(Tag::Keep, "")),
        ]);
        summary.keep += 1;
        match level {
            Tag::Minor => summary.minor += 1,
            _ => summary.major += 1,
        }
    }
    (out, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(c: Option<f64>, r: Option<f64>) -> PreferencePair {
        PreferencePair {
            prompt: "p".into(),
            chosen: "good".into(),
            rejected: "bad".into(),
            score_chosen: c,
            score_rejected: r,
        }
    }

    #[test]
    fn rating_gap_picks_the_level() {
        let levels = RevisionLevels {
            min_gap: 1.0,
            major_gap: 5.0,
            default_level: Tag::Major,
        };
        assert_eq!(levels.level(&pair(Some(8.0), Some(7.5))), None);
        assert_eq!(levels.level(&pair(Some(8.0), Some(6.0))), Some(Tag::Minor));
        assert_eq!(levels.level(&pair(Some(9.0), Some(4.0))), Some(Tag::Major));
        assert_eq!(levels.level(&pair(None, None)), Some(Tag::Major));
    }

    #[test]
    fn targets_parse_back_and_untagged_output_is_detected() {
        let f = ReviserFormat::default();
        assert!(f.validate().is_ok());
        let t = f.target(Tag::Minor, "better {response}");
        assert_eq!(
            f.parse(&t),
            ParsedRevision {
                tag: Some(Tag::Minor),
                revision: "better {response}".into()
            }
        );
        assert_eq!(f.parse(" [keep]").tag, Some(Tag::Keep));
        assert_eq!(f.parse("I think it is fine").tag, None);
        let confused = f.parse("[major] [keep]");
        assert_eq!(
            (confused.tag, confused.revision.as_str()),
            (Some(Tag::Major), "")
        );
        assert_eq!(f.parse("[minor]\n[minor] fixed").revision, "fixed");
        assert_eq!(
            f.user_turn("{x} a", "b {prompt}")
                .matches("{prompt}")
                .count(),
            1
        );
        let bad = ReviserFormat {
            keep_tag: "[k]".into(),
            minor_tag: "[k]x".into(),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn each_pair_gives_a_revision_and_a_keep() {
        let f = ReviserFormat::default();
        let (convs, s) = reviser_conversations(
            &[pair(Some(9.0), Some(2.0)), pair(Some(9.0), Some(8.9))],
            &RevisionLevels::default(),
            &f,
            0,
        );
        assert_eq!(convs.len(), 2);
        assert_eq!(s.dropped_small_gap, 1);
        assert_eq!(convs[0][1].content, "[major]\ngood");
        assert_eq!(convs[1][1].content, "[keep]");
        assert!(convs[1][0].content.contains("### Response:\ngood"));
    }
}
