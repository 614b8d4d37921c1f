//! NLTK's Punkt sentence tokenizer for English (inference only), as IFEval's
//! `length_constraints:number_sentences` counts sentences with it.
//!
//! Punkt is the unsupervised sentence-boundary detector of Kiss & Strunk (2006), "Unsupervised
//! Multilingual Sentence Boundary Detection", Computational Linguistics 32(4): a period, `?` or
//! `!` ends a sentence unless the word before it is a known abbreviation, an initial or an
//! ordinal number whose following word gives no evidence of a sentence start. The evidence is
//! learned from a corpus: abbreviation types, collocations (`("s", "bach")`), frequent
//! sentence starters, and for each word type the orthographic contexts it was seen in
//! (upper/lower case at the beginning, middle or an unknown position of a sentence).
//!
//! This module follows NLTK 3.10's `PunktSentenceTokenizer.span_tokenize` with
//! `realign_boundaries=True` step by step, so that the count equals IFEval's on every text:
//!
//! 1. candidate ends: every `.`, `?` or `!` followed by other punctuation or by whitespace and a
//!    token (NLTK's period-context regex), each with the word before it
//!    (`_match_potential_end_contexts`, overlapping candidates dropped as NLTK drops them);
//! 2. for each candidate, the context "word + end + following token" is split into tokens
//!    (`_tokenize_words`), annotated by type (first pass: sentence end, abbreviation,
//!    ellipsis) and by token pairs (second pass: collocations, orthographic heuristic,
//!    frequent sentence starters, initials and `##number##`s), and is a break if a break token
//!    is followed by another token (`text_contains_sentbreak`);
//! 3. the sentences are the stretches between breaks, the last one without trailing whitespace
//!    (`_slices_from_text`), and closing quotes or brackets after a break move into the
//!    sentence they close (`_realign_boundaries`).
//!
//! The model (`datasets/punkt/english.tsv`) is NLTK's `punkt_tab` English model.
//!
//! Written by hand rather than taken from crates.io: the `punkt` crate is unmaintained since
//! 2019, depends on rustc-serialize and phf 0.7, and ships its own older model, so it does not
//! reproduce NLTK 3.10. NLTK's regexes use lookaheads, which the `regex` crate has not; the
//! word tokenizer, the candidate-end search and the boundary realignment are therefore
//! scanned by hand below, each beside the NLTK pattern it implements.
//!
//! Python and Rust semantics, checked over every code point against the reference (Python
//! 3.11, the `regex` module NLTK compiles its patterns with):
//! - offsets are UTF-8 bytes here and code points in Python; every comparison and length below
//!   is of whole characters, so the spans are the same once converted;
//! - `\s` of the `regex` module is Unicode White_Space, exactly `char::is_whitespace`;
//!   `str.isspace()`/`strip()` add U+001C..U+001F (`is_py_space`); NLTK's
//!   `string.whitespace` is ASCII only (`is_ascii_space`);
//! - `\d` (in `_RE_NUMERIC`) is the `regex` crate's, equal to the `regex` module's on every
//!   character the crate's Unicode 16.0 tables know; `[^\W\d]` (in `_RE_INITIAL`) is
//!   Alphabetic (`char::is_alphabetic`, Unicode 17.0) or a mark, connector or join control
//!   (the crate's classes), the module's `\w` (UTS #18) without digits. The module (2026.12)
//!   knows later characters still: 64 marks and the 10 Tolong Siki digits the crate's tables
//!   lack, and the letters its tables add after Unicode 17.0;
//! - `str.lower()`, `isupper()` and `islower()` of one character equal `to_lowercase`,
//!   `is_uppercase` and `is_lowercase` except on characters Python 3.11's Unicode 14.0 does
//!   not know, and on U+0295 and a few modifier letters (U+10FC, U+A7F2..U+A7F4, U+AB69, ...)
//!   that Unicode 15+ made lowercase: Rust (Unicode 17) calls them lowercase, Python 3.11 not.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

