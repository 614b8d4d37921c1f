//! GGUF dequantization against gguf-py (llama.cpp's reference Python package) for every type
//! seft reads, and the llama.cpp q/k permutation undone as transformers does.

mod common;

use seft::model::gguf::{GgmlType, GgufFile, dequantize};

fn ggml_type(name: &str) -> GgmlType {
    match name {
        "Q4_0" => GgmlType::Q4_0,
        "Q4_1" => GgmlType::Q4_1,
        "Q8_0" => GgmlType::Q8_0,
        "Q4_K" => GgmlType::Q4K,
        "Q6_K" => GgmlType::Q6K,
        "F16" => GgmlType::F16,
        "BF16" => GgmlType::BF16,
        other => panic!("unexpected type {other}"),
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn dequantization_matches_gguf_py_exactly() {
    let text = std::fs::read_to_string(common::fixture("gguf_quants/quants.json")).unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    for case in cases {
        let ty = ggml_type(case["type"].as_str().unwrap());
        let raw = hex(case["raw_hex"].as_str().unwrap());
        let expected: Vec<f32> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let got = dequantize(ty, &raw, expected.len());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!(
                (g - e).abs() <= 1e-6 * e.abs().max(1e-3),
                "{ty:?}[{i}]: {g} vs {e}"
            );
        }
    }
}

#[test]
fn gguf_files_with_each_type_read_through_the_tensor_table() {
    let text = std::fs::read_to_string(common::fixture("gguf_quants/quants.json")).unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all_types.gguf");
    let tensors: Vec<(String, Vec<usize>, u32, Vec<u8>)> = fixture["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let n = c["values"].as_array().unwrap().len();
            (
                format!("t.{}", c["type"].as_str().unwrap()),
                vec![2, n / 2],
                c["ggml_id"].as_u64().unwrap() as u32,
                hex(c["raw_hex"].as_str().unwrap()),
            )
        })
        .collect();
    let refs: Vec<(&str, Vec<usize>, u32, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, t, r)| (n.as_str(), s.clone(), *t, r.clone()))
        .collect();
    common::write_gguf(
        &path,
        &[("general.architecture", common::Meta::Str("llama".into()))],
        &refs,
    );
    let gguf = GgufFile::open(&path).unwrap();
    for c in fixture["cases"].as_array().unwrap() {
        let (data, shape) = gguf
            .read_f32(&format!("t.{}", c["type"].as_str().unwrap()))
            .unwrap();
        let n = c["values"].as_array().unwrap().len();
        assert_eq!(shape, vec![2, n / 2]);
        assert_eq!(data.len(), n);
        assert!((data[n - 1] - c["values"][n - 1].as_f64().unwrap() as f32).abs() < 1e-6);
    }
}

#[test]
fn reverse_permute_undoes_llama_cpp_permute() {
    // llama.cpp: w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols)
    let (n_head, rows, cols) = (3, 12, 2);
    let original: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
    let half = rows / n_head / 2;
    let mut permuted = vec![0f32; original.len()];
    for h in 0..n_head {
        for i in 0..2 {
            for j in 0..half {
                let src = h * 2 * half + i * half + j;
                let dst = h * 2 * half + j * 2 + i;
                permuted[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&original[src * cols..(src + 1) * cols]);
            }
        }
    }
    assert_ne!(permuted, original);
    assert_eq!(
        seft::model::weights::reverse_permute(&permuted, rows, cols, n_head),
        original
    );
}
