//! seft's Punkt sentence tokenizer against NLTK's own spans (`PunktTokenizer("english")`, what
//! IFEval's sentence count runs), from tests/fixtures/punkt/sentences.json.gz, written by
//! make_fixture.py beside it. The hand-written and random texts are in the fixture; the
//! AlpacaEval model outputs are read from the shared data (`SEFT_SHARED_DATA`, default
//! `../shared/data` beside the repository), so that test is ignored by default:
//! `cargo test --test punkt -- --ignored`.

mod common;

use std::collections::HashMap;
use std::ops::Range;

use proptest::prelude::*;
use serde::Deserialize;

use seft::eval::ifeval::punkt;

#[derive(Deserialize)]
struct Fixture {
    texts: Vec<TextCase>,
    shared: Vec<SharedCase>,
}

#[derive(Deserialize)]
struct TextCase {
    text: String,
    spans: Vec<[usize; 2]>,
}

#[derive(Deserialize)]
struct SharedCase {
    file: String,
    index: usize,
    spans: Vec<[usize; 2]>,
}

#[derive(Deserialize)]
struct ModelOutput {
    output: String,
}

fn fixture() -> Fixture {
    let path = common::fixture("punkt/sentences.json.gz");
    let file = std::fs::File::open(&path).expect("open the Punkt fixture");
    let mut json = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(file), &mut json)
        .expect("read the Punkt fixture");
    serde_json::from_str(&json).expect("parse the Punkt fixture")
}

fn ranges(spans: &[[usize; 2]]) -> Vec<Range<usize>> {
    spans.iter().map(|&[start, end]| start..end).collect()
}

/// Compares seft's spans with NLTK's on every text; returns the texts that differ, described.
fn disagreements<'a>(
    cases: impl Iterator<Item = (String, &'a str, Vec<Range<usize>>)>,
) -> (usize, Vec<String>) {
    let model = punkt::english();
    let mut total = 0;
    let mut differ = Vec::new();
    for (name, text, expected) in cases {
        total += 1;
        let got = model.sentence_spans(text);
        assert_eq!(
            punkt::count_sentences(text),
            got.len(),
            "{name}: count_sentences disagrees with sentence_spans"
        );
        if got != expected {
            differ.push(format!(
                "{name}: {text:?}\n  nltk {expected:?}\n  seft {got:?}"
            ));
        }
    }
    (total, differ)
}

fn report(suite: &str, total: usize, differ: &[String]) {
    println!("{suite}: {}/{total} texts identical", total - differ.len());
    assert!(
        differ.is_empty(),
        "{suite}: {} of {total} texts split differently from NLTK:\n{}",
        differ.len(),
        differ
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn fixture_texts_split_as_nltk_splits_them() {
    let fixture = fixture();
    let cases = fixture
        .texts
        .iter()
        .enumerate()
        .map(|(i, case)| (format!("text {i}"), case.text.as_str(), ranges(&case.spans)));
    let (total, differ) = disagreements(cases);
    report("hand-written and random texts", total, &differ);
}

#[test]
#[ignore = "needs the shared benchmark data: SEFT_SHARED_DATA=DIR cargo test --test punkt -- --ignored"]
fn alpaca_eval_outputs_split_as_nltk_splits_them() {
    let fixture = fixture();
    let shared = common::shared();
    let mut outputs: HashMap<&str, Vec<ModelOutput>> = HashMap::new();
    for case in &fixture.shared {
        outputs.entry(&case.file).or_insert_with(|| {
            let path = shared.join(&case.file);
            let json = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
        });
    }
    let cases = fixture.shared.iter().map(|case| {
        let text = outputs[case.file.as_str()][case.index].output.as_str();
        (
            format!("{} #{}", case.file, case.index),
            text,
            ranges(&case.spans),
        )
    });
    let (total, differ) = disagreements(cases);
    report("AlpacaEval model outputs", total, &differ);
}

/// Spans are in bounds, on character boundaries, non-empty and in order.
fn assert_well_formed(text: &str) {
    let spans = punkt::english().sentence_spans(text);
    let mut previous_end = 0;
    for span in &spans {
        assert!(previous_end <= span.start && span.start < span.end && span.end <= text.len());
        assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
        previous_end = span.end;
    }
    assert_eq!(punkt::english().sentences(text).len(), spans.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_text_gives_well_formed_spans(text in any::<String>()) {
        assert_well_formed(&text);
    }

    #[test]
    fn punctuation_heavy_text_gives_well_formed_spans(
        text in r#"([a-zA-Z0-9 .?!,;:'"()\[\]{}*@#&`\-]|\n|\t|\x{a0}|\x{1c}|\x{3000}|[“”‘’«»ÉéİΣ]){0,120}"#
    ) {
        assert_well_formed(&text);
    }
}
