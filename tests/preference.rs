//! Preference optimization (DPO family) on SmolLM2-135M-Instruct against PyTorch, and the
//! training engine's guarantees for pairs: accumulation, reference caching, resume, bad input.

mod common;

use burn::module::Module;
use burn::tensor::Device;
use seft::data::Preference;
use seft::model::{LanguageModel, Message};
use seft::numeric::to_f32_vec;
use seft::train::params::{PreferenceLoss, PreferenceLossKind, TrainSection};
use seft::train::preference::{
    TokenizedPair, accumulate_pair_step, reference_log_probs, sequence_log_probs, tokenize_pair,
};
use seft::train::trainer::{adamw, optimizer_step};
use serde_json::Value;

fn messages(v: &Value) -> Vec<Message> {
    serde_json::from_value(v.clone()).unwrap()
}

/// A pair of the fixture's `prompt` and `chosen` with `rejected` as its rejected side.
fn preference(pair: &Value, rejected: &Value) -> Preference {
    Preference {
        prompt: messages(&pair["prompt"]),
        chosen: messages(&pair["chosen"]),
        rejected: messages(rejected),
        score_chosen: None,
        score_rejected: None,
    }
}

fn kind(name: &str) -> PreferenceLossKind {
    serde_json::from_value(Value::String(name.into())).unwrap()
}

/// `a` within `rel` of `b`, relative to |b| (absolute below 1e-6, where b is a zero reward).
fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-6) + 1e-7
}

/// The fixture's pairs tokenized by seft; ids and completion masks must equal the Python
/// side's (prompt-prefix masks built by transformers' chat template).
fn fixture_pairs(lm: &LanguageModel, fx: &Value) -> Vec<TokenizedPair> {
    let mut pairs = Vec::new();
    for (p, rows) in fx["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(fx["rows"].as_array().unwrap())
    {
        let pref = preference(p, &p["rejected"]);
        let (pair, truncated) = tokenize_pair(&lm.tokenizer, &pref, 1024)
            .unwrap()
            .expect("a usable pair");
        assert!(!truncated);
        for (side, ex) in [("chosen", &pair.chosen), ("rejected", &pair.rejected)] {
            let ids: Vec<u32> = serde_json::from_value(rows[side]["ids"].clone()).unwrap();
            let mask: Vec<bool> = serde_json::from_value(rows[side]["is_target"].clone()).unwrap();
            assert_eq!(ex.ids, ids, "{side}: token ids differ from transformers'");
            assert_eq!(
                ex.is_target, mask,
                "{side}: completion mask differs from Python's"
            );
        }
        pairs.push(pair);
    }
    pairs
}

/// Two AdamW steps under each loss (dpo, robust, ipo, simpo, orpo) equal PyTorch with TRL's
/// formulas (tests/fixtures/preference_step): per-sequence log-probabilities and the loss
/// within 1e-5 relative, every logged reward metric, and five named tensors after the steps
/// within 1e-5 (max-norm relative).
/// The first step line (one with a loss) of a training run's metrics.jsonl.
fn first_logged_step(out: &std::path::Path) -> Value {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l.get("loss").is_some())
        .unwrap()
}

