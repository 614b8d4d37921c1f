//! Tokenizers through the `tokenizers` crate: loaded from a Hugging Face `tokenizer.json`, or
//! rebuilt from GGUF metadata the way transformers rebuilds it
//! (`integrations/gguf/gguf_tokenizer_mapping.py`), so ids match transformers on the same file.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::{Value, json};
use tokenizers::Tokenizer;

use crate::error::{Result, SeftError};
use crate::model::chat::{ChatTemplate, Message};
use crate::model::gguf::{GgufFile, GgufValue};

/// A tokenizer with the special tokens and chat template of its checkpoint.
pub struct TextTokenizer {
    pub inner: Tokenizer,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
    /// Prepend BOS when encoding plain text (tokenizer_config's `add_bos_token`).
    pub add_bos_token: bool,
    pub chat_template: Option<ChatTemplate>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab", &self.inner.get_vocab_size(true))
            .field("bos", &self.bos_token)
            .field("eos", &self.eos_token)
            .finish()
    }
}

/// GPT-2's reversible byte → printable character table (`bytes_to_unicode`).
pub fn bytes_to_unicode() -> Vec<char> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut table = vec!['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        table[b as usize] = if printable.contains(&b) {
            char::from_u32(b).expect("latin-1")
        } else {
            let c = char::from_u32(next).expect("valid code point");
            next += 1;
            c
        };
    }
    table
}

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The split regex transformers uses for a `tokenizer.ggml.pre` value, if any.
fn pre_tokenizer_split(pre: &str) -> Option<&'static str> {
    match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "smaug-bpe" | "dbrx" | "pixtral" => {
            Some(LLAMA3_SPLIT)
        }
        "qwen2" | "deepseek-r1-qwen" | "megrez" => Some(QWEN2_SPLIT),
        _ => None,
    }
}

fn string_array<'a>(gguf: &'a GgufFile, key: &str) -> Result<Vec<&'a str>> {
    let arr = gguf.require(key)?.as_array().ok_or_else(|| {
        SeftError::file(&gguf.path, format!("metadata key '{key}' is not an array"))
    })?;
    arr.iter()
        .map(|v| {
            v.as_str().ok_or_else(|| {
                SeftError::file(
                    &gguf.path,
                    format!("metadata key '{key}' holds a non-string"),
                )
            })
        })
        .collect()
}

/// The longest token [`merges_from_scores`] splits.
const MAX_MERGED_TOKEN_BYTES: usize = 1024;

/// Merges implied by a sentencepiece vocabulary without a merge list (transformers'
/// `generate_merges` with scores): every split of a token into two known tokens, best score first.
fn merges_from_scores(tokens: &[&str], scores: &[f32]) -> Vec<(String, String)> {
    let vocab: HashMap<&str, usize> = tokens.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    let mut merges: Vec<(String, String, f32)> = Vec::new();
    for (token, &score) in tokens.iter().zip(scores) {
        // Each split hashes both halves: O(len²) per token. Real vocabularies' tokens are a
        // few dozen bytes; a file's megabyte-long "token" would stall the load, so such
        // tokens stay in the vocabulary without merges.
        if token.len() > MAX_MERGED_TOKEN_BYTES {
            continue;
        }
        let chars: Vec<(usize, char)> = token.char_indices().collect();
        let mut local = Vec::new();
        for &(split, _) in chars.iter().skip(1) {
            let (l, r) = token.split_at(split);
            if let (Some(&li), Some(&ri)) = (vocab.get(l), vocab.get(r)) {
                local.push((li, ri, l, r));
            }
        }
        local.sort_by_key(|&(li, ri, _, _)| (li, ri));
        merges.extend(
            local
                .into_iter()
                .map(|(_, _, l, r)| (l.to_string(), r.to_string(), score)),
        );
    }
    // Python's stable `sorted(..., key=(score, len(l), len(r)), reverse=True)`.
    merges.sort_by(|a, b| {
        let ka = (a.2, a.0.chars().count(), a.1.chars().count());
        let kb = (b.2, b.0.chars().count(), b.1.chars().count());
        kb.partial_cmp(&ka).unwrap_or(std::cmp::Ordering::Equal)
    });
    merges.into_iter().map(|(l, r, _)| (l, r)).collect()
}

