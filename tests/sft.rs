//! The SFT engine on a tiny Llama (tests/fixtures/tiny_archs/llama, ChatML fallback template):
//! gradient accumulation, loss masking, data errors, and exact resume after a crash.

mod common;

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};
use seft::LanguageModel;
use seft::numeric::to_f32_vec;
use seft::train::SftParams;
use seft::train::loss::masked_token_loss;
use seft::train::tokenize::tokenize_conversation;
use seft::train::trainer::{accumulate_step, prepare_data};

/// Eight conversations of different lengths, one with a system message and two turns.
fn write_data(dir: &Path) -> PathBuf {
    let mut rows = Vec::new();
    for i in 0..8 {
        let q = "why ".repeat(i + 1);
        let a = format!("because {}", "so ".repeat(2 * i + 1));
        rows.push(serde_json::json!({"instruction": q, "input": "", "output": a}));
    }
    rows[3] = serde_json::json!({"messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"},
        {"role": "assistant", "content": "see you"}]});
    let path = dir.join("train.jsonl");
    let text: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
    std::fs::write(&path, text.join("\n")).unwrap();
    path
}

fn config(data: &Path, out: &Path, extra: &str) -> SftParams {
    let model = common::fixture("tiny_archs/llama");
    let text = format!(
        "[model]\npath = {:?}\n[data]\ntrain = {:?}\neval_fraction = 0.0\nmax_len = 256\n[train]\nlr = 0.01\nseed = 3\n{extra}\n[output]\ndir = {:?}\n",
        model.to_str().unwrap(),
        data.to_str().unwrap(),
        out.to_str().unwrap()
    );
    SftParams::parse(&text, &[]).unwrap()
}

struct Collect<'a> {
    grads: &'a burn::optim::GradientsParams,
    out: Vec<Vec<f32>>,
}
impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(p.id) {
            self.out.push(to_f32_vec(g));
        }
    }
}

#[test]
fn micro_batches_accumulate_to_the_full_batch_gradient() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_data(dir.path());
    let cfg = config(&data, &dir.path().join("run"), "");
    let device = Device::flex().autodiff();
    let lm = LanguageModel::load(&cfg.model.path, &device).unwrap();
    let (train, _, _) = prepare_data(&cfg, &lm.tokenizer).unwrap();
    assert_eq!(train.len(), 8);
    let lengths: std::collections::HashSet<usize> = train.iter().map(|e| e.ids.len()).collect();
    assert!(lengths.len() > 4, "lengths differ: {lengths:?}");
    let gradients = |micro: Vec<Vec<usize>>| {
        let (grads, loss, _, _) = accumulate_step(&lm.net, &train, &micro, 1);
        let mut c = Collect {
            grads: &grads,
            out: Vec::new(),
        };
        lm.net.visit(&mut c);
        (c.out, loss)
    };
    let (one_batch, loss_a) = gradients(vec![(0..8).collect()]);
    let (eight_micro, loss_b) = gradients((0..8).map(|i| vec![i]).collect());
    assert!(
        (loss_a - loss_b).abs() < 1e-5 * loss_a.abs(),
        "{loss_a} vs {loss_b}"
    );
    assert_eq!(one_batch.len(), eight_micro.len());
    for (a, b) in one_batch.iter().zip(&eight_micro) {
        let scale = a.iter().map(|x| x.abs()).fold(0f32, f32::max).max(1e-12);
        let diff = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            diff <= 1e-4 * scale,
            "gradient differs by {diff} (scale {scale})"
        );
    }
}

fn safetensors_f32(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.data().to_vec()))
        .collect();
    v.sort();
    v
}

