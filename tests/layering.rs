//! The module diagram in README's Layout section, checked: every `crate::` path in `src/` points
//! at its own top-level module or at one on a lower floor, never upward or sideways into a
//! module of the same floor. A newcomer can then read the crate from the ground floor up.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Floors from the ground up; a module may use modules on lower floors only.
const FLOORS: &[&[&str]] = &[
    &["error", "fault", "memory"],
    &["input"],
    &["numeric", "backend", "ownership"],
    &["fused"],
    &["model"],
    &["data", "select", "sparse", "embed"],
    &["train"],
    &["eval", "serve"],
    &["evolution"],
    &["cli"],
];

fn floor_of(module: &str) -> Option<usize> {
    FLOORS.iter().position(|f| f.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level modules named by `crate::x` and `crate::{x, y::z}` in `code` (comments removed).
fn referenced_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        // `seft::crate::` never occurs; skip paths like `foo_crate::`.
        if code[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start && depth == 0 => {
                        found.insert(ident(&group[j..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.remove("");
    found
}

fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_module_uses_a_module_on_its_own_or_a_higher_floor() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs");
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = floor_of(module) else {
            violations.push(format!(
                "src/{module}: not on any floor of the diagram (tests/layering.rs FLOORS)"
            ));
            continue;
        };
        let code = strip_comments(&std::fs::read_to_string(file).unwrap());
        for target in referenced_modules(&code) {
            if target == module {
                continue;
            }
            match floor_of(&target) {
                Some(f) if f < own => {}
                Some(f) => violations.push(format!(
                    "{}: uses crate::{target} (floor {f}) from floor {own}",
                    rel.display()
                )),
                None => violations.push(format!(
                    "{}: uses crate::{target}, which is on no floor",
                    rel.display()
                )),
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the diagram:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_reference_scanner_sees_grouped_and_plain_paths() {
    let found = referenced_modules(
        "use crate::model::{a, b};\nuse crate::{error::Result, data::{x, y}, fused};\nlet v = crate::numeric::dot(a, b); my_crate::z;",
    );
    let want: BTreeSet<String> = ["model", "error", "data", "fused", "numeric"]
        .map(String::from)
        .into();
    assert_eq!(found, want);
}