/// A Hugging Face `tokenizer.json`. tokenizers 0.22 panics (an `expect`) on some malformed
/// files, so the JSON syntax is checked first and any panic left becomes an error naming the
/// file.
pub fn read_tokenizer_json(path: &Path) -> Result<Tokenizer> {
    let text = crate::input::read_metadata(path)?;
    serde_json::from_str::<serde::de::IgnoredAny>(&text)
        .map_err(|e| SeftError::file(path, format!("invalid JSON: {e}")))?;
    crate::error::catch_panic(|| text.parse::<Tokenizer>())
        .map_err(|panic| format!("the tokenizers crate failed: {panic}"))
        .and_then(|parsed| parsed.map_err(|e| e.to_string()))
        .map_err(|e| SeftError::file(path, format!("invalid tokenizer: {e}")))
}

impl TextTokenizer {
    /// Loads `tokenizer.json`, `tokenizer_config.json` (chat template, special tokens) and
    /// `generation_config.json` is read by the model loader.
    pub fn from_hf_folder(folder: &Path) -> Result<Self> {
        let path = folder.join("tokenizer.json");
        if !path.exists() {
            return Err(SeftError::file(folder, "missing tokenizer.json"));
        }
        let inner = read_tokenizer_json(&path)?;
        let config_path = folder.join("tokenizer_config.json");
        let config: Value = if config_path.exists() {
            let text = crate::input::read_metadata(&config_path)?;
            serde_json::from_str(&text)
                .map_err(|e| SeftError::file(&config_path, format!("invalid JSON: {e}")))?
        } else {
            json!({})
        };
        // Special tokens are strings or AddedToken objects {"content": ...}.
        let token = |key: &str| -> Option<String> {
            match config.get(key)? {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("content").and_then(Value::as_str).map(String::from),
                _ => None,
            }
        };
        let mut template_source = match config.get("chat_template") {
            Some(Value::String(s)) => Some(s.clone()),
            // A list of named templates: use "default".
            Some(Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template").and_then(Value::as_str))
                .map(String::from),
            _ => None,
        };
        let jinja = folder.join("chat_template.jinja");
        if template_source.is_none() && jinja.exists() {
            template_source = Some(crate::input::read_metadata(&jinja)?);
        }
        let mut tok = TextTokenizer {
            inner,
            bos_token: token("bos_token"),
            eos_token: token("eos_token"),
            pad_token: token("pad_token"),
            add_bos_token: config
                .get("add_bos_token")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            chat_template: None,
        };
        if let Some(src) = template_source {
            tok.set_chat_template(&src)
                .map_err(|e| SeftError::file(&config_path, e))?;
        }
        Ok(tok)
    }

    /// Rebuilds the tokenizer described by `tokenizer.ggml.*` metadata.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let model = gguf
            .require("tokenizer.ggml.model")?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let tokens = string_array(gguf, "tokenizer.ggml.tokens")?;
        let types: Vec<u64> = gguf
            .get("tokenizer.ggml.token_type")
            .and_then(GgufValue::as_array)
            .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(1)).collect())
            .unwrap_or_default();
        let id_key = |k: &str| gguf.get(k).and_then(GgufValue::as_u64).map(|i| i as usize);
        let token_at = |id: Option<usize>| id.and_then(|i| tokens.get(i)).map(|s| s.to_string());
        let bos_token = token_at(id_key("tokenizer.ggml.bos_token_id"));
        let eos_token = token_at(id_key("tokenizer.ggml.eos_token_id"));
        let unk_token = token_at(id_key("tokenizer.ggml.unknown_token_id"));
        let pad_token = token_at(id_key("tokenizer.ggml.padding_token_id"));
        let add_bos_flag = gguf
            .get("tokenizer.ggml.add_bos_token")
            .map(|v| matches!(v, GgufValue::Bool(true)));
        let merges: Option<Vec<(String, String)>> = match gguf.get("tokenizer.ggml.merges") {
            Some(_) => Some(
                string_array(gguf, "tokenizer.ggml.merges")?
                    .iter()
                    .map(|m| {
                        let (l, r) = m.split_once(' ').unwrap_or((m, ""));
                        (l.to_string(), r.to_string())
                    })
                    .collect(),
            ),
            None => None,
        };
        let byte_level = model == "gpt2";
        let (tokenizer_json, add_bos_token) = match model.as_str() {
            "gpt2" => (
                gpt2_tokenizer_json(gguf, &tokens, merges)?,
                add_bos_flag.unwrap_or(false),
            ),
            "llama" => (
                llama_tokenizer_json(gguf, &tokens, merges, &unk_token)?,
                add_bos_flag.unwrap_or(true),
            ),
            other => {
                return Err(SeftError::file(
                    &gguf.path,
                    format!("unsupported tokenizer.ggml.model '{other}' (supported: gpt2, llama)"),
                ));
            }
        };
        let mut inner: Tokenizer = serde_json::from_value(tokenizer_json)
            .map_err(|e| SeftError::file(&gguf.path, format!("cannot build tokenizer: {e}")))?;
        let named = [&bos_token, &eos_token, &unk_token, &pad_token];
        let (special, user) = added_tokens(&tokens, &types, byte_level, &named);
        inner.add_special_tokens(&special);
        inner.add_tokens(&user);
        let mut tok = TextTokenizer {
            inner,
            bos_token,
            eos_token,
            pad_token,
            add_bos_token,
            chat_template: None,
        };
        if let Some(src) = gguf
            .get("tokenizer.chat_template")
            .and_then(GgufValue::as_str)
        {
            tok.set_chat_template(src)
                .map_err(|e| SeftError::file(&gguf.path, e))?;
        }
        Ok(tok)
    }

    pub fn set_chat_template(&mut self, source: &str) -> std::result::Result<(), String> {
        self.chat_template = Some(ChatTemplate::new(
            source,
            self.bos_token.as_deref().unwrap_or(""),
            self.eos_token.as_deref().unwrap_or(""),
        )?);
        Ok(())
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Encodes text. `add_special` prepends BOS when the checkpoint asks for it (plain prompts);
    /// rendered chat text already carries its special tokens and is encoded without.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| SeftError::Invalid(format!("tokenization failed: {e}")))?;
        let mut ids = enc.get_ids().to_vec();
        if add_special
            && self.add_bos_token
            && let Some(bos) = self.bos_token.as_deref().and_then(|t| self.token_id(t))
        {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| SeftError::Invalid(format!("decoding failed: {e}")))
    }

    /// Renders a conversation with the checkpoint's chat template.
    pub fn apply_chat_template(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .chat_template
            .as_ref()
            .ok_or_else(|| SeftError::Invalid("this model has no chat template".into()))?;
        template.render(messages, add_generation_prompt)
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` (with the chat template) to `folder`.
    pub fn save(&self, folder: &Path) -> Result<()> {
        let path = folder.join("tokenizer.json");
        self.inner
            .save(&path, false)
            .map_err(|e| SeftError::file(&path, format!("cannot write tokenizer: {e}")))?;
        let mut config = json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": self.add_bos_token,
            "add_eos_token": false,
            "clean_up_tokenization_spaces": false,
            "model_max_length": 1_000_000_000_000_000_000u64,
        });
        let obj = config.as_object_mut().expect("object");
        for (key, value) in [
            ("bos_token", &self.bos_token),
            ("eos_token", &self.eos_token),
            ("pad_token", &self.pad_token),
        ] {
            if let Some(v) = value {
                obj.insert(key.into(), json!(v));
            }
        }
        if let Some(t) = &self.chat_template {
            obj.insert("chat_template".into(), json!(t.source));
        }
        let path = folder.join("tokenizer_config.json");
        let text = serde_json::to_string_pretty(&config).expect("serializable");
        std::fs::write(&path, text).map_err(|e| SeftError::io(&path, e))
    }
}

/// tokenizer.json of a GGUF `gpt2` (byte-level BPE) tokenizer.
fn gpt2_tokenizer_json(
    gguf: &GgufFile,
    tokens: &[&str],
    merges: Option<Vec<(String, String)>>,
) -> Result<Value> {
    let spelling = bytes_to_unicode();
    let alphabet: HashSet<char> = spelling.iter().copied().collect();
    let mut vocab = serde_json::Map::new();
    for (i, t) in tokens.iter().enumerate() {
        let spelled = if t.chars().all(|c| alphabet.contains(&c)) {
            t.to_string()
        } else {
            t.bytes().map(|b| spelling[b as usize]).collect()
        };
        vocab.insert(spelled, json!(i));
    }
    let merges = merges.ok_or_else(|| {
        SeftError::file(&gguf.path, "missing metadata key 'tokenizer.ggml.merges'")
    })?;
    let pre = gguf
        .get("tokenizer.ggml.pre")
        .and_then(GgufValue::as_str)
        .unwrap_or("");
    let pre_tokenizer = match pre_tokenizer_split(pre) {
        Some(regex) => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}),
        None => {
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
        }
    };
    let json = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
            "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges.iter().map(|(l, r)| json!([l, r])).collect::<Vec<_>>()},
    });
    Ok(json)
}

/// tokenizer.json of a GGUF `llama` (SentencePiece-style BPE with byte fallback) tokenizer.
fn llama_tokenizer_json(
    gguf: &GgufFile,
    tokens: &[&str],
    merges: Option<Vec<(String, String)>>,
    unk_token: &Option<String>,
) -> Result<Value> {
    let vocab: serde_json::Map<String, Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), json!(i)))
        .collect();
    let merges = match merges {
        Some(m) => m,
        None => {
            let scores: Vec<f32> = gguf
                .require("tokenizer.ggml.scores")?
                .as_array()
                .map(|a| a.iter().map(|v| v.as_f64().unwrap_or(0.0) as f32).collect())
                .unwrap_or_default();
            merges_from_scores(tokens, &scores)
        }
    };
    let json = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "first", "split": false},
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": null, "unk_token": unk_token, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab, "merges": merges.iter().map(|(l, r)| json!([l, r])).collect::<Vec<_>>()},
    });
    Ok(json)
}

/// The added tokens of a GGUF vocabulary: (special, plain).
fn added_tokens(
    tokens: &[&str],
    types: &[u64],
    byte_level: bool,
    named: &[&Option<String>],
) -> (Vec<tokenizers::AddedToken>, Vec<tokenizers::AddedToken>) {
    // Control tokens (type 3) become special added tokens, user-defined ones (type 4) plain
    // added tokens; a byte-level "control" token spelled outside the byte alphabet is a
    // llama.cpp mislabel and is skipped, as transformers does.
    let alphabet: HashSet<char> = bytes_to_unicode().into_iter().collect();
    let mut special = Vec::new();
    let mut user = Vec::new();
    for (t, &ty) in tokens.iter().zip(types) {
        if ty == 3 && (!byte_level || t.chars().all(|c| alphabet.contains(&c))) {
            special.push(tokenizers::AddedToken::from(t.to_string(), true).normalized(false));
        } else if ty == 4 {
            user.push(tokenizers::AddedToken::from(t.to_string(), false).normalized(false));
        }
    }
    // The named special tokens are always added whole, like transformers' special-token map.
    for t in named.iter().copied().flatten() {
        if !special.iter().any(|a| &a.content == t) {
            special.push(tokenizers::AddedToken::from(t.clone(), true).normalized(false));
        }
    }
    (special, user)
}

/// Convenience for callers that hold plain (role, content) pairs.
pub fn messages(pairs: &[(&str, &str)]) -> Vec<Message> {
    pairs.iter().map(|(r, c)| Message::new(r, c)).collect()
}
