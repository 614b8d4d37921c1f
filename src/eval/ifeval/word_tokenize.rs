//! NLTK's `word_tokenize` (NLTK 3.10): Punkt sentences, each split by `NLTKWordTokenizer`, the
//! Penn Treebank tokenizer with NLTK's additions, a fixed sequence of regex substitutions
//! followed by a whitespace split. IFEval counts the all-capital tokens it returns
//! (`change_case:capital_word_frequency`), so every substitution that can separate letters
//! ("CANNOT" → "CAN" "NOT", "I'M" → "I" "'M", "A--B", "FOO...BAR") is kept exactly. NLTK
//! compiles most substitutions with the `regex` module (Unicode `\w`, `\s`, as Rust's) and the
//! contractions with Python's `re` (its narrower `\w`), and so does this port.

use std::sync::OnceLock;

use fancy_regex::Regex;

use super::punkt;
use super::pytext::{PY_SPACE, PY_WORD};

struct Rule {
    re: Regex,
    with: &'static str,
}

/// A substitution NLTK compiles with the `regex` module (`nltk.redos`): its `\w` and `\s` are
/// Unicode's, as in Rust.
fn rule(pattern: &str, with: &'static str) -> Rule {
    Rule {
        re: Regex::new(pattern).expect("NLTK's tokenizer patterns are valid"),
        with,
    }
}

/// A contraction rule (case-insensitive), which NLTK compiles with Python's `re`: `\b` and `\s`
/// there follow `re`'s classes, written out as look-arounds on [`PY_WORD`] and [`PY_SPACE`]. A
/// `\b` only ever opens or closes a pattern, next to a word character, so it means "no word
/// character before" or "no word character after".
fn contraction(pattern: &str) -> Rule {
    let body = pattern.strip_prefix("(?i)").unwrap_or(pattern);
    let body = match body.strip_prefix(r"\b") {
        Some(rest) => format!("(?<!{PY_WORD}){rest}"),
        None => body.to_string(),
    };
    let body = match body.strip_suffix(r"\b") {
        Some(rest) => format!("{rest}(?!{PY_WORD})"),
        None => body,
    };
    let pattern = format!(
        "(?i){}",
        body.replace(r"(?=\s)", &format!("(?={PY_SPACE})"))
    );
    Rule {
        re: Regex::new(&pattern).expect("NLTK's contraction patterns are valid"),
        with: " $1 $2 ",
    }
}

struct Rules {
    starting_quotes: Vec<Rule>,
    punctuation: Vec<Rule>,
    parens_and_dashes: Vec<Rule>,
    ending_quotes: Vec<Rule>,
    contractions: Vec<Rule>,
}

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| Rules {
        starting_quotes: vec![
            rule("([«“‘„]|[`]+)", " $1 "),
            rule(r#"^""#, "``"),
            rule("(``)", " $1 "),
            rule(r#"([ (\[{<])("|'{2})"#, "$1 `` "),
            rule(r"(?i)(?<!\w)(')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)", "$1 "),
        ],
        punctuation: vec![
            // Python's `$` also matches before a final newline; `\s*` has eaten it here.
            rule(r#"([^.])(\.)([\])}>"'»”’ ]*+)\s*\z"#, "$1 $2 $3 "),
            rule(r"([:,])([^\d])", " $1 $2"),
            rule(r"([:,])(?=\n?\z)", " $1 "),
            rule(r"\.{2,}", " $0 "),
            rule(r"[;@#$%&]", " $0 "),
            rule(r"[\u{2012}-\u{2015}]", " $0 "),
            rule(r#"([^.])(\.)([\])}>"']*)\s*\z"#, "$1 $2$3 "),
            rule(r"[?!]", " $0 "),
            rule(r"([^'])' ", "$1 ' "),
            rule(r"[*]", " $0 "),
        ],
        parens_and_dashes: vec![rule(r"[\]\[(){}<>]", " $0 "), rule("--", " -- ")],
        ending_quotes: vec![
            rule("([»”’])", " $1 "),
            rule("''", " '' "),
            rule("\"", " '' "),
            rule(r"\s+", " "),
            rule(r"([^' ])('[sS]|'[mM]|'[dD]|') ", "$1 $2 "),
            rule(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", "$1 $2 "),
        ],
        contractions: [
            r"(?i)\b(can)(not)\b",
            r"(?i)\b(d)('ye)\b",
            r"(?i)\b(gim)(me)\b",
            r"(?i)\b(gon)(na)\b",
            r"(?i)\b(got)(ta)\b",
            r"(?i)\b(lem)(me)\b",
            r"(?i)\b(more)('n)\b",
            r"(?i)\b(wan)(na)(?=\s)",
            r"(?i) ('t)(is)\b",
            r"(?i) ('t)(was)\b",
        ]
        .into_iter()
        .map(contraction)
        .collect(),
    })
}

fn apply(text: String, rules: &[Rule]) -> String {
    rules.iter().fold(text, |t, r| {
        // A pattern that exceeds fancy-regex's backtrack limit leaves the text as it is.
        match r.re.try_replacen(&t, 0, r.with) {
            Ok(replaced) => replaced.into_owned(),
            Err(_) => t,
        }
    })
}

/// `NLTKWordTokenizer().tokenize(sentence)`.
pub fn tokenize_sentence(sentence: &str) -> Vec<String> {
    let r = rules();
    let mut text = apply(sentence.to_string(), &r.starting_quotes);
    text = apply(text, &r.punctuation);
    text = apply(text, &r.parens_and_dashes);
    text = format!(" {text} ");
    text = apply(text, &r.ending_quotes);
    text = apply(text, &r.contractions);
    super::pytext::split_whitespace(&text)
        .map(str::to_string)
        .collect()
}

/// `nltk.word_tokenize(text)`.
pub fn word_tokenize(text: &str) -> Vec<String> {
    punkt::english()
        .sentences(text)
        .into_iter()
        .flat_map(tokenize_sentence)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn treebank_splits_like_nltk() {
        // NLTK's own doctest sentence.
        let s = "Good muffins cost $3.88 (roughly 3,36 euros)\nin New York.";
        assert_eq!(
            tokenize_sentence(s),
            [
                "Good", "muffins", "cost", "$", "3.88", "(", "roughly", "3,36", "euros", ")", "in",
                "New", "York", "."
            ]
        );
        assert_eq!(
            tokenize_sentence("I CANNOT go, DON'T ask."),
            ["I", "CAN", "NOT", "go", ",", "DO", "N'T", "ask", "."]
        );
        assert_eq!(
            tokenize_sentence("\"HI\" he said--OK...FINE"),
            ["``", "HI", "''", "he", "said", "--", "OK", "...", "FINE"]
        );
    }
}
