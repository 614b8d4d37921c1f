//! Where a model's parameters come from and go to: GGUF files, Hugging Face safetensors folders
//! (single file or sharded), and fresh initialization. Every tensor is addressed by its Hugging
//! Face name (`model.layers.0.self_attn.q_proj.weight`) and shape ([out, in] for projections).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use memmap2::Mmap;
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::Normal;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Result, SeftError};
use crate::model::config::{Architecture, ModelConfig};
use crate::model::gguf::GgufFile;
use crate::model::layout::{load_parameters, named_tensors, skeleton};
use crate::model::llama::CausalLm;

/// A provider of named f32 tensors in Hugging Face layout.
pub trait ParamSource {
    /// The tensor called `name`, which must have `shape`. Errors name the file and the tensor.
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>>;

    /// How many values the source holds in all, when it is a file: a config that asks for more
    /// parameters is refused before anything is allocated.
    fn stored_values(&self) -> Option<u64> {
        None
    }

    /// The file or folder named in errors about the source as a whole.
    fn origin(&self) -> &Path {
        Path::new("the model")
    }
}

fn check_shape(path: &Path, name: &str, expected: &[usize], actual: &[usize]) -> Result<()> {
    if expected != actual {
        return Err(SeftError::file(
            path,
            format!("tensor '{name}' has shape {actual:?}, expected {expected:?}"),
        ));
    }
    Ok(())
}

/// Weights inside a GGUF file, renamed from llama.cpp's names and un-permuted where llama.cpp's
/// converter permuted them.
pub struct GgufSource<'a> {
    pub gguf: &'a GgufFile,
    pub config: &'a ModelConfig,
}

/// llama.cpp's name for a Hugging Face tensor name.
pub fn gguf_name(hf: &str) -> String {
    hf.replace("model.embed_tokens.", "token_embd.")
        .replace("lm_head.", "output.")
        .replace("model.norm.", "output_norm.")
        .replace("model.layers.", "blk.")
        .replace(".self_attn.q_proj.", ".attn_q.")
        .replace(".self_attn.k_proj.", ".attn_k.")
        .replace(".self_attn.v_proj.", ".attn_v.")
        .replace(".self_attn.o_proj.", ".attn_output.")
        .replace(".mlp.gate_proj.", ".ffn_gate.")
        .replace(".mlp.up_proj.", ".ffn_up.")
        .replace(".mlp.down_proj.", ".ffn_down.")
        .replace(".input_layernorm.", ".attn_norm.")
        .replace(".post_attention_layernorm.", ".ffn_norm.")
}

