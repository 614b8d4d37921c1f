//! Python's string semantics where IFEval's checkers depend on them: `str.strip()`/`split()`
//! (whitespace is `str.isspace()`, which adds U+001C..U+001F to Unicode's White_Space),
//! `isupper()`/`islower()` (cased characters, title case counting as neither), `\w` of `re` on
//! `str` (letters, numbers and `_`, without the combining marks Rust's `\w` adds), NLTK's word
//! count (whose `\w` is the `regex` module's, Rust's), and `json.loads` acceptance.

/// `str.isspace()` for one character.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// A regex class equal to `\s` of Python's `re` on `str`.
pub const PY_SPACE: &str = r"[\s\x1C-\x1F]";

/// A regex class equal to `\w` of Python's `re` on `str` (`str.isalnum()` or `_`).
pub const PY_WORD: &str = r"[\p{L}\p{N}_]";

/// `\w` of Python's `re` for one character.
pub fn is_py_word(c: char) -> bool {
    static WORD: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let mut buf = [0u8; 4];
    WORD.get_or_init(|| regex::Regex::new(&format!("^{PY_WORD}$")).expect("valid class"))
        .is_match(c.encode_utf8(&mut buf))
}

/// `str.strip()` without arguments.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// `str.split()` without arguments.
pub fn split_whitespace(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|w| !w.is_empty())
}

/// Title-case letters (category Lt): Python's `isupper()`/`islower()` reject them.
fn is_titlecase(c: char) -> bool {
    matches!(c,
        '\u{1C5}' | '\u{1C8}' | '\u{1CB}' | '\u{1F2}'
        | '\u{1F88}'..='\u{1F8F}' | '\u{1F98}'..='\u{1F9F}' | '\u{1FA8}'..='\u{1FAF}'
        | '\u{1FBC}' | '\u{1FCC}' | '\u{1FFC}')
}

/// `str.isupper()`: at least one cased character, and every cased one uppercase.
pub fn is_upper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() || is_titlecase(c) {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

/// `str.islower()`: at least one cased character, and every cased one lowercase.
pub fn is_lower(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_uppercase() || is_titlecase(c) {
            return false;
        }
        cased |= c.is_lowercase();
    }
    cased
}

/// The number of `\w+` runs as NLTK's `RegexpTokenizer(r"\w+")` finds them: IFEval's word
/// count. NLTK 3.10 compiles that pattern with the `regex` module, whose `\w` is Unicode's
/// (letters and marks, decimal digits, connectors: the `regex` crate's `\w`), not `re`'s; so
/// a Devanagari word with vowel signs is one word (older NLTK, compiling with `re`, split it
/// at each sign) and `x²` is one word, `x`.
pub fn count_words(s: &str) -> usize {
    static RUNS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RUNS.get_or_init(|| regex::Regex::new(r"\w+").expect("valid pattern"))
        .find_iter(s)
        .count()
}

/// Whether Python's `json.loads(s)` returns without raising `ValueError`: one JSON value
/// between optional ` \t\n\r`, plus Python's extensions `NaN`, `Infinity` and `-Infinity`;
/// strings may hold any `\u` escape (lone surrogates too) but no raw control character; an
/// integer literal of more than 4300 digits fails (Python's int conversion limit). Written by
/// hand because serde_json rejects `NaN` and lone surrogates, which Python accepts. Iterative,
/// so any nesting depth is checked without recursion.
pub fn python_json_loads_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut p = JsonScanner { b, i: 0 };
    p.ws();
    if !p.value() {
        return false;
    }
    p.ws();
    p.i == b.len()
}

struct JsonScanner<'a> {
    b: &'a [u8],
    i: usize,
}

#[derive(Clone, Copy)]
enum Open {
    Array,
    Object,
}

