//! Hyper-parameters of a Llama-family decoder, read from a Hugging Face `config.json` or from
//! GGUF metadata, and written back as a `config.json` that transformers accepts.

use std::path::Path;

use serde_json::{Value, json};

use crate::error::{Result, SeftError};
use crate::model::gguf::GgufFile;

/// The decoder families seft implements; they share one block layout and differ in details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama 2/3 and SmolLM2.
    Llama,
    /// Mistral: Llama blocks (seft attends over the full context; see `sliding_window`).
    Mistral,
    /// Qwen2: Llama blocks with biases on the q/k/v projections.
    Qwen2,
}

impl Architecture {
    pub fn model_type(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Mistral => "mistral",
            Architecture::Qwen2 => "qwen2",
        }
    }

    pub fn hf_class(self) -> &'static str {
        match self {
            Architecture::Llama => "LlamaForCausalLM",
            Architecture::Mistral => "MistralForCausalLM",
            Architecture::Qwen2 => "Qwen2ForCausalLM",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "llama" | "LlamaForCausalLM" => Some(Architecture::Llama),
            "mistral" | "MistralForCausalLM" => Some(Architecture::Mistral),
            "qwen2" | "Qwen2ForCausalLM" => Some(Architecture::Qwen2),
            _ => None,
        }
    }
}

/// Feed-forward block of a decoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlpKind {
    /// `down(silu(gate(x)) * up(x))`, as in every supported checkpoint.
    SwiGlu,
    /// `down(relu(up(x) - b))`: a wide shifted-ReLU layer whose firing neurons the sparse
    /// trainer finds with its tree (`b` = `relu_threshold`). Saved with `"seft_mlp": "relu"`,
    /// a key transformers does not know.
    Relu,
}

/// How rotary frequencies are rescaled for long contexts (`rope_scaling` in config.json).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor`.
    Linear {
        factor: f64,
    },
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

/// Upper bounds of [`ModelConfig::validate`]: well above every released Llama-family model
/// (Llama 3.1 405B: 126 layers, width 16384, FFN 53248, vocabulary 128256, 128k context).
const MAX_LAYERS: usize = 1024;
const MAX_WIDTH: usize = 1 << 20;
const MAX_HEADS: usize = 4096;
const MAX_VOCAB: usize = 1 << 24;
const MAX_CONTEXT: usize = 1 << 24;
const MAX_PARAMETERS: u64 = 1 << 41;

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Biases on q/k/v projections (Qwen2; Llama's `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on the output projection (Llama's `attention_bias` sets both).
    pub o_bias: bool,
    pub mlp: MlpKind,
    pub relu_threshold: f64,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// Mistral/Qwen2 sliding window, kept for the saved config; seft attends over the whole
    /// context, which is identical while sequences are shorter than the window.
    pub sliding_window: Option<usize>,
    /// The dtype the checkpoint was stored in (informational; seft computes in f32).
    pub torch_dtype: String,
}

impl ModelConfig {
    /// Number of parameters, counting a tied embedding once ([`ModelConfig::validate`] has
    /// checked that it fits in a u64).
    pub fn parameter_count(&self) -> u64 {
        self.checked_parameter_count().unwrap_or(u64::MAX)
    }

    /// The parameter count, or None when the sizes overflow it.
    fn checked_parameter_count(&self) -> Option<u64> {
        let n = |x: usize| x as u64;
        let (h, i, v) = (
            n(self.hidden_size),
            n(self.intermediate_size),
            n(self.vocab_size),
        );
        let q = n(self.num_attention_heads).checked_mul(n(self.head_dim))?;
        let kv = n(self.num_key_value_heads).checked_mul(n(self.head_dim))?;
        let mut attn = h.checked_mul(q.checked_mul(2)?.checked_add(kv.checked_mul(2)?)?)?;
        if self.qkv_bias {
            attn = attn.checked_add(q.checked_add(kv.checked_mul(2)?)?)?;
        }
        if self.o_bias {
            attn = attn.checked_add(h)?;
        }
        let mlp_matrices = match self.mlp {
            MlpKind::SwiGlu => 3,
            MlpKind::Relu => 2,
        };
        let mlp = h.checked_mul(i)?.checked_mul(mlp_matrices)?;
        let per_layer = attn.checked_add(mlp)?.checked_add(h.checked_mul(2)?)?;
        let embeddings = v.checked_mul(h)?;
        let head = if self.tie_word_embeddings {
            0
        } else {
            embeddings
        };
        n(self.num_hidden_layers)
            .checked_mul(per_layer)?
            .checked_add(embeddings)?
            .checked_add(h)?
            .checked_add(head)
    }

