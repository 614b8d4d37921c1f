//! Every architecture seft claims, against transformers: tiny random Llama (Llama 3.1 rope
//! scaling, separate head), Mistral and Qwen2 (q/k/v biases, tied head) checkpoints saved by
//! transformers 5 (tests/fixtures/tiny_archs/make_tiny.py), all positions' logits compared.
//! Also hub-id loading through hf-hub's offline cache.

mod common;

use burn::tensor::Device;
use seft::LanguageModel;
use seft::model::batch::Batch;
use seft::model::generate::{SamplingConfig, generate, generate_batched};
use seft::model::{Architecture, MlpKind};
use seft::numeric::to_f32_vec;
use serde_json::Value;

fn fixture() -> Value {
    let text = std::fs::read_to_string(common::fixture("tiny_archs/logits.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load(name: &str) -> LanguageModel {
    let folder = common::fixture(&format!("tiny_archs/{name}"));
    LanguageModel::load(folder.to_str().unwrap(), &Device::flex()).unwrap()
}

fn check_logits(name: &str) {
    let fx = fixture();
    let ids: Vec<Vec<u32>> = serde_json::from_value(fx["ids"].clone()).unwrap();
    let expected: Vec<Vec<Vec<f32>>> =
        serde_json::from_value(fx["models"][name]["logits"].clone()).unwrap();
    let model = load(name);
    let batch = Batch {
        valid: ids.iter().map(|r| vec![true; r.len()]).collect(),
        positions: ids.iter().map(|r| (0..r.len()).collect()).collect(),
        ids,
        segments: None,
    };
    let got = to_f32_vec(model.net.forward(&batch));
    let flat: Vec<f32> = expected.into_iter().flatten().flatten().collect();
    assert_eq!(got.len(), flat.len());
    let max = got
        .iter()
        .zip(&flat)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max < 1e-4, "{name}: max |logit diff| = {max}");
}

#[test]
fn llama_with_llama3_rope_scaling_matches_transformers() {
    let m = load("llama");
    assert_eq!(m.config.architecture, Architecture::Llama);
    assert!(!m.config.tie_word_embeddings);
    assert!(matches!(
        m.config.rope_scaling,
        seft::model::config::RopeScaling::Llama3 { .. }
    ));
    check_logits("llama");
}

#[test]
fn mistral_matches_transformers() {
    assert_eq!(load("mistral").config.architecture, Architecture::Mistral);
    check_logits("mistral");
}

#[test]
fn qwen2_with_qkv_bias_and_tied_head_matches_transformers() {
    let m = load("qwen2");
    assert_eq!(m.config.architecture, Architecture::Qwen2);
    assert!(m.config.qkv_bias && m.config.tie_word_embeddings);
    check_logits("qwen2");
}

/// Continuous batching: whatever the number of slots, each prompt gets the tokens it gets
/// alone. Prompts near the 256-token context stop early (their `length` bound is what the
/// context leaves), so rows leave at different steps and waiting prompts join mid-run; the
/// sampling is seeded per prompt.
#[test]
fn continuous_batches_generate_like_single_prompts() {
    let model = load("qwen2");
    let long = |n: u32| (0..n).map(|i| 20 + i % 200).collect::<Vec<u32>>();
    let prompts = vec![
        vec![5, 6, 7],
        long(250),
        vec![9, 10, 11, 12, 13, 14, 15, 16],
        long(247),
        vec![40],
    ];
    let cfg = SamplingConfig {
        max_new_tokens: 12,
        min_new_tokens: 12,
        temperature: 0.9,
        seed: 11,
        ..Default::default()
    };
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let seeded = SamplingConfig {
                seed: cfg.seed + i as u64,
                ..cfg.clone()
            };
            generate(&model, std::slice::from_ref(p), &seeded, |_, _| {}).unwrap()[0]
                .token_ids
                .clone()
        })
        .collect();
    assert_eq!(
        alone.iter().map(Vec::len).collect::<Vec<_>>(),
        [12, 6, 12, 9, 12]
    );
    for slots in 1..=prompts.len() {
        let mut order = Vec::new();
        let batched = generate_batched(
            &model,
            &prompts,
            &cfg,
            slots,
            |_, _| {},
            |i, _| order.push(i),
        )
        .unwrap();
        let got: Vec<Vec<u32>> = batched.into_iter().map(|g| g.token_ids).collect();
        assert_eq!(got, alone, "{slots} slots");
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3, 4], "{slots} slots: {order:?}");
    }
}

