//! `seft run` end to end on a tiny configuration: crash safety (SIGKILL in every stage kind,
//! restart, identical final artifacts, finished stages not redone) and bad input. The
//! quickstart's own claims are checked by tests/quickstart.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

/// A pipeline small enough to run several times per test: a 1-layer scratch model, 200
/// preference pairs, 2 iterations of 32 prompts, a control arm and evaluation.
const TINY: &str = r#"
seed = 3
iterations = 2

[model.scratch]
hidden_size = 32
intermediate_size = 64
layers = 1
heads = 2
max_positions = 64
init_std = 0.1

[task]
family = "list_ops"
annotated = 16
preference_pairs = 200
pool = 64
held_out = 24

[starting_policy]
max_len = 48
train = { seed = 3, max_steps = 8, micro_batch = 8, lr = 3e-3, save_every = 4 }

[reviser]
max_len = 64
batch_size = 8
format = { template = "{prompt}|{response}" }
levels = { min_gap = 1.0, major_gap = 6.0 }
train = { seed = 3, max_steps = 12, micro_batch = 16, lr = 3e-3, save_every = 4 }
sampling = { max_new_tokens = 12 }

[evolution]
prompts_per_iteration = 32
batch_size = 8
max_len = 48
compare_identity = true
sampling = { max_new_tokens = 8 }
train = { seed = 3, max_steps = 6, micro_batch = 8, lr = 1e-3, save_every = 2 }

[eval]
batch_size = 12
"#;

fn seft(args: &[&str], fault: Option<&str>) -> Output {
    let mut cmd = common::seft();
    cmd.args(args);
    if let Some(f) = fault {
        cmd.env("SEFT_FAULT", f);
    }
    common::output(&mut cmd)
}

