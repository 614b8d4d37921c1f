//! The 25 verifiable instructions of IFEval's registry (`instructions_registry.INSTRUCTION_DICT`
//! of google-research's `instruction_following_eval`), each parsed from its id and kwargs and
//! checked with the reference's semantics (`instructions.py`, `check_following`).
//!
//! Where the reference invents a parameter (a kwarg missing or `None`: it draws a random one),
//! seft refuses the row instead, so a verdict never depends on a random draw.
//! `keywords:letter_frequency` with a single non-letter target (`#` in prompt 1122, `!` in 1129)
//! counts that character, as the prompts ask and as google-research's `instructions.py` does at
//! commit 3f357bde (it only rejects an empty or multi-character target). The copies on PyPI
//! (lm-eval 0.4.13, if-verifiable 0.1.2) still replace a target outside a-z by a random ASCII
//! letter, so their verdicts on those two prompts change from run to run.

use std::fmt;

use regex::Regex;
use serde_json::{Map, Value};

use super::pytext::{self, PY_SPACE, count_words, is_lower, is_py_word, is_upper, strip};
use super::{language, punkt, word_tokenize};

/// `relation` / `let_relation` / `capital_relation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    LessThan,
    AtLeast,
}

impl Relation {
    fn holds(self, count: usize, threshold: usize) -> bool {
        match self {
            Relation::LessThan => count < threshold,
            Relation::AtLeast => count >= threshold,
        }
    }
}

/// IFEval's postscript markers get the reference's hand-written patterns; any other marker
/// is used as a regex, as the reference does.
#[derive(Debug, Clone)]
pub enum Instruction {
    KeywordExistence {
        keywords: Vec<Regex>,
    },
    KeywordFrequency {
        keyword: Regex,
        relation: Relation,
        frequency: usize,
    },
    ForbiddenWords {
        words: Vec<Regex>,
    },
    LetterFrequency {
        letter: char,
        relation: Relation,
        frequency: usize,
    },
    ResponseLanguage {
        language: String,
    },
    NumberSentences {
        relation: Relation,
        num_sentences: usize,
    },
    NumberParagraphs {
        num_paragraphs: usize,
    },
    NumberWords {
        relation: Relation,
        num_words: usize,
    },
    NthParagraphFirstWord {
        num_paragraphs: usize,
        nth_paragraph: usize,
        first_word: String,
    },
    NumberPlaceholders {
        num_placeholders: usize,
    },
    Postscript {
        pattern: Regex,
    },
    NumberBulletLists {
        num_bullets: usize,
    },
    ConstrainedResponse,
    NumberHighlightedSections {
        num_highlights: usize,
    },
    MultipleSections {
        splitter: Regex,
        num_sections: usize,
    },
    JsonFormat,
    Title,
    TwoResponses,
    RepeatPrompt {
        prompt_to_repeat: String,
    },
    EndChecker {
        end_phrase: String,
    },
    CapitalWordFrequency {
        relation: Relation,
        frequency: usize,
    },
    EnglishCapital,
    EnglishLowercase,
    NoComma,
    Quotation,
}

/// Every instruction id of the registry, in its order.
pub const INSTRUCTION_IDS: [&str; 25] = [
    "keywords:existence",
    "keywords:frequency",
    "keywords:forbidden_words",
    "keywords:letter_frequency",
    "language:response_language",
    "length_constraints:number_sentences",
    "length_constraints:number_paragraphs",
    "length_constraints:number_words",
    "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders",
    "detectable_content:postscript",
    "detectable_format:number_bullet_lists",
    "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections",
    "detectable_format:json_format",
    "detectable_format:title",
    "combination:two_responses",
    "combination:repeat_prompt",
    "startend:end_checker",
    "change_case:capital_word_frequency",
    "change_case:english_capital",
    "change_case:english_lowercase",
    "punctuation:no_comma",
    "startend:quotation",
];

/// Why an instruction's kwargs cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KwargsError(pub String);

impl fmt::Display for KwargsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kwargs of one instruction, with every key read at most once; keys left over are errors.
struct Kwargs<'a> {
    id: &'a str,
    map: Map<String, Value>,
}