/// NLTK's `punkt_tab` English model, as written by `datasets/punkt/make_english.py`.
const ENGLISH_TSV: &str = include_str!("../../../datasets/punkt/english.tsv");

// Orthographic-context flags (NLTK's `_ORTHO_*`): where a word type was seen with which case.
const ORTHO_BEG_UC: u32 = 1 << 1;
const ORTHO_MID_UC: u32 = 1 << 2;
const ORTHO_UNK_UC: u32 = 1 << 3;
const ORTHO_BEG_LC: u32 = 1 << 4;
const ORTHO_MID_LC: u32 = 1 << 5;
const ORTHO_UNK_LC: u32 = 1 << 6;
const ORTHO_UC: u32 = ORTHO_BEG_UC | ORTHO_MID_UC | ORTHO_UNK_UC;
const ORTHO_LC: u32 = ORTHO_BEG_LC | ORTHO_MID_LC | ORTHO_UNK_LC;

/// The type NLTK gives every numeric token.
const NUMBER_TYPE: &str = "##number##";

/// A trained Punkt model: the parameters NLTK keeps in `PunktParameters`.
#[derive(Debug, Clone)]
pub struct PunktModel {
    abbrev_types: HashSet<String>,
    /// Sorted, so a pair of `&str` is found by binary search without allocating.
    collocations: Vec<(String, String)>,
    sent_starters: HashSet<String>,
    ortho_context: HashMap<String, u32>,
}

/// The English model, parsed once.
pub fn english() -> &'static PunktModel {
    static MODEL: OnceLock<PunktModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        PunktModel::from_tsv(ENGLISH_TSV).expect("the embedded English Punkt model is well-formed")
    })
}

/// The number of sentences of `text`, as IFEval counts them
/// (`len(PunktTokenizer("english").tokenize(text))`).
pub fn count_sentences(text: &str) -> usize {
    english().sentence_spans(text).len()
}

impl PunktModel {
    /// Reads the model's lines: `abbrev\tT`, `colloc\tA\tB`, `starter\tT`, `ortho\tT\tFLAGS`.
    /// Fields are kept as written (the abbreviation `". . "` ends in a space).
    fn from_tsv(tsv: &str) -> Result<Self, String> {
        let mut model = PunktModel {
            abbrev_types: HashSet::new(),
            collocations: Vec::new(),
            sent_starters: HashSet::new(),
            ortho_context: HashMap::new(),
        };
        for (n, line) in tsv.lines().enumerate() {
            let fields: Vec<&str> = line.split('\t').collect();
            match fields.as_slice() {
                ["abbrev", t] => {
                    model.abbrev_types.insert((*t).to_owned());
                }
                ["colloc", a, b] => model.collocations.push(((*a).to_owned(), (*b).to_owned())),
                ["starter", t] => {
                    model.sent_starters.insert((*t).to_owned());
                }
                ["ortho", t, flags] => {
                    let flags = flags
                        .parse()
                        .map_err(|_| format!("line {}: bad flags {flags:?}", n + 1))?;
                    model.ortho_context.insert((*t).to_owned(), flags);
                }
                _ => return Err(format!("line {}: unexpected {line:?}", n + 1)),
            }
        }
        model.collocations.sort();
        Ok(model)
    }

    /// The sentences of `text` as byte ranges, exactly NLTK's `span_tokenize` (with
    /// `realign_boundaries=True`) converted from code points to bytes. The ranges are
    /// non-empty and ordered; the first starts at 0 (leading whitespace stays in it, as in
    /// NLTK), and the whitespace between sentences and at the end is left out.
    pub fn sentence_spans(&self, text: &str) -> Vec<Range<usize>> {
        realign_boundaries(text, &self.slices_from_text(text))
    }

