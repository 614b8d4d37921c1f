//! Verifiable-instruction prompts for training and held-out grading: ordinary instructions
//! (Alpaca, LIMA, or any prompt file) with one to three of IFEval's 25 instruction types
//! attached, their parameters drawn at random within the reference's ranges and phrased as the
//! reference phrases them (`build_description` of google-research's `instructions.py`). Types
//! that the reference's `INSTRUCTION_CONFLICTS` marks as conflicting are never combined.
//!
//! The rows are in IFEval's `input_data.jsonl` format, so `seft eval ifeval --input-data` grades
//! them with the same checkers, and [`constraint_score`] is the rule-based rating used to rank a
//! policy's samples into preference pairs: the fraction of a prompt's instructions a response
//! follows (strict).

use std::collections::HashSet;
use std::path::PathBuf;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::evaluate::{IfevalPrompt, read_input_data};
use super::instructions::INSTRUCTION_IDS;
use super::pipeline::IFEVAL_INPUT;
use super::pytext::strip;
use crate::error::{Result, SeftError};
use crate::eval::data_source::BenchData;

/// One prompt in IFEval's input format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputRow {
    pub key: i64,
    pub prompt: String,
    pub instruction_id_list: Vec<String>,
    pub kwargs: Vec<Value>,
}

/// Words for keywords, forbidden words and first words: common English nouns and verbs.
const WORDS: &[&str] = &[
    "answer", "balance", "bridge", "candle", "chapter", "circle", "climate", "coffee", "garden",
    "harbor", "history", "island", "journey", "kitchen", "ladder", "letter", "machine", "market",
    "memory", "mountain", "music", "ocean", "paper", "pattern", "planet", "pocket", "process",
    "river", "season", "signal", "silver", "simple", "spirit", "station", "storm", "summer",
    "system", "theory", "thunder", "travel", "valley", "village", "window", "winter", "wonder",
];

const SECTION_SPLITTERS: &[&str] = &["Section", "SECTION", "Part", "PARAGRAPH"];
const POSTSCRIPT_MARKERS: &[&str] = &["P.S.", "P.P.S"];
const END_PHRASES: &[&str] = &[
    "Any other questions?",
    "Is there anything else I can help with?",
    "Let me know if you have additional questions.",
];
/// Languages whatlang and langdetect both identify reliably on paragraphs.
const LANGUAGES: &[(&str, &str)] = &[
    ("de", "German"),
    ("fr", "French"),
    ("es", "Spanish"),
    ("it", "Italian"),
    ("pt", "Portuguese"),
];
const RELATIONS: &[&str] = &["less than", "at least"];

/// Instruction types the reference marks as not combinable with `id` (symmetric).
fn conflicts(a: &str, b: &str) -> bool {
    fn one_way(a: &str, b: &str) -> bool {
        let all_but = |except: &[&str]| !except.contains(&b);
        a == b
            || match a {
                "language:response_language" => [
                    "detectable_format:multiple_sections",
                    "keywords:existence",
                    "keywords:frequency",
                    "keywords:forbidden_words",
                    "startend:end_checker",
                    "change_case:english_capital",
                    "change_case:english_lowercase",
                ]
                .contains(&b),
                "length_constraints:number_paragraphs" => [
                    "length_constraints:nth_paragraph_first_word",
                    "length_constraints:number_sentences",
                ]
                .contains(&b),
                "length_constraints:nth_paragraph_first_word" => {
                    b == "length_constraints:number_paragraphs"
                }
                "detectable_format:constrained_response" => true,
                "detectable_format:multiple_sections" => [
                    "language:response_language",
                    "detectable_format:number_highlighted_sections",
                ]
                .contains(&b),
                "detectable_format:json_format" => {
                    all_but(&["keywords:forbidden_words", "keywords:existence"])
                }
                "combination:two_responses" => all_but(&[
                    "keywords:forbidden_words",
                    "keywords:existence",
                    "language:response_language",
                    "detectable_format:title",
                    "punctuation:no_comma",
                ]),
                "combination:repeat_prompt" => all_but(&[
                    "keywords:existence",
                    "detectable_format:title",
                    "punctuation:no_comma",
                ]),
                "change_case:capital_word_frequency" => [
                    "change_case:english_lowercase",
                    "change_case:english_capital",
                ]
                .contains(&b),
                "change_case:english_lowercase" => b == "change_case:english_capital",
                "startend:quotation" => b == "detectable_format:title",
                _ => false,
            }
    }
    one_way(a, b) || one_way(b, a)
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from.choose(rng).copied().unwrap_or_default()
}

