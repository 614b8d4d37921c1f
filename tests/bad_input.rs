//! Bad input never panics: each case exits non-zero with one line naming the file (and the
//! tensor or key) and the cause.

mod common;

use std::path::Path;

use common::{Meta, f32_bytes, write_gguf};

/// Runs `seft info --model <path>` and returns (exit code, stderr).
fn info(model: &Path) -> (i32, String) {
    let out = common::output(common::seft().args(["info", "--model"]).arg(model));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The error line, checked to be a single line that names `file` and says `cause`.
fn assert_one_line_error(code: i32, stderr: &str, file: &Path, cause: &str) {
    assert_eq!(
        code, 1,
        "exit code (101 would be a panic); stderr: {stderr}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = errors[0];
    assert!(
        line.contains(&file.display().to_string()),
        "no file name in: {line}"
    );
    assert!(line.contains(cause), "expected '{cause}' in: {line}");
}

#[test]
fn truncated_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(common::smollm2_gguf()).unwrap();
    let path = dir.path().join("truncated.gguf");
    std::fs::write(&path, &real[..real.len() / 3]).unwrap();
    let (code, err) = info(&path);
    assert_one_line_error(code, &err, &path, "truncated file: tensor 'blk.");
    // Cut inside the metadata too.
    std::fs::write(&path, &real[..1000]).unwrap();
    let (code, err) = info(&path);
    assert_one_line_error(code, &err, &path, "truncated file");
}

#[test]
fn wrong_magic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, b"GGMLxxxxxxxxxxxxxxxxxxxxxxxx").unwrap();
    let (code, err) = info(&path);
    assert_one_line_error(code, &err, &path, "not a GGUF file");
}

#[test]
fn unsupported_quantization_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q5k.gguf");
    // A Q5_K (ggml type 13) tensor: 256 elements in one 176-byte block.
    write_gguf(
        &path,
        &[("general.architecture", Meta::Str("llama".into()))],
        &[("token_embd.weight", vec![1, 256], 13, vec![0u8; 176])],
    );
    let (code, err) = info(&path);
    assert_one_line_error(
        code,
        &err,
        &path,
        "tensor 'token_embd.weight': unsupported tensor type Q5_K",
    );
}

#[test]
fn gguf_missing_metadata_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nometa.gguf");
    write_gguf(
        &path,
        &[("general.architecture", Meta::Str("llama".into()))],
        &[("output_norm.weight", vec![4], 0, f32_bytes(&[1.0; 4]))],
    );
    let (code, err) = info(&path);
    assert_one_line_error(
        code,
        &err,
        &path,
        "missing metadata key 'llama.embedding_length'",
    );
}

#[test]
fn safetensors_missing_a_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("tiny");
    common::write_tiny_hf_folder(&folder, 1);
    let st = folder.join("model.safetensors");
    rewrite_safetensors(&st, |name, shape| {
        (name != "model.layers.1.mlp.up_proj.weight").then(|| shape.to_vec())
    });
    let (code, err) = info(&folder);
    assert_one_line_error(
        code,
        &err,
        &folder,
        "missing tensor 'model.layers.1.mlp.up_proj.weight'",
    );
}

#[test]
fn safetensors_wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("tiny");
    common::write_tiny_hf_folder(&folder, 2);
    let st = folder.join("model.safetensors");
    rewrite_safetensors(&st, |name, shape| {
        Some(if name == "model.layers.0.self_attn.k_proj.weight" {
            vec![shape[1], shape[0]]
        } else {
            shape.to_vec()
        })
    });
    let (code, err) = info(&folder);
    assert_one_line_error(
        code,
        &err,
        &st,
        "tensor 'model.layers.0.self_attn.k_proj.weight' has shape [16, 8], expected [8, 16]",
    );
}

#[test]
fn config_with_unknown_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("tiny");
    common::write_tiny_hf_folder(&folder, 3);
    let mut cfg = common::tiny_config_json("gpt_neox");
    cfg["architectures"] = serde_json::json!(["GPTNeoXForCausalLM"]);
    std::fs::write(folder.join("config.json"), cfg.to_string()).unwrap();
    let (code, err) = info(&folder);
    assert_one_line_error(
        code,
        &err,
        &folder.join("config.json"),
        "unknown architecture",
    );
}

#[test]
fn path_that_does_not_exist() {
    let path = Path::new("/nonexistent/dir/model.gguf");
    let (code, err) = info(path);
    assert_one_line_error(code, &err, path, "no such file or directory");
}