    /// Every size and setting in its range, so that building the model cannot overflow or
    /// divide by zero; the message names the key (as config.json spells it) and the range.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let sizes = [
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("hidden_size", self.hidden_size, MAX_WIDTH),
            ("intermediate_size", self.intermediate_size, MAX_WIDTH),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", self.num_attention_heads, MAX_HEADS),
            ("num_key_value_heads", self.num_key_value_heads, MAX_HEADS),
            ("head_dim", self.head_dim, MAX_WIDTH),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                MAX_CONTEXT,
            ),
        ];
        for (key, value, max) in sizes {
            if !(1..=max).contains(&value) {
                return Err(format!("{key} must be in [1, {max}], got {value}"));
            }
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim must be even (rotary embeddings rotate pairs), got {}",
                self.head_dim
            ));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        // Computed in f32: a value that rounds to 0 or ∞ there is as bad as 0 or ∞.
        let positive = |key: &str, x: f64| {
            if x.is_finite() && x > 0.0 && (x as f32).is_normal() {
                Ok(())
            } else {
                Err(format!("{key} must be a finite number > 0, got {x}"))
            }
        };
        positive("rms_norm_eps", self.rms_norm_eps)?;
        positive("rope_theta", self.rope_theta)?;
        match self.rope_scaling {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } => positive("rope_scaling.factor", factor)?,
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                positive("rope_scaling.factor", factor)?;
                positive("rope_scaling.low_freq_factor", low_freq_factor)?;
                positive("rope_scaling.high_freq_factor", high_freq_factor)?;
                positive(
                    "rope_scaling.original_max_position_embeddings",
                    original_max_position_embeddings,
                )?;
                if high_freq_factor <= low_freq_factor {
                    return Err(format!(
                        "rope_scaling.high_freq_factor ({high_freq_factor}) must be larger than low_freq_factor ({low_freq_factor})"
                    ));
                }
            }
        }
        if !self.relu_threshold.is_finite() {
            return Err("seft_relu_threshold must be finite".into());
        }
        let vocab = self.vocab_size as u64;
        for id in self.bos_token_id.iter().chain(&self.eos_token_ids) {
            if u64::from(*id) >= vocab {
                return Err(format!(
                    "special token id {id} is outside the vocabulary of {vocab} tokens"
                ));
            }
        }
        match self.checked_parameter_count() {
            Some(n) if n <= MAX_PARAMETERS => Ok(()),
            _ => Err(format!(
                "the sizes describe more than {MAX_PARAMETERS} parameters"
            )),
        }
    }

    /// Reads a Hugging Face `config.json`.
    pub fn from_hf_json(path: &Path) -> Result<Self> {
        let text = crate::input::read_metadata(path)?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| SeftError::file(path, format!("invalid JSON: {e}")))?;
        Self::from_hf_value(&v).map_err(|msg| SeftError::file(path, msg))
    }

    fn from_hf_value(v: &Value) -> Result<Self, String> {
        let model_type = v.get("model_type").and_then(Value::as_str);
        let class = v
            .get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str);
        let architecture = model_type
            .and_then(Architecture::parse)
            .or_else(|| class.and_then(Architecture::parse))
            .ok_or_else(|| {
                format!(
                    "unknown architecture (model_type {:?}, architectures {:?}); supported: llama, mistral, qwen2",
                    model_type.unwrap_or("missing"),
                    class.unwrap_or("missing")
                )
            })?;
        let usize_key = |key: &str| -> Result<usize, String> {
            opt_usize(v, key)?.ok_or_else(|| format!("missing key '{key}'"))
        };
        let optional = |key: &str| opt_usize(v, key);
        let f64_key = |key: &str, default: f64| -> Result<f64, String> {
            match present(v, key) {
                None => Ok(default),
                Some(x) => x
                    .as_f64()
                    .ok_or_else(|| format!("'{key}' must be a number, got {x}")),
            }
        };
        let bool_key = |key: &str, default: bool| -> Result<bool, String> {
            match present(v, key) {
                None => Ok(default),
                Some(x) => x
                    .as_bool()
                    .ok_or_else(|| format!("'{key}' must be true or false, got {x}")),
            }
        };
        let hidden_size = usize_key("hidden_size")?;
        let num_attention_heads = usize_key("num_attention_heads")?;
        if num_attention_heads == 0
            || hidden_size % num_attention_heads != 0 && optional("head_dim")?.is_none()
        {
            return Err(format!(
                "hidden_size {hidden_size} is not divisible by num_attention_heads {num_attention_heads}"
            ));
        }
        let head_dim = optional("head_dim")?.unwrap_or(hidden_size / num_attention_heads);
        let num_key_value_heads = optional("num_key_value_heads")?.unwrap_or(num_attention_heads);
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(format!(
                "num_attention_heads {num_attention_heads} is not a multiple of num_key_value_heads {num_key_value_heads}"
            ));
        }
        let attention_bias = bool_key("attention_bias", false)?;
        let (qkv_bias, o_bias) = match architecture {
            Architecture::Qwen2 => (true, false),
            _ => (attention_bias, attention_bias),
        };
        if bool_key("mlp_bias", false)? {
            return Err("mlp_bias = true is not supported".into());
        }
        let mlp = mlp_kind(v)?;
        let (rope_theta, rope_scaling) = rope_settings(v)?;
        let sliding_window = match architecture {
            Architecture::Qwen2 if !bool_key("use_sliding_window", false)? => None,
            _ => optional("sliding_window")?,
        };
        let config = ModelConfig {
            architecture,
            vocab_size: usize_key("vocab_size")?,
            hidden_size,
            intermediate_size: usize_key("intermediate_size")?,
            num_hidden_layers: usize_key("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: f64_key("rms_norm_eps", 1e-6)?,
            rope_theta,
            rope_scaling,
            max_position_embeddings: optional("max_position_embeddings")?.unwrap_or(4096),
            tie_word_embeddings: bool_key("tie_word_embeddings", false)?,
            qkv_bias,
            o_bias,
            mlp,
            relu_threshold: f64_key("seft_relu_threshold", 0.0)?,
            bos_token_id: token_ids(v, "bos_token_id")?.first().copied(),
            eos_token_ids: token_ids(v, "eos_token_id")?,
            sliding_window,
            torch_dtype: v
                .get("torch_dtype")
                .or_else(|| v.get("dtype"))
                .and_then(Value::as_str)
                .unwrap_or("float32")
                .to_string(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads the hyper-parameters from GGUF metadata (llama.cpp's `{arch}.*` keys).
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let arch_name = gguf
            .require("general.architecture")?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let architecture = match arch_name.as_str() {
            "llama" => Architecture::Llama,
            "mistral" => Architecture::Mistral,
            "qwen2" => Architecture::Qwen2,
            other => {
                return Err(SeftError::file(
                    &gguf.path,
                    format!(
                        "unknown architecture '{other}' in general.architecture; supported: llama, mistral, qwen2"
                    ),
                ));
            }
        };
        let key = |k: &str| format!("{arch_name}.{k}");
        let u = |k: &str| gguf.require_u64(&key(k)).map(|x| x as usize);
        let f = |k: &str, default: f64| {
            gguf.get(&key(k))
                .and_then(|v| v.as_f64())
                .unwrap_or(default)
        };
        let hidden_size = u("embedding_length")?;
        let num_attention_heads = u("attention.head_count")?;
        let num_key_value_heads = gguf
            .get(&key("attention.head_count_kv"))
            .and_then(|v| v.as_u64())
            .map(|x| x as usize)
            .unwrap_or(num_attention_heads);
        let head_dim = gguf
            .get(&key("attention.key_length"))
            .and_then(|v| v.as_u64())
            .map(|x| x as usize)
            .unwrap_or(hidden_size / num_attention_heads.max(1));
        let vocab_size = match gguf.get(&key("vocab_size")).and_then(|v| v.as_u64()) {
            Some(n) => n as usize,
            None => gguf
                .require("tokenizer.ggml.tokens")?
                .as_array()
                .map(|a| a.len())
                .unwrap_or(0),
        };
        let rope_scaling = match gguf.get(&key("rope.scaling.type")).and_then(|v| v.as_str()) {
            None | Some("none") => RopeScaling::None,
            Some("linear") => RopeScaling::Linear {
                factor: f("rope.scaling.factor", 1.0),
            },
            Some(other) => {
                return Err(SeftError::file(
                    &gguf.path,
                    format!(
                        "unsupported rope scaling '{other}' in {}",
                        key("rope.scaling.type")
                    ),
                ));
            }
        };
        let tie_word_embeddings = gguf.tensor_info("output.weight").is_none();
        let qkv_bias = gguf.tensor_info("blk.0.attn_q.bias").is_some();
        let o_bias = gguf.tensor_info("blk.0.attn_output.bias").is_some();
        // An id beyond u32 becomes u32::MAX, which validation reports as outside the vocabulary.
        let id = |k: &str| {
            gguf.get(k)
                .and_then(|v| v.as_u64())
                .map(|x| u32::try_from(x).unwrap_or(u32::MAX))
        };
        let config = ModelConfig {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size: u("feed_forward_length")?,
            num_hidden_layers: u("block_count")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: f("attention.layer_norm_rms_epsilon", 1e-6),
            rope_theta: f("rope.freq_base", 10000.0),
            rope_scaling,
            max_position_embeddings: u("context_length").unwrap_or(4096),
            tie_word_embeddings,
            qkv_bias,
            o_bias,
            mlp: MlpKind::SwiGlu,
            relu_threshold: 0.0,
            bos_token_id: id("tokenizer.ggml.bos_token_id"),
            eos_token_ids: id("tokenizer.ggml.eos_token_id").into_iter().collect(),
            sliding_window: None,
            torch_dtype: "float32".into(),
        };
        config
            .validate()
            .map_err(|msg| SeftError::file(&gguf.path, gguf_key_names(&msg, &arch_name)))?;
        Ok(config)
    }

    /// The `config.json` transformers needs to load a folder seft saved.
    pub fn to_hf_json(&self) -> Value {
        let mut v = json!({
            "architectures": [self.architecture.hf_class()],
            "model_type": self.architecture.model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": "float32",
            "use_cache": true,
        });
        let obj = v.as_object_mut().expect("json! object");
        if self.architecture != Architecture::Qwen2 {
            obj.insert("attention_bias".into(), json!(self.qkv_bias));
            obj.insert("mlp_bias".into(), json!(false));
        }
        if let Some(id) = self.bos_token_id {
            obj.insert("bos_token_id".into(), json!(id));
        }
        match self.eos_token_ids.as_slice() {
            [] => {}
            [one] => {
                obj.insert("eos_token_id".into(), json!(one));
            }
            many => {
                obj.insert("eos_token_id".into(), json!(many));
            }
        }
        if let Some(w) = self.sliding_window {
            obj.insert("sliding_window".into(), json!(w));
        }
        match &self.rope_scaling {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } => {
                obj.insert(
                    "rope_scaling".into(),
                    json!({"rope_type": "linear", "factor": factor}),
                );
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                obj.insert(
                    "rope_scaling".into(),
                    json!({"rope_type": "llama3", "factor": factor, "low_freq_factor": low_freq_factor,
                        "high_freq_factor": high_freq_factor,
                        "original_max_position_embeddings": original_max_position_embeddings}),
                );
            }
        }
        if self.mlp == MlpKind::Relu {
            obj.insert("seft_mlp".into(), json!("relu"));
            obj.insert("seft_relu_threshold".into(), json!(self.relu_threshold));
        }
        v
    }
}

fn parse_rope_scaling(v: Option<&Value>) -> Result<RopeScaling, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(RopeScaling::None);
    };
    if !v.is_object() {
        return Err(format!("'rope_scaling' must be an object or null, got {v}"));
    }
    let kind = v
        .get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let num = |k: &str| {
        v.get(k)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("rope_scaling.{k} is missing"))
    };
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear {
            factor: num("factor")?,
        }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: num("factor")?,
            low_freq_factor: num("low_freq_factor")?,
            high_freq_factor: num("high_freq_factor")?,
            original_max_position_embeddings: num("original_max_position_embeddings")?,
        }),
        other => Err(format!(
            "rope_scaling type '{other}' is not supported (supported: default, linear, llama3)"
        )),
    }
}

