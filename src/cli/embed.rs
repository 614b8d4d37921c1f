//! `seft embed`: texts in, an n×d float32 `.npy` of unit-norm embeddings out (row i = text i).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use crate::data::generation::progress_bar;
use crate::data::{ReadOptions, read_prompts};
use crate::embed::TextEmbedder;
use crate::error::SeftError;
use crate::numeric::Matrix;

#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// A sentence-transformers BERT folder (all-MiniLM-L6-v2), or any decoder seft loads
    /// (GGUF file, Hugging Face folder, hub id) for mean-pooled hidden states.
    #[arg(long, short)]
    pub model: String,
    /// Texts: JSON/JSONL prompt rows (prompt, instruction+input, question, turns, messages),
    /// or a .txt file with one text per non-empty line.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the n×d float32 array (.npy).
    #[arg(long)]
    pub output: PathBuf,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Decoders only: tokens kept per text (its first ones). BERT models use their own limit.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    #[command(flatten)]
    pub compute: super::BackendArgs,
}

/// One text per non-empty line of a .txt file; prompt rows of anything else.
fn read_texts(path: &Path) -> Result<Vec<String>> {
    if path.extension().is_some_and(|e| e == "txt") {
        let text = crate::data::read_text(path)?;
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect();
        if lines.is_empty() {
            return Err(SeftError::file(path, "no non-empty line").into());
        }
        return Ok(lines);
    }
    Ok(read_prompts(path, &ReadOptions::default())?.0)
}

/// Embeddings of `texts` with a progress bar on the terminal.
pub(super) fn embed_with_progress(
    embedder: &TextEmbedder,
    texts: &[String],
    batch_size: usize,
) -> crate::error::Result<Vec<Vec<f32>>> {
    let bar = progress_bar(texts.len(), "embed");
    let mut rows = Vec::with_capacity(texts.len());
    // Chunks of a few batches give progress while keeping each chunk sorted by length.
    for chunk in texts.chunks(batch_size * 8) {
        rows.extend(embedder.embed(chunk, batch_size)?);
        bar.set_position(rows.len() as u64);
    }
    bar.finish_and_clear();
    Ok(rows)
}

/// The points `seft cluster` and `seft select` work on: an .npy matrix, or texts embedded
/// with `--model`.
#[derive(clap::Args, Debug)]
pub struct PointsArgs {
    /// An n×d float32 or float64 .npy matrix (e.g. from `seft embed`), or texts (JSON/JSONL
    /// prompt rows, or a .txt file with one text per line) embedded with --model.
    #[arg(long)]
    pub input: PathBuf,
    /// Embedder for text input: a sentence-transformers folder (all-MiniLM-L6-v2) or any
    /// decoder seft loads (mean-pooled hidden states).
    #[arg(long, short)]
    pub model: Option<String>,
    /// Texts per embedding forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[command(flatten)]
    pub compute: super::BackendArgs,
}

impl PointsArgs {
    /// The matrix, and the texts when the input was text.
    pub(super) fn load(&self) -> Result<(Matrix, Option<Vec<String>>)> {
        let input = &self.input;
        if input.extension().is_some_and(|e| e == "npy") {
            return Ok((Matrix::read_npy(input)?, None));
        }
        let texts = read_texts(input)?;
        let Some(model) = &self.model else {
            anyhow::bail!(
                "{}: text input needs --model to embed it (or pass an .npy matrix)",
                input.display()
            );
        };
        if self.batch_size == 0 {
            anyhow::bail!("--batch-size must be at least 1");
        }
        let embedder = TextEmbedder::load(model, &self.compute.device()?, 512)?;
        let rows = embed_with_progress(&embedder, &texts, self.batch_size)?;
        Ok((Matrix::from_rows(&rows)?, Some(texts)))
    }
}

/// Writes the .npy and prints a JSON summary on stdout.
pub fn run(args: EmbedArgs) -> Result<()> {
    if args.batch_size == 0 || args.max_tokens == 0 {
        anyhow::bail!("--batch-size and --max-tokens must be at least 1");
    }
    let texts = read_texts(&args.input)?;
    let device = args.compute.device()?;
    let started = std::time::Instant::now();
    let embedder = TextEmbedder::load(&args.model, &device, args.max_tokens)?;
    let kind = match &embedder {
        TextEmbedder::Sentence(_) => "sentence-transformers mean pooling",
        TextEmbedder::Decoder(_) => "decoder mean-pooled hidden states",
    };
    eprintln!(
        "loaded {} ({kind}, dimension {}) in {:.1}s on {}",
        args.model,
        embedder.dim(),
        started.elapsed().as_secs_f64(),
        args.compute.backend
    );
    let started = std::time::Instant::now();
    let rows = embed_with_progress(&embedder, &texts, args.batch_size)?;
    let seconds = started.elapsed().as_secs_f64();
    let matrix = Matrix::from_rows(&rows)?;
    matrix
        .write_npy(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let summary = json!({
        "output": args.output.display().to_string(),
        "texts": matrix.n(),
        "dim": matrix.d(),
        "seconds": (seconds * 100.0).round() / 100.0,
    });
    println!("{summary}");
    Ok(())
}