#[test]
fn pickle_checkpoints_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("pickled");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("config.json"),
        common::tiny_config_json("llama").to_string(),
    )
    .unwrap();
    std::fs::write(folder.join("tokenizer.json"), common::tiny_tokenizer_json()).unwrap();
    std::fs::write(folder.join("pytorch_model.bin"), b"not loaded").unwrap();
    let (code, err) = info(&folder);
    assert_one_line_error(code, &err, &folder, "pickle checkpoints are never loaded");
}

/// Rewrites a safetensors file, keeping/reshaping tensors by `keep(name, shape)`.
fn rewrite_safetensors(path: &Path, keep: impl Fn(&str, &[usize]) -> Option<Vec<usize>>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut kept = Vec::new();
    for (name, view) in st.tensors() {
        if let Some(shape) = keep(&name, view.shape()) {
            kept.push((name, shape, view.data().to_vec()));
        }
    }
    let views: Vec<_> = kept
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// A UTF-8 byte-order mark (written by Windows tools; Python reads it with `utf-8-sig`) before
/// the first row is not an error.
#[test]
fn a_byte_order_mark_before_the_first_row_is_read_past() {
    use seft::data::{ReadOptions, read_records};
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("bom.jsonl");
    std::fs::write(
        &jsonl,
        "\u{feff}{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"c\", \"completion\": \"d\"}\n",
    )
    .unwrap();
    let (records, report) = read_records(&jsonl, &ReadOptions::default()).unwrap();
    assert_eq!((records.len(), report.skipped), (2, 0));
    let json = dir.path().join("bom.json");
    std::fs::write(
        &json,
        "\u{feff}[{\"instruction\": \"i\", \"output\": \"o\"}]",
    )
    .unwrap();
    assert_eq!(
        read_records(&json, &ReadOptions::default())
            .unwrap()
            .0
            .len(),
        1
    );
    let annotations = dir.path().join("annotations.json");
    std::fs::write(
        &annotations,
        "\u{feff}[{\"instruction\": \"i\", \"output_1\": \"a\", \"generator_1\": \"r\", \"output_2\": \"b\", \"generator_2\": \"m\", \"preference\": 2.0}]",
    )
    .unwrap();
    let rows = seft::eval::alpaca::annotations::read_annotations(&annotations).unwrap();
    assert_eq!(rows[0].preference, Some(2.0));
}

/// A GGUF v3 file from raw parts: `kvs` and `table` are the encoded metadata and tensor table.
fn raw_gguf(n_tensors: u64, n_kv: u64, kvs: &[u8], table: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(n_tensors.to_le_bytes());
    out.extend(n_kv.to_le_bytes());
    out.extend(kvs);
    out.extend(table);
    while !out.len().is_multiple_of(32) {
        out.push(0);
    }
    out.extend(data);
    out
}

fn gguf_str(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend(s.as_bytes());
    out
}

/// One tensor-table entry: name, f32, 1-D of `n` elements, at `offset` in the data section.
fn tensor_entry(name: &str, n: u64, offset: u64) -> Vec<u8> {
    let mut out = gguf_str(name);
    out.extend(1u32.to_le_bytes());
    out.extend(n.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(offset.to_le_bytes());
    out
}

fn llama_arch() -> Vec<u8> {
    let mut kv = gguf_str("general.architecture");
    kv.extend(8u32.to_le_bytes());
    kv.extend(gguf_str("llama"));
    kv
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn gguf_tensor_offsets_that_overflow_are_out_of_line_or_overlap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = f32_bytes(&[1.0; 16]);
    // An offset near 2^64 (a multiple of the alignment, so only the overflow is wrong).
    let near_end = tensor_entry("output_norm.weight", 4, u64::MAX - 31);
    let path = write(
        dir.path(),
        "far.gguf",
        &raw_gguf(1, 1, &llama_arch(), &near_end, &data),
    );
    let (code, err) = info(&path);
    assert_one_line_error(code, &err, &path, "tensor 'output_norm.weight' at offset");
    // An offset that is not a multiple of the alignment.
    let unaligned = tensor_entry("output_norm.weight", 4, 4);
    let path = write(
        dir.path(),
        "unaligned.gguf",
        &raw_gguf(1, 1, &llama_arch(), &unaligned, &data),
    );
    let (code, err) = info(&path);
    assert_one_line_error(
        code,
        &err,
        &path,
        "offset 4 is not a multiple of the alignment 32",
    );
    // Two tensors over the same bytes.
    let mut both = tensor_entry("a.weight", 8, 0);
    both.extend(tensor_entry("b.weight", 8, 0));
    let path = write(
        dir.path(),
        "overlap.gguf",
        &raw_gguf(2, 1, &llama_arch(), &both, &data),
    );
    let (code, err) = info(&path);
    assert_one_line_error(code, &err, &path, "overlap");
    // A tensor count the file cannot hold is refused before the table is allocated.
    let path = write(
        dir.path(),
        "count.gguf",
        &raw_gguf(u32::MAX as u64, 1, &llama_arch(), &[], &[0; 64]),
    );
    let (code, err) = info(&path);
    assert_one_line_error(code, &err, &path, "corrupt tensor count");
}

#[test]
fn gguf_arrays_nested_thirty_thousand_deep_are_refused_without_recursing() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = gguf_str("deep");
    kv.extend(9u32.to_le_bytes());
    for _ in 0..30_000 {
        kv.extend(9u32.to_le_bytes());
        kv.extend(1u64.to_le_bytes());
    }
    kv.extend(4u32.to_le_bytes());
    kv.extend(0u64.to_le_bytes());
    let path = write(dir.path(), "deep.gguf", &raw_gguf(0, 1, &kv, &[], &[]));
    let (code, err) = info(&path);
    assert_one_line_error(code, &err, &path, "metadata key 'deep' nests arrays deeper");
}

#[test]
fn a_gguf_array_longer_than_the_metadata_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 20 million one-byte items, all present in the file: read whole they would cost 640 MB.
    // Refused after 4194304 values (128 MiB).
    let n = 20_000_000u64;
    let mut kv = gguf_str("big");
    kv.extend(9u32.to_le_bytes());
    kv.extend(0u32.to_le_bytes());
    kv.extend(n.to_le_bytes());
    kv.resize(kv.len() + n as usize, 7);
    let path = write(dir.path(), "big.gguf", &raw_gguf(0, 1, &kv, &[], &[]));
    let (code, err) = info(&path);
    assert_one_line_error(
        code,
        &err,
        &path,
        "the metadata holds more than 4194304 values",
    );
    // A count the rest of the file cannot hold is refused before anything is read.
    let mut kv = gguf_str("claims");
    kv.extend(9u32.to_le_bytes());
    kv.extend(4u32.to_le_bytes());
    kv.extend(40u64.to_le_bytes());
    kv.extend([0; 100]);
    let path = write(dir.path(), "claims.gguf", &raw_gguf(0, 1, &kv, &[], &[]));
    let (code, err) = info(&path);
    assert_one_line_error(code, &err, &path, "an array of 40 items does not fit");
}

