//! Llama-family causal language models from real checkpoints: Hugging Face folders
//! (safetensors, single or sharded), GGUF files (dequantized to f32) and hub ids (through
//! hf-hub's cache, downloading only when online). Saving writes a folder transformers loads.

pub mod batch;
pub mod chat;
pub mod config;
pub mod generate;
pub mod gguf;
pub mod hub;
pub mod layout;
pub mod linear;
pub mod llama;
pub mod scheduler;
pub mod tokenizer;
pub mod weights;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde_json::{Value, json};

use crate::backend::Backend;
use crate::error::{Result, SeftError};
use crate::ownership;
pub use chat::{ChatTemplate, Message};
pub use config::{Architecture, MlpKind, ModelConfig};
pub use llama::CausalLm;
pub use tokenizer::TextTokenizer;

/// Where a model was loaded from, for `seft info` and run reports.
#[derive(Debug, Clone)]
pub enum ModelOrigin {
    HfFolder(PathBuf),
    Gguf(PathBuf),
    Hub { id: String, folder: PathBuf },
    Fresh,
}

/// A decoder with its tokenizer and generation defaults.
pub struct LanguageModel {
    pub net: CausalLm,
    pub config: ModelConfig,
    pub tokenizer: TextTokenizer,
    /// Token ids that end generation (config, generation_config and the tokenizer's EOS).
    pub eos_token_ids: Vec<u32>,
    pub origin: ModelOrigin,
    /// What the stored weights were (e.g. "Q4_1 (210), F32 (61), Q8_0 (1)" or "bfloat16").
    pub stored_dtype: String,
}

impl std::fmt::Debug for LanguageModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanguageModel")
            .field("config", &self.config)
            .field("origin", &self.origin)
            .finish()
    }
}

/// Is `spec` shaped like a hub id (`org/name`, optionally `@revision`) rather than a path?
fn looks_like_hub_id(spec: &str) -> bool {
    let base = spec.split('@').next().unwrap_or(spec);
    let parts: Vec<&str> = base.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && *p != "."
                && *p != ".."
        })
        && !spec.starts_with('.')
}

/// Every id the tokenizer can produce must index the model's embedding: a tokenizer larger than
/// `vocab_size` would make the first unknown id fail inside the network.
fn check_vocabulary(tokenizer: &TextTokenizer, config: &ModelConfig, file: &Path) -> Result<()> {
    let vocab = tokenizer.inner.get_vocab(true);
    match vocab.iter().max_by_key(|(_, id)| **id) {
        Some((token, &id)) if id as usize >= config.vocab_size => Err(SeftError::file(
            file,
            format!(
                "token {token:?} has id {id}, outside the model's vocabulary of {} (vocab_size)",
                config.vocab_size
            ),
        )),
        _ => Ok(()),
    }
}

impl LanguageModel {
    /// Loads `spec` on `backend`'s device and says on stderr what was loaded and how long it
    /// took (what every command that loads a model reports).
    pub fn load_on(spec: &str, backend: Backend) -> Result<Self> {
        let device = backend.device()?;
        let started = std::time::Instant::now();
        let model = Self::load(spec, &device)?;
        eprintln!(
            "loaded {spec} ({} layers, {:.1}M parameters) in {:.1}s on {backend}",
            model.config.num_hidden_layers,
            model.config.parameter_count() as f64 / 1e6,
            started.elapsed().as_secs_f64(),
        );
        Ok(model)
    }