/// Random kwargs for `id` and the sentence that asks for it. `base` is the instruction the
/// constraints are attached to (what `repeat_prompt` asks to repeat).
fn draw(id: &str, rng: &mut StdRng, base: &str) -> (Value, String) {
    let relation = pick(rng, RELATIONS);
    match id {
        "keywords:existence" => {
            let mut k: Vec<&str> = WORDS.choose_multiple(rng, 2).copied().collect();
            k.sort();
            (json!({"keywords": k}), format!("Include keywords {} in the response.", py_list(&k)))
        }
        "keywords:frequency" => {
            let (w, n) = (pick(rng, WORDS), rng.random_range(1..=3));
            (
                json!({"keyword": w, "frequency": n, "relation": relation}),
                format!("In your response, the word {w} should appear {relation} {n} times."),
            )
        }
        "keywords:forbidden_words" => {
            let mut k: Vec<&str> = WORDS.choose_multiple(rng, 2).copied().collect();
            k.sort();
            (
                json!({"forbidden_words": k}),
                format!("Do not include keywords {} in the response.", py_list(&k)),
            )
        }
        "keywords:letter_frequency" => {
            let letter = char::from(b'a' + rng.random_range(0..26u8)).to_string();
            let n = rng.random_range(1..=10);
            (
                json!({"letter": letter, "let_frequency": n, "let_relation": relation}),
                format!("In your response, the letter {letter} should appear {relation} {n} times."),
            )
        }
        "language:response_language" => {
            let (code, name) = *LANGUAGES.choose(rng).expect("non-empty");
            (
                json!({"language": code}),
                format!("Your ENTIRE response should be in {name} language, no other language is allowed."),
            )
        }
        "length_constraints:number_sentences" => {
            let n = rng.random_range(1..=20);
            (
                json!({"num_sentences": n, "relation": relation}),
                format!("Your response should contain {relation} {n} sentences."),
            )
        }
        "length_constraints:number_paragraphs" => {
            let n = rng.random_range(1..=5);
            (
                json!({"num_paragraphs": n}),
                format!("There should be {n} paragraphs. Paragraphs are separated with the markdown divider: ***"),
            )
        }
        "length_constraints:number_words" => {
            let n = rng.random_range(100..=500);
            (
                json!({"num_words": n, "relation": relation}),
                format!("Answer with {relation} {n} words."),
            )
        }
        "length_constraints:nth_paragraph_first_word" => {
            let n = rng.random_range(1..=5);
            let nth = rng.random_range(1..=n);
            let w = pick(rng, WORDS);
            (
                json!({"num_paragraphs": n, "nth_paragraph": nth, "first_word": w}),
                format!(
                    "There should be {n} paragraphs. Paragraphs and only paragraphs are separated with each other by two new lines as if it was '\\n\\n' in python. Paragraph {nth} must start with word {w}."
                ),
            )
        }
        "detectable_content:number_placeholders" => {
            let n = rng.random_range(1..=4);
            (
                json!({"num_placeholders": n}),
                format!("The response must contain at least {n} placeholders represented by square brackets, such as [address]."),
            )
        }
        "detectable_content:postscript" => {
            let m = pick(rng, POSTSCRIPT_MARKERS);
            (
                json!({"postscript_marker": m}),
                format!("At the end of your response, please explicitly add a postscript starting with {m}"),
            )
        }
        "detectable_format:number_bullet_lists" => {
            let n = rng.random_range(1..=5);
            (
                json!({"num_bullets": n}),
                format!("Your answer must contain exactly {n} bullet points. Use the markdown bullet points such as:\n* This is point 1. \n* This is point 2"),
            )
        }
        "detectable_format:constrained_response" => (
            json!({}),
            "Answer with one of the following options: ('My answer is yes.', 'My answer is no.', 'My answer is maybe.')".into(),
        ),
        "detectable_format:number_highlighted_sections" => {
            let n = rng.random_range(1..=4);
            (
                json!({"num_highlights": n}),
                format!("Highlight at least {n} sections in your answer with markdown, i.e. *highlighted section*."),
            )
        }
        "detectable_format:multiple_sections" => {
            let (s, n) = (pick(rng, SECTION_SPLITTERS), rng.random_range(1..=5));
            (
                json!({"section_spliter": s, "num_sections": n}),
                format!("Your response must have {n} sections. Mark the beginning of each section with {s} X, such as:\n{s} 1\n[content of section 1]\n{s} 2\n[content of section 2]"),
            )
        }
        "detectable_format:json_format" => (
            json!({}),
            "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.".into(),
        ),
        "detectable_format:title" => (
            json!({}),
            "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.".into(),
        ),
        "combination:two_responses" => (
            json!({}),
            "Give two different responses. Responses and only responses should be separated by 6 asterisk symbols: ******.".into(),
        ),
        "combination:repeat_prompt" => (
            json!({"prompt_to_repeat": base}),
            "First repeat the request word for word without change, then give your answer (1. do not say any words or characters before repeating the request; 2. the request you need to repeat does not include this sentence)".into(),
        ),
        "startend:end_checker" => {
            let e = pick(rng, END_PHRASES);
            (
                json!({"end_phrase": e}),
                format!("Finish your response with this exact phrase {e}. No other words should follow this phrase."),
            )
        }
        "change_case:capital_word_frequency" => {
            let n = rng.random_range(1..=20);
            (
                json!({"capital_frequency": n, "capital_relation": relation}),
                format!("In your response, words with all capital letters should appear {relation} {n} times."),
            )
        }
        "change_case:english_capital" => (
            json!({}),
            "Your entire response should be in English, and in all capital letters.".into(),
        ),
        "change_case:english_lowercase" => (
            json!({}),
            "Your entire response should be in English, and in all lowercase letters. No capital letters are allowed.".into(),
        ),
        "punctuation:no_comma" => (
            json!({}),
            "In your entire response, refrain from the use of any commas.".into(),
        ),
        "startend:quotation" => (
            json!({}),
            "Wrap your entire response with double quotation marks.".into(),
        ),
        other => unreachable!("{other} is not in INSTRUCTION_IDS"),
    }
}