    /// The sentences of `text` (NLTK's `tokenize`).
    pub fn sentences<'a>(&self, text: &'a str) -> Vec<&'a str> {
        self.sentence_spans(text)
            .into_iter()
            .map(|span| text.get(span).unwrap_or(""))
            .collect()
    }

    /// NLTK's `_slices_from_text`: (start, end) pairs, the last of which has start > end (an
    /// empty slice in Python) when the text ends in U+001C..U+001F after a break: `\S` makes
    /// them the next token, `rstrip()` removes them.
    fn slices_from_text(&self, text: &str) -> Vec<(usize, usize)> {
        let mut slices = Vec::new();
        let mut last_break = 0;
        for candidate in end_contexts(text) {
            if self.text_contains_sentbreak(&text[candidate.context.clone()]) {
                slices.push((last_break, candidate.end));
                // The next sentence starts at the next token, or at the punctuation that
                // follows the end directly.
                last_break = candidate.next_tok_start.unwrap_or(candidate.end);
            }
        }
        slices.push((last_break, py_rstrip(text).len()));
        slices
    }

    /// NLTK's `text_contains_sentbreak`: some token of `context` is a sentence break and is
    /// not its last token.
    fn text_contains_sentbreak(&self, context: &str) -> bool {
        let mut tokens: Vec<Token> = tokenize_words(context)
            .into_iter()
            .map(|tok| self.first_pass(tok))
            .collect();
        let mut found = false;
        for i in 0..tokens.len() {
            if found {
                return true;
            }
            // The second pass sees the next token as the first pass left it.
            if let [first, second, ..] = &mut tokens[i..] {
                self.second_pass(first, second);
            }
            if tokens[i].sentbreak {
                found = true;
            }
        }
        false
    }

    /// NLTK's `_first_pass_annotation`: decisions from the token's own type.
    fn first_pass<'t>(&self, tok: &'t str) -> Token<'t> {
        let mut token = Token::new(tok);
        if matches!(tok, "." | "?" | "!") {
            token.sentbreak = true;
        } else if token.is_ellipsis() {
            token.ellipsis = true;
        } else if token.period_final && !tok.ends_with("..") {
            // `tok[:-1].lower()`, and its part after the last hyphen ("ex-Gov.").
            let stem = tok[..tok.len() - 1].to_lowercase();
            let last_part = stem.rsplit('-').next().unwrap_or_default();
            if self.abbrev_types.contains(&stem) || self.abbrev_types.contains(last_part) {
                token.abbr = true;
            } else {
                token.sentbreak = true;
            }
        }
        token
    }

    /// NLTK's `_second_pass_annotation`: revises `first`, a token ending in a period, from the
    /// token after it (Kiss & Strunk, sections 4.1-4.3).
    fn second_pass(&self, first: &mut Token, next: &Token) {
        if !first.period_final {
            return;
        }
        let typ = first.type_no_period();
        let next_typ = next.type_no_sentperiod();
        let is_initial = first.is_initial();

        // Collocation heuristic (4.1.2): a known pair across the period is no break.
        if self.is_collocation(typ, next_typ) {
            first.sentbreak = false;
            first.abbr = true;
            return;
        }

        // An abbreviation or ellipsis also ends a sentence when the next word looks like a
        // sentence start: orthographic (4.1.1) or frequent-starter (4.1.3) evidence.
        if (first.abbr || first.ellipsis) && !is_initial {
            if self.ortho_heuristic(next) == Ortho::SentStarter {
                first.sentbreak = true;
                return;
            }
            if next.first_upper() && self.sent_starters.contains(next_typ) {
                first.sentbreak = true;
                return;
            }
        }

        // Initials and ordinals (4.3) are abbreviations unless the next word starts a
        // sentence.
        if is_initial || typ == NUMBER_TYPE {
            let verdict = self.ortho_heuristic(next);
            if verdict == Ortho::NotStarter {
                first.sentbreak = false;
                first.abbr = true;
                return;
            }
            // An initial before a word never seen in lower case ("J. Bach").
            if verdict == Ortho::Unknown
                && is_initial
                && next.first_upper()
                && self.ortho(next_typ) & ORTHO_LC == 0
            {
                first.sentbreak = false;
                first.abbr = true;
            }
        }
    }

    /// NLTK's `_ortho_heuristic`: does `token` start a sentence, judging by the cases its type
    /// was seen with?
    fn ortho_heuristic(&self, token: &Token) -> Ortho {
        // Sentences don't start with punctuation marks.
        if matches!(token.tok, ";" | ":" | "," | "." | "!" | "?") {
            return Ortho::NotStarter;
        }
        let context = self.ortho(token.type_no_sentperiod());
        // Capitalized here, seen in lower case, never capitalized inside a sentence.
        if token.first_upper() && context & ORTHO_LC != 0 && context & ORTHO_MID_UC == 0 {
            return Ortho::SentStarter;
        }
        // Lower case here, and seen capitalized or never seen starting a sentence in lower
        // case.
        if token.first_lower() && (context & ORTHO_UC != 0 || context & ORTHO_BEG_LC == 0) {
            return Ortho::NotStarter;
        }
        Ortho::Unknown
    }

    fn ortho(&self, typ: &str) -> u32 {
        self.ortho_context.get(typ).copied().unwrap_or(0)
    }

    fn is_collocation(&self, a: &str, b: &str) -> bool {
        self.collocations
            .binary_search_by(|(x, y)| (x.as_str(), y.as_str()).cmp(&(a, b)))
            .is_ok()
    }
}