/// Inverse frequencies of the rotary embedding, following transformers'
/// `_compute_default_rope_parameters` / `_compute_llama3_parameters`.
pub fn rope_inv_freq(cfg: &ModelConfig) -> Vec<f32> {
    let dim = cfg.head_dim;
    // transformers computes `base ** (arange(0, dim, 2).float() / dim)` in float32.
    let base = cfg.rope_theta as f32;
    let mut inv: Vec<f32> = (0..dim / 2)
        .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
        .collect();
    match cfg.rope_scaling {
        RopeScaling::None => {}
        RopeScaling::Linear { factor } => inv.iter_mut().for_each(|f| *f /= factor as f32),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            let low_wavelen = original_max_position_embeddings / low_freq_factor;
            let high_wavelen = original_max_position_embeddings / high_freq_factor;
            for f in inv.iter_mut() {
                let wavelen = 2.0 * std::f64::consts::PI / *f as f64;
                let scaled = if wavelen > low_wavelen {
                    *f as f64 / factor
                } else if wavelen < high_wavelen {
                    *f as f64
                } else {
                    let smooth = (original_max_position_embeddings / wavelen - low_freq_factor)
                        / (high_freq_factor - low_freq_factor);
                    (1.0 - smooth) * (*f as f64) / factor + smooth * (*f as f64)
                };
                *f = scaled as f32;
            }
        }
    }
    inv
}