fn as_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn batch_8x1_and_micro_batch_1x8_give_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_data(dir.path());
    let a = seft::train::run_sft(
        &config(
            &data,
            &dir.path().join("a"),
            "micro_batch = 8\ngrad_accum = 1\nmax_steps = 3\nepochs = 3",
        ),
        false,
    )
    .unwrap();
    let b = seft::train::run_sft(
        &config(
            &data,
            &dir.path().join("b"),
            "micro_batch = 1\ngrad_accum = 8\nmax_steps = 3\nepochs = 3",
        ),
        false,
    )
    .unwrap();
    assert_eq!(a.steps, 3);
    let wa = safetensors_f32(&a.model_dir.join("model.safetensors"));
    let wb = safetensors_f32(&b.model_dir.join("model.safetensors"));
    let base = safetensors_f32(&common::fixture("tiny_archs/llama/model.safetensors"));
    for (((na, da), (_, db)), (_, d0)) in wa.iter().zip(&wb).zip(&base) {
        let (xa, xb, x0) = (as_f32(da), as_f32(db), as_f32(d0));
        let moved = xa
            .iter()
            .zip(&x0)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        let diff = xa
            .iter()
            .zip(&xb)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(moved > 1e-3, "{na} did not train");
        assert!(diff < 1e-4, "{na}: 8x1 vs 1x8 differ by {diff}");
    }
    let metrics = std::fs::read_to_string(dir.path().join("a/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 3);
    assert!(dir.path().join("a/loss.svg").exists());
}

#[test]
fn prompt_tokens_carry_no_loss_and_no_gradient() {
    let device = Device::flex().autodiff();
    let lm = LanguageModel::load(
        common::fixture("tiny_archs/llama").to_str().unwrap(),
        &device,
    )
    .unwrap();
    let messages = seft::model::tokenizer::messages(&[
        ("system", "sys"),
        ("user", "question?"),
        ("assistant", "answer!"),
        ("user", "more"),
        ("assistant", "done"),
    ]);
    let (ex, truncated) = tokenize_conversation(&lm.tokenizer, &messages, false, 512).unwrap();
    assert!(!truncated);
    let targets: Vec<u32> = ex
        .ids
        .iter()
        .zip(&ex.is_target)
        .filter(|(_, t)| **t)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(
        lm.tokenizer.decode(&targets, false).unwrap(),
        "answer!<|im_end|>\ndone<|im_end|>\n"
    );
    // Gradient of the loss with respect to the logits: zero on every prompt position.
    let batch = seft::train::batch::collate(&[&ex], 1);
    let logits = lm.net.forward(&batch.input).detach().require_grad();
    let (loss, _) = masked_token_loss(logits.clone(), &batch.targets);
    let grads = loss.backward();
    let g = to_f32_vec(logits.grad(&grads).unwrap());
    let v = lm.config.vocab_size;
    for (pos, &t) in batch.targets.iter().enumerate() {
        let row_norm: f32 = g[pos * v..(pos + 1) * v].iter().map(|x| x.abs()).sum();
        if t < 0 {
            assert_eq!(row_norm, 0.0, "prompt position {pos} has gradient");
        } else {
            assert!(row_norm > 0.0, "target position {pos} has no gradient");
        }
    }
    // With train_on_prompt every token after the first is a target.
    let (all, _) = tokenize_conversation(&lm.tokenizer, &messages, true, 512).unwrap();
    assert_eq!(all.n_targets(), all.ids.len() - 1);
    let _ = Tensor::<1>::from_data(TensorData::new(vec![0f32], [1]), &device);
}

fn sft_cli(config: &Path, extra: &[&str], fault: Option<&str>) -> std::process::Output {
    let mut cmd = common::seft();
    cmd.args(["sft", "--config"]).arg(config).args(extra);
    if let Some(f) = fault {
        cmd.env("SEFT_FAULT", f);
    }
    common::output(&mut cmd)
}

#[test]
fn a_run_killed_mid_training_or_mid_checkpoint_resumes_bitwise_identically() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_data(dir.path());
    let write_cfg = |name: &str| {
        let cfg = config(
            &data,
            &dir.path().join(name),
            "micro_batch = 2\ngrad_accum = 2\nepochs = 4\nsave_every = 2\nwarmup_steps = 2",
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, cfg.to_toml()).unwrap();
        path
    };
    let reference = write_cfg("reference");
    assert!(sft_cli(&reference, &[], None).status.success());
    let expected = std::fs::read(dir.path().join("reference/model/model.safetensors")).unwrap();
    for (name, fault) in [
        ("killed_in_step", "step:5"),
        ("killed_in_checkpoint", "checkpoint:6"),
    ] {
        let cfg = write_cfg(name);
        let crashed = sft_cli(&cfg, &[], Some(fault));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            crashed.status.signal(),
            Some(9),
            "{name} should have died by SIGKILL"
        );
        assert!(!dir.path().join(name).join("model").exists());
        // Without --resume the run directory is protected.
        let refused = sft_cli(&cfg, &[], None);
        assert_eq!(refused.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&refused.stderr).contains("--resume"));
        let resumed = sft_cli(&cfg, &["--resume"], None);
        assert!(
            resumed.status.success(),
            "{}",
            String::from_utf8_lossy(&resumed.stderr)
        );
        let got = std::fs::read(dir.path().join(name).join("model/model.safetensors")).unwrap();
        assert!(
            got == expected,
            "{name}: resumed weights differ from the uninterrupted run"
        );
        let metrics = std::fs::read_to_string(dir.path().join(name).join("metrics.jsonl")).unwrap();
        let ref_metrics =
            std::fs::read_to_string(dir.path().join("reference/metrics.jsonl")).unwrap();
        let steps = |m: &str| m.lines().filter(|l| l.contains("\"loss\"")).count();
        assert_eq!(steps(&metrics), steps(&ref_metrics));
    }
}