fn run(config: &Path, out: &Path, fault: Option<&str>) -> Output {
    seft(
        &[
            "run",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        fault,
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("tiny.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Every `done.json` under `out` with its bytes (they hold the stage's wall time, so a redone
/// stage would differ).
fn stage_records(out: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    if !out.exists() {
        return found;
    }
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "done.json") {
                found.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    found.sort();
    found
}

/// The artifacts an interrupted run must reproduce exactly.
const ARTIFACTS: &[&str] = &[
    "data/reviser_train.jsonl",
    "reviser/model/model.safetensors",
    "seft/iter-1/generate/responses.jsonl",
    "seft/iter-1/revise/revisions.jsonl",
    "seft/iter-1/sft_data/sft.jsonl",
    "seft/iter-2/revise/revisions.jsonl",
    "seft/iter-2/policy/model/model.safetensors",
    "identity/iter-2/policy/model/model.safetensors",
    "eval/seft-iter-2/responses.jsonl",
    "eval/reviser/reviewed.jsonl",
];

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

#[test]
fn killed_in_every_stage_kind_resumes_to_identical_artifacts() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), TINY);
    let clean = tmp.path().join("clean");
    let o = run(&config, &clean, None);
    assert!(o.status.success(), "{}", stderr(&o));

    let crashed = tmp.path().join("crashed");
    // One SIGKILL in each stage kind, the run restarted after each.
    for fault in [
        "reviser/step:6",
        "seft/iter-1/generate/generate:2",
        "seft/iter-1/revise/revise:3",
        "seft/iter-2/policy/step:3",
        "identity/iter-1/policy/checkpoint:4",
    ] {
        let before = stage_records(&crashed);
        let o = run(&config, &crashed, Some(fault));
        assert!(!o.status.success(), "{fault}: the run was not killed");
        assert!(
            stderr(&o).contains("SEFT_FAULT: killing"),
            "{fault}: {}",
            stderr(&o)
        );
        // Stages finished before this start were skipped, not redone.
        let after = stage_records(&crashed);
        for (path, bytes) in &before {
            let now = after.iter().find(|(p, _)| p == path).map(|(_, b)| b);
            assert_eq!(now, Some(bytes), "{} was redone", path.display());
        }
        assert!(
            after.len() > before.len() || before.is_empty(),
            "{fault}: no stage finished between two kills"
        );
    }
    let o = run(&config, &crashed, None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("already done"));
    for rel in ARTIFACTS {
        let a = std::fs::read(clean.join(rel)).unwrap();
        let b = std::fs::read(crashed.join(rel)).unwrap();
        assert!(a == b, "{rel} differs after the crashes");
    }
    let (mut a, mut b) = (report(&clean), report(&crashed));
    // Model paths name the run directory; everything else must match.
    for r in [&mut a, &mut b] {
        for it in r["iterations"].as_array_mut().unwrap() {
            it["sft"]["model"] = serde_json::Value::Null;
        }
    }
    for key in [
        "before_accuracy",
        "after_accuracy",
        "identity_reviser_accuracy",
        "iterations",
        "reviser_eval",
    ] {
        assert_eq!(a[key], b[key], "report field {key}");
    }
}

#[test]
fn report_has_accuracies_confusion_and_iterations() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), TINY);
    let out = tmp.path().join("run");
    let o = run(&config, &out, None);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&out);
    for key in [
        "before_accuracy",
        "after_accuracy",
        "identity_reviser_accuracy",
    ] {
        let v = r[key].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&v), "{key} = {}", r[key]);
    }
    let iterations = r["iterations"].as_array().unwrap();
    assert_eq!(iterations.len(), 4, "2 iterations x 2 arms");
    for it in iterations {
        let rev = &it["revisions"];
        let sum: u64 = ["keep", "minor", "major", "untagged"]
            .iter()
            .map(|k| rev[*k].as_u64().unwrap())
            .sum();
        assert_eq!(sum, 32, "every answer gets one decision");
    }
    // The control arm keeps everything by construction.
    assert_eq!(iterations[2]["revisions"]["keep"], 32);
    let confusion = &r["reviser_eval"]["confusion"];
    let total: u64 = ["correct", "slip", "wrong"]
        .iter()
        .flat_map(|s| confusion[*s].as_object().unwrap().values())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 24, "one cell per held-out answer");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| true state | keep | minor | major | untagged |"));
    // Each stage left its artifacts for inspection.
    let rows = std::fs::read_to_string(out.join("seft/iter-1/revise/revisions.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(rows.lines().next().unwrap()).unwrap();
    for key in ["prompt", "response", "tag", "enhanced", "reviser_output"] {
        assert!(first.get(key).is_some(), "revisions.jsonl lacks {key}");
    }
    // A different configuration cannot reuse the directory.
    let other = write_config(tmp.path(), &TINY.replace("seed = 3\n", "seed = 4\n"));
    let o = run(&other, &out, None);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("different configuration"),
        "{}",
        stderr(&o)
    );
}

/// A file-based run (no task) with a scratch model: the shape of the bad-input cases.
fn file_config(dir: &Path, prefs: &Path, prompts: &Path, reviser_steps: usize) -> PathBuf {
    let annotated = dir.join("annotated.jsonl");
    std::fs::write(
        &annotated,
        "{\"prompt\": \"max 1 2\", \"completion\": \"2\"}\n{\"prompt\": \"min 1 2\", \"completion\": \"1\"}\n",
    )
    .unwrap();
    let text = format!(
        r#"
iterations = 1
[model.scratch]
hidden_size = 16
intermediate_size = 32
layers = 1
heads = 2
max_positions = 64
[data]
preferences = ["{}"]
prompts = ["{}"]
annotated = "{}"
[starting_policy]
train = {{ max_steps = 30, micro_batch = 2, lr = 1e-2 }}
[reviser]
format = {{ template = "{{prompt}}|{{response}}" }}
train = {{ max_steps = {reviser_steps}, micro_batch = 2, lr = 1e-3 }}
sampling = {{ max_new_tokens = 6 }}
[evolution]
prompts_per_iteration = 4
sampling = {{ max_new_tokens = 6 }}
train = {{ max_steps = 1, micro_batch = 2, lr = 1e-3 }}
"#,
        prefs.display(),
        prompts.display(),
        annotated.display()
    );
    write_config(dir, &text)
}