/// The MLP block a config.json asks for: SwiGLU (transformers' default) or seft's ReLU variant.
fn mlp_kind(v: &Value) -> Result<MlpKind, String> {
    match v.get("seft_mlp").and_then(Value::as_str) {
        None | Some("swiglu") => {
            let act = v
                .get("hidden_act")
                .and_then(Value::as_str)
                .unwrap_or("silu");
            if act != "silu" && act != "swish" {
                return Err(format!(
                    "hidden_act '{act}' is not supported (expected silu)"
                ));
            }
            Ok(MlpKind::SwiGlu)
        }
        Some("relu") => Ok(MlpKind::Relu),
        Some(other) => Err(format!(
            "unknown seft_mlp '{other}' (expected swiglu or relu)"
        )),
    }
}

/// `rope_theta` and `rope_scaling` of a config.json.
fn rope_settings(v: &Value) -> Result<(f64, RopeScaling), String> {
    // transformers >= 5 nests rope settings in `rope_parameters`; older configs use
    // top-level `rope_theta` and `rope_scaling`.
    let rope_params = v.get("rope_parameters").filter(|p| p.is_object());
    let rope_scaling = parse_rope_scaling(
        v.get("rope_scaling")
            .filter(|s| !s.is_null())
            .or(rope_params),
    )?;
    let rope_theta = match present(v, "rope_theta")
        .or_else(|| rope_params.and_then(|p| present(p, "rope_theta")))
    {
        None => 10000.0,
        Some(x) => x
            .as_f64()
            .ok_or_else(|| format!("'rope_theta' must be a number, got {x}"))?,
    };
    Ok((rope_theta, rope_scaling))
}