/// The orthographic heuristic's verdict (NLTK returns `True`, `False` or `"unknown"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ortho {
    SentStarter,
    NotStarter,
    Unknown,
}

/// NLTK's `PunktToken`: a word token with its type and annotations.
#[derive(Debug)]
struct Token<'t> {
    tok: &'t str,
    /// Lower case, numbers replaced by `##number##`.
    typ: String,
    period_final: bool,
    sentbreak: bool,
    abbr: bool,
    ellipsis: bool,
}

impl<'t> Token<'t> {
    fn new(tok: &'t str) -> Self {
        let lower = tok.to_lowercase();
        let typ = if numeric_re().is_match(&lower) {
            NUMBER_TYPE.to_owned()
        } else {
            lower
        };
        Token {
            tok,
            typ,
            period_final: tok.ends_with('.'),
            sentbreak: false,
            abbr: false,
            ellipsis: false,
        }
    }

    /// The type without its final period, unless the type is just ".".
    fn type_no_period(&self) -> &str {
        match self.typ.strip_suffix('.') {
            Some(stem) if !stem.is_empty() => stem,
            _ => &self.typ,
        }
    }

    /// The type without its final period if that period ends a sentence.
    fn type_no_sentperiod(&self) -> &str {
        if self.sentbreak {
            self.type_no_period()
        } else {
            &self.typ
        }
    }

    fn first_upper(&self) -> bool {
        self.tok.chars().next().is_some_and(char::is_uppercase)
    }

    fn first_lower(&self) -> bool {
        self.tok.chars().next().is_some_and(char::is_lowercase)
    }

    /// `\.\.+$`: two or more periods and nothing else.
    fn is_ellipsis(&self) -> bool {
        self.tok.len() >= 2 && self.tok.bytes().all(|b| b == b'.')
    }

    /// `[^\W\d]\.$`: one letter (or mark, or `_`) and a period.
    fn is_initial(&self) -> bool {
        let mut chars = self.tok.chars();
        match (chars.next(), chars.next(), chars.next()) {
            (Some(c), Some('.'), None) => c.is_alphabetic() || is_mark_or_connector(c),
            _ => false,
        }
    }
}

/// NLTK's `_RE_NUMERIC`, matched against the lowercased token. Tokens hold no newline, so
/// Python's `$` (which also matches before a final newline) is `\z` here.
fn numeric_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\A-?[.,]?\d[\d,.\-]*\.?\z").expect("valid pattern"))
}