impl JsonScanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    /// One value, containers handled with an explicit stack.
    fn value(&mut self) -> bool {
        let mut stack: Vec<Open> = Vec::new();
        loop {
            // Expect a value here.
            self.ws();
            match self.peek() {
                Some(b'[') => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        stack.push(Open::Array);
                        continue;
                    }
                }
                Some(b'{') => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        if !self.key() {
                            return false;
                        }
                        stack.push(Open::Object);
                        continue;
                    }
                }
                _ => {
                    if !self.scalar() {
                        return false;
                    }
                }
            }
            // After a value: close containers or move to the next element.
            loop {
                let Some(&top) = stack.last() else {
                    return true;
                };
                self.ws();
                match (top, self.peek()) {
                    (_, Some(b',')) => {
                        self.i += 1;
                        if let Open::Object = top {
                            self.ws();
                            if !self.key() {
                                return false;
                            }
                        }
                        break;
                    }
                    (Open::Array, Some(b']')) | (Open::Object, Some(b'}')) => {
                        self.i += 1;
                        stack.pop();
                    }
                    _ => return false,
                }
            }
        }
    }

    /// `"key"` then `:`.
    fn key(&mut self) -> bool {
        if self.peek() != Some(b'"') || !self.string() {
            return false;
        }
        self.ws();
        self.eat(b":")
    }

    fn scalar(&mut self) -> bool {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b't') => self.eat(b"true"),
            Some(b'f') => self.eat(b"false"),
            Some(b'n') => self.eat(b"null"),
            Some(b'N') => self.eat(b"NaN"),
            Some(b'I') => self.eat(b"Infinity"),
            Some(b'-') if self.b[self.i..].starts_with(b"-Infinity") => {
                self.i += 9;
                true
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> bool {
        self.eat(b"-");
        let int_digits = match self.peek() {
            Some(b'0') => {
                self.i += 1;
                1
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return false,
        };
        let mut integer = true;
        // A fraction or exponent without digits ends the number before it (then "extra data").
        if self.peek() == Some(b'.') && matches!(self.b.get(self.i + 1), Some(b'0'..=b'9')) {
            self.i += 1;
            self.digits();
            integer = false;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let save = self.i;
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                self.i = save;
            } else {
                integer = false;
            }
        }
        !(integer && int_digits > 4300)
    }

    fn string(&mut self) -> bool {
        self.i += 1; // the opening quote
        loop {
            match self.peek() {
                None => return false,
                Some(b'"') => {
                    self.i += 1;
                    return true;
                }
                Some(c) if c < 0x20 => return false,
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            self.i += 1;
                            let hex = self.b.get(self.i..self.i + 4);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return false;
                            }
                            self.i += 4;
                        }
                        _ => return false,
                    }
                }
                Some(_) => self.i += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_string_predicates() {
        assert!(is_upper("HELLO, WORLD 123"));
        assert!(!is_upper("123 !"));
        assert!(!is_upper("HELLo"));
        assert!(is_lower("hello, world 123"));
        assert!(!is_lower("ǅ"));
        assert_eq!(strip("\u{1c} a b\n"), "a b");
        assert_eq!(
            split_whitespace(" a\u{1f}b  c ").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        // NLTK 3.10's RegexpTokenizer(r"\w+"): ['नमस्ते'], ['it', 's', '3', '14', 'ok_go'], ['x'].
        assert_eq!(count_words("नमस्ते"), 1);
        assert_eq!(count_words("it's 3.14, ok_go"), 5);
        assert_eq!(count_words("x²"), 1);
        // Python's `re` (the checkers' own patterns) does not take marks as word characters.
        assert!(!is_py_word('\u{94d}'));
    }

    #[test]
    fn python_json_acceptance() {
        for ok in [
            "{}",
            " [1, 2.5e3, -0, \"a\\u00e9\", null, true] ",
            "NaN",
            "-Infinity",
            "{\"a\": {\"b\": [[]]}}",
            "\"\\ud800\"",
            "0",
        ] {
            assert!(python_json_loads_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "{",
            "[1,]",
            "{'a': 1}",
            "01",
            "1.",
            "[1] x",
            "\"a\nb\"",
            "\"\\x\"",
            "{\"a\" 1}",
            "tru",
            "-",
            "1e",
            "{\"a\":1,}",
        ] {
            assert!(!python_json_loads_ok(bad), "{bad}");
        }
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(python_json_loads_ok(&deep));
        assert!(!python_json_loads_ok(&"1".repeat(4301)));
    }
}
