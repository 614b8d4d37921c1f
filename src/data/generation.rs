//! Resumable batched generation into a JSONL file, shared by the SEFT pipeline and the
//! benchmarks (here, below both, so evaluation need not reach up into the pipeline).
//!
//! Inputs are cut into fixed chunks of [`CHUNK_BATCHES`] × `batch_size`; each chunk is
//! generated with continuous batching over `batch_size` slots (a finished row's slot takes the
//! chunk's next prompt at once) and its rows are appended in one write. Row i is sampled with
//! seed `sampling.seed + i` and a chunk's schedule depends only on its prompts, so a restarted
//! stage (which truncates the file to its last complete chunk and goes on from there) writes
//! exactly what an uninterrupted one would.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::data::jsonl::{append_jsonl, complete_rows, write_jsonl};
use crate::error::Result;
use crate::fault::fault_point;
use crate::model::generate::{Generation, SamplingConfig, generate_batched};
use crate::model::{LanguageModel, Message};

/// Batches of prompts per resumable chunk. More keeps the slots full for longer (a chunk's
/// last rows run with fewer companions); fewer loses less work to a crash.
pub const CHUNK_BATCHES: usize = 8;

/// A one-turn conversation: how the pipeline's stages and the benchmarks put a prompt to a
/// model.
pub fn user(prompt: &str) -> Vec<Message> {
    vec![Message::new("user", prompt)]
}

/// A progress bar on stderr: `label`, bar, position/length, elapsed and remaining time.
pub fn progress_bar(len: usize, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{label} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}}<{{eta_precise}}]"
        ))
        .expect("valid template"),
    );
    bar
}

/// Where [`generate_rows`] writes, and what it is called.
#[derive(Debug, Clone, Copy)]
pub struct RowsOutput<'a> {
    /// The JSONL file (resumed when it holds complete rows).
    pub path: &'a Path,
    /// The progress bar's label.
    pub label: &'a str,
    /// The crash-test point, counted once per `batch_size` finished rows
    /// (`SEFT_FAULT=<fault>:<n>`).
    pub fault: &'a str,
}

/// Generates a reply to each conversation of `inputs` and writes `make_row(i, generation)` to
/// `out.path`, continuing after the rows a previous run left.
pub fn generate_rows<R: Serialize + DeserializeOwned>(
    model: &LanguageModel,
    inputs: &[Vec<Message>],
    sampling: &SamplingConfig,
    batch_size: usize,
    out: RowsOutput,
    mut make_row: impl FnMut(usize, &Generation) -> R,
) -> Result<Vec<R>> {
    let RowsOutput { path, label, fault } = out;
    let batch_size = batch_size.max(1);
    let chunk_size = batch_size * CHUNK_BATCHES;
    let mut rows: Vec<R> = complete_rows(path)?;
    if rows.len() > inputs.len() {
        rows.truncate(0);
    }
    // Restart at a chunk boundary so every chunk is generated with the same schedule.
    if rows.len() < inputs.len() {
        rows.truncate(rows.len() / chunk_size * chunk_size);
    }
    write_jsonl(path, &rows)?;
    let bar = progress_bar(inputs.len(), label);
    bar.set_position(rows.len() as u64);
    while rows.len() < inputs.len() {
        let start = rows.len();
        let end = (start + chunk_size).min(inputs.len());
        let ids = inputs[start..end]
            .iter()
            .map(|m| {
                let text = model.tokenizer.apply_chat_template(m, true)?;
                model.tokenizer.encode(&text, false)
            })
            .collect::<Result<Vec<_>>>()?;
        let cfg = SamplingConfig {
            seed: sampling.seed.wrapping_add(start as u64),
            ..sampling.clone()
        };
        let mut finished = start;
        let on_finish = |_: usize, _: &Generation| {
            finished += 1;
            bar.inc(1);
            if (finished - start).is_multiple_of(batch_size) {
                fault_point(fault, finished / batch_size);
            }
        };
        let generations = generate_batched(model, &ids, &cfg, batch_size, |_, _| {}, on_finish)?;
        let chunk: Vec<R> = generations
            .iter()
            .enumerate()
            .map(|(j, g)| make_row(start + j, g))
            .collect();
        append_jsonl(path, &chunk)?;
        rows.extend(chunk);
        bar.set_position(rows.len() as u64);
    }
    bar.finish_and_clear();
    Ok(rows)
}