#[test]
fn preference_steps_match_pytorch_for_every_loss() {
    let text = std::fs::read_to_string(common::fixture("preference_step/reference.json")).unwrap();
    let fx: Value = serde_json::from_str(&text).unwrap();
    let device = Device::flex().autodiff();
    let lm = LanguageModel::load(common::smollm2_gguf().to_str().unwrap(), &device).unwrap();
    let pairs = fixture_pairs(&lm, &fx);
    let pad = fx["pad_id"].as_u64().unwrap() as u32;
    let o = &fx["optimizer"];
    let f = |k: &str| o[k].as_f64().unwrap();
    let train = TrainSection {
        beta1: f("beta1"),
        beta2: f("beta2"),
        eps: f("eps"),
        weight_decay: f("weight_decay"),
        ..Default::default()
    };
    let rows: Vec<_> = pairs
        .iter()
        .map(|p| &p.chosen)
        .chain(pairs.iter().map(|p| &p.rejected))
        .collect();
    let n = pairs.len();
    for (name, case) in fx["losses"].as_object().unwrap() {
        let s = &case["settings"];
        let loss = PreferenceLoss {
            kind: kind(name),
            beta: s["beta"].as_f64().unwrap(),
            label_smoothing: s["label_smoothing"].as_f64().unwrap(),
            simpo_gamma: s["simpo_gamma"].as_f64().unwrap_or(0.5),
        };
        let reference = lm.net.clone().no_grad();
        let mut net = lm.net.clone();
        let mut optim = adamw(&train);
        for (k, expected) in case["steps"].as_array().unwrap().iter().enumerate() {
            // The first step's inputs are the checkpoint's weights: 1e-5. The second step's
            // are the weights after a first Adam step, where every element with |g| near eps
            // moves by a float-noise-sized fraction of lr: PyTorch's own float32 run is
            // 2.8e-6..5.7e-5 from its float64 run there (dpo, measured), so 1e-4; the loss,
            // a function of differences of those log-probabilities (IPO's square of Δ − 1/(2β)
            // amplifies them 1.8×/|Δ − 1/(2β)|), 1e-3.
            let rel = if k == 0 { 1e-5 } else { 1e-4 };
            let loss_rel = if k == 0 { 1e-5 } else { 1e-3 };
            let mut worst_logp = 0f64;
            let (sums, _) = sequence_log_probs(&net.clone().no_grad(), &rows, pad);
            let policy = to_f32_vec(sums);
            let refs = reference_log_probs(&reference, &pairs.iter().collect::<Vec<_>>(), pad);
            for i in 0..2 * n {
                let want = expected["policy_logps"][i].as_f64().unwrap();
                let got = policy[i] as f64;
                let want_ref = expected["reference_logps"][i].as_f64().unwrap();
                let got_ref = refs[i % n][i / n];
                worst_logp = worst_logp.max((got - want).abs() / want.abs());
                assert!(
                    close(got, want, rel) && close(got_ref, want_ref, 1e-5),
                    "{name} step {k} row {i}: log-prob {got} vs PyTorch {want}, reference {got_ref} vs {want_ref}"
                );
            }
            let (grads, value, stats, _) = accumulate_pair_step(
                &net,
                Some(&reference),
                &pairs,
                &[(0..n).collect()],
                pad,
                loss,
            );
            let want = expected["loss"].as_f64().unwrap();
            eprintln!(
                "{name} step {k}: loss seft {value} PyTorch {want}; worst log-prob {worst_logp:.1e} relative"
            );
            assert!(
                close(value, want, loss_rel),
                "{name} step {k}: loss {value} vs PyTorch {want}"
            );
            let metrics = stats.metrics(loss.kind, "");
            let expected_metrics = expected["metrics"].as_object().unwrap();
            // A reward is β times a difference of log-probabilities, each within 1e-5 of its
            // size: its error is bounded by that, not by its own (possibly tiny) size.
            let logp_scale = ["logps/chosen", "logps/rejected"]
                .iter()
                .map(|k| expected_metrics[*k].as_f64().unwrap().abs())
                .fold(0.0, f64::max);
            let reward_tolerance = 2.0 * rel * loss.beta * logp_scale;
            for (metric, want) in expected_metrics {
                let want = want.as_f64().unwrap();
                let got = metrics[metric].as_f64().unwrap();
                let equal = match metric.as_str() {
                    "rewards/accuracies" => got == want,
                    m if m.starts_with("rewards/") => (got - want).abs() <= reward_tolerance,
                    _ => close(got, want, rel),
                };
                assert!(equal, "{name} step {k}: {metric} {got} vs PyTorch {want}");
            }
            let (next, norm) = optimizer_step(net, &mut optim, grads, f("max_grad_norm"), f("lr"));
            net = next;
            let want = expected["grad_norm"].as_f64().unwrap();
            assert!(
                close(norm, want, 1e-3),
                "{name} step {k}: grad norm {norm} vs {want}"
            );
        }
        eprintln!("{name}: weights after two steps");
        common::assert_weights_match(&net, &case["tensors"], 1e-5);
    }
}

