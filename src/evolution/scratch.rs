//! A small Llama-architecture decoder initialized from scratch, written as a Hugging Face
//! folder (so every later stage loads it like any checkpoint): byte-level tokenizer with no
//! merges (every UTF-8 byte is a token, nothing to download or train), three special tokens
//! and a compact chat template, tied embeddings.

use std::path::Path;

use serde_json::json;

use crate::error::{Result, SeftError};
use crate::evolution::run_config::ScratchModel;
use crate::model::ModelConfig;
use crate::model::tokenizer::bytes_to_unicode;
use crate::model::weights::{InitSource, build_model, save_safetensors};

const SPECIAL_TOKENS: [&str; 3] = ["<|im_end|>", "<|user|>", "<|assistant|>"];

/// User turns as `<|user|>text`, assistant turns as `<|assistant|>text<|im_end|>`: a few
/// tokens of scaffolding, since a byte-level model pays one token per character.
pub const SCRATCH_CHAT_TEMPLATE: &str = "{% for m in messages %}{% if m.role == 'assistant' %}<|assistant|>{{ m.content }}<|im_end|>{% else %}<|user|>{{ m.content }}{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

/// tokenizer.json of a byte-level BPE without merges, special tokens first.
pub fn byte_level_tokenizer_json(special: &[&str]) -> serde_json::Value {
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (i, s) in special.iter().enumerate() {
        vocab.insert(s.to_string(), i.into());
        added.push(
            json!({"id": i, "content": s, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true}),
        );
    }
    for (i, c) in bytes_to_unicode().iter().enumerate() {
        vocab.insert(c.to_string(), (i + special.len()).into());
    }
    json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
            "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": []}
    })
}

/// Writes the folder: config.json, tokenizer files, model.safetensors (seeded init).
pub fn write_scratch_model(spec: &ScratchModel, seed: u64, folder: &Path) -> Result<()> {
    let io = |p: &Path, r: std::io::Result<()>| r.map_err(|e| SeftError::io(p, e));
    io(folder, std::fs::create_dir_all(folder))?;
    let vocab = SPECIAL_TOKENS.len() + 256;
    let config = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": vocab, "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size, "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads, "num_key_value_heads": spec.heads,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "max_position_embeddings": spec.max_positions, "tie_word_embeddings": true,
        "eos_token_id": 0, "initializer_range": spec.init_std, "torch_dtype": "float32"
    });
    let config_path = folder.join("config.json");
    io(
        &config_path,
        std::fs::write(&config_path, config.to_string()),
    )?;
    let tok_path = folder.join("tokenizer.json");
    io(
        &tok_path,
        std::fs::write(
            &tok_path,
            byte_level_tokenizer_json(&SPECIAL_TOKENS).to_string(),
        ),
    )?;
    let tok_config = json!({"eos_token": SPECIAL_TOKENS[0], "pad_token": SPECIAL_TOKENS[0],
        "chat_template": SCRATCH_CHAT_TEMPLATE, "tokenizer_class": "PreTrainedTokenizerFast"});
    let tok_config_path = folder.join("tokenizer_config.json");
    io(
        &tok_config_path,
        std::fs::write(&tok_config_path, tok_config.to_string()),
    )?;
    let cfg = ModelConfig::from_hf_json(&config_path)?;
    let device = crate::backend::Backend::default().device()?;
    let net = build_model(&cfg, &mut InitSource::new(seed, spec.init_std), &device)?;
    save_safetensors(&net, &folder.join("model.safetensors"))
}