#[test]
fn bad_training_data_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "{\"instruction\": \"a\", \"output\": \"b\"}\n{not json}\n",
            "train.jsonl:2: invalid JSON",
        ),
        (
            "{\"instructions\": \"a\", \"outputs\": \"b\"}\n",
            "train.jsonl:1: unrecognized row with fields [\"instructions\", \"outputs\"]",
        ),
        (
            "{\"instruction\": \"a\", \"output\": \"\"}\n",
            "train.jsonl:1: an assistant turn is empty",
        ),
        (
            "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}]}\n",
            "train.jsonl:1: the conversation has no assistant turn",
        ),
    ];
    for (text, expected) in cases {
        let data = dir.path().join("train.jsonl");
        std::fs::write(&data, text).unwrap();
        let cfg = config(&data, &dir.path().join("run"), "");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, cfg.to_toml()).unwrap();
        let out = sft_cli(&path, &[], None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.lines()
                .any(|l| l.starts_with("error:") && l.contains(expected)),
            "expected '{expected}' in: {err}"
        );
    }
    // JSON arrays keep line numbers too; skip_bad_rows counts instead of failing.
    let data = dir.path().join("rows.json");
    std::fs::write(
        &data,
        "[\n {\"instruction\": \"a\", \"output\": \"b\"},\n {\"instruction\": \"c\"}\n]\n",
    )
    .unwrap();
    let err = seft::data::read_records(&data, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rows.json:3: Alpaca row has no 'output'"),
        "{err}"
    );
    let (rows, report) = seft::data::read_records(
        &data,
        &seft::data::ReadOptions {
            skip_bad_rows: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((rows.len(), report.skipped), (1, 1));
}

#[test]
fn config_errors_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[model]\npath = \"m\"\n[data]\ntrain = \"t\"\n[train]\nlearnin_rate = 3\n[output]\ndir = \"o\"\n").unwrap();
    let out = sft_cli(&path, &[], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("bad.toml") && err.contains("unknown field `learnin_rate`"),
        "{err}"
    );
    std::fs::write(&path, "[model]\npath = \"m\"\n[data]\ntrain = \"t\"\n[train]\nmicro_batch = \"four\"\n[output]\ndir = \"o\"\n").unwrap();
    let err = String::from_utf8_lossy(&sft_cli(&path, &[], None).stderr).into_owned();
    assert!(
        err.contains("bad.toml") && err.contains("invalid type"),
        "{err}"
    );
    assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1);
}

