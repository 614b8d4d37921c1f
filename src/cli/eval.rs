//! `seft eval alpaca-eval | mt-bench | ifeval | ifeval-compare | constraint-prompts |
//! constraint-pairs | leaderboard | difficulty`: arguments checked and turned
//! into the typed options of [`crate::eval`], which does the work; the results are printed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::eval::alpaca::protocol::AlpacaEvalMetrics;
use crate::eval::alpaca::{
    AlpacaEvalOptions, AnnotationMetricsOptions, DifficultyChoice, DifficultyOptions, OutputsSource,
};
use crate::eval::data_source::BenchData;
use crate::eval::judges::{HttpJudgeSpec, JudgeSpec};
use crate::eval::mt_bench::{AnsweringModel, MtBenchOptions, VerdictMode};

#[derive(clap::Subcommand, Debug)]
pub enum EvalCommand {
    /// AlpacaEval 2.0: generate, judge against the reference outputs, win rates (weighted,
    /// discrete, length-controlled); or metrics only from existing annotation files.
    AlpacaEval(AlpacaEvalArgs),
    /// MT-Bench: two-turn answers graded 1-10 per turn by a judge (FastChat's single grading).
    MtBench(MtBenchArgs),
    /// IFEval: 541 prompts with verifiable instructions, checked by rules (no judge); prompt-
    /// and instruction-level accuracy, strict and loose.
    Ifeval(IfevalArgs),
    /// Several IFEval runs on the same prompts: accuracies with 95% bootstrap intervals over
    /// prompts, and paired tests of each run against reference runs.
    IfevalCompare(IfevalCompareArgs),
    /// Verifiable-instruction prompts in IFEval's format: ordinary instructions with 1-3 of
    /// IFEval's instruction types attached (random parameters), never IFEval's own prompts.
    ConstraintPrompts(ConstraintPromptsArgs),
    /// Preference pairs graded by rules: a model samples K responses per constraint prompt;
    /// the best and worst by fraction of instructions followed make a pair (ties dropped).
    ConstraintPairs(ConstraintPairsArgs),
    /// One table of every model evaluated under the given result folders.
    Leaderboard(LeaderboardArgs),
    /// Estimate AlpacaEval instruction difficulties from several models' annotations.
    Difficulty(DifficultyArgs),
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: EvalCommand,
}

/// Where benchmark files not named by their own flag are found.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Benchmark data folder laid out as alpaca_eval/…, mt_bench/… and ifeval/… (default:
    /// $SEFT_BENCH_DATA). Files not there come from the Hugging Face hub cache, or are
    /// downloaded into it unless HF_HUB_OFFLINE=1.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl DataArgs {
    fn bench_data(&self) -> BenchData {
        BenchData::from_env(self.data_dir.clone())
    }
}

/// Which judge to use: a local model or an OpenAI-compatible endpoint.
#[derive(clap::Args, Debug, Clone)]
pub struct JudgeArgs {
    /// A local judge model: GGUF file, Hugging Face folder or hub id.
    #[arg(long, conflicts_with = "judge_url")]
    pub judge: Option<String>,
    /// Base URL of an OpenAI-compatible API, e.g. https://api.openai.com/v1.
    #[arg(long, requires = "judge_model")]
    pub judge_url: Option<String>,
    /// Model name sent to the API, e.g. gpt-4-1106-preview.
    #[arg(long)]
    pub judge_model: Option<String>,
    /// Environment variable holding the API key (not needed by local servers).
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,
    /// Requests in flight at once (HTTP judge).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds before a request is abandoned and retried (HTTP judge).
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Retries after a 429, 5xx, timeout or malformed response (HTTP judge).
    #[arg(long, default_value_t = 5)]
    pub max_retries: usize,
    /// First retry delay in seconds, doubled after each failure (HTTP judge).
    #[arg(long, default_value_t = 1.0)]
    pub backoff: f64,
    /// Prompts per forward pass (local judge). 1 is fastest on a 2-core CPU for judge prompts
    /// of ~1000 tokens (experiments/judge_throughput); larger batches may pay on a GPU.
    #[arg(long, default_value_t = 1)]
    pub judge_batch_size: usize,
    /// For local models.
    #[command(flatten)]
    pub compute: super::BackendArgs,
}

