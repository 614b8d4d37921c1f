//! The reference model of dpo, robust and ipo, and `precompute_ref`: its completion
//! log-probabilities computed once, before training, so that training holds one model.
//!
//! The pass is resumable: it runs over the training pairs, then the held-out pairs, in fixed
//! chunks of `train.micro_batch` pairs and appends each chunk's values to
//! `reference_logps/<model>-<data>.jsonl` in the run directory, where `<model>` is a SHA-256
//! of the reference weights and `<data>` one of the tokenized pairs: a restarted run reads
//! the values it finds and computes the chunks that are missing, each with the same rows as
//! before, so the cached values do not depend on where a crash happened. A cache made for
//! other weights or other data has another name and is never read.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, SeftError};
use crate::fault::fault_point;
use crate::model::llama::CausalLm;
use crate::numeric::to_f32_vec;
use crate::train::preference::{TokenizedPair, reference_log_probs};

/// SHA-256 of every float parameter of `net` (shape and f32 bytes, in module order).
pub fn weights_hash(net: &CausalLm) -> String {
    struct Hasher(Sha256);
    impl ModuleVisitor for Hasher {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val();
            for d in t.dims() {
                self.0.update((d as u64).to_le_bytes());
            }
            for v in to_f32_vec(t.reshape([-1])) {
                self.0.update(v.to_le_bytes());
            }
        }
    }
    let mut h = Hasher(Sha256::new());
    net.visit(&mut h);
    hex(&h.0.finalize())
}

/// SHA-256 of the tokenized pairs (ids and target masks of both rows, train then held-out).
pub fn pairs_hash(train: &[TokenizedPair], eval: &[TokenizedPair]) -> String {
    let mut h = Sha256::new();
    for (split, pairs) in [(0u8, train), (1u8, eval)] {
        h.update([split]);
        h.update((pairs.len() as u64).to_le_bytes());
        for p in pairs {
            for row in [&p.chosen, &p.rejected] {
                h.update((row.ids.len() as u64).to_le_bytes());
                for (id, target) in row.ids.iter().zip(&row.is_target) {
                    h.update(id.to_le_bytes());
                    h.update([u8::from(*target)]);
                }
            }
        }
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedLine {
    split: String,
    index: usize,
    chosen: f64,
    rejected: f64,
}

/// The cache file of this reference and these pairs.
pub fn cache_path(out: &Path, model_hash: &str, data_hash: &str) -> PathBuf {
    out.join("reference_logps")
        .join(format!("{}-{}.jsonl", &model_hash[..16], &data_hash[..16]))
}

/// The complete lines of a cache file (a line cut by a crash is dropped, and the file cut
/// back to its last complete line so appends continue cleanly).
fn read_cache(path: &Path) -> Result<HashMap<(String, usize), [f64; 2]>> {
    let mut found = HashMap::new();
    if !path.exists() {
        return Ok(found);
    }
    let text = std::fs::read_to_string(path).map_err(|e| SeftError::io(path, e))?;
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    if complete < text.len() {
        std::fs::write(path, &text[..complete]).map_err(|e| SeftError::io(path, e))?;
    }
    for (n, line) in text[..complete].lines().enumerate() {
        let v: CachedLine = serde_json::from_str(line).map_err(|e| {
            SeftError::Invalid(format!(
                "{}:{}: not a cached value: {e}",
                path.display(),
                n + 1
            ))
        })?;
        found.insert((v.split, v.index), [v.chosen, v.rejected]);
    }
    Ok(found)
}

/// Fills every training and held-out pair's reference log-probabilities from the cache in
/// the run directory `out`, computing (and appending) the missing chunks with `reference`.
/// Returns the cache file.
pub fn precompute(
    out: &Path,
    reference: &CausalLm,
    train: &mut [TokenizedPair],
    eval: &mut [TokenizedPair],
    micro_batch: usize,
    pad_id: u32,
) -> Result<PathBuf> {
    let path = cache_path(out, &weights_hash(reference), &pairs_hash(train, eval));
    let cached = read_cache(&path)?;
    let chunk = micro_batch.max(1);
    let splits = [("train", train), ("eval", eval)];
    let missing: usize = splits
        .iter()
        .map(|(name, pairs)| {
            (0..pairs.len())
                .filter(|&i| !cached.contains_key(&(name.to_string(), i)))
                .count()
        })
        .sum();
    let bar = ProgressBar::new(missing as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "reference log-probs {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}]",
        )
        .expect("valid template"),
    );
    if missing > 0 {
        let dir = path.parent().expect("cache file has a folder");
        std::fs::create_dir_all(dir).map_err(|e| SeftError::io(dir, e))?;
    }
    let mut chunks_done = 0;
    for (name, pairs) in splits {
        for (c, chunk_pairs) in pairs.chunks_mut(chunk).enumerate() {
            let start = c * chunk;
            let key = |i: usize| (name.to_string(), start + i);
            if (0..chunk_pairs.len()).all(|i| cached.contains_key(&key(i))) {
                for (i, p) in chunk_pairs.iter_mut().enumerate() {
                    p.reference = Some(cached[&key(i)]);
                }
                continue;
            }
            let refs: Vec<&TokenizedPair> = chunk_pairs.iter().collect();
            let values = reference_log_probs(reference, &refs, pad_id);
            let mut lines = String::new();
            for (i, (p, v)) in chunk_pairs.iter_mut().zip(&values).enumerate() {
                p.reference = Some(*v);
                if !cached.contains_key(&key(i)) {
                    let line = CachedLine {
                        split: name.to_string(),
                        index: start + i,
                        chosen: v[0],
                        rejected: v[1],
                    };
                    lines.push_str(&serde_json::to_string(&line).expect("serializable"));
                    lines.push('\n');
                    bar.inc(1);
                }
            }
            append(&path, &lines)?;
            chunks_done += 1;
            fault_point("reference", chunks_done);
        }
    }
    bar.finish_and_clear();
    if missing > 0 {
        eprintln!(
            "reference log-probabilities of {missing} pairs cached in {}",
            path.display()
        );
    }
    Ok(path)
}

/// Appends `text` in one write, flushed to disk.
fn append(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| SeftError::io(path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_data())
        .map_err(|e| SeftError::io(path, e))
}