/// One AdamW step on SmolLM2-135M-Instruct against PyTorch (tests/fixtures/sft_step).
#[test]
fn one_optimizer_step_matches_pytorch() {
    use seft::train::trainer::{adamw, optimizer_step};
    let text = std::fs::read_to_string(common::fixture("sft_step/reference.json")).unwrap();
    let fx: serde_json::Value = serde_json::from_str(&text).unwrap();
    let device = Device::flex().autodiff();
    let mut lm = LanguageModel::load(common::smollm2_gguf().to_str().unwrap(), &device).unwrap();
    let mut examples = Vec::new();
    for (conv, row) in fx["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .zip(fx["rows"].as_array().unwrap())
    {
        let messages: Vec<seft::model::Message> = serde_json::from_value(conv.clone()).unwrap();
        let (ex, _) = tokenize_conversation(&lm.tokenizer, &messages, false, 1024).unwrap();
        let ids: Vec<u32> = serde_json::from_value(row["ids"].clone()).unwrap();
        let targets: Vec<bool> = serde_json::from_value(row["is_target"].clone()).unwrap();
        assert_eq!(ex.ids, ids, "token ids differ from transformers'");
        assert_eq!(
            ex.is_target, targets,
            "seft's assistant-token mask differs from prompt-prefix labels"
        );
        examples.push(ex);
    }
    let s = &fx["settings"];
    let f = |k: &str| s[k].as_f64().unwrap();
    let train = seft::train::params::TrainSection {
        beta1: f("beta1"),
        beta2: f("beta2"),
        eps: f("eps"),
        weight_decay: f("weight_decay"),
        ..Default::default()
    };
    let mut optim = adamw(&train);
    let (grads, loss, _, _) = accumulate_step(
        &lm.net,
        &examples,
        &[vec![0, 1]],
        fx["pad_id"].as_u64().unwrap() as u32,
    );
    let expected_loss = fx["loss"].as_f64().unwrap();
    eprintln!("loss: seft {loss} PyTorch {expected_loss}");
    assert!(
        (loss - expected_loss).abs() <= 1e-4 * expected_loss,
        "loss {loss} vs PyTorch {expected_loss}"
    );
    let (net, grad_norm) = optimizer_step(lm.net, &mut optim, grads, f("max_grad_norm"), f("lr"));
    lm.net = net;
    let expected_norm = fx["grad_norm"].as_f64().unwrap();
    eprintln!("grad norm: seft {grad_norm} PyTorch {expected_norm}");
    assert!(
        (grad_norm - expected_norm).abs() <= 1e-3 * expected_norm,
        "grad norm {grad_norm} vs {expected_norm}"
    );
    common::assert_weights_match(&lm.net, &fx["tensors"], 1e-5);
}

fn all_targets() -> seft::train::params::LoraSection {
    seft::train::params::LoraSection {
        rank: 8,
        alpha: 16.0,
        targets: seft::train::params::LORA_TARGETS
            .iter()
            .map(|t| t.to_string())
            .collect(),
    }
}

fn first_and_last_loss(metrics: &Path) -> (f64, f64) {
    let losses: Vec<f64> = std::fs::read_to_string(metrics)
        .unwrap()
        .lines()
        .filter_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()?
                .get("loss")?
                .as_f64()
        })
        .collect();
    (losses[0], *losses.last().unwrap())
}

/// On SmolLM2 (the tiny random model's frozen norms cap its logits, so LoRA cannot fit it):
/// ten steps on two made-up facts.
#[test]
fn lora_overfits_a_tiny_dataset_like_full_fine_tuning() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("two.jsonl");
    std::fs::write(
        &data,
        "{\"instruction\": \"What is the secret word?\", \"output\": \"The secret word is zebra-42, known only to us.\"}\n\
         {\"instruction\": \"Who guards the lighthouse?\", \"output\": \"Captain Ormsby guards the lighthouse every night.\"}\n",
    )
    .unwrap();
    let extra = "micro_batch = 2\nmax_steps = 10\nepochs = 0\nschedule = \"constant\"";
    let mut full = config(&data, &dir.path().join("full"), extra);
    full.model.path = common::smollm2_gguf().to_str().unwrap().to_string();
    full.train.lr = 2e-4;
    let mut lora = full.clone();
    lora.output.dir = dir.path().join("lora");
    lora.train.lr = 2e-3; // LoRA's usual higher learning rate
    lora.lora = Some(all_targets());
    seft::train::run_sft(&full, false).unwrap();
    seft::train::run_sft(&lora, false).unwrap();
    let (f0, f1) = first_and_last_loss(&dir.path().join("full/metrics.jsonl"));
    let (l0, l1) = first_and_last_loss(&dir.path().join("lora/metrics.jsonl"));
    eprintln!("full fine-tuning: loss {f0:.3} -> {f1:.4}; LoRA r=8: loss {l0:.3} -> {l1:.4}");
    assert!(
        (f0 - l0).abs() < 1e-3 * f0,
        "both start from the same model"
    );
    assert!(
        f1 < 0.05 * f0,
        "full fine-tuning did not overfit: {f0} -> {f1}"
    );
    assert!(l1 < 0.05 * l0, "LoRA did not overfit: {l0} -> {l1}");
    // The saved LoRA model is a plain model with the adapters merged in; what LoRA does not
    // target stays as it was.
    let merged = LanguageModel::load(
        dir.path().join("lora/model").to_str().unwrap(),
        &Device::flex(),
    )
    .unwrap();
    let base = LanguageModel::load(&full.model.path, &Device::flex()).unwrap();
    let t = seft::model::layout::named_tensors(&merged.net);
    let b = seft::model::layout::named_tensors(&base.net);
    assert_ne!(
        t["model.layers.0.self_attn.q_proj.weight"].1,
        b["model.layers.0.self_attn.q_proj.weight"].1
    );
    assert_eq!(
        t["model.layers.0.input_layernorm.weight"].1, b["model.layers.0.input_layernorm.weight"].1,
        "norms stay frozen"
    );
    assert_eq!(
        t["model.embed_tokens.weight"].1, b["model.embed_tokens.weight"].1,
        "embeddings stay frozen"
    );
}