impl<'a> Kwargs<'a> {
    fn new(id: &'a str, kwargs: &Value) -> Result<Self, KwargsError> {
        let map = match kwargs {
            Value::Object(m) => m
                .iter()
                // The hub's copy of IFEval stores every kwarg of every type, null when unused.
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Value::Null => Map::new(),
            other => {
                return Err(KwargsError(format!(
                    "{id}: kwargs must be an object, not {other}"
                )));
            }
        };
        Ok(Self { id, map })
    }

    fn take(&mut self, key: &str) -> Result<Value, KwargsError> {
        self.map
            .remove(key)
            .ok_or_else(|| KwargsError(format!("{}: missing kwarg `{key}`", self.id)))
    }

    fn string(&mut self, key: &str) -> Result<String, KwargsError> {
        match self.take(key)? {
            Value::String(s) if !s.is_empty() => Ok(s),
            other => Err(KwargsError(format!(
                "{}: kwarg `{key}` must be a non-empty string, not {other}",
                self.id
            ))),
        }
    }

    fn count(&mut self, key: &str) -> Result<usize, KwargsError> {
        let v = self.take(key)?;
        let n = v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e15)
                .map(|f| f as u64)
        });
        n.and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
            KwargsError(format!(
                "{}: kwarg `{key}` must be a non-negative integer, not {v}",
                self.id
            ))
        })
    }

    fn relation(&mut self, key: &str) -> Result<Relation, KwargsError> {
        match self.string(key)?.as_str() {
            "less than" => Ok(Relation::LessThan),
            "at least" => Ok(Relation::AtLeast),
            other => Err(KwargsError(format!(
                "{}: kwarg `{key}` must be \"less than\" or \"at least\", not {other:?}",
                self.id
            ))),
        }
    }

    fn strings(&mut self, key: &str) -> Result<Vec<String>, KwargsError> {
        let v = self.take(key)?;
        let list = v
            .as_array()
            .filter(|a| !a.is_empty())
            .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_string)).collect());
        list.ok_or_else(|| {
            KwargsError(format!(
                "{}: kwarg `{key}` must be a non-empty list of strings, not {v}",
                self.id
            ))
        })
    }

    fn finish(self) -> Result<(), KwargsError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => Err(KwargsError(format!("{}: unexpected kwarg `{k}`", self.id))),
        }
    }
}

/// A keyword as the reference uses it: a regex pattern searched case-insensitively.
fn keyword_regex(id: &str, pattern: &str) -> Result<Regex, KwargsError> {
    Regex::new(&format!("(?i){pattern}")).map_err(|e| {
        KwargsError(format!(
            "{id}: keyword {pattern:?} is not a valid pattern: {e}"
        ))
    })
}