/// llama metadata for a tiny model whose `block_count` is `layers`.
fn gguf_with_block_count(path: &Path, layers: u32) {
    write_gguf(
        path,
        &[
            ("general.architecture", Meta::Str("llama".into())),
            ("llama.embedding_length", Meta::U32(16)),
            ("llama.feed_forward_length", Meta::U32(32)),
            ("llama.attention.head_count", Meta::U32(4)),
            ("llama.block_count", Meta::U32(layers)),
            ("llama.context_length", Meta::U32(128)),
            ("tokenizer.ggml.model", Meta::Str("gpt2".into())),
            (
                "tokenizer.ggml.tokens",
                Meta::Strs(vec!["a".into(), "b".into()]),
            ),
            ("tokenizer.ggml.merges", Meta::Strs(Vec::new())),
        ],
        &[("output_norm.weight", vec![16], 0, f32_bytes(&[1.0; 16]))],
    );
}

#[test]
fn gguf_block_counts_of_zero_or_billions_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    for (layers, shown) in [(u32::MAX, "4294967295"), (0, "0")] {
        let path = dir.path().join(format!("layers{layers}.gguf"));
        gguf_with_block_count(&path, layers);
        let (code, err) = info(&path);
        assert_one_line_error(
            code,
            &err,
            &path,
            &format!("llama.block_count must be in [1, 1024], got {shown}"),
        );
    }
    // In range, but more layers than the file has weights for.
    let path = dir.path().join("layers1000.gguf");
    gguf_with_block_count(&path, 1000);
    let o = common::output(
        common::seft()
            .args(["generate", "--model"])
            .arg(&path)
            .args(["--prompt", "a"]),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("but the weights hold only 16 values"), "{err}");
}

