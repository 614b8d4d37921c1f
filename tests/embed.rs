//! Sentence embeddings: all-MiniLM-L6-v2 equals sentence-transformers on the fixture of
//! tests/fixtures/minilm (made by make_fixture.py from the same model folder), batching changes
//! nothing, decoder mean pooling gives unit vectors independent of the batch, `seft embed`
//! writes the .npy, and bad folders are errors naming the file.

mod common;

use std::path::Path;
use std::time::Instant;

use burn::tensor::Device;
use seft::LanguageModel;
use seft::embed::{Embedder, mean_pooled_hidden_states};
use seft::numeric::Matrix;

struct Fixture {
    sentences: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

fn fixture() -> Fixture {
    let path = common::fixture("minilm/embeddings.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    Fixture {
        sentences: serde_json::from_value(v["sentences"].clone()).unwrap(),
        embeddings: serde_json::from_value(v["embeddings"].clone()).unwrap(),
    }
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[test]
fn minilm_equals_sentence_transformers_at_any_batch_size() {
    let device = Device::flex();
    let started = Instant::now();
    let embedder = Embedder::load(&common::minilm_folder(), &device).unwrap();
    let load_s = started.elapsed().as_secs_f64();
    assert_eq!(embedder.dim(), 384);
    assert_eq!(embedder.max_seq_length(), 256);
    let fx = fixture();

    let started = Instant::now();
    let batched = embedder.embed(&fx.sentences, 8).unwrap();
    let batched_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let single = embedder.embed(&fx.sentences, 1).unwrap();
    let single_s = started.elapsed().as_secs_f64();

    let vs_reference = max_abs_diff(&batched, &fx.embeddings);
    let vs_batch_1 = max_abs_diff(&batched, &single);
    eprintln!(
        "minilm: load {load_s:.2}s, {} texts at batch 8 {batched_s:.2}s, at batch 1 {single_s:.2}s; \
         max |diff| vs sentence-transformers {vs_reference:e}, batch 8 vs 1 {vs_batch_1:e}",
        fx.sentences.len()
    );
    assert!(vs_reference <= 1e-4, "max |diff| vs fixture {vs_reference}");
    assert!(vs_batch_1 <= 1e-5, "max |diff| batch 8 vs 1 {vs_batch_1}");
    for row in &batched {
        assert!((norm(row) - 1.0).abs() < 1e-5);
    }
    assert!(embedder.embed(&[], 4).unwrap().is_empty());
    assert!(embedder.embed(&fx.sentences, 0).is_err());
}

#[test]
fn decoder_mean_pooling_is_unit_norm_and_batch_independent() {
    let device = Device::flex();
    let model = LanguageModel::load(common::smollm2_gguf().to_str().unwrap(), &device).unwrap();
    let texts: Vec<String> = [
        "Give three tips for staying healthy.",
        "What is the capital of France?",
        "Écris un poème sur la mer, s'il te plaît.",
        "x",
        "Explain k-means clustering to a ten-year-old in two short paragraphs.",
    ]
    .map(String::from)
    .to_vec();
    let started = Instant::now();
    let batched = mean_pooled_hidden_states(&model, &texts, 5, 512).unwrap();
    let batched_s = started.elapsed().as_secs_f64();
    let single = mean_pooled_hidden_states(&model, &texts, 1, 512).unwrap();
    assert_eq!(batched.len(), texts.len());
    assert!(batched.iter().all(|r| r.len() == model.config.hidden_size));
    for row in &batched {
        assert!((norm(row) - 1.0).abs() < 1e-5, "norm {}", norm(row));
    }
    let vs_batch_1 = max_abs_diff(&batched, &single);
    eprintln!(
        "decoder: {} texts at batch 5 {batched_s:.2}s; max |diff| batch 5 vs 1 {vs_batch_1:e}",
        texts.len()
    );
    assert!(vs_batch_1 <= 1e-5, "max |diff| batch 5 vs 1 {vs_batch_1}");
    // Different texts, different points.
    let cosine: f32 = batched[0].iter().zip(&batched[1]).map(|(a, b)| a * b).sum();
    assert!(cosine < 0.999, "cosine {cosine}");
    // Truncation keeps the first tokens: a cap of 1 token makes texts with the same first
    // token equal.
    let capped = mean_pooled_hidden_states(
        &model,
        &["Give me".to_string(), "Give up".to_string()],
        2,
        1,
    )
    .unwrap();
    assert!(max_abs_diff(&capped[..1], &capped[1..]) <= 1e-6);
    assert!(mean_pooled_hidden_states(&model, &texts, 0, 512).is_err());
    assert!(mean_pooled_hidden_states(&model, &texts, 2, 0).is_err());
}

#[test]
fn seft_embed_writes_the_npy() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixture();
    let input = dir.path().join("texts.jsonl");
    // read_prompts refuses empty prompts: keep the non-empty fixture sentences.
    let kept: Vec<usize> = (0..fx.sentences.len())
        .filter(|&i| !fx.sentences[i].trim().is_empty())
        .collect();
    let rows: Vec<String> = kept
        .iter()
        .map(|&i| serde_json::json!({ "prompt": fx.sentences[i] }).to_string())
        .collect();
    std::fs::write(&input, rows.join("\n")).unwrap();
    let output = dir.path().join("x.npy");
    let out = common::output(
        common::seft()
            .args(["embed", "--batch-size", "3", "--model"])
            .arg(common::minilm_folder())
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let matrix = Matrix::read_npy(&output).unwrap();
    assert_eq!((matrix.n(), matrix.d()), (kept.len(), 384));
    let got: Vec<Vec<f32>> = (0..matrix.n()).map(|i| matrix.row(i).to_vec()).collect();
    let want: Vec<Vec<f32>> = kept.iter().map(|&i| fx.embeddings[i].clone()).collect();
    assert!(max_abs_diff(&got, &want) <= 1e-4);
}

fn load_error(folder: &Path) -> String {
    Embedder::load(folder, &Device::flex())
        .map(|_| ())
        .expect_err("loading should fail")
        .to_string()
}

#[test]
fn bad_model_folders_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = load_error(&missing);
    assert!(err.contains(&missing.display().to_string()), "{err}");

    let folder = dir.path().join("partial");
    std::fs::create_dir_all(&folder).unwrap();
    let err = load_error(&folder);
    assert!(err.contains("config.json"), "{err}");

    let minilm = common::minilm_folder();
    std::fs::copy(minilm.join("config.json"), folder.join("config.json")).unwrap();
    let err = load_error(&folder);
    assert!(
        err.contains(&folder.join("tokenizer.json").display().to_string()),
        "{err}"
    );

    std::fs::copy(minilm.join("tokenizer.json"), folder.join("tokenizer.json")).unwrap();
    let err = load_error(&folder);
    assert!(err.contains("model.safetensors"), "{err}");

    // A decoder's config is refused, naming the file and the reason.
    let llama = dir.path().join("llama");
    std::fs::create_dir_all(&llama).unwrap();
    std::fs::write(
        llama.join("config.json"),
        common::tiny_config_json("llama").to_string(),
    )
    .unwrap();
    let err = load_error(&llama);
    assert!(
        err.contains("config.json") && err.contains("'bert'"),
        "{err}"
    );

    // Weights of the wrong shape name the tensor.
    let wrong = dir.path().join("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(minilm.join("config.json")).unwrap())
            .unwrap();
    config["hidden_size"] = 768.into();
    std::fs::write(wrong.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(minilm.join("tokenizer.json"), wrong.join("tokenizer.json")).unwrap();
    std::fs::copy(
        minilm.join("model.safetensors"),
        wrong.join("model.safetensors"),
    )
    .unwrap();
    let err = load_error(&wrong);
    assert!(err.contains("embeddings.word_embeddings.weight"), "{err}");
}
