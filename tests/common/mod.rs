//! Shared helpers for the integration tests: where the real test model lives, and writers for
//! small synthetic GGUF files and Hugging Face folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `seft` binary built for these tests, without a crash-test point inherited from the
/// environment (`SEFT_FAULT`): every test that runs the CLI starts here.
pub fn seft() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seft"));
    cmd.env_remove("SEFT_FAULT");
    cmd
}

/// Runs `cmd`, asserts that it exited 0 (showing its stderr otherwise) and returns stdout.
pub fn success(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run seft");
    assert!(
        out.status.success(),
        "seft failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs `cmd` to completion, whatever its exit status.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("run seft")
}

/// A model fetched by scripts/fetch-test-models.sh into $SEFT_MODELS_DIR (default
/// ~/.cache/seft/models).
fn test_model(name: &str) -> PathBuf {
    let dir = std::env::var("SEFT_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/seft/models")
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-test-models.sh (or set SEFT_MODELS_DIR)",
        path.display()
    );
    path
}

/// The SmolLM2 GGUF fetched by scripts/fetch-test-models.sh.
pub fn smollm2_gguf() -> PathBuf {
    test_model("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// The all-MiniLM-L6-v2 folder fetched by scripts/fetch-test-models.sh.
pub fn minilm_folder() -> PathBuf {
    test_model("all-MiniLM-L6-v2")
}

/// The project's read-only shared data (`SEFT_SHARED_DATA`, default `../shared/data` next to
/// the repository), read only by the tests marked `#[ignore]` for needing it.
pub fn shared() -> PathBuf {
    let dir = std::env::var_os("SEFT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    assert!(
        dir.is_dir(),
        "the shared data folder {} is missing: set SEFT_SHARED_DATA",
        dir.display()
    );
    dir
}

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A metadata value for [`write_gguf`].
pub enum Meta {
    U32(u32),
    F32(f32),
    Str(String),
    Strs(Vec<String>),
    I32s(Vec<i32>),
    Bool(bool),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// Writes a GGUF v3 file. `tensors`: (name, shape outermost-first, ggml type id, raw bytes).
pub fn write_gguf(
    path: &Path,
    meta: &[(&str, Meta)],
    tensors: &[(&str, Vec<usize>, u32, Vec<u8>)],
) {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((meta.len() as u64).to_le_bytes());
    for (key, value) in meta {
        put_str(&mut out, key);
        match value {
            Meta::U32(v) => {
                out.extend(4u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            Meta::F32(v) => {
                out.extend(6u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            Meta::Bool(v) => {
                out.extend(7u32.to_le_bytes());
                out.push(*v as u8);
            }
            Meta::Str(s) => {
                out.extend(8u32.to_le_bytes());
                put_str(&mut out, s);
            }
            Meta::Strs(items) => {
                out.extend(9u32.to_le_bytes());
                out.extend(8u32.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for s in items {
                    put_str(&mut out, s);
                }
            }
            Meta::I32s(items) => {
                out.extend(9u32.to_le_bytes());
                out.extend(5u32.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for v in items {
                    out.extend(v.to_le_bytes());
                }
            }
        }
    }
    let mut offset = 0u64;
    let mut offsets = Vec::new();
    for (_, _, _, raw) in tensors {
        offsets.push(offset);
        offset = (offset + raw.len() as u64).div_ceil(32) * 32;
    }
    for ((name, shape, ty, _), off) in tensors.iter().zip(&offsets) {
        put_str(&mut out, name);
        out.extend((shape.len() as u32).to_le_bytes());
        for d in shape.iter().rev() {
            out.extend((*d as u64).to_le_bytes());
        }
        out.extend(ty.to_le_bytes());
        out.extend(off.to_le_bytes());
    }
    while !out.len().is_multiple_of(32) {
        out.push(0);
    }
    let start = out.len();
    for ((_, _, _, raw), off) in tensors.iter().zip(&offsets) {
        out.resize(start + *off as usize, 0);
        out.extend(raw);
    }
    std::fs::write(path, out).expect("write gguf");
}

pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A byte-level BPE tokenizer.json with the 256 byte symbols and two special tokens, no merges.
pub fn tiny_tokenizer_json() -> String {
    let table = seft::model::tokenizer::bytes_to_unicode();
    let mut vocab = serde_json::Map::new();
    vocab.insert("<|endoftext|>".into(), 0.into());
    vocab.insert("<|im_end|>".into(), 1.into());
    for (i, c) in table.iter().enumerate() {
        vocab.insert(c.to_string(), (i + 2).into());
    }
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [
            {"id": 0, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 1, "content": "<|im_end|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
        ],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "", "end_of_word_suffix": "",
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": []}
    })
    .to_string()
}

/// config.json of a tiny Llama (vocab 258 = the tiny tokenizer) for synthetic checkpoints.
pub fn tiny_config_json(model_type: &str) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": model_type,
        "vocab_size": 258, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "max_position_embeddings": 128, "tie_word_embeddings": false, "eos_token_id": 1
    })
}

/// Writes a Hugging Face folder of a tiny random Llama (seeded) into `dir`.
pub fn write_tiny_hf_folder(dir: &Path, seed: u64) {
    use seft::model::weights::{InitSource, build_model};
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        tiny_config_json("llama").to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("tokenizer.json"), tiny_tokenizer_json()).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"eos_token": "<|im_end|>", "chat_template": "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"}"#,
    )
    .unwrap();
    let cfg = seft::model::ModelConfig::from_hf_json(&dir.join("config.json")).unwrap();
    let device = burn::tensor::Device::flex();
    let net = build_model(&cfg, &mut InitSource::new(seed, 0.2), &device).unwrap();
    seft::model::weights::save_safetensors(&net, &dir.join("model.safetensors")).unwrap();
}

/// `seft serve` on SmolLM2 at a free loopback port with `args` and `env`: the process and the
/// base URL it printed (`http://127.0.0.1:PORT/v1`).
pub fn serve_smollm2(args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = seft()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .arg("--model")
        .arg(smollm2_gguf())
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("http://127.0.0.1:"), "{line:?}");
    (child, line.trim().to_string())
}

/// The tiny random Llama (seed 1, with a chat template), loaded on flex from a fresh folder
/// that lives as long as the returned guard.
pub fn tiny_model() -> (seft::LanguageModel, tempfile::TempDir) {
    let folder = tempfile::tempdir().unwrap();
    write_tiny_hf_folder(folder.path(), 1);
    let model = load_model(folder.path());
    (model, folder)
}

/// A model folder or file loaded on flex.
pub fn load_model(path: &Path) -> seft::LanguageModel {
    seft::LanguageModel::load(&path.display().to_string(), &burn::tensor::Device::flex()).unwrap()
}

/// `dir/sft.toml`: one step of SFT on the tiny Llama fixture with a one-row dataset
/// (`dir/train.jsonl`), followed by the TOML in `extra` (more sections).
pub fn tiny_sft_config(dir: &Path, extra: &str) -> PathBuf {
    let data = dir.join("train.jsonl");
    std::fs::write(&data, "{\"prompt\": \"a\", \"completion\": \"b\"}\n").unwrap();
    let config = dir.join("sft.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\npath = {:?}\n[data]\ntrain = {:?}\neval_fraction = 0.0\n[train]\nmax_steps = 1\n{extra}",
            fixture("tiny_archs/llama"),
            data,
        ),
    )
    .unwrap();
    config
}