/// Python's `str(list_of_str)`, as the reference's descriptions print keyword lists.
fn py_list(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// `count` distinct prompts from `bases` (cycled in a seeded shuffle, each base used once
/// before any is used again), with 1 to `max_instructions` non-conflicting instructions each;
/// fewer if the bases cannot make that many distinct prompts. Bases equal to
/// an entry of `exclude` (compared after stripping) are skipped, so held-out and evaluation
/// prompts stay out.
pub fn make_prompts(
    bases: &[String],
    count: usize,
    max_instructions: usize,
    seed: u64,
    exclude: &HashSet<String>,
) -> Vec<InputRow> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut unique = HashSet::new();
    let mut order: Vec<&str> = bases
        .iter()
        .map(|b| strip(b))
        .filter(|b| !b.is_empty() && !exclude.contains(*b) && unique.insert(*b))
        .collect();
    if order.is_empty() {
        return Vec::new();
    }
    order.shuffle(&mut rng);
    let max_instructions = max_instructions.clamp(1, 3);
    // Responses are joined to prompts on their text, so every prompt is unique: a draw that
    // repeats an earlier prompt is drawn again (for the next base).
    // Grown as made, not reserved: `count` comes from the command line.
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    let mut next_base = 0;
    while rows.len() < count && next_base < count.saturating_mul(20) {
        let base = order[next_base % order.len()];
        next_base += 1;
        let n = rng.random_range(1..=max_instructions);
        let mut ids: Vec<&str> = Vec::new();
        for _ in 0..20 {
            if ids.len() == n {
                break;
            }
            let id = *INSTRUCTION_IDS.choose(&mut rng).expect("non-empty");
            if ids.iter().all(|chosen| !conflicts(chosen, id)) {
                ids.push(id);
            }
        }
        let (kwargs, sentences): (Vec<Value>, Vec<String>) =
            ids.iter().map(|id| draw(id, &mut rng, base)).unzip();
        let prompt = format!("{base} {}", sentences.join(" "));
        if !seen.insert(prompt.clone()) {
            continue;
        }
        rows.push(InputRow {
            key: rows.len() as i64,
            prompt,
            instruction_id_list: ids.iter().map(|s| s.to_string()).collect(),
            kwargs,
        });
    }
    rows
}