impl Instruction {
    /// The instruction `id` with its `kwargs` (a JSON object, as in IFEval's input_data.jsonl).
    pub fn parse(id: &str, kwargs: &Value) -> Result<Self, KwargsError> {
        let mut k = Kwargs::new(id, kwargs)?;
        let instruction = match id {
            "keywords:existence" => {
                let mut words = k.strings("keywords")?;
                words.sort();
                Instruction::KeywordExistence {
                    keywords: words
                        .iter()
                        .map(|w| keyword_regex(id, w))
                        .collect::<Result<_, _>>()?,
                }
            }
            "keywords:frequency" => {
                let keyword = k.string("keyword")?;
                Instruction::KeywordFrequency {
                    keyword: keyword_regex(id, strip(&keyword))?,
                    frequency: k.count("frequency")?,
                    relation: k.relation("relation")?,
                }
            }
            "keywords:forbidden_words" => {
                let mut words = k.strings("forbidden_words")?;
                words.sort();
                words.dedup();
                Instruction::ForbiddenWords {
                    words: words
                        .iter()
                        .map(|w| keyword_regex(id, w))
                        .collect::<Result<_, _>>()?,
                }
            }
            "keywords:letter_frequency" => {
                let letter = k.string("letter")?;
                let stripped = strip(&letter);
                let mut chars = stripped.chars();
                let (Some(c), None) = (chars.next(), chars.next()) else {
                    return Err(KwargsError(format!(
                        "{id}: kwarg `letter` must be one character, not {letter:?}"
                    )));
                };
                Instruction::LetterFrequency {
                    letter: c.to_lowercase().next().unwrap_or(c),
                    frequency: k.count("let_frequency")?,
                    relation: k.relation("let_relation")?,
                }
            }
            "language:response_language" => {
                let language = k.string("language")?;
                if !language::is_langdetect_code(&language) {
                    return Err(KwargsError(format!(
                        "{id}: kwarg `language` {language:?} is not a language code langdetect knows"
                    )));
                }
                Instruction::ResponseLanguage { language }
            }
            "length_constraints:number_sentences" => Instruction::NumberSentences {
                num_sentences: k.count("num_sentences")?,
                relation: k.relation("relation")?,
            },
            "length_constraints:number_paragraphs" => Instruction::NumberParagraphs {
                num_paragraphs: k.count("num_paragraphs")?,
            },
            "length_constraints:number_words" => Instruction::NumberWords {
                num_words: k.count("num_words")?,
                relation: k.relation("relation")?,
            },
            "length_constraints:nth_paragraph_first_word" => {
                let num_paragraphs = k.count("num_paragraphs")?;
                let nth_paragraph = k.count("nth_paragraph")?;
                if nth_paragraph == 0 || nth_paragraph > num_paragraphs {
                    return Err(KwargsError(format!(
                        "{id}: kwarg `nth_paragraph` must be in 1..={num_paragraphs}, not {nth_paragraph}"
                    )));
                }
                Instruction::NthParagraphFirstWord {
                    num_paragraphs,
                    nth_paragraph,
                    first_word: k.string("first_word")?.to_lowercase(),
                }
            }
            "detectable_content:number_placeholders" => Instruction::NumberPlaceholders {
                num_placeholders: k.count("num_placeholders")?,
            },
            "detectable_content:postscript" => {
                let marker = k.string("postscript_marker")?;
                let pattern = match strip(&marker) {
                    "P.P.S" => r"p\.\s?p\.\s?s".to_string(),
                    "P.S." => r"p\.\s?s\.".to_string(),
                    other => other.to_lowercase(),
                };
                let pattern = format!(r"(?m){PY_SPACE}*{}.*$", pattern.replace(r"\s", PY_SPACE));
                Instruction::Postscript {
                    pattern: Regex::new(&pattern).map_err(|e| {
                        KwargsError(format!(
                            "{id}: postscript marker {marker:?} is not a valid pattern: {e}"
                        ))
                    })?,
                }
            }
            "detectable_format:number_bullet_lists" => Instruction::NumberBulletLists {
                num_bullets: k.count("num_bullets")?,
            },
            "detectable_format:constrained_response" => Instruction::ConstrainedResponse,
            "detectable_format:number_highlighted_sections" => {
                Instruction::NumberHighlightedSections {
                    num_highlights: k.count("num_highlights")?,
                }
            }
            "detectable_format:multiple_sections" => {
                let splitter = k.string("section_spliter")?;
                let pattern = format!(r"{PY_SPACE}?{}{PY_SPACE}?\d+{PY_SPACE}?", strip(&splitter));
                Instruction::MultipleSections {
                    splitter: Regex::new(&pattern).map_err(|e| {
                        KwargsError(format!(
                            "{id}: section splitter {splitter:?} is not a valid pattern: {e}"
                        ))
                    })?,
                    num_sections: k.count("num_sections")?,
                }
            }
            "detectable_format:json_format" => Instruction::JsonFormat,
            "detectable_format:title" => Instruction::Title,
            "combination:two_responses" => Instruction::TwoResponses,
            "combination:repeat_prompt" => Instruction::RepeatPrompt {
                prompt_to_repeat: k.string("prompt_to_repeat")?,
            },
            "startend:end_checker" => Instruction::EndChecker {
                end_phrase: k.string("end_phrase")?,
            },
            "change_case:capital_word_frequency" => Instruction::CapitalWordFrequency {
                frequency: k.count("capital_frequency")?,
                relation: k.relation("capital_relation")?,
            },
            "change_case:english_capital" => Instruction::EnglishCapital,
            "change_case:english_lowercase" => Instruction::EnglishLowercase,
            "punctuation:no_comma" => Instruction::NoComma,
            "startend:quotation" => Instruction::Quotation,
            other => {
                return Err(KwargsError(format!(
                    "unknown instruction id {other:?} (IFEval has {})",
                    INSTRUCTION_IDS.len()
                )));
            }
        };
        k.finish()?;
        Ok(instruction)
    }