fn seconds(flag: &str, value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow!("{flag} {value}: expected a non-negative number of seconds"))
}

impl JudgeArgs {
    /// The judge asked for; an error when none is given.
    pub fn spec(&self) -> Result<JudgeSpec> {
        if let Some(url) = &self.judge_url {
            return Ok(JudgeSpec::Http(HttpJudgeSpec {
                url: url.clone(),
                model: self
                    .judge_model
                    .clone()
                    .context("--judge-url needs --judge-model")?,
                api_key: std::env::var(&self.api_key_env).ok(),
                concurrency: self.concurrency.max(1),
                timeout: seconds("--timeout", self.timeout)?,
                max_retries: self.max_retries,
                backoff: seconds("--backoff", self.backoff)?,
            }));
        }
        let Some(model) = &self.judge else {
            bail!("give a judge: --judge MODEL (local) or --judge-url URL --judge-model NAME");
        };
        Ok(JudgeSpec::Local {
            model: model.clone(),
            batch_size: self.judge_batch_size.max(1),
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct AlpacaEvalArgs {
    /// Existing alpaca_eval annotation files (one model each): compute metrics only.
    #[arg(long, num_args = 1.., conflicts_with_all = ["model", "outputs"])]
    pub annotations: Vec<PathBuf>,
    /// Generate the outputs with this model (GGUF, HF folder or hub id).
    #[arg(long, conflicts_with = "outputs")]
    pub model: Option<String>,
    /// Judge existing outputs (alpaca_eval model_outputs.json).
    #[arg(long)]
    pub outputs: Option<PathBuf>,
    /// Name of the evaluated model in reports (default: the model or file name).
    #[arg(long)]
    pub name: Option<String>,
    /// Reference outputs = the evaluation set: a path or a hub dataset file (default:
    /// alpaca_eval/reference_gpt4_1106_preview_outputs.json in the data folder, else
    /// tatsu-lab/alpaca_eval:alpaca_eval_gpt4_baseline.json).
    #[arg(long)]
    pub reference: Option<String>,
    /// The judge prompt (default: alpaca_eval/judge_configs/alpaca_eval_clf.txt in the data
    /// folder).
    #[arg(long)]
    pub judge_template: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub judge: JudgeArgs,
    /// Evaluate a seeded subset of this many instructions.
    #[arg(long)]
    pub max_instructions: Option<usize>,
    /// Seed of the subset and of sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Generation length limit (tokens).
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    /// Sampling temperature for generation (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Prompts generated per batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Instruction difficulties for the LC GLM: `auto` (the official instruction_difficulty.csv
    /// if it is in the data folder or the Hugging Face cache, else `estimated`), `estimated`
    /// (bundled, see datasets/alpaca_eval/README.md), a CSV path, or a hub file such as
    /// tatsu-lab/alpaca_eval:instruction_difficulty.csv.
    #[arg(long, default_value = "auto")]
    pub instruction_difficulty: String,
    /// Output folder (model_outputs.json, annotations.json, metrics.json, metrics.md).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the metrics as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn difficulty_choice(spec: &str) -> Result<DifficultyChoice> {
    spec.parse()
        .map_err(|e| anyhow!("--instruction-difficulty: {e}"))
}

fn alpaca_eval(args: AlpacaEvalArgs) -> Result<()> {
    let instruction_difficulty = difficulty_choice(&args.instruction_difficulty)?;
    let rows = if !args.annotations.is_empty() {
        crate::eval::alpaca::metrics_of_annotations(&AnnotationMetricsOptions {
            annotations: args.annotations,
            data: args.data.bench_data(),
            reference: args.reference,
            instruction_difficulty,
            out: args.out,
        })?
    } else {
        let outputs = match (args.outputs, args.model) {
            (Some(path), _) => OutputsSource::File(path),
            (None, Some(spec)) => OutputsSource::Model {
                spec,
                name: args.name,
            },
            (None, None) => {
                bail!("give --annotations FILE, --model MODEL or --outputs model_outputs.json")
            }
        };
        let out = args.out.context("--out is needed to generate and judge")?;
        let outcome = crate::eval::alpaca::run(&AlpacaEvalOptions {
            outputs,
            judge: args.judge.spec()?,
            backend: args.judge.compute.backend,
            out,
            data: args.data.bench_data(),
            reference: args.reference,
            judge_template: args.judge_template,
            instruction_difficulty,
            max_instructions: args.max_instructions,
            seed: args.seed,
            max_new_tokens: args.max_new_tokens,
            temperature: args.temperature,
            batch_size: args.batch_size.max(1),
        })?;
        vec![outcome.metrics]
    };
    print_alpaca(&rows, args.json)
}

/// JSON: one model's metrics as an object, several as an object keyed by model.
fn print_alpaca(rows: &[AlpacaEvalMetrics], json: bool) -> Result<()> {
    if !json {
        println!("{}", crate::eval::alpaca::pipeline::markdown(rows));
        return Ok(());
    }
    let value = if let [one] = rows {
        serde_json::to_value(one)?
    } else {
        serde_json::to_value(
            rows.iter()
                .map(|r| (r.generator.clone(), r))
                .collect::<BTreeMap<_, _>>(),
        )?
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct MtBenchArgs {
    /// FastChat question.jsonl (default: mt_bench/question.jsonl in the data folder, else the
    /// Hugging Face Space lmsys/mt-bench's data/mt_bench/question.jsonl).
    #[arg(long)]
    pub questions: Option<PathBuf>,
    /// Existing answer files in FastChat's model_answer schema (model name = file stem).
    #[arg(long, num_args = 1..)]
    pub answers: Vec<PathBuf>,
    /// Also answer the questions with this model (GGUF, HF folder or hub id).
    #[arg(long)]
    pub model: Option<String>,
    /// Name of --model in reports (default: the model spec).
    #[arg(long)]
    pub name: Option<String>,
    /// Reference answers for math, reasoning and coding
    /// (default: mt_bench/reference_answer/gpt-4.jsonl in the data folder).
    #[arg(long)]
    pub reference_answers: Option<PathBuf>,
    /// FastChat judge_prompts.jsonl (default: mt_bench/judge_prompts.jsonl in the data folder).
    #[arg(long)]
    pub judge_prompts: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub judge: JudgeArgs,
    /// Judge reply length limit (FastChat: 2048).
    #[arg(long, default_value_t = 2048)]
    pub judge_max_tokens: usize,
    /// `fastchat`: the judge writes an explanation ending in [[rating]]; `prefill` (local
    /// judges): its reply is forced to start with "Rating: [[" so small judges give a number.
    #[arg(long, default_value = "fastchat", value_parser = ["fastchat", "prefill"])]
    pub verdict: String,
    /// Grade only a seeded subset of this many questions.
    #[arg(long)]
    pub max_questions: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Answer length limit per turn (FastChat: 1024).
    #[arg(long, default_value_t = 1024)]
    pub max_new_tokens: usize,
    /// Output folder (judgments.jsonl, scores.json, scores.md, radar charts).
    #[arg(long)]
    pub out: PathBuf,
}

fn mt_bench(args: MtBenchArgs) -> Result<()> {
    let verdict: VerdictMode = args
        .verdict
        .parse()
        .map_err(|e| anyhow!("--verdict: {e}"))?;
    let outcome = crate::eval::mt_bench::run(&MtBenchOptions {
        answers: args.answers,
        model: args.model.map(|spec| AnsweringModel {
            spec,
            name: args.name,
        }),
        judge: args.judge.spec()?,
        backend: args.judge.compute.backend,
        data: args.data.bench_data(),
        questions: args.questions,
        reference_answers: args.reference_answers,
        judge_prompts: args.judge_prompts,
        judge_max_tokens: args.judge_max_tokens,
        verdict,
        max_questions: args.max_questions,
        seed: args.seed,
        max_new_tokens: args.max_new_tokens,
        out: args.out,
    })?;
    println!("{}", outcome.markdown);
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct IfevalArgs {
    /// Generate the responses with this model (GGUF, HF folder or hub id).
    #[arg(long, conflicts_with = "responses")]
    pub model: Option<String>,
    /// Score existing responses: JSONL of {"prompt", "response"} (the reference's format).
    #[arg(long)]
    pub responses: Option<PathBuf>,
    /// The model's name in reports (default: the model spec, or the responses file's stem).
    #[arg(long)]
    pub name: Option<String>,
    /// The prompts, IFEval's input_data.jsonl format (default: ifeval/input_data.jsonl in the
    /// data folder, else the hub dataset google/IFEval's ifeval_input_data.jsonl).
    #[arg(long)]
    pub input_data: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub compute: super::BackendArgs,
    /// Generation length limit (tokens); the reference setup uses 1280.
    #[arg(long, default_value_t = 1280)]
    pub max_new_tokens: usize,
    /// Sampling temperature (0 = greedy, the reference setup).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Prompts generated per batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Only the first N prompts (a quick look, not comparable with full scores).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Run folder: responses.jsonl (resumed), verdicts.jsonl, metrics.json, metrics.md.
    /// Required with --model.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print {"prompt_level_strict", "inst_level_strict", "prompt_level_loose",
    /// "inst_level_loose"} (fractions in [0, 1]) as JSON instead of the Markdown report.
    #[arg(long)]
    pub json: bool,
}

fn ifeval(args: IfevalArgs) -> Result<()> {
    use crate::eval::ifeval::{IfevalOptions, ResponsesSource};
    let responses = match (args.responses, args.model) {
        (Some(path), _) => ResponsesSource::File {
            path,
            name: args.name,
        },
        (None, Some(spec)) => ResponsesSource::Model {
            spec,
            name: args.name,
        },
        (None, None) => bail!("give --model MODEL or --responses responses.jsonl"),
    };
    if matches!(responses, ResponsesSource::Model { .. }) && args.out.is_none() {
        bail!("--out is needed to generate responses (they are saved there and resumed)");
    }
    let outcome = crate::eval::ifeval::run(&IfevalOptions {
        responses,
        input_data: args.input_data,
        data: args.data.bench_data(),
        out: args.out,
        backend: args.compute.backend,
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        seed: args.seed,
        batch_size: args.batch_size.max(1),
        limit: args.limit,
    })?;
    let m = &outcome.metrics;
    if args.json {
        let scores = serde_json::json!({
            "prompt_level_strict": m.prompt_level_strict,
            "inst_level_strict": m.inst_level_strict,
            "prompt_level_loose": m.prompt_level_loose,
            "inst_level_loose": m.inst_level_loose,
        });
        println!("{}", serde_json::to_string_pretty(&scores)?);
    } else {
        println!("{}", crate::eval::ifeval::evaluate::markdown(m));
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct IfevalCompareArgs {
    /// Run folders of `seft eval ifeval --out` (or their verdicts.jsonl files), named by the
    /// model in metrics.json, else the folder name; `NAME=PATH` names one explicitly.
    #[arg(required = true, num_args = 1..)]
    pub runs: Vec<String>,
    /// Runs every other run is tested against (names as above; default: the first run).
    #[arg(long, num_args = 1..)]
    pub reference: Vec<String>,
    #[arg(long, default_value_t = 10_000)]
    pub resamples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the comparison as JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,
}

fn ifeval_compare(args: IfevalCompareArgs) -> Result<()> {
    use crate::eval::ifeval::compare;
    let runs = args
        .runs
        .iter()
        .map(|spec| compare::load_run(spec))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let references = if args.reference.is_empty() {
        vec![0]
    } else {
        args.reference
            .iter()
            .map(|r| {
                runs.iter()
                    .position(|(n, _)| n == r)
                    .ok_or_else(|| anyhow!("--reference {r}: no run has that name"))
            })
            .collect::<Result<_>>()?
    };
    let c = compare::compare(&runs, &references, args.resamples.max(1), args.seed)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        println!("{}", compare::markdown(&c));
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ConstraintPromptsArgs {
    /// Instruction files (JSON/JSONL prompt rows: prompt, instruction + input, question, …).
    #[arg(long, required = true, num_args = 1..)]
    pub instructions: Vec<PathBuf>,
    /// How many prompts to write.
    #[arg(long)]
    pub count: usize,
    /// The most instructions attached to one prompt (1-3).
    #[arg(long, default_value_t = 3)]
    pub max_instructions: usize,
    /// Skip instructions longer than this many characters.
    #[arg(long, default_value_t = 600)]
    pub max_chars: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Files of prompts to keep out (e.g. an earlier held-out set), in IFEval's format or as
    /// prompt rows; IFEval's own prompts are always kept out when found (--input-data or the
    /// data folder).
    #[arg(long, num_args = 1..)]
    pub exclude: Vec<PathBuf>,
    #[arg(long)]
    pub input_data: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Where to write the prompts (JSONL, IFEval's input_data format).
    #[arg(long)]
    pub out: PathBuf,
}

fn constraint_prompts(args: ConstraintPromptsArgs) -> Result<()> {
    use crate::eval::ifeval::synthetic::{ConstraintPromptOptions, write_prompt_file};
    let summary = write_prompt_file(&ConstraintPromptOptions {
        instructions: args.instructions,
        count: args.count,
        max_instructions: args.max_instructions,
        max_chars: args.max_chars,
        seed: args.seed,
        exclude: args.exclude,
        input_data: args.input_data,
        data: args.data.bench_data(),
        out: args.out.clone(),
    })?;
    eprintln!(
        "{} prompts from {} instructions ({} prompts kept out: {}) -> {}",
        summary.prompts,
        summary.instructions,
        summary.kept_out,
        summary
            .kept_out_files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        args.out.display()
    );
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ConstraintPairsArgs {
    /// The policy that samples (GGUF, HF folder or hub id).
    #[arg(long)]
    pub model: String,
    /// Prompts in IFEval's format (`seft eval constraint-prompts`).
    #[arg(long)]
    pub prompts: PathBuf,
    /// Samples per prompt.
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sequences generated per batch.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[command(flatten)]
    pub compute: super::BackendArgs,
    /// Run folder: samples.jsonl (resumed), pairs.jsonl, summary.json.
    #[arg(long)]
    pub out: PathBuf,
}

fn constraint_pairs(args: ConstraintPairsArgs) -> Result<()> {
    use crate::eval::ifeval::pairs::{PairOptions, make_pairs};
    use crate::model::generate::SamplingConfig;
    let summary = make_pairs(&PairOptions {
        model: args.model,
        backend: args.compute.backend,
        prompts: args.prompts,
        samples: args.samples,
        sampling: SamplingConfig {
            max_new_tokens: args.max_new_tokens,
            temperature: args.temperature,
            top_p: args.top_p,
            seed: args.seed,
            ..Default::default()
        },
        batch_size: args.batch_size.max(1),
        out: args.out,
    })?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct LeaderboardArgs {
    /// Result folders of `seft eval alpaca-eval --out` and `seft eval mt-bench --out`
    /// (searched recursively for metrics.json and scores.json).
    #[arg(required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// Write leaderboard.md and leaderboard.json here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct DifficultyArgs {
    /// The evaluation set (reference outputs), whose order defines the instruction index
    /// (default: as for `alpaca-eval --reference`).
    #[arg(long)]
    pub reference: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Annotation files of several models against the same baseline.
    #[arg(long, required = true, num_args = 1..)]
    pub annotations: Vec<PathBuf>,
    /// Where to write the CSV (index,instruction_difficulty).
    #[arg(long)]
    pub out: PathBuf,
}

fn difficulty(args: DifficultyArgs) -> Result<()> {
    let d = crate::eval::alpaca::estimate_difficulty(&DifficultyOptions {
        annotations: args.annotations,
        reference: args.reference,
        data: args.data.bench_data(),
        out: args.out.clone(),
    })?;
    eprintln!("{}", d.source);
    println!("{}", args.out.display());
    Ok(())
}

pub fn run(args: EvalArgs) -> Result<()> {
    match args.command {
        EvalCommand::AlpacaEval(a) => alpaca_eval(a),
        EvalCommand::MtBench(a) => mt_bench(a),
        EvalCommand::Ifeval(a) => ifeval(a),
        EvalCommand::IfevalCompare(a) => ifeval_compare(a),
        EvalCommand::ConstraintPrompts(a) => constraint_prompts(a),
        EvalCommand::ConstraintPairs(a) => constraint_pairs(a),
        EvalCommand::Leaderboard(a) => {
            let board = crate::eval::leaderboard::run(&a.dirs, a.out.as_deref())?;
            println!("{}", board.markdown);
            Ok(())
        }
        EvalCommand::Difficulty(a) => difficulty(a),
    }
}