#[test]
fn relu_mlp_variant_builds_saves_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = load("llama").config;
    cfg.mlp = MlpKind::Relu;
    cfg.relu_threshold = 0.1;
    let device = Device::flex();
    let net = seft::model::weights::build_model(
        &cfg,
        &mut seft::model::weights::InitSource::new(3, 0.2),
        &device,
    )
    .unwrap();
    assert!(net.layers[0].mlp.gate_proj.is_none());
    let tokenizer = load("llama").tokenizer;
    let model = LanguageModel::from_parts(net, cfg.clone(), tokenizer);
    let out = dir.path().join("relu");
    model.save_hf_folder(&out).unwrap();
    let reloaded = LanguageModel::load(out.to_str().unwrap(), &device).unwrap();
    assert_eq!(reloaded.config.mlp, MlpKind::Relu);
    assert_eq!(reloaded.config.relu_threshold, 0.1);
    let batch = Batch {
        ids: vec![vec![1, 2, 3]],
        valid: vec![vec![true; 3]],
        positions: vec![vec![0, 1, 2]],
        segments: None,
    };
    assert_eq!(
        to_f32_vec(model.net.forward(&batch)),
        to_f32_vec(reloaded.net.forward(&batch))
    );
}

#[test]
fn firing_rows_decoding_generates_the_dense_tokens() {
    let mut cfg = load("llama").config;
    cfg.mlp = MlpKind::Relu;
    cfg.relu_threshold = 0.05;
    let device = Device::flex();
    let net = seft::model::weights::build_model(
        &cfg,
        &mut seft::model::weights::InitSource::new(4, 0.2),
        &device,
    )
    .unwrap();
    let mut model = LanguageModel::from_parts(net, cfg, load("llama").tokenizer);
    let sampling = SamplingConfig {
        max_new_tokens: 12,
        min_new_tokens: 12,
        ..Default::default()
    };
    let prompt = vec![vec![3, 14, 15, 9]];
    let dense = generate(&model, &prompt, &sampling, |_, _| {}).unwrap();
    assert_eq!(model.net.firing_fraction(false), None);
    assert!(seft::sparse::enable_firing_rows_decode(&mut model.net));
    let rows = generate(&model, &prompt, &sampling, |_, _| {}).unwrap();
    assert_eq!(dense[0].token_ids, rows[0].token_ids);
    // 11 batch-1 decode steps went through the firing rows (the prompt's prefill did not).
    let fired = model.net.firing_fraction(true).unwrap();
    assert!(fired > 0.0 && fired < 1.0, "{fired}");
    // SwiGLU models have no firing set to exploit.
    assert!(!seft::sparse::enable_firing_rows_decode(
        &mut load("llama").net
    ));
    let folder = common::fixture("tiny_archs/llama");
    let out = common::output(
        common::seft()
            .args(["generate", "--prompt", "hi", "--firing-rows", "--model"])
            .arg(&folder),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--firing-rows needs a ReLU-MLP model"),
        "{err}"
    );
    assert!(err.contains(&folder.display().to_string()), "{err}");
}

/// Lays a model folder out as hf-hub's cache does: refs/main -> snapshots/<commit>/files.
fn fake_hub_cache(root: &std::path::Path, repo_id: &str, source: &std::path::Path) {
    let repo = root
        .join("hub")
        .join(format!("models--{}", repo_id.replace('/', "--")));
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), snapshot.join(entry.file_name())).unwrap();
    }
}

#[test]
fn hub_ids_load_from_the_offline_cache() {
    let home = tempfile::tempdir().unwrap();
    fake_hub_cache(
        home.path(),
        "tiny-org/tiny-qwen2",
        &common::fixture("tiny_archs/qwen2"),
    );
    let run = |id: &str| {
        common::output(
            common::seft()
                .args(["info", "--json", "--model", id])
                .env("HF_HOME", home.path())
                .env("HF_HUB_OFFLINE", "1"),
        )
    };
    let ok = run("tiny-org/tiny-qwen2");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let info: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(info["architecture"], "Qwen2ForCausalLM");
    assert!(
        info["source"]
            .as_str()
            .unwrap()
            .starts_with("hub tiny-org/tiny-qwen2")
    );
    let missing = run("tiny-org/not-cached");
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("not complete in the cache") && err.contains("HF_HUB_OFFLINE=1"),
        "{err}"
    );
}
