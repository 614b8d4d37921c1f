//! SmolLM2-135M-Instruct (GGUF Q4_1) against transformers on the same file: chat templates,
//! token ids, last-position logits, greedy continuations, batched generation and the
//! safetensors round trip. Reference: tests/fixtures/smollm2/reference.json, written by
//! make_reference.py next to it.

mod common;

use std::sync::OnceLock;

use burn::tensor::Device;
use seft::LanguageModel;
use seft::model::Message;
use seft::model::batch::Batch;
use seft::model::generate::{SamplingConfig, generate};
use serde_json::Value;

fn reference() -> &'static Value {
    static REF: OnceLock<Value> = OnceLock::new();
    REF.get_or_init(|| {
        let text =
            std::fs::read_to_string(common::fixture("smollm2/reference.json")).expect("fixture");
        serde_json::from_str(&text).expect("fixture JSON")
    })
}

fn model() -> &'static LanguageModel {
    static MODEL: OnceLock<LanguageModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        LanguageModel::load(common::smollm2_gguf().to_str().unwrap(), &Device::flex())
            .expect("load GGUF")
    })
}

fn cases() -> &'static [Value] {
    reference()["cases"].as_array().expect("cases")
}

fn messages(case: &Value) -> Vec<Message> {
    serde_json::from_value(case["messages"].clone()).expect("messages")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn last_logits(model: &LanguageModel, prompt: &[u32]) -> Vec<f32> {
    let batch = Batch {
        ids: vec![prompt.to_vec()],
        valid: vec![vec![true; prompt.len()]],
        positions: vec![(0..prompt.len()).collect()],
        segments: None,
    };
    let logits = model.net.forward(&batch);
    let [_, s, v] = logits.dims();
    seft::numeric::to_f32_vec(logits.slice([0..1, s - 1..s, 0..v]))
}

#[test]
fn config_matches_the_model_card() {
    let c = &model().config;
    assert_eq!(
        (
            c.num_hidden_layers,
            c.hidden_size,
            c.num_attention_heads,
            c.num_key_value_heads,
            c.vocab_size
        ),
        (30, 576, 9, 3, 49152)
    );
    assert!(c.tie_word_embeddings);
    assert_eq!(c.parameter_count(), 134_515_008);
}

#[test]
fn chat_template_renders_like_transformers() {
    let tok = &model().tokenizer;
    assert!(cases().len() >= 3);
    for case in cases() {
        let m = messages(case);
        assert_eq!(
            tok.apply_chat_template(&m, true).unwrap(),
            case["rendered_with_generation_prompt"].as_str().unwrap()
        );
        assert_eq!(
            tok.apply_chat_template(&m, false).unwrap(),
            case["rendered_without_generation_prompt"].as_str().unwrap()
        );
    }
}

#[test]
fn token_ids_match_transformers() {
    let tok = &model().tokenizer;
    for case in cases() {
        let text = case["rendered_with_generation_prompt"].as_str().unwrap();
        assert_eq!(
            tok.encode(text, false).unwrap(),
            ids(&case["input_ids"]),
            "{text:?}"
        );
    }
    for plain in reference()["plain_texts"].as_array().unwrap() {
        let text = plain["text"].as_str().unwrap();
        assert_eq!(
            tok.encode(text, true).unwrap(),
            ids(&plain["ids"]),
            "{text:?}"
        );
    }
}

#[test]
fn last_position_logits_match_transformers() {
    let model = model();
    for case in cases() {
        let logits = last_logits(model, &ids(&case["input_ids"]));
        let r = &case["logits"];
        let stride = r["stride"].as_u64().unwrap() as usize;
        let mut max_diff = 0f32;
        for (i, expected) in r["strided"].as_array().unwrap().iter().enumerate() {
            max_diff = max_diff.max((logits[i * stride] - expected.as_f64().unwrap() as f32).abs());
        }
        for (id, value) in r["top_ids"]
            .as_array()
            .unwrap()
            .iter()
            .zip(r["top_values"].as_array().unwrap())
        {
            let got = logits[id.as_u64().unwrap() as usize];
            max_diff = max_diff.max((got - value.as_f64().unwrap() as f32).abs());
        }
        assert!(max_diff < 1e-3, "max |logit - transformers| = {max_diff}");
        let best = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        assert_eq!(best as u64, r["top_ids"][0].as_u64().unwrap());
    }
}

#[test]
fn greedy_continuations_match_transformers_token_for_token() {
    let model = model();
    let cfg = SamplingConfig {
        max_new_tokens: 32,
        ..Default::default()
    };
    for case in cases() {
        let out = generate(model, &[ids(&case["input_ids"])], &cfg, |_, _| {}).unwrap();
        let mut got = out[0].token_ids.clone();
        if out[0].finish_reason == seft::model::generate::FinishReason::Eos {
            got.push(model.eos_token_ids[0]);
        }
        assert_eq!(got, ids(&case["greedy_ids"]));
        assert_eq!(out[0].text, case["greedy_text"].as_str().unwrap());
    }
}

#[test]
fn batched_generation_equals_one_prompt_at_a_time() {
    let model = model();
    let cfg = SamplingConfig {
        max_new_tokens: 32,
        ..Default::default()
    };
    let prompts: Vec<Vec<u32>> = cases().iter().map(|c| ids(&c["input_ids"])).collect();
    assert!(
        prompts
            .iter()
            .map(Vec::len)
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1
    );
    let batched = generate(model, &prompts, &cfg, |_, _| {}).unwrap();
    for (case, out) in cases().iter().zip(&batched) {
        let expected: Vec<u32> = ids(&case["greedy_ids"])
            .into_iter()
            .filter(|t| !model.eos_token_ids.contains(t))
            .collect();
        assert_eq!(out.token_ids, expected);
    }
}

#[test]
fn seeded_sampling_is_reproducible() {
    let model = model();
    let cfg = SamplingConfig {
        max_new_tokens: 12,
        temperature: 0.9,
        top_k: 50,
        top_p: 0.95,
        repetition_penalty: 1.1,
        seed: 42,
        ..Default::default()
    };
    let prompt = ids(&cases()[0]["input_ids"]);
    let a = generate(model, std::slice::from_ref(&prompt), &cfg, |_, _| {}).unwrap();
    let b = generate(model, std::slice::from_ref(&prompt), &cfg, |_, _| {}).unwrap();
    assert_eq!(a, b);
}

#[test]
fn stop_strings_cut_the_text() {
    let model = model();
    let greedy = cases()[0]["greedy_text"].as_str().unwrap();
    let word = greedy.split_whitespace().nth(2).expect("a third word");
    let cfg = SamplingConfig {
        max_new_tokens: 32,
        stop_strings: vec![word.to_string()],
        ..Default::default()
    };
    let out = generate(model, &[ids(&cases()[0]["input_ids"])], &cfg, |_, _| {}).unwrap();
    assert_eq!(
        out[0].finish_reason,
        seft::model::generate::FinishReason::Stop
    );
    assert_eq!(out[0].text, greedy[..greedy.find(word).unwrap()]);
}

#[test]
fn safetensors_round_trip_gives_identical_logits() {
    let model = model();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exported");
    model.save_hf_folder(&out).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let reloaded = LanguageModel::load(out.to_str().unwrap(), &Device::flex()).unwrap();
    let prompt = ids(&cases()[1]["input_ids"]);
    assert_eq!(last_logits(model, &prompt), last_logits(&reloaded, &prompt));
    let m = messages(&cases()[2]);
    assert_eq!(
        reloaded.tokenizer.apply_chat_template(&m, true).unwrap(),
        model.tokenizer.apply_chat_template(&m, true).unwrap()
    );
    // transformers loaded seft's export when the fixture was made (make_reference.py).
    let rt = &reference()["round_trip"];
    assert_eq!(rt["transformers_loads_export"], Value::Bool(true));
    assert!(
        rt["max_abs_logit_diff_vs_gguf"].as_f64().unwrap() < 1e-4,
        "{rt}"
    );
    assert_eq!(rt["tokenizer_ids_identical"], Value::Bool(true));
    assert_eq!(rt["chat_template_identical"], Value::Bool(true));
}