    /// Loads `spec`: a GGUF file, a Hugging Face folder, or a hub id such as
    /// `HuggingFaceTB/SmolLM2-135M-Instruct`.
    pub fn load(spec: &str, device: &Device) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Self::load_hf_folder(path, device, ModelOrigin::HfFolder(path.to_path_buf()));
        }
        if path.is_file() {
            return Self::load_gguf(path, device);
        }
        if looks_like_hub_id(spec) {
            let (id, revision) = match spec.split_once('@') {
                Some((id, rev)) => (id, Some(rev)),
                None => (spec, None),
            };
            let folder = hub::fetch_model(id, revision)?;
            return Self::load_hf_folder(
                &folder,
                device,
                ModelOrigin::Hub {
                    id: spec.to_string(),
                    folder: folder.clone(),
                },
            );
        }
        Err(SeftError::file(path, "no such file or directory"))
    }

    pub fn load_gguf(path: &Path, device: &Device) -> Result<Self> {
        let gguf = gguf::GgufFile::open(path)?;
        let config = config::ModelConfig::from_gguf(&gguf)?;
        let tokenizer = TextTokenizer::from_gguf(&gguf)?;
        check_vocabulary(&tokenizer, &config, path)?;
        let net = weights::build_model(
            &config,
            &mut weights::GgufSource {
                gguf: &gguf,
                config: &config,
            },
            device,
        )?;
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for t in &gguf.tensors {
            match counts.iter_mut().find(|(n, _)| *n == t.dtype.name()) {
                Some((_, c)) => *c += 1,
                None => counts.push((t.dtype.name(), 1)),
            }
        }
        let stored_dtype = counts
            .iter()
            .map(|(n, c)| format!("{n} ({c})"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self::assemble(
            net,
            config,
            tokenizer,
            ModelOrigin::Gguf(path.to_path_buf()),
            stored_dtype,
            &[],
        ))
    }

    pub fn load_hf_folder(folder: &Path, device: &Device, origin: ModelOrigin) -> Result<Self> {
        let config_path = folder.join("config.json");
        if !config_path.exists() {
            return Err(SeftError::file(
                folder,
                "missing config.json (not a Hugging Face model folder)",
            ));
        }
        let config = ModelConfig::from_hf_json(&config_path)?;
        let tokenizer = TextTokenizer::from_hf_folder(folder)?;
        check_vocabulary(&tokenizer, &config, &folder.join("tokenizer.json"))?;
        let mut source = weights::SafetensorsSource::open(folder)?;
        let net = weights::build_model(&config, &mut source, device)?;
        let gen_path = folder.join("generation_config.json");
        let mut extra_eos = Vec::new();
        if gen_path.exists() {
            let text = crate::input::read_metadata(&gen_path)?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| SeftError::file(&gen_path, format!("invalid JSON: {e}")))?;
            match v.get("eos_token_id") {
                Some(Value::Number(n)) => extra_eos.extend(n.as_u64().map(|x| x as u32)),
                Some(Value::Array(a)) => {
                    extra_eos.extend(a.iter().filter_map(Value::as_u64).map(|x| x as u32))
                }
                _ => {}
            }
        }
        let dtype = config.torch_dtype.clone();
        Ok(Self::assemble(
            net, config, tokenizer, origin, dtype, &extra_eos,
        ))
    }

    /// Wraps a freshly built network (training from scratch).
    pub fn from_parts(net: CausalLm, config: ModelConfig, tokenizer: TextTokenizer) -> Self {
        Self::assemble(
            net,
            config,
            tokenizer,
            ModelOrigin::Fresh,
            "float32".into(),
            &[],
        )
    }

    fn assemble(
        net: CausalLm,
        config: ModelConfig,
        tokenizer: TextTokenizer,
        origin: ModelOrigin,
        stored_dtype: String,
        extra_eos: &[u32],
    ) -> Self {
        let mut eos_token_ids = config.eos_token_ids.clone();
        eos_token_ids.extend_from_slice(extra_eos);
        if let Some(id) = tokenizer
            .eos_token
            .as_deref()
            .and_then(|t| tokenizer.token_id(t))
        {
            eos_token_ids.push(id);
        }
        eos_token_ids.sort_unstable();
        eos_token_ids.dedup();
        LanguageModel {
            net,
            config,
            tokenizer,
            eos_token_ids,
            origin,
            stored_dtype,
        }
    }

    pub fn device(&self) -> Device {
        self.net.norm.weight.device()
    }

    /// Saves a Hugging Face folder: config.json, model.safetensors (f32, standard names),
    /// generation_config.json, tokenizer.json and tokenizer_config.json. Files are written to a
    /// temporary folder first and moved into place, so an interrupted save leaves no half model.
    pub fn save_hf_folder(&self, folder: &Path) -> Result<()> {
        // Refused before anything is written: a folder seft did not make is never replaced.
        ownership::check_replaceable(folder, "the model folder")?;
        let parent = folder
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| SeftError::io(parent, e))?;
        let name = folder
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("model");
        let tmp = parent.join(format!(".{name}.partial"));
        let old = parent.join(format!(".{name}.old"));
        for leftover in [&tmp, &old] {
            if leftover.exists() {
                ownership::check_replaceable(leftover, "a leftover of an earlier save")?;
                std::fs::remove_dir_all(leftover).map_err(|e| SeftError::io(leftover, e))?;
            }
        }
        std::fs::create_dir_all(&tmp).map_err(|e| SeftError::io(&tmp, e))?;
        if let Err(e) = self.write_hf_files(&tmp) {
            // Best effort: the partial folder is seft's own, and the error above is the one
            // to report.
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if folder.exists() {
            std::fs::rename(folder, &old).map_err(|e| SeftError::io(folder, e))?;
            std::fs::rename(&tmp, folder).map_err(|e| SeftError::io(folder, e))?;
            std::fs::remove_dir_all(&old).map_err(|e| SeftError::io(&old, e))?;
        } else {
            std::fs::rename(&tmp, folder).map_err(|e| SeftError::io(folder, e))?;
        }
        Ok(())
    }

    /// The folder's files (marker first, so a partial folder is recognisably seft's).
    fn write_hf_files(&self, dir: &Path) -> Result<()> {
        ownership::mark(dir)?;
        let mut config = self.config.to_hf_json();
        if let Some(obj) = config.as_object_mut() {
            if self.config.eos_token_ids.is_empty()
                && let Some(&id) = self.eos_token_ids.first()
            {
                obj.insert("eos_token_id".into(), json!(id));
            }
            obj.insert("seft_version".into(), json!(env!("CARGO_PKG_VERSION")));
        }
        let write_json = |file: &str, v: &Value| -> Result<()> {
            let p = dir.join(file);
            std::fs::write(&p, serde_json::to_string_pretty(v).expect("serializable"))
                .map_err(|e| SeftError::io(&p, e))
        };
        write_json("config.json", &config)?;
        let mut generation = json!({"eos_token_id": self.eos_token_ids});
        if let Some(b) = self.config.bos_token_id {
            generation["bos_token_id"] = json!(b);
        }
        write_json("generation_config.json", &generation)?;
        weights::save_safetensors(&self.net, &dir.join("model.safetensors"))?;
        self.tokenizer.save(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::looks_like_hub_id;

    #[test]
    fn hub_ids_are_told_from_paths() {
        assert!(looks_like_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct"));
        assert!(looks_like_hub_id("Qwen/Qwen2-0.5B@main"));
        assert!(!looks_like_hub_id("./models/x"));
        assert!(!looks_like_hub_id("/abs/path"));
        assert!(!looks_like_hub_id("a/b/c"));
        assert!(!looks_like_hub_id("model.gguf"));
    }
}