/// Twelve preference pairs (one with a two-turn prompt) in `dir/pairs.jsonl`.
fn write_pairs(dir: &std::path::Path) -> std::path::PathBuf {
    let mut rows: Vec<Value> = (0..12)
        .map(|i| {
            serde_json::json!({
                "prompt": format!("question {}", "why ".repeat(i % 5 + 1)),
                "chosen": format!("because {}", "so ".repeat(i % 3 + 1)),
                "rejected": format!("no {}", "idea ".repeat(i % 4 + 1)),
            })
        })
        .collect();
    rows[5] = serde_json::json!({
        "prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                   {"role": "user", "content": "bye"}],
        "chosen": [{"role": "assistant", "content": "see you"}],
        "rejected": [{"role": "assistant", "content": "what"}],
    });
    let path = dir.join("pairs.jsonl");
    let text: Vec<String> = rows.iter().map(Value::to_string).collect();
    std::fs::write(&path, text.join("\n")).unwrap();
    path
}

/// `dir/<name>.toml`: preference training of the tiny Llama fixture on `data` into `dir/<name>`.
fn tiny_config(
    dir: &std::path::Path,
    name: &str,
    data: &std::path::Path,
    train: &str,
    preference: &str,
) -> std::path::PathBuf {
    let text = format!(
        "[model]\npath = {:?}\n[data]\ntrain = {:?}\neval_fraction = 0.25\nmax_len = 256\n[train]\nlr = 0.01\nseed = 3\nmicro_batch = 2\n{train}\n[preference]\n{preference}\n[output]\ndir = {:?}\n",
        common::fixture("tiny_archs/llama"),
        data,
        dir.join(name),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn sft_cli(config: &std::path::Path, extra: &[&str], fault: Option<&str>) -> std::process::Output {
    let mut cmd = common::seft();
    cmd.args(["sft", "--config"]).arg(config).args(extra);
    if let Some(f) = fault {
        cmd.env("SEFT_FAULT", f);
    }
    common::output(&mut cmd)
}

fn succeeded(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

/// Every weight of a model (name, values in row-major order), sorted by name.
fn tensors_of(net: &seft::model::llama::CausalLm) -> Vec<(String, Vec<f32>)> {
    let tensors = seft::model::layout::named_tensors(net).into_iter();
    tensors.map(|(name, (_, values))| (name, values)).collect()
}

/// The weights of the model a run saved in `dir/model`.
fn weights(dir: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    let model = dir.join("model");
    tensors_of(
        &LanguageModel::load(model.to_str().unwrap(), &Device::flex())
            .unwrap()
            .net,
    )
}

/// Largest difference between two models' weights, relative to each tensor's largest weight.
fn max_relative_difference(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f32 {
    assert_eq!(a.len(), b.len());
    let mut worst = 0f32;
    for ((name, x), (name_b, y)) in a.iter().zip(b) {
        assert_eq!(name, name_b);
        let scale = x.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
        for (p, q) in x.iter().zip(y) {
            worst = worst.max((p - q).abs() / scale);
        }
    }
    worst
}

/// A DPO run writes TRL's metric names for training and held-out pairs, and its loss starts
/// at log 2 (the policy is its own reference at step 1).
#[test]
fn a_dpo_run_logs_trl_metrics_and_starts_at_log_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_pairs(dir.path());
    let cfg = tiny_config(
        dir.path(),
        "run",
        &data,
        "max_steps = 3\neval_every = 2",
        "loss = \"dpo\"",
    );
    succeeded(&sft_cli(&cfg, &[], None));
    let metrics = std::fs::read_to_string(dir.path().join("run/metrics.jsonl")).unwrap();
    let lines: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let train: Vec<&Value> = lines.iter().filter(|l| l.get("loss").is_some()).collect();
    let eval: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("eval_loss").is_some())
        .collect();
    assert_eq!(train.len(), 3);
    assert_eq!(
        eval.iter()
            .map(|l| l["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [0, 2, 3]
    );
    for key in [
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
    ] {
        assert!(train[0][key].is_number(), "{key} missing: {}", train[0]);
        assert!(
            eval[0][format!("eval_{key}")].is_number(),
            "eval_{key} missing"
        );
    }
    assert_eq!(
        train[0]["loss"].as_f64().unwrap(),
        std::f64::consts::LN_2 as f32 as f64
    );
    assert_eq!(train[0]["rewards/accuracies"].as_f64().unwrap(), 0.0);
    assert!(
        train[2]["rewards/margins"].as_f64().unwrap() > 0.0,
        "{}",
        train[2]
    );
    for plot in ["loss.svg", "reward_margins.svg", "reward_accuracies.svg"] {
        assert!(dir.path().join("run").join(plot).exists(), "{plot}");
    }
    let resolved = std::fs::read_to_string(dir.path().join("run/config.toml")).unwrap();
    assert!(resolved.contains("[preference]") && resolved.contains("loss = \"dpo\""));
    // TRL's DPO learning rate when the config does not set one.
    let default_lr = tiny_config(dir.path(), "lr", &data, "max_steps = 1", "loss = \"dpo\"");
    let text = std::fs::read_to_string(&default_lr)
        .unwrap()
        .replace("lr = 0.01\n", "");
    let params = seft::train::SftParams::parse(&text, &[]).unwrap();
    assert_eq!(params.train.lr, 1e-6);
    let params = seft::train::SftParams::parse(&text, &["train.lr=3e-4".into()]).unwrap();
    assert_eq!(params.train.lr, 3e-4);
}

/// `precompute_ref = true` trains to the same weights as computing the reference at every
/// step, and a run killed during the precompute pass or during training, then resumed, ends
/// byte-identical to an uninterrupted one.
#[test]
fn precomputed_references_train_the_same_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_pairs(dir.path());
    let train = "max_steps = 6\nsave_every = 2\ngrad_accum = 2";
    let per_step = tiny_config(dir.path(), "per_step", &data, train, "loss = \"dpo\"");
    succeeded(&sft_cli(&per_step, &[], None));
    let precomputed = "loss = \"dpo\"\nprecompute_ref = true";
    let cached = tiny_config(dir.path(), "cached", &data, train, precomputed);
    let log = succeeded(&sft_cli(&cached, &[], None));
    assert!(
        log.contains("reference log-probabilities of 12 pairs cached"),
        "{log}"
    );
    let worst = max_relative_difference(
        &weights(&dir.path().join("per_step")),
        &weights(&dir.path().join("cached")),
    );
    eprintln!("precomputed vs per-step references: {worst:.2e} of the largest weight");
    assert!(worst <= 1e-5, "{worst}");
    let expected = std::fs::read(dir.path().join("cached/model/model.safetensors")).unwrap();
    for (name, fault) in [
        ("killed_in_precompute", "reference:3"),
        ("killed_in_training", "step:3"),
    ] {
        let cfg = tiny_config(dir.path(), name, &data, train, precomputed);
        let crashed = sft_cli(&cfg, &[], Some(fault));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            crashed.status.signal(),
            Some(9),
            "{name} should have died by SIGKILL"
        );
        let resumed = succeeded(&sft_cli(&cfg, &["--resume"], None));
        if name == "killed_in_precompute" {
            // The chunks written before the crash are read back, the rest computed.
            assert!(
                resumed.contains("reference log-probabilities of 6 pairs cached"),
                "{resumed}"
            );
        } else {
            assert!(
                !resumed.contains("reference log-probabilities of"),
                "{resumed}"
            );
        }
        let got = std::fs::read(dir.path().join(name).join("model/model.safetensors")).unwrap();
        assert!(
            got == expected,
            "{name}: resumed weights differ from the uninterrupted run"
        );
    }
}

/// Pairs with an empty side or rows that are not pairs stop with file:line; identical sides
/// and prompts that fill max_len are counted and dropped; out-of-range settings are named.
#[test]
fn bad_pairs_and_settings_get_clear_errors_or_counted_skips() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bad.jsonl");
    let run = |text: &str, train: &str, preference: &str| {
        std::fs::write(&data, text).unwrap();
        let _ = std::fs::remove_dir_all(dir.path().join("run"));
        let cfg = tiny_config(dir.path(), "run", &data, train, preference);
        sft_cli(&cfg, &[], None)
    };
    let error_of = |out: std::process::Output| {
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{err}"
        );
        err
    };
    let good = "{\"prompt\": \"q\", \"chosen\": \"yes\", \"rejected\": \"no\"}\n";
    for (row, expected) in [
        (
            "{\"prompt\": \"q\", \"chosen\": \"\", \"rejected\": \"no\"}",
            "bad.jsonl:2: 'chosen' response is empty",
        ),
        (
            "{\"prompt\": \"q\", \"chosen\": \"yes\", \"rejected\": [{\"role\": \"assistant\", \"content\": \"  \"}]}",
            "bad.jsonl:2: 'rejected' response is empty",
        ),
        (
            "{\"instruction\": \"q\", \"output\": \"a\"}",
            "bad.jsonl:2: not a preference pair",
        ),
    ] {
        let err = error_of(run(
            &format!("{good}{row}\n"),
            "max_steps = 1",
            "loss = \"dpo\"",
        ));
        assert!(err.contains(expected), "{err}");
    }
    // Identical sides and prompts that fill max_len: counted, dropped, reported.
    let identical = "{\"prompt\": \"q\", \"chosen\": \"same\", \"rejected\": \"same\"}\n";
    let long_prompt = format!(
        "{{\"prompt\": \"{}\", \"chosen\": \"yes\", \"rejected\": \"no\"}}\n",
        "w".repeat(300)
    );
    let text = format!("{good}{good}{identical}{long_prompt}{good}");
    let log = succeeded(&run(&text, "max_steps = 1", "loss = \"dpo\""));
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("run/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["data"]["identical_pairs"], 1, "{log}");
    assert_eq!(summary["data"]["dropped_no_target"], 1, "{log}");
    let err = error_of(run(
        &format!("{identical}{identical}"),
        "max_steps = 1",
        "loss = \"dpo\"",
    ));
    assert!(
        err.contains("no usable preference pair (2 with identical chosen and rejected"),
        "{err}"
    );
    let err = error_of(run(
        &long_prompt.repeat(2),
        "max_steps = 1",
        "loss = \"dpo\"",
    ));
    assert!(
        err.contains("whose prompt fills data.max_len = 256"),
        "{err}"
    );
    for (preference, expected) in [
        (
            "loss = \"dpo\"\nbeta = 0",
            "preference.beta must be > 0, got 0",
        ),
        (
            "loss = \"ipo\"\nbeta = -1.0",
            "preference.beta must be > 0, got -1",
        ),
        (
            "loss = \"robust\"\nlabel_smoothing = 0.5",
            "preference.label_smoothing must be in [0, 0.5), got 0.5",
        ),
        (
            "loss = \"dpo\"\nlabel_smoothing = -0.1",
            "preference.label_smoothing must be in [0, 0.5)",
        ),
        (
            "loss = \"ipo\"\nlabel_smoothing = 0.1",
            "label_smoothing applies to dpo, robust and simpo, not ipo",
        ),
        (
            "loss = \"simpo\"\nprecompute_ref = true",
            "\"simpo\" is reference-free",
        ),
        ("loss = \"kto\"", "unknown variant `kto`"),
    ] {
        let err = error_of(run(good, "max_steps = 1", preference));
        assert!(
            err.contains("run.toml") && err.contains(expected),
            "{preference}: {err}"
        );
    }
    let cfg = tiny_config(
        dir.path(),
        "packed",
        &data,
        "max_steps = 1",
        "loss = \"dpo\"",
    );
    let err = error_of(sft_cli(&cfg, &["--set", "data.packing=true"], None));
    assert!(
        err.contains("data.packing do not apply to [preference]"),
        "{err}"
    );
}

/// 8 pairs as one micro-batch of 8 and as 8 micro-batches of 1 give the same weights after 3
/// AdamW steps (1e-5 of each tensor's largest weight), for dpo (pair-averaged loss) and orpo
/// (whose NLL is averaged over the chosen tokens of the whole step).
#[test]
fn accumulating_one_pair_at_a_time_equals_one_batch_of_eight() {
    let text = std::fs::read_to_string(common::fixture("preference_step/reference.json")).unwrap();
    let fx: Value = serde_json::from_str(&text).unwrap();
    let device = Device::flex().autodiff();
    let lm = LanguageModel::load(common::smollm2_gguf().to_str().unwrap(), &device).unwrap();
    let mut pairs = fixture_pairs(&lm, &fx);
    // Eight pairs: the fixture's four, and four more whose rejected side is the next pair's
    // (other lengths, other preferences; mirrored pairs would cancel each other's gradient).
    let fixture = fx["pairs"].as_array().unwrap();
    for (i, p) in fixture.iter().enumerate() {
        let next = &fixture[(i + 1) % fixture.len()];
        let pref = preference(p, &next["rejected"]);
        pairs.push(
            tokenize_pair(&lm.tokenizer, &pref, 1024)
                .unwrap()
                .unwrap()
                .0,
        );
    }
    let train = TrainSection::default().with_lr(1e-5, seft::train::Schedule::Constant, 0);
    for kind in [PreferenceLossKind::Dpo, PreferenceLossKind::Orpo] {
        let loss = PreferenceLoss {
            kind,
            beta: 0.1,
            label_smoothing: 0.0,
            simpo_gamma: 0.5,
        };
        let reference = lm.net.clone().no_grad();
        let run = |micro: Vec<Vec<usize>>| {
            let mut net = lm.net.clone();
            let mut optim = adamw(&train);
            for _ in 0..3 {
                let (grads, ..) =
                    accumulate_pair_step(&net, Some(&reference), &pairs, &micro, 2, loss);
                net = optimizer_step(net, &mut optim, grads, 1.0, train.lr).0;
            }
            let tensors = seft::model::layout::named_tensors(&net).into_iter();
            tensors
                .map(|(name, (_, values))| (name, values))
                .collect::<Vec<_>>()
        };
        let one = run(vec![(0..8).collect()]);
        let eight = run((0..8).map(|i| vec![i]).collect());
        let worst = max_relative_difference(&one, &eight);
        eprintln!("{kind:?}: 1×8 vs 8×1 after 3 steps: {worst:.2e} of the largest weight");
        assert!(worst <= 1e-5, "{kind:?}: {worst}");
    }
}

/// With `[lora]` the reference is the frozen base (the adapters start at zero, so the first
/// step's loss is exactly log 2), with or without precomputed references, and the merged model
/// is saved.
#[test]
fn lora_preference_runs_use_the_frozen_base_as_reference() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_pairs(dir.path());
    let train = "max_steps = 3\n[lora]\nrank = 4\nalpha = 8.0";
    for (name, preference) in [
        ("per_step", "loss = \"dpo\""),
        ("cached", "loss = \"dpo\"\nprecompute_ref = true"),
    ] {
        let text = std::fs::read_to_string(tiny_config(dir.path(), name, &data, "", preference))
            .unwrap()
            .replace("\n[preference]", &format!("{train}\n[preference]"));
        let cfg = dir.path().join(format!("{name}.toml"));
        std::fs::write(&cfg, text).unwrap();
        succeeded(&sft_cli(&cfg, &[], None));
        let first = first_logged_step(&dir.path().join(name));
        assert_eq!(
            first["loss"].as_f64().unwrap(),
            std::f64::consts::LN_2 as f32 as f64,
            "{name}"
        );
        assert!(
            dir.path()
                .join(name)
                .join("model/model.safetensors")
                .exists()
        );
    }
    let worst = max_relative_difference(
        &weights(&dir.path().join("per_step")),
        &weights(&dir.path().join("cached")),
    );
    assert!(worst <= 1e-5, "{worst}");
}