fn write_prefs(dir: &Path) -> PathBuf {
    let p = dir.join("prefs.jsonl");
    let rows: Vec<String> = (0..6)
        .map(|i| format!(r#"{{"prompt": "max {i} 9", "chosen": "9", "rejected": "{i}"}}"#))
        .collect();
    std::fs::write(&p, rows.join("\n")).unwrap();
    p
}

fn write_prompts(dir: &Path) -> PathBuf {
    let p = dir.join("prompts.jsonl");
    std::fs::write(
        &p,
        "{\"instruction\": \"max 3 4\"}\n{\"prompt\": \"min 5 2\"}\n{\"question\": \"len 1 2 3\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"max 7 1\"}]}\n",
    )
    .unwrap();
    p
}

#[test]
fn preference_rows_without_chosen_or_rejected_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let prefs = tmp.path().join("bad_prefs.jsonl");
    std::fs::write(
        &prefs,
        "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n{\"instruction\": \"a\", \"output\": \"b\"}\n",
    )
    .unwrap();
    let config = file_config(tmp.path(), &prefs, &write_prompts(tmp.path()), 2);
    let o = run(&config, &tmp.path().join("out"), None);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("bad_prefs.jsonl:2") && err.contains("not a preference pair"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let prefs = tmp.path().join("half.jsonl");
    std::fs::write(&prefs, "{\"prompt\": \"a\", \"chosen\": \"b\"}\n").unwrap();
    let config = file_config(tmp.path(), &prefs, &write_prompts(tmp.path()), 2);
    let o = run(&config, &tmp.path().join("out2"), None);
    let err = stderr(&o);
    assert!(
        !o.status.success() && err.contains("half.jsonl:1") && err.contains("no 'rejected'"),
        "{err}"
    );
}

#[test]
fn an_empty_prompt_pool_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let prompts = tmp.path().join("empty.jsonl");
    std::fs::write(&prompts, "").unwrap();
    let config = file_config(tmp.path(), &write_prefs(tmp.path()), &prompts, 2);
    let o = run(&config, &tmp.path().join("out"), None);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("empty.jsonl") && err.contains("no usable rows"),
        "{err}"
    );
    // Rows with an empty prompt are named too.
    std::fs::write(&prompts, "{\"prompt\": \"  \"}\n").unwrap();
    let o = run(&config, &tmp.path().join("out2"), None);
    let err = stderr(&o);
    assert!(
        err.contains("empty.jsonl:1") && err.contains("the prompt is empty"),
        "{err}"
    );
}

#[test]
fn untagged_reviser_output_keeps_the_answer_and_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    // One training step: the reviser babbles and never writes a tag.
    let config = file_config(
        tmp.path(),
        &write_prefs(tmp.path()),
        &write_prompts(tmp.path()),
        1,
    );
    let out = tmp.path().join("out");
    let o = run(&config, &out, None);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&out);
    let rev = &r["iterations"][0]["revisions"];
    assert_eq!(rev["rows"], 4);
    assert_eq!(rev["untagged"], 4, "{rev}");
    assert!(stderr(&o).contains("had no tag"));
    let rows = std::fs::read_to_string(out.join("seft/iter-1/revise/revisions.jsonl")).unwrap();
    for line in rows.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["tag"].is_null());
        assert_eq!(v["enhanced"], v["response"]);
    }
    // No task: no programmatic judge, and the report says so.
    assert!(r["after_accuracy"].is_null());
    assert!(r["judge"].as_str().unwrap().starts_with("none"));
}

