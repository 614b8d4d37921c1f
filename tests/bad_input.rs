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
