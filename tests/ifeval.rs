//! IFEval end to end: `seft eval ifeval --responses` on project-made prompts (scores, files,
//! `--json`, the leaderboard), bad input (unknown instruction, missing kwargs, prompts without
//! a response), and, with the shared data, the official 541 prompts and the verdicts of the
//! reference Python checkers on SmolLM2's responses (tests/fixtures/ifeval/make_reference.py).

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use common::{fixture, output, seft, shared, success};
use seft::eval::ifeval::evaluate::{judge, loose_variants, parse_input_data, read_input_data};
use serde_json::{Value, json};

/// Three prompts written for these tests, in the official input_data.jsonl format.
fn tiny_input() -> String {
    [
        json!({"key": 1, "prompt": "Write a haiku in lowercase.",
               "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]}),
        json!({"key": 2, "prompt": "List two fruits without commas, in 2 bullets.",
               "instruction_id_list": ["punctuation:no_comma", "detectable_format:number_bullet_lists"],
               "kwargs": [{}, {"num_bullets": 2}]}),
        json!({"key": 3, "prompt": "Say hi and end with 'Bye now.'",
               "instruction_id_list": ["startend:end_checker"],
               "kwargs": [{"end_phrase": "Bye now.", "num_bullets": null}]}),
    ]
    .iter()
    .map(|v| v.to_string() + "\n")
    .collect()
}

/// A gzipped fixture file as text.
fn read_gz_fixture(rel: &str) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(fixture(rel)).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn responses(rows: &[(&str, &str)]) -> String {
    rows.iter()
        .map(|(p, r)| json!({"prompt": p, "response": r}).to_string() + "\n")
        .collect()
}

#[test]
fn scores_a_responses_file_and_writes_the_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input_data.jsonl");
    std::fs::write(&input, tiny_input()).unwrap();
    let answers = dir.path().join("answers.jsonl");
    std::fs::write(
        &answers,
        responses(&[
            (
                "Write a haiku in lowercase.",
                "the old silent pond\na frog jumps into the pond\nsplash! silence again",
            ),
            // Bullets right, a comma: strict and loose both fail the comma.
            (
                "List two fruits without commas, in 2 bullets.",
                "* apple, red\n* pear, green",
            ),
            // Followed only once the markdown is removed: loose passes, strict fails.
            ("Say hi and end with 'Bye now.'", "Hi!\n**Bye now.**"),
        ]),
    )
    .unwrap();
    let out = dir.path().join("run");
    let stdout = success(
        seft()
            .args(["eval", "ifeval", "--json", "--input-data"])
            .arg(&input)
            .arg("--responses")
            .arg(&answers)
            .arg("--out")
            .arg(&out),
    );
    let scores: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(scores["prompt_level_strict"], json!(1.0 / 3.0));
    assert_eq!(scores["inst_level_strict"], json!(2.0 / 4.0));
    assert_eq!(scores["prompt_level_loose"], json!(2.0 / 3.0));
    assert_eq!(scores["inst_level_loose"], json!(3.0 / 4.0));
    assert_eq!(scores.as_object().unwrap().len(), 4);

    let verdicts: Vec<Value> = std::fs::read_to_string(out.join("verdicts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(verdicts.len(), 3);
    assert_eq!(
        verdicts[1]["follow_instruction_list_strict"],
        json!([false, true])
    );
    assert_eq!(verdicts[2]["follow_all_instructions_loose"], json!(true));
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(
        metrics["by_instruction"]["punctuation:no_comma"]["strict"],
        json!(0)
    );
    assert_eq!(metrics["by_group"]["detectable_format"]["total"], json!(1));
    let md = std::fs::read_to_string(out.join("metrics.md")).unwrap();
    assert!(md.contains("| prompt | 33.3 | 66.7 |"), "{md}");

    // The leaderboard picks the IFEval metrics.json up in its own columns, under the file's
    // stem unless --name names the model.
    let board = success(seft().args(["eval", "leaderboard"]).arg(&out));
    assert!(board.contains("IFEval prompt strict"), "{board}");
    assert!(board.contains("| answers |"), "{board}");
    success(
        seft()
            .args(["eval", "ifeval", "--name", "my-model", "--input-data"])
            .arg(&input)
            .arg("--responses")
            .arg(&answers)
            .arg("--out")
            .arg(&out),
    );
    let board = success(seft().args(["eval", "leaderboard"]).arg(&out));
    assert!(board.contains("| my-model |"), "{board}");
    assert!(board.contains("| 33.3 | 50.0 | 66.7 | 75.0 |"), "{board}");
}

/// Runs `seft eval ifeval --responses` and returns (exit code, stderr).
fn score_fails(input: &str, answers: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let input_path = dir.path().join("input_data.jsonl");
    std::fs::write(&input_path, input).unwrap();
    let answers_path = dir.path().join("answers.jsonl");
    std::fs::write(&answers_path, answers).unwrap();
    let o = output(
        seft()
            .args(["eval", "ifeval", "--input-data"])
            .arg(&input_path)
            .arg("--responses")
            .arg(&answers_path),
    );
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    (o.status.code().unwrap_or(-1), errors[0].to_string())
}

#[test]
fn bad_input_is_one_error_line_naming_the_row() {
    let ok = responses(&[("Write a haiku in lowercase.", "a"), ("x", "y")]);
    let row = |id: &str, kwargs: Value| {
        json!({"key": 7, "prompt": "Write a haiku in lowercase.", "instruction_id_list": [id], "kwargs": [kwargs]})
            .to_string()
    };

    let (code, err) = score_fails(&row("keywords:telepathy", json!({})), &ok);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "input_data.jsonl: line 1: key 7: unknown instruction id \"keywords:telepathy\""
        ),
        "{err}"
    );

    let (code, err) = score_fails(
        &row(
            "length_constraints:number_words",
            json!({"relation": "at least"}),
        ),
        &ok,
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("line 1: key 7: length_constraints:number_words: missing kwarg `num_words`"),
        "{err}"
    );

    let (_, err) = score_fails(
        &row(
            "length_constraints:number_words",
            json!({"relation": "about", "num_words": 3}),
        ),
        &ok,
    );
    assert!(
        err.contains("kwarg `relation` must be \"less than\" or \"at least\""),
        "{err}"
    );

    let two_lines = format!(
        "{}\n{}",
        row("punctuation:no_comma", json!({})),
        json!({"key": 8, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": []})
    );
    let (_, err) = score_fails(&two_lines, &ok);
    assert!(
        err.contains("line 2: key 8: 1 instruction ids but 0 kwargs"),
        "{err}"
    );

    // Responses for some prompts only: the error names how many are missing and which.
    let (code, err) = score_fails(
        &tiny_input(),
        &responses(&[("Write a haiku in lowercase.", "a")]),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("answers.jsonl: no response for 2 of 3 prompts, first key 2"),
        "{err}"
    );
    assert!(err.contains("keys: 2, 3"), "{err}");

    let (_, err) = score_fails(&tiny_input(), "{\"prompt\": \"a\"}\n");
    assert!(
        err.contains("answers.jsonl: line 1: not a {\"prompt\", \"response\"} row"),
        "{err}"
    );

    let (_, err) = score_fails("", &ok);
    assert!(
        err.contains("input_data.jsonl: no IFEval prompts in the file"),
        "{err}"
    );
}

#[test]
fn generating_needs_a_run_folder() {
    let o = output(seft().args(["eval", "ifeval", "--model", "m.gguf"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--out is needed to generate"));
}

#[test]
#[ignore = "needs the shared data (../shared/data or SEFT_SHARED_DATA)"]
fn the_official_prompts_parse_into_25_instruction_types() {
    let prompts = read_input_data(&shared().join("ifeval/input_data.jsonl")).unwrap();
    assert_eq!(prompts.len(), 541);
    let ids: Vec<&String> = prompts.iter().flat_map(|p| &p.instruction_ids).collect();
    assert_eq!(ids.len(), 834);
    let types: std::collections::BTreeSet<&String> = ids.into_iter().collect();
    assert_eq!(types.len(), 25);
    let registry: std::collections::BTreeSet<String> = seft::eval::ifeval::INSTRUCTION_IDS
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        types
            .into_iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        registry
    );
}

/// The instructions whose verdict rests on language identification (langdetect in the
/// reference, whatlang in seft).
const LANGUAGE_IDS: [&str; 3] = [
    "language:response_language",
    "change_case:english_capital",
    "change_case:english_lowercase",
];

/// The reference's verdicts (strict and loose, per instruction) on SmolLM2's responses and on
/// their rewritten copies, against seft's: equal for every instruction, except language-based
/// ones on responses where the two language identifiers name different languages (each
/// printed; README's IFEval section lists them).
#[test]
#[ignore = "needs the shared data (../shared/data or SEFT_SHARED_DATA)"]
fn verdicts_equal_the_reference_python_checkers() {
    let input = shared().join("ifeval/input_data.jsonl");
    let text = std::fs::read_to_string(&input).unwrap();
    let prompts: HashMap<i64, _> = parse_input_data(&text, &input)
        .unwrap()
        .into_iter()
        .map(|p| (p.key, p))
        .collect();
    let gz = read_gz_fixture("ifeval/responses.jsonl.gz");
    let reference = std::fs::read_to_string(fixture("ifeval/reference_verdicts.jsonl")).unwrap();
    let (mut responses, mut equal_rows, mut verdicts, mut equal_verdicts) = (0, 0, 0, 0);
    let mut same_language = 0;
    let mut explained = Vec::new();
    let mut unexplained = Vec::new();
    for (line, expected) in gz.lines().zip(reference.lines()) {
        let row: Value = serde_json::from_str(line).unwrap();
        let expected: Value = serde_json::from_str(expected).unwrap();
        assert_eq!(
            (&row["key"], &row["variant"]),
            (&expected["key"], &expected["variant"])
        );
        let response = row["response"].as_str().unwrap();
        let v = judge(&prompts[&row["key"].as_i64().unwrap()], response);
        let seft_language = seft::eval::ifeval::language::detect(response);
        let reference_language = expected["language"].as_str();
        responses += 1;
        same_language += usize::from(seft_language == reference_language);
        let mut row_equal = true;
        for (mode, ours) in [
            ("strict", &v.follow_instruction_list_strict),
            ("loose", &v.follow_instruction_list_loose),
        ] {
            for (i, id) in v.instruction_id_list.iter().enumerate() {
                verdicts += 1;
                if json!(ours[i]) == expected[mode][i] {
                    equal_verdicts += 1;
                    continue;
                }
                row_equal = false;
                let what = format!(
                    "key {} {} {id} {mode}: seft {} reference {} (language seft {seft_language:?}, reference {reference_language:?}; reference words {}, sentences {}, capital words {})",
                    row["key"],
                    row["variant"],
                    ours[i],
                    expected[mode][i],
                    expected["words"],
                    expected["sentences"],
                    expected["capital_words"]
                );
                // Loose verdicts read eight variants of the response: a language-based one is
                // explained when the two identifiers differ on any of them.
                let differs = match mode {
                    "strict" => seft_language != reference_language,
                    _ => loose_variants(response)
                        .iter()
                        .zip(expected["loose_languages"].as_array().unwrap())
                        .any(|(v, l)| seft::eval::ifeval::language::detect(v) != l.as_str()),
                };
                if LANGUAGE_IDS.contains(&id.as_str()) && differs {
                    explained.push(what);
                } else {
                    unexplained.push(what);
                }
            }
        }
        equal_rows += usize::from(row_equal);
    }
    println!(
        "{equal_rows}/{responses} responses and {equal_verdicts}/{verdicts} verdicts (strict and loose) equal to the reference's; language identified alike (whatlang vs seeded langdetect) on {same_language}/{responses} responses"
    );
    for d in explained.iter().chain(&unexplained) {
        println!("{d}");
    }
    assert!(responses > 0, "the fixture is empty");
    assert!(
        unexplained.is_empty(),
        "{} disagreements not explained by language identification",
        unexplained.len()
    );
}

#[test]
fn the_fixture_has_one_verdict_row_per_response() {
    let gz = read_gz_fixture("ifeval/responses.jsonl.gz");
    let reference = std::fs::read_to_string(fixture("ifeval/reference_verdicts.jsonl")).unwrap();
    assert_eq!(gz.lines().count(), reference.lines().count());
    assert!(Path::new(&fixture("ifeval/make_reference.py")).is_file());
}

/// Training prompts with attached constraints come from Alpaca and LIMA instructions, never
/// from IFEval's 541 prompts, and the checkers read every one of them back.
#[test]
#[ignore = "needs the shared data (../shared/data or SEFT_SHARED_DATA)"]
fn constraint_prompts_never_overlap_ifeval() {
    let data = shared();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("train.jsonl");
    success(
        seft()
            .args([
                "eval",
                "constraint-prompts",
                "--count",
                "2500",
                "--seed",
                "3",
                "--instructions",
            ])
            .arg(data.join("instructions/alpaca_en_demo.json"))
            .arg(data.join("instructions/lima.json"))
            .arg(data.join("instructions/alpaca_seed_tasks.jsonl"))
            .arg("--data-dir")
            .arg(&data)
            .arg("--out")
            .arg(&out),
    );
    let ours = read_input_data(&out).unwrap();
    assert_eq!(ours.len(), 2500);
    let ifeval = read_input_data(&data.join("ifeval/input_data.jsonl")).unwrap();
    for p in &ours {
        let head: String = p.prompt.chars().take(60).collect();
        for q in &ifeval {
            assert_ne!(p.prompt, q.prompt);
            assert!(
                !q.prompt.starts_with(&head),
                "{head:?} starts IFEval prompt {}",
                q.key
            );
        }
    }
    let types: std::collections::BTreeSet<&String> =
        ours.iter().flat_map(|p| &p.instruction_ids).collect();
    assert_eq!(types.len(), 25);
}

/// `seft eval constraint-pairs`: K samples per prompt, scored by rules, best against worst;
/// the pairs read back as seft's preference data, and a rerun resumes without sampling again.
#[test]
fn constraint_pairs_are_sampled_scored_and_paired() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny");
    common::write_tiny_hf_folder(&model, 3);
    let prompts = dir.path().join("prompts.jsonl");
    let rows: String = (0..6)
        .map(|i| {
            json!({"key": i, "prompt": format!("Say something, number {i}."),
                   "instruction_id_list": ["length_constraints:number_words", "punctuation:no_comma"],
                   "kwargs": [{"num_words": 2, "relation": "less than"}, {}]})
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&prompts, rows).unwrap();
    let out = dir.path().join("pairs");
    let run = || {
        success(
            seft()
                .args([
                    "eval",
                    "constraint-pairs",
                    "--samples",
                    "4",
                    "--max-new-tokens",
                    "6",
                    "--temperature",
                    "1.5",
                    "--batch-size",
                    "8",
                    "--model",
                ])
                .arg(&model)
                .arg("--prompts")
                .arg(&prompts)
                .arg("--out")
                .arg(&out),
        )
    };
    let summary: Value = serde_json::from_str(&run()).unwrap();
    assert_eq!(summary["prompts"], json!(6));
    assert_eq!(summary["samples_per_prompt"], json!(4));
    let pairs = summary["pairs"].as_u64().unwrap();
    assert_eq!(pairs + summary["ties"].as_u64().unwrap(), 6);
    let samples = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
    let samples: Vec<Value> = samples
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(samples.len(), 24);
    // Every score is the checkers' fraction for that sample.
    let parsed = read_input_data(&prompts).unwrap();
    for (i, s) in samples.iter().enumerate() {
        let expected = seft::eval::ifeval::synthetic::constraint_score(
            &parsed[i / 4],
            s["response"].as_str().unwrap(),
        );
        assert_eq!(s["score"].as_f64().unwrap(), expected);
        assert_eq!(s["key"], json!(i / 4));
    }
    let (prefs, _) =
        seft::data::read_preferences(&out.join("pairs.jsonl"), &Default::default()).unwrap();
    assert_eq!(prefs.len() as u64, pairs);
    for p in &prefs {
        assert!(p.score_chosen.unwrap() > p.score_rejected.unwrap());
    }
    // Resumed: the same samples, not new ones.
    let before = std::fs::read(out.join("samples.jsonl")).unwrap();
    run();
    assert_eq!(std::fs::read(out.join("samples.jsonl")).unwrap(), before);
}

/// 1000 random responses (40 per instruction type, half rewritten towards the instruction)
/// against the reference checkers' verdicts (tests/fixtures/ifeval/make_random_cases.py):
/// every word, sentence and capital-word count equal, and every strict and loose verdict,
/// except language-based ones where whatlang and langdetect name different languages (printed).
#[test]
fn random_responses_get_the_reference_verdicts_for_every_instruction_type() {
    let text = read_gz_fixture("ifeval/random_cases.jsonl.gz");
    let (mut cases, mut equal) = (0, 0);
    let mut per_type: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    let mut explained = Vec::new();
    let mut unexplained = Vec::new();
    for line in text.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let id = case["id"].as_str().unwrap();
        let instruction = seft::eval::ifeval::Instruction::parse(id, &case["kwargs"]).unwrap();
        let prompt = seft::eval::ifeval::IfevalPrompt {
            key: cases,
            prompt: String::new(),
            instruction_ids: vec![id.to_string()],
            instructions: vec![instruction],
        };
        let response = case["response"].as_str().unwrap();
        let v = judge(&prompt, response);
        cases += 1;
        let capital = seft::eval::ifeval::word_tokenize::word_tokenize(response)
            .iter()
            .filter(|w| seft::eval::ifeval::pytext::is_upper(w))
            .count();
        assert_eq!(
            (
                seft::eval::ifeval::pytext::count_words(response),
                seft::eval::ifeval::punkt::count_sentences(response),
                capital
            ),
            (
                case["words"].as_u64().unwrap() as usize,
                case["sentences"].as_u64().unwrap() as usize,
                case["capital_words"].as_u64().unwrap() as usize
            ),
            "word, sentence and capital-word counts of case {} {response:?}",
            cases - 1
        );
        let entry = per_type.entry(id.to_string()).or_default();
        entry.0 += 1;
        let ours = (
            v.follow_instruction_list_strict[0],
            v.follow_instruction_list_loose[0],
        );
        let theirs = (
            case["strict"].as_bool().unwrap(),
            case["loose"].as_bool().unwrap(),
        );
        if ours == theirs {
            equal += 1;
            entry.1 += 1;
            continue;
        }
        let seft_language = seft::eval::ifeval::language::detect(response);
        let what = format!(
            "case {} {id} {}: seft {ours:?} reference {theirs:?} (language seft {seft_language:?}, reference {}) {response:?}",
            cases - 1,
            case["kwargs"],
            case["language"]
        );
        if LANGUAGE_IDS.contains(&id) && seft_language != case["language"].as_str() {
            explained.push(what);
        } else {
            unexplained.push(what);
        }
    }
    println!("{equal}/{cases} random cases with both verdicts equal to the reference's");
    for (id, (n, same)) in &per_type {
        println!("  {id}: {same}/{n}");
    }
    for d in explained.iter().chain(&unexplained) {
        println!("{d}");
    }
    assert_eq!(per_type.len(), 25);
    assert!(
        unexplained.is_empty(),
        "{} disagreements not explained by language identification",
        unexplained.len()
    );
}

/// `seft eval ifeval --model` generates into its run folder, resumes there, and refuses to mix
/// in responses of another setup (other settings or other prompts).
#[test]
fn generation_resumes_only_the_same_setup() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny");
    common::write_tiny_hf_folder(&model, 5);
    let input = dir.path().join("input_data.jsonl");
    std::fs::write(&input, tiny_input()).unwrap();
    let out = dir.path().join("run");
    let ifeval = |input: &Path, tokens: &str| {
        let mut cmd = seft();
        cmd.args([
            "eval",
            "ifeval",
            "--json",
            "--batch-size",
            "2",
            "--max-new-tokens",
            tokens,
            "--model",
        ])
        .arg(&model)
        .arg("--input-data")
        .arg(input)
        .arg("--out")
        .arg(&out);
        output(&mut cmd)
    };
    let first = ifeval(&input, "3");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let responses = std::fs::read(out.join("responses.jsonl")).unwrap();
    assert_eq!(String::from_utf8_lossy(&responses).lines().count(), 3);
    // The same setup: nothing generated again, the same scores.
    let again = ifeval(&input, "3");
    assert!(again.status.success());
    assert_eq!(again.stdout, first.stdout);
    assert_eq!(
        std::fs::read(out.join("responses.jsonl")).unwrap(),
        responses
    );
    // Other settings.
    let other = ifeval(&input, "4");
    assert_eq!(other.status.code(), Some(1));
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        err.contains("generation.json: the responses here were generated with"),
        "{err}"
    );
    // Other prompts.
    let changed = dir.path().join("changed.jsonl");
    std::fs::write(
        &changed,
        tiny_input().replace("Write a haiku", "Write a limerick"),
    )
    .unwrap();
    let other = ifeval(&changed, "3");
    assert_eq!(other.status.code(), Some(1));
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        err.contains("responses.jsonl: line 1: a response to another prompt"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(out.join("responses.jsonl")).unwrap(),
        responses
    );
}

/// The counts behind the length and capital-word checkers, on every response of the reference
/// fixture: words (`\w+` runs), sentences (NLTK's Punkt) and all-capital tokens (NLTK's
/// word_tokenize), each equal to the reference's.
#[test]
fn word_sentence_and_capital_counts_equal_the_references() {
    let gz = read_gz_fixture("ifeval/responses.jsonl.gz");
    let reference = std::fs::read_to_string(fixture("ifeval/reference_verdicts.jsonl")).unwrap();
    let mut n = 0;
    for (line, expected) in gz.lines().zip(reference.lines()) {
        let row: Value = serde_json::from_str(line).unwrap();
        let expected: Value = serde_json::from_str(expected).unwrap();
        let response = row["response"].as_str().unwrap();
        let capital = seft::eval::ifeval::word_tokenize::word_tokenize(response)
            .iter()
            .filter(|w| seft::eval::ifeval::pytext::is_upper(w))
            .count();
        let ours = json!({
            "words": seft::eval::ifeval::pytext::count_words(response),
            "sentences": seft::eval::ifeval::punkt::count_sentences(response),
            "capital_words": capital,
        });
        let theirs = json!({
            "words": expected["words"],
            "sentences": expected["sentences"],
            "capital_words": expected["capital_words"],
        });
        assert_eq!(ours, theirs, "key {} {}", row["key"], row["variant"]);
        n += 1;
    }
    assert!(n > 0);
}