/// Checks the weights of `net` against a fixture's `tensors` (name → slice, before, after):
/// each slice's largest difference, relative to the largest weight of the slice (max-norm),
/// must be ≤ `tolerance`, and every weight must have moved in the reference. Returns the
/// worst relative difference.
///
/// Relative to the tensor's scale: an element-wise ratio is ill-conditioned for the first
/// Adam step, whose update g/(|g| + eps) leaves ±lr only where |g| ≫ eps; an element with
/// |g| ≈ 10·eps moves by 0.9·lr and carries the float noise of its gradient (sums that
/// cancel to ~1e-7) into the weight. The element-wise worst case is printed as well.
pub fn assert_weights_match(
    net: &seft::model::llama::CausalLm,
    fixture: &serde_json::Value,
    tolerance: f32,
) -> f32 {
    let tensors = seft::model::layout::named_tensors(net);
    let mut worst_of_all = 0f32;
    for (name, t) in fixture.as_object().unwrap() {
        let (shape, data) = &tensors[name];
        let ranges: Vec<(usize, usize)> = serde_json::from_value(t["slice"].clone()).unwrap();
        let mut got = Vec::new();
        match ranges.as_slice() {
            [(a, b)] => got.extend_from_slice(&data[*a..*b]),
            [(r0, r1), (c0, c1)] => {
                for r in *r0..*r1 {
                    got.extend_from_slice(&data[r * shape[1] + c0..r * shape[1] + c1]);
                }
            }
            other => panic!("slice {other:?}"),
        }
        let after: Vec<f32> = serde_json::from_value(t["after"].clone()).unwrap();
        let before: Vec<f32> = serde_json::from_value(t["before"].clone()).unwrap();
        let scale = after.iter().fold(0f32, |m, a| m.max(a.abs()));
        let (mut worst, mut worst_element) = (0f32, 0f32);
        for ((g, a), b) in got.iter().zip(&after).zip(&before) {
            assert_ne!(a, b, "{name}: PyTorch did not move this weight");
            worst = worst.max((g - a).abs() / scale);
            worst_element = worst_element.max((g - a).abs() / a.abs().max(1e-6));
        }
        eprintln!(
            "{name}: max difference {worst:.2e} of the largest weight; element-wise {worst_element:.2e}"
        );
        assert!(
            worst <= tolerance,
            "{name}: max difference {worst} of the largest weight"
        );
        worst_of_all = worst_of_all.max(worst);
    }
    worst_of_all
}
