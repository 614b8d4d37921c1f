//! The `seft` command line. Results go to stdout; logs, progress and errors to stderr, so
//! scripts can capture exactly what they asked for.

mod bench;
mod cluster;
mod embed;
mod eval;
mod gate;
mod generate;
mod info;
mod judge;
mod run;
mod select;
mod serve;
mod sft;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::backend::Backend;
use crate::model::LanguageModel;

#[derive(Parser, Debug)]
#[command(
    name = "seft",
    version,
    about = "Self-evolution fine-tuning of language models, on Burn"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate text from prompts with a model (streams to stdout).
    Generate(generate::GenerateArgs),
    /// Show a model's architecture, parameter count, dtype, tokenizer and chat template.
    Info(info::InfoArgs),
    /// Save a model (GGUF, folder or hub id) as a Hugging Face safetensors folder.
    Export(info::ExportArgs),
    /// Self-evolution fine-tuning: reviser, T evolution iterations, evaluation, report.
    Run(run::RunArgs),
    /// Pairwise judging of two answer files by a local model (both orders, logits of 1/2).
    Judge(judge::JudgeArgs),
    /// Evaluate models: AlpacaEval 2.0, MT-Bench, a combined leaderboard.
    Eval(Box<eval::EvalArgs>),
    /// Serve a model as an OpenAI-compatible chat-completions API.
    Serve(serve::ServeArgs),
    /// k-means++ / FastKmeans++ seeding and Lloyd iterations on an .npy matrix or embedded texts.
    Cluster(cluster::ClusterArgs),
    /// SEFT's prompt selectors (random, kmeans, kde, kmeans+kde) on texts or an .npy matrix.
    Select(select::SelectArgs),
    /// Train from a TOML config: SFT, or a preference loss (dpo, robust, ipo, simpo, orpo)
    /// when it has a [preference] section.
    #[command(alias = "train")]
    Sft(sft::SftArgs),
    /// Embed texts into an n×d float32 .npy (all-MiniLM-L6-v2 or a decoder's hidden states).
    Embed(embed::EmbedArgs),
    /// Train the quality gate on preference pairs through the firing trees and densely; compare held-out accuracy.
    Gate(gate::GateArgs),
    /// Time prefill and batched decoding on fixed token ids (see experiments/generation_speed).
    Bench(bench::BenchArgs),
}

/// The compute backend, one flag for every command that computes (`#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct BackendArgs {
    /// Compute backend: flex (CPU, default), ndarray (CPU), wgpu (GPU).
    #[arg(long, default_value_t = Backend::default(), env = "SEFT_BACKEND")]
    pub backend: Backend,
}

impl BackendArgs {
    pub fn device(&self) -> Result<burn::tensor::Device> {
        Ok(self.backend.device()?)
    }
}

/// Options shared by commands that load a model.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// A GGUF file, a Hugging Face model folder, or a hub id (org/name[@revision]).
    #[arg(long, short)]
    pub model: String,
    #[command(flatten)]
    pub compute: BackendArgs,
}

impl ModelArgs {
    pub fn load(&self) -> Result<LanguageModel> {
        Ok(LanguageModel::load_on(&self.model, self.compute.backend)?)
    }
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate(args) => generate::run(args),
        Command::Info(args) => info::run(args),
        Command::Export(args) => info::export(args),
        Command::Bench(args) => bench::run(args),
        Command::Embed(args) => embed::run(args),
        Command::Gate(args) => gate::run(args),
        Command::Sft(args) => sft::run(args),
        Command::Run(args) => run::run(args),
        Command::Judge(args) => judge::run(args),
        Command::Eval(args) => eval::run(*args),
        Command::Cluster(args) => cluster::run(args),
        Command::Select(args) => select::run(args),
        Command::Serve(args) => serve::run(args),
    }
}