/// The rest of `\w` beside letters and digits: marks, connector punctuation (`_`), ZWJ/ZWNJ.
/// (Alphabetic, which std tests with newer Unicode tables than the crate's, holds no digit.)
fn is_mark_or_connector(c: char) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re =
        RE.get_or_init(|| Regex::new(r"\A[\p{M}\p{Pc}\p{Join_Control}]\z").expect("valid pattern"));
    let mut buf = [0; 4];
    re.is_match(c.encode_utf8(&mut buf))
}

/// `str.isspace()` for one character: White_Space plus the separators U+001C..U+001F.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `string.whitespace`, which `_get_last_whitespace_index` tests against: ASCII only.
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// `str.rstrip()` without arguments.
fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_py_space)
}

/// `_re_non_word_chars`: characters that cannot be inside a word (sentence ends but the
/// period, brackets, quotes, curly quotes and guillemets, `;`, `:`, `@`, `*`).
const NON_WORD: &str = "?!)\";}]*:@'({[\u{2018}\u{2019}\u{201c}\u{201d}\u{ab}\u{bb}";

/// The complement of `_re_word_start`: characters a word token may not start with.
const NOT_WORD_START: &str = "(\"`{[:;&#*@)}]-,";

/// The closing punctuation `re_boundary_realignment` moves back into a sentence.
const CLOSING: &str = "\"')]}\u{2018}\u{2019}\u{201c}\u{201d}\u{ab}\u{bb}";

fn is_non_word(c: char) -> bool {
    NON_WORD.contains(c)
}

fn char_at(s: &str, i: usize) -> Option<char> {
    s.get(i..).and_then(|rest| rest.chars().next())
}

/// The length in bytes of `_re_multi_char_punct`, `(?:\-{2,}|\.{2,}|(?:\.\s){2,}\.)`, when it
/// matches at byte `i` of `s`.
fn multi_char_len(s: &str, i: usize) -> Option<usize> {
    let rest = s.get(i..)?;
    let run = |b: u8| rest.bytes().take_while(|&x| x == b).count();
    if rest.starts_with("--") {
        return Some(run(b'-'));
    }
    if rest.starts_with("..") {
        return Some(run(b'.'));
    }
    // Spaced dots ". . .": the greedy `(?:\.\s){2,}` takes every pair, then backs off one
    // pair when no period follows the last (that pair's own period then closes the match).
    let mut pair_starts = Vec::new();
    let mut j = 0;
    while rest[j..].starts_with('.') {
        match char_at(rest, j + 1) {
            Some(w) if w.is_whitespace() => {
                pair_starts.push(j);
                j += 1 + w.len_utf8();
            }
            _ => break,
        }
    }
    let pairs = pair_starts.len();
    if pairs >= 2 && rest[j..].starts_with('.') {
        Some(j + 1)
    } else if pairs >= 3 {
        Some(pair_starts[pairs - 1] + 1)
    } else {
        None
    }
}

/// NLTK's `PunktLanguageVars.word_tokenize` on one line (no `\n`): the `findall` of
///
/// ```text
/// MultiChar | (?=WordStart)\S+?(?=\s|$|NonWord|MultiChar|,(?=$|\s|NonWord|MultiChar)) | \S
/// ```
///
/// which splits punctuation other than periods off words.
fn word_tokens(line: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(c) = char_at(line, i) {
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let len = if let Some(len) = multi_char_len(line, i) {
            len
        } else if !NOT_WORD_START.contains(c) {
            // The lazy `\S+?` stops at the first position where a word may end.
            let ends_word = |p: usize| match char_at(line, p) {
                None => true,
                Some(d) => d.is_whitespace() || is_non_word(d) || multi_char_len(line, p).is_some(),
            };
            let mut p = i + c.len_utf8();
            while let Some(d) = char_at(line, p) {
                if ends_word(p) || (d == ',' && ends_word(p + 1)) {
                    break;
                }
                p += d.len_utf8();
            }
            p - i
        } else {
            c.len_utf8()
        };
        tokens.push(&line[i..i + len]);
        i += len;
    }
    tokens
}