#[test]
fn config_json_values_out_of_range_or_of_the_wrong_type_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("tiny");
    common::write_tiny_hf_folder(&folder, 3);
    let cases: &[(&str, serde_json::Value, &str)] = &[
        (
            "num_hidden_layers",
            serde_json::json!(1e12),
            "'num_hidden_layers' must be a non-negative integer",
        ),
        (
            "num_hidden_layers",
            serde_json::json!(u64::MAX),
            "num_hidden_layers must be in [1, 1024], got 18446744073709551615",
        ),
        (
            "num_hidden_layers",
            serde_json::json!(0),
            "num_hidden_layers must be in [1, 1024], got 0",
        ),
        (
            "rope_theta",
            serde_json::json!(0),
            "rope_theta must be a finite number > 0, got 0",
        ),
        (
            "rope_theta",
            serde_json::json!(-1),
            "rope_theta must be a finite number > 0, got -1",
        ),
        (
            "rope_theta",
            serde_json::json!("x"),
            "'rope_theta' must be a number, got \"x\"",
        ),
        (
            "rms_norm_eps",
            serde_json::json!(-1),
            "rms_norm_eps must be a finite number > 0, got -1",
        ),
        (
            "rms_norm_eps",
            serde_json::json!("x"),
            "'rms_norm_eps' must be a number",
        ),
        (
            "eos_token_id",
            serde_json::json!("x"),
            "'eos_token_id' must be a token id or a list of them",
        ),
        (
            "eos_token_id",
            serde_json::json!(100000),
            "special token id 100000 is outside the vocabulary of 258 tokens",
        ),
        (
            "rope_scaling",
            serde_json::json!("x"),
            "'rope_scaling' must be an object or null",
        ),
        (
            "max_position_embeddings",
            serde_json::json!(-1),
            "'max_position_embeddings' must be a non-negative integer, got -1",
        ),
        (
            "tie_word_embeddings",
            serde_json::json!("yes"),
            "'tie_word_embeddings' must be true or false",
        ),
        (
            "hidden_size",
            serde_json::json!(18),
            "hidden_size 18 is not divisible by num_attention_heads 4",
        ),
    ];
    for (key, value, cause) in cases {
        let mut cfg = common::tiny_config_json("llama");
        cfg[*key] = value.clone();
        std::fs::write(folder.join("config.json"), cfg.to_string()).unwrap();
        let (code, err) = info(&folder);
        assert_one_line_error(code, &err, &folder.join("config.json"), cause);
    }
}

#[test]
fn max_new_tokens_beyond_the_context_is_an_error_not_an_allocation() {
    let model = common::fixture("tiny_archs/llama");
    for n in ["18446744073709551615", "1000000000"] {
        let o = common::output(
            common::seft()
                .args(["generate", "--model"])
                .arg(&model)
                .args(["--prompt", "hi", "--max-new-tokens", n]),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("--max-new-tokens {n} exceeds")) && err.contains("context of"),
            "{err}"
        );
    }
}

#[test]
fn generation_stops_where_the_context_ends() {
    let model = seft::LanguageModel::load(
        &common::fixture("tiny_archs/llama").display().to_string(),
        &burn::tensor::Device::flex(),
    )
    .unwrap();
    let context = model.config.max_position_embeddings;
    let prompt = model.tokenizer.encode("hello", false).unwrap();
    let cfg = seft::model::generate::SamplingConfig {
        max_new_tokens: usize::MAX,
        stop_strings: Vec::new(),
        ..Default::default()
    };
    let out =
        seft::model::generate::generate(&model, std::slice::from_ref(&prompt), &cfg, |_, _| {})
            .unwrap();
    assert!(prompt.len() + out[0].token_ids.len() <= context);
    let too_long = vec![prompt[0]; context];
    let err = seft::model::generate::generate(&model, &[too_long], &cfg, |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("leaves no room in the model's context"),
        "{err}"
    );
}