#[test]
fn config_errors_name_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), &format!("{TINY}\n[evolution.extra]\nx = 1\n"));
    let o = run(&config, &tmp.path().join("a"), None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("duplicate key") || stderr(&o).contains("extra"));
    let config = write_config(
        tmp.path(),
        &TINY.replace(
            "compare_identity = true",
            "compare_identity = true\nbogus = 1",
        ),
    );
    let o = run(&config, &tmp.path().join("b"), None);
    let err = stderr(&o);
    assert!(
        !o.status.success() && err.contains("tiny.toml") && err.contains("unknown field `bogus`"),
        "{err}"
    );
    let config = write_config(
        tmp.path(),
        &TINY.replace("iterations = 2", "iterations = 0"),
    );
    let o = run(&config, &tmp.path().join("c"), None);
    assert!(
        stderr(&o).contains("iterations must be at least 1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn lora_policy_updates_are_merged_into_each_iteration() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), TINY);
    let out = tmp.path().join("lora");
    let o = seft(
        &[
            "run",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--set",
            "evolution.lora.rank=4",
            "--set",
            "evolution.lora.alpha=8.0",
            "--set",
            "evolution.compare_identity=false",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // The merged policy is a plain model that differs from the one it started from.
    let start = std::fs::read(out.join("starting_policy/model/model.safetensors")).unwrap();
    let after = std::fs::read(out.join("seft/iter-2/policy/model/model.safetensors")).unwrap();
    assert_eq!(start.len(), after.len(), "LoRA factors must be merged away");
    assert_ne!(start, after);
    let o = seft(
        &[
            "run",
            config.to_str().unwrap(),
            "--out",
            tmp.path().join("bad").to_str().unwrap(),
            "--set",
            "reviser.lora.rank=4",
            "--set",
            "reviser.lora.alpha=8.0",
            "--set",
            "reviser.lora.targets=[\"qkv\"]",
        ],
        None,
    );
    let err = stderr(&o);
    assert!(
        !o.status.success() && err.contains("reviser.lora") && err.contains("'qkv'"),
        "{err}"
    );
}

/// The quality gate (issue 7): trained on the reviser's frozen embeddings through the firing
/// trees and densely (same held-out predictions), calibrated on held-out pairs, and the
/// answers it passes skip the reviser in the SEFT arm only; the report counts the calls saved.
#[test]
fn quality_gate_skips_reviser_calls_it_is_confident_about() {
    let tmp = tempfile::tempdir().unwrap();
    // At 50% precision the whole held-out set qualifies (it is half chosen answers), so the
    // threshold is the lowest held-out score and some answers must pass it.
    let text = format!(
        "{TINY}\n[gate]\ntrain = \"firing-tree\"\nembedder = \"reviser\"\nwidth = 512\nsteps = 20\nskip_precision = 0.5\n"
    );
    let config = write_config(tmp.path(), &text);
    let out = tmp.path().join("run");
    let o = run(&config, &out, None);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&out);
    let gate = &r["gate"];
    let fits = gate["fits"].as_array().unwrap();
    assert_eq!(fits.len(), 2);
    assert_eq!(
        (fits[0]["path"].as_str(), fits[1]["path"].as_str()),
        (Some("firing-tree"), Some("dense"))
    );
    assert_eq!(fits[0]["tree_steps"], 20);
    assert_eq!(fits[1]["tree_steps"], 0);
    let accuracy = |f: &serde_json::Value| f["held_out_accuracy"].as_f64().unwrap();
    assert!(
        (accuracy(&fits[0]) - accuracy(&fits[1])).abs() <= 0.03,
        "{fits:?}"
    );
    assert!(gate["agreement"].as_f64().unwrap() >= 0.97, "{gate}");
    assert_eq!(
        gate["held_out_rows"], 80,
        "40 of 200 pairs held out, two answers each"
    );
    let skip = gate["skip_score"]
        .as_f64()
        .expect("a skip threshold at 50%") as f32;
    let mut skipped_total = 0;
    for (t, it) in r["iterations"].as_array().unwrap().iter().enumerate() {
        let skipped = it["revisions"]["gate_skipped"].as_u64().unwrap();
        if it["arm"] == "identity" {
            assert_eq!(skipped, 0, "the control arm has no gate");
            continue;
        }
        skipped_total += skipped;
        let path = out.join(format!("seft/iter-{}/revise/revisions.jsonl", t + 1));
        let rows: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 32);
        let mut counted = 0;
        for row in &rows {
            let score = row["gate_score"].as_f64().unwrap() as f32;
            let passed = row.get("gate_skipped").and_then(|v| v.as_bool()) == Some(true);
            assert_eq!(passed, score >= skip, "{row}");
            if passed {
                counted += 1;
                assert_eq!(row["enhanced"], row["response"]);
                assert_eq!(row["reviser_output"], "");
            }
        }
        assert_eq!(counted, skipped);
    }
    assert!(skipped_total > 0, "no answer passed the gate");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Quality gate") && md.contains("saved by the gate"));
    assert!(out.join("gate/weights.npy").exists() && out.join("gate/gate.json").exists());
}

#[test]
fn gate_config_errors_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    for (gate, message) in [
        ("train = \"sparse\"", "unknown variant `sparse`"),
        (
            "held_out_fraction = 1.5",
            "held_out_fraction must be in (0, 1)",
        ),
        ("width = 0", "width and steps must be at least 1"),
        ("skip_precision = 2.0", "skip_precision must be in [0, 1]"),
        ("bogus = 1", "unknown field `bogus`"),
    ] {
        let config = write_config(tmp.path(), &format!("{TINY}\n[gate]\n{gate}\n"));
        let o = run(&config, &tmp.path().join("run"), None);
        let err = stderr(&o);
        assert!(
            !o.status.success() && err.contains("tiny.toml") && err.contains(message),
            "{gate}: {err}"
        );
    }
}