/// NLTK's `_tokenize_words`: the word tokens of every line that is not blank. (The paragraph
/// and line-start marks NLTK adds are used only in training.)
fn tokenize_words(text: &str) -> Vec<&str> {
    text.split('\n')
        .filter(|line| !line.chars().all(is_py_space))
        .flat_map(word_tokens)
        .collect()
}

/// A match of NLTK's period-context regex, `[.?!](?=(?P<after_tok>NonWord|\s+(?P<next_tok>\S+)))`,
/// with the text `_match_potential_end_contexts` pairs it with.
#[derive(Debug)]
struct EndContext {
    /// Just after the end character.
    end: usize,
    /// Start of the token after the whitespace, if the end is followed by whitespace.
    next_tok_start: Option<usize>,
    /// The word before the end, the end and what follows it (one punctuation character, or
    /// whitespace and the next token): always one stretch of the text.
    context: Range<usize>,
}

/// Candidate sentence ends: every `.`, `?` or `!` followed by a non-word character or by
/// whitespace and a token. Returns (start, end, after_end, next_tok_start).
fn potential_ends(text: &str) -> impl Iterator<Item = (usize, usize, Option<usize>)> + '_ {
    text.char_indices().filter_map(move |(start, c)| {
        if !matches!(c, '.' | '?' | '!') {
            return None;
        }
        let end = start + 1;
        let after = char_at(text, end)?;
        if is_non_word(after) {
            return Some((start, end + after.len_utf8(), None));
        }
        if !after.is_whitespace() {
            return None;
        }
        let rest = &text[end..];
        let next = end + rest.find(|d: char| !d.is_whitespace())?;
        let next_end = text[next..]
            .find(char::is_whitespace)
            .map_or(text.len(), |n| next + n);
        Some((start, next_end, Some(next)))
    })
}

/// NLTK's `_match_potential_end_contexts`: each candidate end with the word before it. The word
/// is what follows the last ASCII whitespace between the previous candidate and this one (or
/// the previous word, extended, when there is none); a candidate whose word overlaps the next
/// candidate's is dropped, as in NLTK ("acting!!! I" gives one candidate, the last `!`).
fn end_contexts(text: &str) -> Vec<EndContext> {
    let mut contexts = Vec::new();
    let mut previous: Option<(usize, usize, Option<usize>)> = None;
    let mut previous_word = 0..0;
    for (start, after_end, next_tok_start) in potential_ends(text) {
        let before = &text[previous_word.end..start];
        // NLTK treats whitespace at index 0 of `before` like no whitespace at all.
        let word_start = match before.bytes().rposition(is_ascii_space) {
            Some(i) if i > 0 => previous_word.end + i + 1,
            _ => previous_word.start,
        };
        let word = word_start..start;
        if let Some((prev_start, prev_after_end, prev_next)) = previous
            && previous_word.end <= word.start
        {
            contexts.push(EndContext {
                end: prev_start + 1,
                next_tok_start: prev_next,
                context: previous_word.start..prev_after_end,
            });
        }
        previous = Some((start, after_end, next_tok_start));
        previous_word = word;
    }
    if let Some((start, after_end, next_tok_start)) = previous {
        contexts.push(EndContext {
            end: start + 1,
            next_tok_start,
            context: previous_word.start..after_end,
        });
    }
    contexts
}

/// `re_boundary_realignment`, `["')\]}‘’“”«»]+?(?:\s+|(?=--)|$)` (multiline), matched at the
/// start of `s`: the byte length of the closing punctuation (what the match keeps after
/// `rstrip()`) and the match's end.
fn realignment(s: &str) -> Option<(usize, usize)> {
    for (i, c) in s.char_indices() {
        if !CLOSING.contains(c) {
            return None;
        }
        // The lazy `+?` stops at the first closing character after which an end follows.
        let k = i + c.len_utf8();
        let rest = &s[k..];
        let space = rest.len() - rest.trim_start_matches(char::is_whitespace).len();
        if space > 0 {
            return Some((k, k + space));
        }
        if rest.is_empty() || rest.starts_with("--") {
            return Some((k, k));
        }
    }
    None
}