    /// Whether `response` follows the instruction (`check_following`).
    pub fn check(&self, response: &str) -> bool {
        match self {
            Instruction::KeywordExistence { keywords } => {
                keywords.iter().all(|k| k.is_match(response))
            }
            Instruction::KeywordFrequency {
                keyword,
                relation,
                frequency,
            } => relation.holds(keyword.find_iter(response).count(), *frequency),
            Instruction::ForbiddenWords { words } => {
                !words.iter().any(|w| has_whole_word(w, response))
            }
            Instruction::LetterFrequency {
                letter,
                relation,
                frequency,
            } => {
                let count = response
                    .to_lowercase()
                    .chars()
                    .filter(|c| c == letter)
                    .count();
                relation.holds(count, *frequency)
            }
            Instruction::ResponseLanguage { language } => {
                language::detect(response).is_none_or(|found| found == language)
            }
            Instruction::NumberSentences {
                relation,
                num_sentences,
            } => relation.holds(punkt::count_sentences(response), *num_sentences),
            Instruction::NumberParagraphs { num_paragraphs } => {
                divider_paragraphs(response) == Some(*num_paragraphs)
            }
            Instruction::NumberWords {
                relation,
                num_words,
            } => relation.holds(count_words(response), *num_words),
            Instruction::NthParagraphFirstWord {
                num_paragraphs,
                nth_paragraph,
                first_word,
            } => nth_paragraph_first_word(response, *num_paragraphs, *nth_paragraph, first_word),
            Instruction::NumberPlaceholders { num_placeholders } => {
                regexes().placeholder.find_iter(response).count() >= *num_placeholders
            }
            Instruction::Postscript { pattern } => pattern.is_match(&response.to_lowercase()),
            Instruction::NumberBulletLists { num_bullets } => {
                let r = regexes();
                let n = r.star_bullet.find_iter(response).count()
                    + r.dash_bullet.find_iter(response).count();
                n == *num_bullets
            }
            Instruction::ConstrainedResponse => {
                let value = strip(response);
                [
                    "My answer is yes.",
                    "My answer is no.",
                    "My answer is maybe.",
                ]
                .iter()
                .any(|option| value.contains(option))
            }
            Instruction::NumberHighlightedSections { num_highlights } => {
                count_highlights(response) >= *num_highlights
            }
            Instruction::MultipleSections {
                splitter,
                num_sections,
            } => splitter.find_iter(response).count() >= *num_sections,
            Instruction::JsonFormat => {
                let s = strip(response);
                let s = ["```json", "```Json", "```JSON", "```"]
                    .iter()
                    .fold(s, |s, p| s.strip_prefix(p).unwrap_or(s));
                let s = s.strip_suffix("```").unwrap_or(s);
                pytext::python_json_loads_ok(strip(s))
            }
            Instruction::Title => regexes().title.find_iter(response).any(|m| {
                let t = m.as_str().trim_start_matches('<').trim_end_matches('>');
                !strip(t).is_empty()
            }),
            Instruction::TwoResponses => two_responses(response),
            Instruction::RepeatPrompt { prompt_to_repeat } => strip(response)
                .to_lowercase()
                .starts_with(&strip(prompt_to_repeat).to_lowercase()),
            Instruction::EndChecker { end_phrase } => strip(response)
                .trim_matches('"')
                .to_lowercase()
                .ends_with(&strip(end_phrase).to_lowercase()),
            Instruction::CapitalWordFrequency {
                relation,
                frequency,
            } => {
                let capital = word_tokenize::word_tokenize(response)
                    .iter()
                    .filter(|w| is_upper(w))
                    .count();
                relation.holds(capital, *frequency)
            }
            Instruction::EnglishCapital => {
                is_upper(response) && language::detect(response).is_none_or(|l| l == "en")
            }
            Instruction::EnglishLowercase => {
                is_lower(response) && language::detect(response).is_none_or(|l| l == "en")
            }
            Instruction::NoComma => !response.contains(','),
            Instruction::Quotation => {
                let v = strip(response);
                v.chars().count() > 1 && v.starts_with('"') && v.ends_with('"')
            }
        }
    }
}