/// Comparison arms on the tiny pipeline: every sweep point of sft-chosen, dpo (precomputed
/// references) and SEFT+DPO is trained on the run's preference pairs and graded; report.md
/// puts them in one table with start, SEFT and the control; a run killed inside a baseline's
/// training resumes to the same report numbers; bad arms are named.
#[test]
fn comparison_arms_are_trained_graded_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let arms = r#"
[[baselines]]
name = "sft-chosen"
method = "sft-chosen"
lr = [1e-3]
max_len = 48
train = { seed = 3, max_steps = 4, micro_batch = 8, save_every = 2 }

[[baselines]]
name = "dpo"
method = "dpo"
beta = [0.1, 0.5]
lr = [1e-3]
max_len = 48
precompute_ref = true
train = { seed = 3, max_steps = 4, micro_batch = 8, save_every = 2 }

[[baselines]]
name = "seft+dpo"
method = "dpo"
from = "seft"
lr = [1e-3]
max_len = 48
train = { seed = 3, max_steps = 4, micro_batch = 8, save_every = 2 }
"#;
    let config = write_config(tmp.path(), &format!("{TINY}{arms}"));
    let out = tmp.path().join("run");
    let o = run(&config, &out, None);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&out);
    let points = r["baselines"].as_array().unwrap();
    let names: Vec<&str> = points.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["sft-chosen", "dpo", "dpo", "seft+dpo"]);
    for p in points {
        let a = p["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&a), "{p}");
        assert_eq!(p["steps"], 4);
    }
    assert_eq!(points[1]["beta"], 0.1);
    assert_eq!(points[2]["beta"], 0.5);
    assert!(out.join("baselines/dpo-beta-0.5-lr-0.001/model").exists());
    let dpo_metrics =
        std::fs::read_to_string(out.join("baselines/dpo-beta-0.1-lr-0.001/metrics.jsonl")).unwrap();
    assert!(dpo_metrics.contains("rewards/margins"));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Comparison arms"), "{md}");
    for row in [
        "| start |",
        "| SEFT |",
        "| identity control |",
        "| dpo | dpo | start |",
        "| seft+dpo | dpo | seft |",
    ] {
        assert!(md.contains(row), "{row} missing:\n{md}");
    }
    // Killed in the middle of a baseline's training, then rerun: the same results.
    let again = tmp.path().join("again");
    let killed = run(
        &config,
        &again,
        Some("baselines/dpo-beta-0.5-lr-0.001/step:3"),
    );
    assert!(!killed.status.success());
    let o = run(&config, &again, None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(report(&again)["baselines"], r["baselines"]);
    // A bad arm is named.
    for (fields, message) in [
        (
            "beta = [0.0]\nlr = [1e-3]",
            "baselines 'x': preference.beta must be > 0",
        ),
        (
            "lr = []",
            "baselines 'x': lr and beta need at least one value",
        ),
    ] {
        let arm = format!(
            "\n[[baselines]]\nname = \"x\"\nmethod = \"dpo\"\n{fields}\ntrain = {{ max_steps = 1 }}\n"
        );
        let o = run(
            &write_config(tmp.path(), &format!("{TINY}{arm}")),
            &tmp.path().join("bad"),
            None,
        );
        let bad = fields;
        assert!(
            !o.status.success() && stderr(&o).contains(message),
            "{bad}: {}",
            stderr(&o)
        );
    }
}

/// A comparison arm of one training step at two learning rates, for the IFEval run tests.
const SFT_CHOSEN_SWEEP: &str = "[[baselines]]\nname = \"sft-chosen\"\nmethod = \"sft-chosen\"\nlr = [1e-3, 1e-2]\nmax_len = 64\ntrain = { max_steps = 1, micro_batch = 2 }\n";

/// A run without a task graded by IFEval's checkers (`eval.grader = "constraints"`), with IFEval
/// scores for every graded policy (`[eval.ifeval]`): accuracies, fractions, the reviser's table
/// and the report sections, all consistent with the files the stages wrote.
#[test]
fn constraint_graded_run_scores_every_policy_on_ifeval() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let prompts_file = |name: &str, n: usize| {
        let path = dir.join(name);
        let rows: String = (0..n)
            .map(|i| {
                serde_json::json!({"key": i, "prompt": format!("{name} {i}: say max {i} 9."),
                    "instruction_id_list": ["length_constraints:number_words", "punctuation:no_comma"],
                    "kwargs": [{"num_words": 1 + i % 3, "relation": "less than"}, {}]})
                .to_string()
                    + "\n"
            })
            .collect();
        std::fs::write(&path, rows).unwrap();
        path
    };
    let held_out = prompts_file("held_out", 5);
    let ifeval = prompts_file("ifeval", 3);
    let config = file_config(dir, &write_prefs(dir), &write_prompts(dir), 2);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "[starting_policy]",
        &format!(
            "eval_prompts = \"{}\"\n[starting_policy]",
            held_out.display()
        ),
    );
    text = text.replace("[evolution]\n", "[evolution]\ncompare_identity = true\n");
    text.push_str(&format!(
        "[eval]\ngrader = \"constraints\"\nsampling = {{ max_new_tokens = 4 }}\nifeval = {{ input_data = \"{}\", max_new_tokens = 5, batch_size = 2 }}\n{SFT_CHOSEN_SWEEP}",
        ifeval.display()
    ));
    std::fs::write(&config, text).unwrap();
    let out = dir.join("out");
    let o = run(&config, &out, None);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&out);
    assert!(
        r["judge"]
            .as_str()
            .unwrap()
            .starts_with("programmatic: IFEval's checkers on 5")
    );
    let evals = r["evals"].as_array().unwrap();
    assert_eq!(
        evals.len(),
        5,
        "start, both arms' final policies, two sweep points: {evals:?}"
    );
    for e in evals {
        let name = e["model"].as_str().unwrap();
        let rows: Vec<serde_json::Value> =
            std::fs::read_to_string(out.join(format!("eval/{name}/responses.jsonl")))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        assert_eq!(rows.len(), 5);
        // eval.sampling (4 new tokens of one byte each), not the evolution's 6.
        assert!(
            rows.iter()
                .all(|r| r["response"].as_str().unwrap().chars().count() <= 4)
        );
        let all = rows.iter().filter(|r| r["score"] == 1.0).count() as f64 / 5.0;
        let mean = rows
            .iter()
            .map(|r| r["score"].as_f64().unwrap())
            .sum::<f64>()
            / 5.0;
        assert_eq!(e["accuracy"].as_f64().unwrap(), all);
        assert!((e["mean_score"].as_f64().unwrap() - mean).abs() < 1e-12);
        for row in &rows {
            let s = row["score"].as_f64().unwrap();
            let expected = if s == 1.0 {
                "correct"
            } else if s > 0.0 {
                "slip"
            } else {
                "wrong"
            };
            assert_eq!(row["grade"], expected);
        }
    }
    // IFEval: the start, each arm's final policy, the comparison arm's best point only.
    let ifeval_scores = r["ifeval"].as_array().unwrap();
    let names: Vec<&str> = ifeval_scores
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(&names[..3], ["start", "seft-iter-1", "identity-iter-1"]);
    let best = r["baselines"]
        .as_array()
        .unwrap()
        .iter()
        .fold(None::<&serde_json::Value>, |b, p| match b {
            Some(b) if b["accuracy"].as_f64() > p["accuracy"].as_f64() => Some(b),
            _ => Some(p),
        })
        .unwrap();
    assert!(names[3].starts_with("sft-chosen-lr-"), "{names:?}");
    assert_eq!(names[3], format!("sft-chosen-lr-{}", best["lr"]));
    for m in ifeval_scores {
        assert_eq!(m["prompts"]["total"], 3);
        let name = m["model"].as_str().unwrap();
        let metrics: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("eval/{name}-ifeval/metrics.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(&metrics, m);
    }
    assert!(r["reviser_eval"]["responses"] == 5);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Held-out instructions followed"), "{md}");
    assert!(md.contains("## IFEval"), "{md}");
}