/// Undoes `permute()` of llama.cpp's `convert_hf_to_gguf.py`, which interleaves the two rotary
/// halves of each head's rows (q and k of Llama-architecture models only). Works on weights
/// ([rows, cols]) and biases ([rows], cols = 1).
pub fn reverse_permute(data: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    let half = rows / n_head / 2;
    let mut out = vec![0f32; data.len()];
    // In the file, row (h, j, i) [i in 0..2] holds original row (h, i, j).
    for h in 0..n_head {
        for j in 0..half {
            for i in 0..2 {
                let src = (h * half + j) * 2 + i;
                let dst = h * 2 * half + i * half + j;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

impl ParamSource for GgufSource<'_> {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let gname = gguf_name(name);
        if let Some(info) = self.gguf.tensor_info(&gname) {
            check_shape(&self.gguf.path, &gname, shape, &info.shape)?;
        }
        let (data, _) = self.gguf.read_f32(&gname)?;
        let permuted = matches!(
            self.config.architecture,
            Architecture::Llama | Architecture::Mistral
        );
        let heads = if gname.contains(".attn_q.") {
            Some(self.config.num_attention_heads)
        } else if gname.contains(".attn_k.") {
            Some(self.config.num_key_value_heads)
        } else {
            None
        };
        Ok(match heads {
            Some(n) if permuted => {
                let cols = if shape.len() == 2 { shape[1] } else { 1 };
                reverse_permute(&data, shape[0], cols, n)
            }
            _ => data,
        })
    }

    fn stored_values(&self) -> Option<u64> {
        Some(
            self.gguf
                .tensors
                .iter()
                .map(|t| t.n_elements() as u64)
                .fold(0, u64::saturating_add),
        )
    }

    fn origin(&self) -> &Path {
        &self.gguf.path
    }
}

/// One memory-mapped safetensors file.
struct MappedSafetensors {
    path: PathBuf,
    mmap: Mmap,
}

/// The weights of a Hugging Face folder: `model.safetensors`, or the shards listed in
/// `model.safetensors.index.json`.
pub struct SafetensorsSource {
    files: Vec<MappedSafetensors>,
    /// tensor name -> index in `files`
    index: HashMap<String, usize>,
    folder: PathBuf,
    /// Values in all tensors of all shards.
    values: u64,
}

impl SafetensorsSource {
    pub fn open(folder: &Path) -> Result<Self> {
        let single = folder.join("model.safetensors");
        let index_path = folder.join("model.safetensors.index.json");
        let mut shard_names: Vec<String> = Vec::new();
        if index_path.exists() {
            shard_names = shards(&index_path)?;
        } else if single.exists() {
            shard_names.push("model.safetensors".into());
        } else {
            let pickles = ["pytorch_model.bin", "model.bin", "model.pt"];
            let hint = if pickles.iter().any(|p| folder.join(p).exists()) {
                " (pickle checkpoints are never loaded: convert them to safetensors first)"
            } else {
                ""
            };
            return Err(SeftError::file(
                folder,
                format!("no model.safetensors or model.safetensors.index.json{hint}"),
            ));
        }
        let mut files = Vec::new();
        let mut index = HashMap::new();
        let mut values = 0u64;
        for shard in shard_names {
            let path = folder.join(&shard);
            let file = File::open(&path).map_err(|e| SeftError::io(&path, e))?;
            // SAFETY: read-only map of a file seft does not modify while loading.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| SeftError::io(&path, e))?;
            let tensors = SafeTensors::deserialize(&mmap)
                .map_err(|e| SeftError::file(&path, format!("invalid safetensors file: {e}")))?;
            let mut names = Vec::new();
            for (name, view) in tensors.tensors() {
                // The crate has checked that each shape's bytes lie inside the file.
                let n = view.shape().iter().map(|&d| d as u64).product::<u64>();
                values = values.saturating_add(n);
                names.push(name);
            }
            for name in names {
                index.insert(name, files.len());
            }
            files.push(MappedSafetensors { path, mmap });
        }
        Ok(SafetensorsSource {
            files,
            index,
            folder: folder.to_path_buf(),
            values,
        })
    }
}

/// The shard files `model.safetensors.index.json` lists, each once, in name order; a shard
/// must be a file name in the index's folder, never a path that leads out of it.
pub(crate) fn shards(index: &Path) -> Result<Vec<String>> {
    let text = crate::input::read_metadata(index)?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| SeftError::file(index, format!("invalid JSON: {e}")))?;
    let mut names = Vec::new();
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| SeftError::file(index, "missing object 'weight_map'"))?;
    for (tensor, shard) in map {
        let shard = shard.as_str().ok_or_else(|| {
            SeftError::file(index, format!("weight_map['{tensor}'] is not a file name"))
        })?;
        if Path::new(shard).file_name() != Some(std::ffi::OsStr::new(shard)) {
            return Err(SeftError::file(
                index,
                format!("weight_map names '{shard}', which is not a file name in this folder"),
            ));
        }
        names.push(shard.to_string());
    }
    names.sort();
    names.dedup();
    Ok(names)
}

impl ParamSource for SafetensorsSource {
    fn stored_values(&self) -> Option<u64> {
        Some(self.values)
    }