#[test]
fn datasets_larger_than_their_limits_are_refused_naming_the_setting() {
    use seft::data::{ReadOptions, read_records};
    let small = ReadOptions {
        max_file_mib: 1,
        max_row_mib: 1,
        ..Default::default()
    };
    let err = read_records(Path::new("/dev/zero"), &small)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/dev/zero: the file is larger than the 1 MiB limit; raise data.max_file_mib"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    // 2.5 MiB of rows gzipped to a few kB.
    let gz = dir.path().join("bomb.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let row = "{\"prompt\": \"a\", \"completion\": \"b\"}\n";
    for _ in 0..(5 << 20) / (2 * row.len()) {
        std::io::Write::write_all(&mut enc, row.as_bytes()).unwrap();
    }
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let err = read_records(&gz, &small).unwrap_err().to_string();
    assert!(
        err.contains("bomb.jsonl.gz: the decompressed data is larger than the 1 MiB limit"),
        "{err}"
    );
    assert_eq!(
        read_records(&gz, &ReadOptions::default()).unwrap().0.len(),
        (5 << 20) / (2 * row.len())
    );
    // One row over the row limit is a bad row with its line.
    let long = dir.path().join("long.jsonl");
    let text = format!(
        "{row}{{\"prompt\": \"{}\", \"completion\": \"b\"}}\n",
        "x".repeat(1 << 20)
    );
    std::fs::write(&long, text).unwrap();
    let err = read_records(
        &long,
        &ReadOptions {
            max_row_mib: 1,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("long.jsonl:2: the row has 10486")
            && err.contains("bytes, more than the 1 MiB limit (data.max_row_mib)"),
        "{err}"
    );
}

#[test]
fn a_lora_rank_larger_than_the_projections_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = common::tiny_sft_config(
        tmp.path(),
        &format!(
            "[lora]\nrank = 1000000\nalpha = 16.0\n[output]\ndir = {:?}\n",
            tmp.path().join("out")
        ),
    );
    let o = common::output(common::seft().args(["sft", "--config"]).arg(&config));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("lora.rank 1000000 exceeds q_proj's"), "{err}");
}

#[test]
fn alpaca_eval_metrics_without_a_usable_preference_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let annotations = write(
        dir.path(),
        "annotations.json",
        br#"[{"instruction": "i", "output_1": "a", "generator_1": "r", "output_2": "b", "generator_2": "m", "preference": null}]"#,
    );
    let reference = write(
        dir.path(),
        "reference.json",
        br#"[{"instruction": "i", "output": "a", "generator": "r", "dataset": "d"}]"#,
    );
    let difficulty = write(dir.path(), "difficulty.csv", b"index,difficulty\n0,0.5\n");
    let o = common::output(
        common::seft()
            .args(["eval", "alpaca-eval", "--json", "--annotations"])
            .arg(&annotations)
            .arg("--reference")
            .arg(&reference)
            .arg("--instruction-difficulty")
            .arg(&difficulty),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("annotations.json: no usable preference among 1 annotations"),
        "{err}"
    );
}

#[test]
fn training_settings_out_of_range_are_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let config = common::tiny_sft_config(tmp.path(), "");
    for (i, (set, cause)) in [
        ("train.log_every=0", "train.log_every must be at least 1"),
        ("train.beta1=1", "train.beta1 must be in [0, 1), got 1"),
        ("train.beta2=1", "train.beta2 must be in [0, 1), got 1"),
        ("train.eps=0", "train.eps must be > 0, got 0"),
        (
            "train.weight_decay=-0.1",
            "train.weight_decay must be ≥ 0, got -0.1",
        ),
        (
            "train.max_grad_norm=-1",
            "train.max_grad_norm must be ≥ 0, got -1",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let out = tmp.path().join(format!("run{i}"));
        let o = common::output(
            common::seft()
                .args(["sft", "--config"])
                .arg(&config)
                .args(["--set", set, "--set"])
                .arg(format!("output.dir={:?}", out.display().to_string())),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{set}: {err}");
        assert!(err.contains(cause), "{set}: {err}");
        assert!(!out.exists(), "{set}: trained before refusing");
    }
}

#[test]
fn a_chat_template_that_would_render_for_ever_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("tiny");
    common::write_tiny_hf_folder(&folder, 5);
    for template in [
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        "{{ 'x' * 100000000000 }}",
    ] {
        let config = serde_json::json!({"eos_token": "<|im_end|>", "chat_template": template});
        std::fs::write(folder.join("tokenizer_config.json"), config.to_string()).unwrap();
        let started = std::time::Instant::now();
        let o = common::output(
            common::seft()
                .args([
                    "generate",
                    "--chat",
                    "--max-new-tokens",
                    "1",
                    "--prompt",
                    "hi",
                    "--model",
                ])
                .arg(&folder),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{template}: {err}");
        assert!(err.contains("chat template"), "{template}: {err}");
        assert!(
            started.elapsed().as_secs() < 60,
            "{template}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_tokenizer_with_ids_beyond_the_vocabulary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("tiny");
    common::write_tiny_hf_folder(&folder, 4);
    let mut tok: serde_json::Value = serde_json::from_str(&common::tiny_tokenizer_json()).unwrap();
    tok["added_tokens"].as_array_mut().unwrap().push(serde_json::json!(
        {"id": 9901, "content": "<big>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
    ));
    std::fs::write(folder.join("tokenizer.json"), tok.to_string()).unwrap();
    let (code, err) = info(&folder);
    assert_one_line_error(
        code,
        &err,
        &folder.join("tokenizer.json"),
        // tokenizers numbers an added token after the vocabulary: 258 here.
        "token \"<big>\" has id 258, outside the model's vocabulary of 258 (vocab_size)",
    );
}