#[test]
fn merged_lora_weights_give_the_adapter_models_logits() {
    use seft::train::trainer::{adamw, apply_lora, optimizer_step};
    let device = Device::flex().autodiff();
    let lm = LanguageModel::load(
        common::fixture("tiny_archs/llama").to_str().unwrap(),
        &device,
    )
    .unwrap();
    let mut net = apply_lora(lm.net, &lm.config, &all_targets(), 7).unwrap();
    let messages = seft::model::tokenizer::messages(&[
        ("user", "hello there"),
        ("assistant", "general kenobi"),
    ]);
    let (ex, _) = tokenize_conversation(&lm.tokenizer, &messages, false, 256).unwrap();
    let examples = vec![ex];
    let mut optim = adamw(&Default::default());
    for _ in 0..5 {
        let (grads, _, _, _) = accumulate_step(&net, &examples, &[vec![0]], 1);
        net = optimizer_step(net, &mut optim, grads, 1.0, 0.01).0;
    }
    let batch = seft::train::batch::collate(&[&examples[0]], 1);
    let with_adapters = to_f32_vec(net.valid().forward(&batch.input));
    let merged = to_f32_vec(net.valid().materialize().forward(&batch.input));
    let base = to_f32_vec(
        LanguageModel::load(
            common::fixture("tiny_archs/llama").to_str().unwrap(),
            &Device::flex(),
        )
        .unwrap()
        .net
        .forward(&batch.input),
    );
    let diff = with_adapters
        .iter()
        .zip(&merged)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let moved = with_adapters
        .iter()
        .zip(&base)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("merged vs adapter logits: max diff {diff:.2e}; adapters moved logits by {moved:.3}");
    assert!(moved > 1e-2, "the adapters did not train");
    assert!(
        diff < 1e-4,
        "merged logits differ from base + adapter by {diff}"
    );
}

#[test]
fn packed_rows_give_the_same_loss_as_separate_sequences() {
    use seft::train::tokenize::pack;
    let device = Device::flex();
    let lm = LanguageModel::load(
        common::fixture("tiny_archs/llama").to_str().unwrap(),
        &device,
    )
    .unwrap();
    let convs = [
        ("first question", "first answer"),
        ("second", "a longer second answer here"),
        ("third?", "third."),
    ];
    let examples: Vec<_> = convs
        .iter()
        .map(|(q, a)| {
            tokenize_conversation(
                &lm.tokenizer,
                &seft::model::tokenizer::messages(&[("user", q), ("assistant", a)]),
                false,
                512,
            )
            .unwrap()
            .0
        })
        .collect();
    let separate: f64 = examples
        .iter()
        .map(|e| {
            let b = seft::train::batch::collate(&[e], 1);
            seft::train::loss::scalar(masked_token_loss(lm.net.forward(&b.input), &b.targets).0)
        })
        .sum();
    let packed = pack(examples.clone(), 512);
    assert_eq!(packed.len(), 1, "all three fit in one row");
    assert_eq!(
        packed[0].n_targets(),
        examples.iter().map(|e| e.n_targets()).sum::<usize>()
    );
    let b = seft::train::batch::collate(&[&packed[0]], 1);
    let together =
        seft::train::loss::scalar(masked_token_loss(lm.net.forward(&b.input), &b.targets).0);
    eprintln!("separate {separate} packed {together}");
    assert!(
        (separate - together).abs() < 1e-4 * separate,
        "packing changed the loss: {separate} vs {together}"
    );
    // Without the segment mask the packed row would see the earlier sequences.
    let mut leaky = b.input;
    leaky.segments = None;
    let leaked = seft::train::loss::scalar(masked_token_loss(lm.net.forward(&leaky), &b.targets).0);
    assert!(
        (leaked - together).abs() > 1e-3,
        "the segment mask had no effect"
    );
}