struct Regexes {
    placeholder: Regex,
    star_bullet: Regex,
    dash_bullet: Regex,
    highlight: Regex,
    double_highlight: Regex,
    divider: Regex,
    title: Regex,
}

fn regexes() -> &'static Regexes {
    static REGEXES: std::sync::OnceLock<Regexes> = std::sync::OnceLock::new();
    REGEXES.get_or_init(|| {
        let re = |p: &str| Regex::new(&p.replace(r"\s", PY_SPACE)).expect("valid pattern");
        Regexes {
            placeholder: re(r"\[.*?\]"),
            star_bullet: re(r"(?m)^\s*\*[^*].*$"),
            dash_bullet: re(r"(?m)^\s*-.*$"),
            highlight: re(r"\*[^\n*]*\*"),
            double_highlight: re(r"\*\*[^\n*]*\*\*"),
            divider: re(r"\s?\*\*\*\s?"),
            title: re(r"<<[^\n]+>>"),
        }
    })
}

/// `re.search(r"\b" + word + r"\b", text, re.IGNORECASE)` with Python's `\w` deciding the
/// boundaries: every start position is tried, as Python's search does.
fn has_whole_word(word: &Regex, text: &str) -> bool {
    let boundary = |at: usize| {
        let before = text[..at].chars().next_back().is_some_and(is_py_word);
        let after = text[at..].chars().next().is_some_and(is_py_word);
        before != after
    };
    let mut start = 0;
    while let Some(m) = word.find_at(text, start) {
        if boundary(m.start()) && boundary(m.end()) {
            return true;
        }
        match text[m.start()..].chars().next() {
            Some(c) => start = m.start() + c.len_utf8(),
            None => return false,
        }
    }
    false
}

/// `length_constraints:number_paragraphs`: paragraphs split on `***` (with one whitespace either
/// side); empty ones are allowed only first or last; `None` if an inner one is empty.
fn divider_paragraphs(response: &str) -> Option<usize> {
    let parts: Vec<&str> = regexes().divider.split(response).collect();
    let mut count = parts.len();
    for (i, p) in parts.iter().enumerate() {
        if strip(p).is_empty() {
            if i == 0 || i == parts.len() - 1 {
                count -= 1;
            } else {
                return None;
            }
        }
    }
    Some(count)
}

fn nth_paragraph_first_word(
    response: &str,
    num_paragraphs: usize,
    nth: usize,
    first_word: &str,
) -> bool {
    let paragraphs: Vec<&str> = response.split("\n\n").collect();
    let count = paragraphs.len() - paragraphs.iter().filter(|p| strip(p).is_empty()).count();
    if nth > count {
        return false;
    }
    let paragraph = strip(paragraphs[nth - 1]);
    let Some(word) = pytext::split_whitespace(paragraph).next() else {
        return false;
    };
    let word = word.trim_start_matches('\'').trim_start_matches('"');
    let found: String = word
        .chars()
        .take_while(|c| !matches!(c, '.' | ',' | '?' | '!' | '\'' | '"'))
        .flat_map(char::to_lowercase)
        .collect();
    count == num_paragraphs && found == first_word
}

fn count_highlights(response: &str) -> usize {
    let r = regexes();
    let single = r
        .highlight
        .find_iter(response)
        .filter(|m| !strip(m.as_str().trim_matches('*')).is_empty())
        .count();
    let double = r
        .double_highlight
        .find_iter(response)
        .filter(|m| {
            let inner = &m.as_str()[2..m.as_str().len() - 2];
            !strip(inner).is_empty()
        })
        .count();
    single + double
}

fn two_responses(response: &str) -> bool {
    let parts: Vec<&str> = response.split("******").collect();
    let mut valid = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if strip(p).is_empty() {
            if i != 0 && i != parts.len() - 1 {
                return false;
            }
        } else {
            valid.push(*p);
        }
    }
    valid.len() == 2 && strip(valid[0]) != strip(valid[1])
}