/// NLTK's `_realign_boundaries`: closing quotes and brackets after a break (and the whitespace
/// after them) move from the next sentence to the one they close.
fn realign_boundaries(text: &str, slices: &[(usize, usize)]) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut realign = 0;
    for (i, &(start, end)) in slices.iter().enumerate() {
        let start = start + realign;
        let Some(&(next_start, next_end)) = slices.get(i + 1) else {
            if start < end {
                spans.push(start..end);
            }
            continue;
        };
        let next = if next_start < next_end {
            &text[next_start..next_end]
        } else {
            ""
        };
        if let Some((kept, matched)) = realignment(next) {
            spans.push(start..next_start + kept);
            realign = matched;
        } else {
            realign = 0;
            if start < end {
                spans.push(start..end);
            }
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences(text: &str) -> Vec<&str> {
        english().sentences(text)
    }

    #[test]
    fn embedded_model_has_every_table() {
        let model = english();
        assert_eq!(model.abbrev_types.len(), 156);
        assert_eq!(model.collocations.len(), 37);
        assert_eq!(model.sent_starters.len(), 39);
        assert_eq!(model.ortho_context.len(), 20366);
        assert!(model.abbrev_types.contains(". . "));
    }

    #[test]
    fn abbreviations_do_not_end_sentences() {
        assert_eq!(
            sentences("Dr. Smith went home. He was tired."),
            ["Dr. Smith went home.", "He was tired."]
        );
    }

    #[test]
    fn closing_punctuation_moves_into_its_sentence() {
        assert_eq!(
            sentences("Hello there. (Sent1.) Sent2. \u{201c}Yes.\u{201d} No..."),
            [
                "Hello there.",
                "(Sent1.)",
                "Sent2.",
                "\u{201c}Yes.\u{201d}",
                "No..."
            ]
        );
    }

    #[test]
    fn repeated_marks_end_one_sentence() {
        assert_eq!(
            sentences("Very bad acting!!! I promise."),
            ["Very bad acting!!!", "I promise."]
        );
    }

    #[test]
    fn initials_before_names_are_abbreviations() {
        assert_eq!(count_sentences("J. R. R. Tolkien wrote it. It is long."), 2);
    }

    #[test]
    fn spans_are_byte_offsets() {
        let text = "Ünïcödé. Zwei Sätze.";
        let spans = english().sentence_spans(text);
        assert_eq!(spans, [0..12, 13..text.len()]);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        for text in [
            "", " ", "\n\n", ".", "...", "?!", "!!!!!!", ". . . .", "\u{1c}", "a.\u{1c}",
        ] {
            let spans = english().sentence_spans(text);
            assert!(spans.iter().all(|s| s.start < s.end && s.end <= text.len()));
        }
        assert_eq!(count_sentences(""), 0);
        assert_eq!(count_sentences("   \n "), 0);
    }

    #[test]
    fn word_tokens_split_punctuation_but_not_periods() {
        assert_eq!(
            word_tokens("Hello, (world)... it's 3.14 -- ok. . . done,"),
            [
                "Hello", ",", "(", "world", ")", "...", "it", "'s", "3.14", "--", "ok", ". . .",
                "done", ","
            ]
        );
    }

    #[test]
    fn spaced_ellipsis_backs_off_one_pair() {
        assert_eq!(multi_char_len(". . . x", 0), Some(5));
        assert_eq!(multi_char_len(". . . . x", 0), Some(7));
        assert_eq!(multi_char_len(". . x", 0), None);
        assert_eq!(multi_char_len(". .", 0), None);
    }
}