/// A validation message about config.json keys, with the GGUF metadata keys they come from.
fn gguf_key_names(msg: &str, arch: &str) -> String {
    let keys = [
        ("num_hidden_layers", "block_count"),
        ("hidden_size", "embedding_length"),
        ("intermediate_size", "feed_forward_length"),
        ("num_attention_heads", "attention.head_count"),
        ("num_key_value_heads", "attention.head_count_kv"),
        ("head_dim", "attention.key_length"),
        ("max_position_embeddings", "context_length"),
        ("rms_norm_eps", "attention.layer_norm_rms_epsilon"),
        ("rope_theta", "rope.freq_base"),
        ("rope_scaling.factor", "rope.scaling.factor"),
    ];
    let mut out = msg.to_string();
    for (hf, gguf) in keys {
        if msg.starts_with(hf) && !msg.starts_with(&format!("{hf}_")) {
            out = format!("{arch}.{gguf}{}", &msg[hf.len()..]);
            break;
        }
    }
    out
}

/// `key`'s value unless it is absent or null (transformers writes null for unset options).
fn present<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// An optional non-negative integer; any other value is an error naming the key.
fn opt_usize(v: &Value, key: &str) -> Result<Option<usize>, String> {
    match present(v, key) {
        None => Ok(None),
        Some(x) => x
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("'{key}' must be a non-negative integer, got {x}")),
    }
}

/// A token id or a list of them (`eos_token_id` may be either).
fn token_ids(v: &Value, key: &str) -> Result<Vec<u32>, String> {
    let id = |x: &Value| {
        x.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("'{key}' must be a token id or a list of them, got {x}"))
    };
    match present(v, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(id).collect(),
        Some(x) => Ok(vec![id(x)?]),
    }
}