    fn origin(&self) -> &Path {
        &self.folder
    }

    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let Some(&i) = self.index.get(name) else {
            let where_ = if self.files.len() == 1 {
                self.files[0].path.clone()
            } else {
                self.folder.clone()
            };
            return Err(SeftError::file(&where_, format!("missing tensor '{name}'")));
        };
        let file = &self.files[i];
        let st = SafeTensors::deserialize(&file.mmap)
            .map_err(|e| SeftError::file(&file.path, format!("invalid safetensors file: {e}")))?;
        let view = st
            .tensor(name)
            .map_err(|e| SeftError::file(&file.path, format!("tensor '{name}': {e}")))?;
        check_shape(&file.path, name, shape, view.shape())?;
        let bytes = view.data();
        let data = match view.dtype() {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(SeftError::file(
                    &file.path,
                    format!("tensor '{name}' has dtype {other:?}; supported: F32, F16, BF16"),
                ));
            }
        };
        Ok(data)
    }
}

/// Fresh parameters for training from scratch: normal(0, std) matrices (transformers'
/// `initializer_range`, 0.02 by default), unit norms, zero biases. Seeded.
pub struct InitSource {
    rng: StdRng,
    pub std: f64,
}

impl InitSource {
    pub fn new(seed: u64, std: f64) -> Self {
        InitSource {
            rng: StdRng::seed_from_u64(seed),
            std,
        }
    }
}

impl ParamSource for InitSource {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let n: usize = shape.iter().product();
        Ok(if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            let normal =
                Normal::new(0.0, self.std).map_err(|e| SeftError::Invalid(e.to_string()))?;
            (0..n).map(|_| self.rng.sample(normal) as f32).collect()
        })
    }
}

/// Hugging Face stores projections as [out, in]; Burn's `Linear` multiplies by [in, out].
/// Row-major `rows × cols` to `cols × rows` (PyTorch Linear weights are stored [out, in]).
pub(crate) fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// Builds the decoder described by `cfg` with parameters from `source` (see
/// [`crate::model::layout`] for the names it asks for).
pub fn build_model(
    cfg: &ModelConfig,
    source: &mut dyn ParamSource,
    device: &Device,
) -> Result<CausalLm> {
    check_size(cfg, source)?;
    load_parameters(skeleton(cfg, device), source, device)
}

/// Refuses, before its parameters are allocated, a model far larger than its weights file (a
/// config claiming a thousand layers for a file of thirty) or, for fresh weights, than this
/// machine's memory. Up to twice the file's values are allowed through so that a model short of
/// a few tensors fails on the first missing one, by name.
fn check_size(cfg: &ModelConfig, source: &dyn ParamSource) -> Result<()> {
    let needed = cfg.parameter_count();
    match source.stored_values() {
        Some(stored) if needed > stored.saturating_mul(2) => Err(SeftError::file(
            source.origin(),
            format!(
                "the config describes {needed} parameters but the weights hold only {stored} values"
            ),
        )),
        Some(_) => Ok(()),
        None => {
            let bytes = needed.saturating_mul(4);
            match crate::input::physical_memory() {
                Some(memory) if bytes > memory => Err(SeftError::Invalid(format!(
                    "the config describes {needed} parameters ({} GiB in f32), more than this machine's {} GiB of memory",
                    bytes >> 30,
                    memory >> 30
                ))),
                _ => Ok(()),
            }
        }
    }
}

/// Writes `model.safetensors` (f32, Hugging Face names) to `path`.
pub fn save_safetensors(model: &CausalLm, path: &Path) -> Result<()> {
    let tensors = named_tensors(model);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, (shape, data))| {
            let raw = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            (name, shape, raw)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, raw)| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), raw)
                .map_err(|e| SeftError::file(path, format!("tensor '{name}': {e}")))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), path)
        .map_err(|e| SeftError::file(path, format!("cannot write safetensors: {e}")))
}