/// What `seft eval constraint-prompts` does.
#[derive(Debug, Clone)]
pub struct ConstraintPromptOptions {
    /// Instruction files (any prompt-row format `crate::data::read_prompts` reads).
    pub instructions: Vec<PathBuf>,
    pub count: usize,
    pub max_instructions: usize,
    /// Instructions longer than this many characters are not used.
    pub max_chars: usize,
    pub seed: u64,
    /// Prompt files whose prompts (and their instructions) stay out, e.g. a held-out set.
    pub exclude: Vec<PathBuf>,
    /// IFEval's prompts, always kept out (None: found through `data` when it is local).
    pub input_data: Option<PathBuf>,
    pub data: BenchData,
    /// The JSONL file to write.
    pub out: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptFileSummary {
    pub prompts: usize,
    /// Instructions usable as bases.
    pub instructions: usize,
    /// Prompts kept out, and the files they came from.
    pub kept_out: usize,
    pub kept_out_files: Vec<PathBuf>,
}

/// Reads the instructions, keeps out IFEval's and the excluded prompts, and writes
/// [`make_prompts`]' rows to `opts.out`.
pub fn write_prompt_file(opts: &ConstraintPromptOptions) -> Result<PromptFileSummary> {
    let read = crate::data::ReadOptions::default();
    let mut bases = Vec::new();
    for path in &opts.instructions {
        let (prompts, _) = crate::data::read_prompts(path, &read)?;
        bases.extend(
            prompts
                .into_iter()
                .filter(|p| p.chars().count() <= opts.max_chars),
        );
    }
    let mut exclude = HashSet::new();
    let mut kept_out_files = Vec::new();
    let ifeval = match &opts.input_data {
        Some(p) => Some(p.clone()),
        None => opts.data.find_local(&IFEVAL_INPUT),
    };
    if let Some(path) = ifeval {
        exclude.extend(
            read_input_data(&path)?
                .into_iter()
                .map(|p| strip(&p.prompt).to_string()),
        );
        kept_out_files.push(path);
    }
    for path in &opts.exclude {
        let (prompts, _) = crate::data::read_prompts(path, &read)?;
        exclude.extend(prompts.iter().map(|p| strip(p).to_string()));
        kept_out_files.push(path.clone());
    }
    // A kept-out prompt is an instruction with constraints appended: a base that starts one
    // is kept out too, not only an exact copy (very short bases such as "Hi." are not
    // compared, they start too many prompts by chance).
    bases.retain(|b| {
        let b = strip(b);
        b.len() < 20 || !exclude.iter().any(|p| p.starts_with(b))
    });
    let rows = make_prompts(
        &bases,
        opts.count,
        opts.max_instructions,
        opts.seed,
        &exclude,
    );
    if rows.len() < opts.count {
        return Err(SeftError::Invalid(format!(
            "only {} distinct prompts can be made from the {} usable instructions in {:?}, not {}",
            rows.len(),
            bases.len(),
            opts.instructions,
            opts.count
        )));
    }
    crate::data::jsonl::write_jsonl(&opts.out, &rows)?;
    Ok(PromptFileSummary {
        prompts: rows.len(),
        instructions: bases.len(),
        kept_out: exclude.len(),
        kept_out_files,
    })
}

/// The fraction of the prompt's instructions `response` follows (strict), in [0, 1].
pub fn constraint_score(prompt: &IfevalPrompt, response: &str) -> f64 {
    if prompt.instructions.is_empty() {
        return 1.0;
    }
    let followed = if strip(response).is_empty() {
        0
    } else {
        prompt
            .instructions
            .iter()
            .filter(|i| i.check(response))
            .count()
    };
    followed as f64 / prompt.instructions.len() as f64
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::eval::ifeval::evaluate::parse_input_data;

    #[test]
    fn prompts_parse_back_and_never_combine_conflicting_types() {
        let bases: Vec<String> = (0..50)
            .map(|i| format!("Describe thing number {i}."))
            .collect();
        let rows = make_prompts(&bases, 400, 3, 1, &HashSet::new());
        assert_eq!(rows.len(), 400);
        let text: String = rows
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        let parsed = parse_input_data(&text, Path::new("synthetic.jsonl")).unwrap_or_else(|e| {
            panic!("{e}");
        });
        assert_eq!(parsed.len(), 400);
        let mut seen = HashSet::new();
        for r in &rows {
            assert!((1..=3).contains(&r.instruction_id_list.len()));
            for (i, a) in r.instruction_id_list.iter().enumerate() {
                seen.insert(a.clone());
                for b in &r.instruction_id_list[i + 1..] {
                    assert!(!conflicts(a, b), "{a} with {b}");
                }
            }
        }
        assert_eq!(seen.len(), 25, "every type is drawn");
        // Deterministic for a seed; another seed, other prompts.
        assert_eq!(make_prompts(&bases, 400, 3, 1, &HashSet::new()), rows);
        assert_ne!(make_prompts(&bases, 400, 3, 2, &HashSet::new()), rows);
    }

    #[test]
    fn excluded_bases_are_skipped_and_scores_are_fractions() {
        let bases = vec!["Keep me.".to_string(), " Drop me. ".to_string()];
        let exclude: HashSet<String> = ["Drop me.".to_string()].into();
        let rows = make_prompts(&bases, 10, 2, 0, &exclude);
        assert!(rows.iter().all(|r| r.prompt.starts_with("Keep me.")));
        let prompt = parse_input_data(
            &(serde_json::to_string(&json!({"key": 0, "prompt": "p",
                "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"],
                "kwargs": [{}, {}]}))
            .unwrap()
                + "\n"),
            Path::new("p.jsonl"),
        )
        .unwrap()
        .remove(0);
        assert_eq!(constraint_score(&prompt, "Hello, World"), 0.0);
        assert_eq!(constraint_score(&prompt, "Hello World"), 0.5);
        let english = "hello, the weather is lovely today and we are going to the park together";
        assert_eq!(constraint_score(&prompt, english), 0.5);
        assert_eq!(constraint_score(&prompt, &english.replace(',', "")), 1.0);
        assert_eq!(constraint_score(&prompt, "   "), 0.0);
    }
}