/// Every run configuration shipped in configs/ parses and validates.
#[test]
fn every_shipped_run_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("\n[evolution]") && !text.contains("\n[task]") {
            continue; // a training config (seft sft)
        }
        if let Err(e) = seft::evolution::RunConfig::load(&path, &[]) {
            panic!("{}: {e}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 4, "{checked} run configs");
}

/// Without a grader, `[eval.ifeval]` still scores the starting policy, the final policy and
/// every sweep point of a comparison arm (there is no best point to pick).
#[test]
fn ungraded_runs_score_every_policy_on_ifeval() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ifeval = dir.join("ifeval.jsonl");
    std::fs::write(
        &ifeval,
        "{\"key\": 1, \"prompt\": \"max 1 2\", \"instruction_id_list\": [\"punctuation:no_comma\"], \"kwargs\": [{}]}\n",
    )
    .unwrap();
    let config = file_config(dir, &write_prefs(dir), &write_prompts(dir), 2);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "[starting_policy]",
        &format!(
            "eval_prompts = \"{}\"\n[starting_policy]",
            write_prompts(dir).display()
        ),
    );
    text.push_str(&format!(
        "[eval]\nifeval = {{ input_data = \"{}\", max_new_tokens = 3, batch_size = 2 }}\n{SFT_CHOSEN_SWEEP}",
        ifeval.display()
    ));
    std::fs::write(&config, text).unwrap();
    let out = dir.join("out");
    let o = run(&config, &out, None);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&out);
    assert!(r["judge"].as_str().unwrap().starts_with("none"));
    let names: Vec<&str> = r["ifeval"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "start",
            "seft-iter-1",
            "sft-chosen-lr-0.001",
            "sft-chosen-lr-0.01"
        ]
    );
}