/// `preference.reference = "<model>"`: a separate reference model (here a different tiny
/// Llama with the same vocabulary) is loaded and used, so the first step's loss is not log 2,
/// with or without precomputed references; a reference that cannot be loaded is an error.
#[test]
fn a_separate_reference_model_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_pairs(dir.path());
    let reference = dir.path().join("reference");
    common::write_tiny_hf_folder(&reference, 11);
    let mut first_losses = Vec::new();
    for (name, precompute) in [("per_step", false), ("cached", true)] {
        let preference = format!(
            "loss = \"dpo\"\nreference = {:?}\nprecompute_ref = {precompute}",
            reference
        );
        let cfg = tiny_config(dir.path(), name, &data, "max_steps = 2", &preference);
        succeeded(&sft_cli(&cfg, &[], None));
        let first = first_logged_step(&dir.path().join(name));
        first_losses.push(first["loss"].as_f64().unwrap());
    }
    assert!(
        (first_losses[0] - std::f64::consts::LN_2).abs() > 1e-3,
        "{first_losses:?}"
    );
    assert!(
        (first_losses[0] - first_losses[1]).abs() <= 1e-5 * first_losses[0].abs(),
        "{first_losses:?}"
    );
    let missing = format!(
        "loss = \"dpo\"\nreference = {:?}",
        dir.path().join("no_such_model")
    );
    let cfg = tiny_config(dir.path(), "missing", &data, "max_steps = 1", &missing);
    let out = sft_cli(&cfg, &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_model"));
}
