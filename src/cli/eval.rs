//! `seft eval alpaca-eval | mt-bench | leaderboard | difficulty`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::backend::Backend;
use crate::data::jsonl::{append_jsonl, complete_rows, write_atomic, write_jsonl};
use crate::data::resolve_dataset;
use crate::eval::alpaca::annotations::{
    Annotation, ModelOutput, read_annotations, read_model_outputs, write_json_rows,
};
use crate::eval::alpaca::difficulty::{InstructionDifficulty, estimate};
use crate::eval::alpaca::protocol::{
    AlpacaEvalMetrics, JudgeTemplate, annotate, metrics, seeded_subset,
};
use crate::eval::judges::Judge;
use crate::eval::judges::cache::ResponseCache;
use crate::eval::judges::http::HttpJudge;
use crate::eval::judges::local::LocalJudge;
use crate::eval::mt_bench::data::{model_name, read_answers, read_judge_prompts, read_questions};
use crate::eval::mt_bench::grading::{GradingJob, Judgment, grade};
use crate::eval::mt_bench::report::{ModelScores, markdown, radar_chart, scores};
use crate::eval::mt_bench::{AnswersByModel, answer_questions};
use crate::model::Message;
use crate::model::generate::SamplingConfig;
use crate::seft::generation::{generate_rows, progress_bar};

/// The bundled instruction difficulties (see datasets/alpaca_eval/README.md).
const ESTIMATED_DIFFICULTY: &str =
    include_str!("../../datasets/alpaca_eval/instruction_difficulty_estimated.csv");

#[derive(clap::Subcommand, Debug)]
pub enum EvalCommand {
    /// AlpacaEval 2.0: generate, judge against the reference outputs, win rates (weighted,
    /// discrete, length-controlled); or metrics only from existing annotation files.
    AlpacaEval(AlpacaEvalArgs),
    /// MT-Bench: two-turn answers graded 1-10 per turn by a judge (FastChat's single grading).
    MtBench(MtBenchArgs),
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

/// The project's shared data folder (`SEFT_SHARED_DATA`, default `../shared/data`).
pub fn shared_data(rel: &str) -> PathBuf {
    std::env::var_os("SEFT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data"))
        .join(rel)
}

fn or_shared(path: &Option<PathBuf>, rel: &str) -> PathBuf {
    path.clone().unwrap_or_else(|| shared_data(rel))
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
    /// Compute backend for local models: flex, ndarray, wgpu.
    #[arg(long, default_value_t = Backend::default(), env = "SEFT_BACKEND")]
    pub backend: Backend,
}

impl JudgeArgs {
    /// Builds the judge; HTTP responses are cached in `cache`.
    pub fn build(&self, cache: &Path) -> Result<Box<dyn Judge>> {
        if let Some(url) = &self.judge_url {
            let model = self.judge_model.clone().expect("clap requires it");
            let mut judge = HttpJudge::new(
                url,
                &model,
                std::env::var(&self.api_key_env).ok(),
                Duration::from_secs_f64(self.timeout),
            );
            judge.concurrency = self.concurrency.max(1);
            judge.max_retries = self.max_retries;
            judge.backoff = Duration::from_secs_f64(self.backoff);
            judge.cache = Some(ResponseCache::open(cache)?);
            return Ok(Box::new(judge));
        }
        let Some(spec) = &self.judge else {
            bail!("give a judge: --judge MODEL (local) or --judge-url URL --judge-model NAME");
        };
        let model = super::ModelArgs {
            model: spec.clone(),
            compute: super::BackendArgs {
                backend: self.backend,
            },
        }
        .load()?;
        Ok(Box::new(LocalJudge {
            model,
            label: spec.clone(),
            batch_size: self.judge_batch_size.max(1),
        }))
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
    /// Reference outputs = the evaluation set: a path or a hub dataset file
    /// (default: $SEFT_SHARED_DATA/alpaca_eval/reference_gpt4_1106_preview_outputs.json,
    /// else tatsu-lab/alpaca_eval:alpaca_eval_gpt4_baseline.json).
    #[arg(long)]
    pub reference: Option<String>,
    /// The judge prompt (default: $SEFT_SHARED_DATA/alpaca_eval/judge_configs/alpaca_eval_clf.txt).
    #[arg(long)]
    pub judge_template: Option<PathBuf>,
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
    /// Instruction difficulties for the LC GLM: `auto` (the official file if it is in the
    /// Hugging Face cache, else `estimated`), `estimated` (bundled, see
    /// datasets/alpaca_eval/README.md), a CSV path, or a hub file such as
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

fn load_reference(spec: &Option<String>) -> Result<Vec<ModelOutput>> {
    let path = match spec {
        Some(s) => resolve_dataset(s)?,
        None => {
            let local = shared_data("alpaca_eval/reference_gpt4_1106_preview_outputs.json");
            if local.exists() {
                local
            } else {
                resolve_dataset("tatsu-lab/alpaca_eval:alpaca_eval_gpt4_baseline.json")?
            }
        }
    };
    Ok(read_model_outputs(&path)?)
}

fn load_difficulty(spec: &str) -> Result<InstructionDifficulty> {
    let estimated = || -> Result<InstructionDifficulty> {
        let mut d = InstructionDifficulty::parse_csv(
            ESTIMATED_DIFFICULTY,
            Path::new("datasets/alpaca_eval/instruction_difficulty_estimated.csv"),
        )?;
        d.source = "estimated by seft from 55 models' official annotations (datasets/alpaca_eval/README.md)".into();
        Ok(d)
    };
    match spec {
        "estimated" => estimated(),
        "auto" => {
            let repo = hf_hub::Repo::new("tatsu-lab/alpaca_eval".into(), hf_hub::RepoType::Dataset);
            match hf_hub::Cache::from_env()
                .repo(repo)
                .get("instruction_difficulty.csv")
            {
                Some(p) => Ok(InstructionDifficulty::read_csv(&p)?),
                None => estimated(),
            }
        }
        other => Ok(InstructionDifficulty::read_csv(&resolve_dataset(other)?)?),
    }
}

fn alpaca_markdown(rows: &[AlpacaEvalMetrics]) -> String {
    let mut md = String::from(
        "| model | LC win rate | win rate | std. error | discrete win rate | avg length | n |\n|---|---|---|---|---|---|---|\n",
    );
    for m in rows {
        md.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {} | {} |\n",
            m.generator,
            m.length_controlled_winrate
                .map_or("– (too few pairs)".into(), |x| format!("{x:.2}")),
            m.win_rate.win_rate,
            m.win_rate.standard_error,
            m.win_rate.discrete_win_rate,
            m.avg_length,
            m.win_rate.n_total
        ));
    }
    if let Some(m) = rows.first() {
        md.push_str(&format!(
            "\nJudge: {}. Instruction difficulty: {}.\n",
            m.annotator, m.instruction_difficulty
        ));
    }
    md
}

fn alpaca_eval(args: AlpacaEvalArgs) -> Result<()> {
    let difficulty = load_difficulty(&args.instruction_difficulty)?;
    let reference = load_reference(&args.reference)?;
    let eval_instructions: Vec<String> = reference.iter().map(|r| r.instruction.clone()).collect();
    let sets: Vec<Vec<Annotation>> = if !args.annotations.is_empty() {
        args.annotations
            .iter()
            .map(|p| read_annotations(p).map_err(anyhow::Error::from))
            .collect::<Result<_>>()?
    } else {
        vec![judge_outputs(&args, &reference)?]
    };
    let mut rows = Vec::new();
    for set in &sets {
        let d = difficulty.for_annotations(&eval_instructions, set)?;
        rows.push(metrics(set, &d, &difficulty.source)?);
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        write_atomic(
            &out.join("metrics.json"),
            serde_json::to_string_pretty(&rows)?.as_bytes(),
        )?;
        write_atomic(&out.join("metrics.md"), alpaca_markdown(&rows).as_bytes())?;
    }
    if args.json {
        let value = if rows.len() == 1 {
            serde_json::to_value(&rows[0])?
        } else {
            serde_json::to_value(
                rows.iter()
                    .map(|r| (r.generator.clone(), r))
                    .collect::<BTreeMap<_, _>>(),
            )?
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{}", alpaca_markdown(&rows));
    }
    Ok(())
}

/// Generates (or reads) the model's outputs and judges them, resumably, in `--out`.
fn judge_outputs(args: &AlpacaEvalArgs, reference: &[ModelOutput]) -> Result<Vec<Annotation>> {
    let out = args
        .out
        .clone()
        .context("--out is needed to generate and judge")?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let subset = seeded_subset(reference, args.max_instructions, args.seed);
    let outputs_path = out.join("model_outputs.json");
    let outputs: Vec<ModelOutput> = match (&args.outputs, &args.model) {
        (Some(path), _) => {
            let all = read_model_outputs(path)?;
            let wanted: std::collections::HashSet<&str> =
                subset.iter().map(|r| r.instruction.as_str()).collect();
            all.into_iter()
                .filter(|o| wanted.contains(o.instruction.as_str()))
                .collect()
        }
        (None, Some(spec)) => {
            let model = super::ModelArgs {
                model: spec.clone(),
                compute: super::BackendArgs {
                    backend: args.judge.backend,
                },
            }
            .load()?;
            let name = args.name.clone().unwrap_or_else(|| spec.clone());
            let inputs: Vec<Vec<Message>> = subset
                .iter()
                .map(|r| vec![Message::new("user", &r.instruction)])
                .collect();
            let sampling = SamplingConfig {
                max_new_tokens: args.max_new_tokens,
                temperature: args.temperature,
                seed: args.seed,
                ..Default::default()
            };
            let rows = generate_rows(
                &model,
                &inputs,
                &sampling,
                args.batch_size.max(1),
                &out.join("generations.partial.jsonl"),
                "generate",
                "generate",
                |i, g| ModelOutput {
                    instruction: subset[i].instruction.clone(),
                    output: g.text.trim().to_string(),
                    generator: name.clone(),
                    dataset: subset[i].dataset.clone(),
                },
            )?;
            write_json_rows(&outputs_path, &rows)?;
            rows
        }
        (None, None) => {
            bail!("give --annotations FILE, --model MODEL or --outputs model_outputs.json")
        }
    };
    if outputs.is_empty() {
        bail!("no model outputs match the evaluation instructions");
    }
    let template = JudgeTemplate::read(&or_shared(
        &args.judge_template,
        "alpaca_eval/judge_configs/alpaca_eval_clf.txt",
    ))?;
    let judge = args.judge.build(&out.join("judge_cache.jsonl"))?;
    // Judged in chunks appended to a partial file, so an interrupted run resumes.
    let partial = out.join("annotations.partial.jsonl");
    let mut done: Vec<Annotation> = complete_rows(&partial)?;
    if done.len() > outputs.len()
        || done
            .iter()
            .zip(&outputs)
            .any(|(a, o)| a.instruction != o.instruction)
    {
        done.clear();
        write_jsonl(&partial, &done)?;
    }
    let bar = progress_bar(outputs.len(), "judge");
    bar.set_position(done.len() as u64);
    let mut failures = 0;
    let (started, already) = (std::time::Instant::now(), done.len());
    for chunk in outputs[done.len()..].chunks(32) {
        let start = done.len() as u64;
        let (rows, f) = annotate(
            judge.as_ref(),
            &template,
            reference,
            chunk,
            &judge.name(),
            0,
            &|i| bar.set_position(start + i as u64),
        )?;
        failures += f.count;
        for e in &f.examples {
            bar.println(format!("judge error: {e}"));
        }
        append_jsonl(&partial, &rows)?;
        done.extend(rows);
    }
    bar.finish_and_clear();
    let judged = done.len() - already;
    if judged > 0 {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "judged {judged} pairs in {secs:.1} s ({:.3} pairs/s) with {}",
            judged as f64 / secs,
            judge.name()
        );
    }
    if failures > 0 {
        eprintln!(
            "{failures} pair(s) could not be judged and are left out of the win rates; rerun to retry them"
        );
    }
    write_json_rows(&out.join("annotations.json"), &done)?;
    Ok(done)
}

#[derive(clap::Args, Debug)]
pub struct MtBenchArgs {
    /// FastChat question.jsonl (default: $SEFT_SHARED_DATA/mt_bench/question.jsonl).
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
    /// (default: $SEFT_SHARED_DATA/mt_bench/reference_answer/gpt-4.jsonl).
    #[arg(long)]
    pub reference_answers: Option<PathBuf>,
    /// FastChat judge_prompts.jsonl (default: $SEFT_SHARED_DATA/mt_bench/judge_prompts.jsonl).
    #[arg(long)]
    pub judge_prompts: Option<PathBuf>,
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

/// A model name usable as a file name (path separators and other odd characters become `_`).
fn file_stem_for(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn mt_bench(args: MtBenchArgs) -> Result<()> {
    let questions = read_questions(&or_shared(&args.questions, "mt_bench/question.jsonl"))?;
    let questions = seeded_subset(&questions, args.max_questions, args.seed);
    let references = read_answers(&or_shared(
        &args.reference_answers,
        "mt_bench/reference_answer/gpt-4.jsonl",
    ))?;
    let prompts = read_judge_prompts(&or_shared(
        &args.judge_prompts,
        "mt_bench/judge_prompts.jsonl",
    ))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut answers: AnswersByModel = BTreeMap::new();
    for path in &args.answers {
        answers.insert(model_name(path), read_answers(path)?);
    }
    if let Some(spec) = &args.model {
        let name = args.name.clone().unwrap_or_else(|| spec.clone());
        let safe = file_stem_for(&name);
        let path = args.out.join("model_answer").join(format!("{safe}.jsonl"));
        if !path.exists() {
            let model = super::ModelArgs {
                model: spec.clone(),
                compute: super::BackendArgs {
                    backend: args.judge.backend,
                },
            }
            .load()?;
            let bar = progress_bar(questions.len(), "answer");
            let rows = answer_questions(
                &model,
                &name,
                &questions,
                args.max_new_tokens,
                args.seed,
                &|i| bar.set_position(i as u64),
            )?;
            bar.finish_and_clear();
            std::fs::create_dir_all(path.parent().expect("parent"))?;
            write_jsonl(&path, &rows)?;
        }
        answers.insert(name, read_answers(&path)?);
    }
    if answers.is_empty() {
        bail!("nothing to grade: give --answers FILE... and/or --model MODEL");
    }
    let judge = args.judge.build(&args.out.join("judge_cache.jsonl"))?;
    let job = GradingJob {
        questions: &questions,
        answers: &answers,
        references: &references,
        prompts: &prompts,
        max_tokens: if args.verdict == "prefill" {
            args.judge_max_tokens.min(4)
        } else {
            args.judge_max_tokens
        },
        verdict_prefix: if args.verdict == "prefill" {
            "Rating: [[".into()
        } else {
            String::new()
        },
    };
    let total: usize = answers
        .values()
        .map(|a| {
            questions
                .iter()
                .filter(|q| a.contains_key(&q.question_id))
                .map(|q| q.turns.len().min(2))
                .sum::<usize>()
        })
        .sum();
    let bar = progress_bar(total, "grade");
    let judgments: Vec<Judgment> = grade(&job, judge.as_ref(), &|i| bar.set_position(i as u64))?;
    bar.finish_and_clear();
    write_jsonl(&args.out.join("judgments.jsonl"), &judgments)?;
    let table = scores(&judgments);
    let malformed: usize = table.iter().map(|s| s.malformed).sum();
    if malformed > 0 {
        eprintln!(
            "{malformed} verdict(s) had no [[rating]] and are excluded (score -1 in judgments.jsonl)"
        );
    }
    write_atomic(
        &args.out.join("scores.json"),
        serde_json::to_string_pretty(&table)?.as_bytes(),
    )?;
    let md = markdown(&table, &judge.name());
    write_atomic(&args.out.join("scores.md"), md.as_bytes())?;
    for s in &table {
        let safe = file_stem_for(&s.model);
        radar_chart(
            &[s],
            &format!("MT-Bench: {}", s.model),
            &args.out.join(format!("radar_{safe}.svg")),
        )?;
    }
    let all: Vec<&ModelScores> = table.iter().collect();
    radar_chart(
        &all,
        "MT-Bench: all models",
        &args.out.join("radar_all.svg"),
    )?;
    println!("{md}");
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

fn find_files(dir: &Path, name: &str, found: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            find_files(&path, name, found)?;
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    Ok(())
}

#[derive(Debug, Default, serde::Serialize)]
struct LeaderboardRow {
    model: String,
    alpaca_eval_lc: Option<f64>,
    alpaca_eval_win_rate: Option<f64>,
    alpaca_eval_avg_length: Option<usize>,
    alpaca_eval_n: Option<usize>,
    mt_bench: Option<f64>,
    mt_bench_turn_1: Option<f64>,
    mt_bench_turn_2: Option<f64>,
}

fn leaderboard(args: LeaderboardArgs) -> Result<()> {
    let mut rows: BTreeMap<String, LeaderboardRow> = BTreeMap::new();
    for dir in &args.dirs {
        let (mut ae, mut mt) = (Vec::new(), Vec::new());
        find_files(dir, "metrics.json", &mut ae)?;
        find_files(dir, "scores.json", &mut mt)?;
        for p in ae {
            let text = std::fs::read_to_string(&p)?;
            let ms: Vec<AlpacaEvalMetrics> = serde_json::from_str(&text)
                .with_context(|| format!("{}: not AlpacaEval metrics", p.display()))?;
            for m in ms {
                let r = rows.entry(m.generator.clone()).or_default();
                r.alpaca_eval_lc = m.length_controlled_winrate;
                r.alpaca_eval_win_rate = Some(m.win_rate.win_rate);
                r.alpaca_eval_avg_length = Some(m.avg_length);
                r.alpaca_eval_n = Some(m.win_rate.n_total);
            }
        }
        for p in mt {
            let text = std::fs::read_to_string(&p)?;
            let ss: Vec<ModelScores> = serde_json::from_str(&text)
                .with_context(|| format!("{}: not MT-Bench scores", p.display()))?;
            for s in ss {
                let r = rows.entry(s.model.clone()).or_default();
                r.mt_bench = Some(s.score);
                r.mt_bench_turn_1 = Some(s.turn_1);
                r.mt_bench_turn_2 = Some(s.turn_2);
            }
        }
    }
    if rows.is_empty() {
        bail!("no metrics.json or scores.json under the given folders");
    }
    let mut rows: Vec<LeaderboardRow> = rows
        .into_iter()
        .map(|(model, r)| LeaderboardRow { model, ..r })
        .collect();
    rows.sort_by(|a, b| {
        b.alpaca_eval_lc
            .unwrap_or(-1.0)
            .total_cmp(&a.alpaca_eval_lc.unwrap_or(-1.0))
            .then(
                b.mt_bench
                    .unwrap_or(-1.0)
                    .total_cmp(&a.mt_bench.unwrap_or(-1.0)),
            )
    });
    let f = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.2}"));
    let mut md = String::from(
        "| model | AlpacaEval LC | AlpacaEval WR | avg length | n | MT-Bench | turn 1 | turn 2 |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.model,
            f(r.alpaca_eval_lc),
            f(r.alpaca_eval_win_rate),
            r.alpaca_eval_avg_length
                .map_or("–".into(), |x| x.to_string()),
            r.alpaca_eval_n.map_or("–".into(), |x| x.to_string()),
            f(r.mt_bench),
            f(r.mt_bench_turn_1),
            f(r.mt_bench_turn_2)
        ));
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)?;
        write_atomic(&out.join("leaderboard.md"), md.as_bytes())?;
        write_atomic(
            &out.join("leaderboard.json"),
            serde_json::to_string_pretty(&rows)?.as_bytes(),
        )?;
    }
    println!("{md}");
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct DifficultyArgs {
    /// The evaluation set (reference outputs), whose order defines the instruction index.
    #[arg(long)]
    pub reference: Option<String>,
    /// Annotation files of several models against the same baseline.
    #[arg(long, required = true, num_args = 1..)]
    pub annotations: Vec<PathBuf>,
    /// Where to write the CSV (index,instruction_difficulty).
    #[arg(long)]
    pub out: PathBuf,
}

fn difficulty(args: DifficultyArgs) -> Result<()> {
    let reference = load_reference(&args.reference)?;
    let eval: Vec<String> = reference.into_iter().map(|r| r.instruction).collect();
    let sets: Vec<Vec<Annotation>> = args
        .annotations
        .iter()
        .map(|p| read_annotations(p).map_err(anyhow::Error::from))
        .collect::<Result<_>>()?;
    eprintln!(
        "fitting the joint GLM over {} models' annotations (minutes for dozens of models)",
        sets.len()
    );
    let d = estimate(&eval, &sets)?;
    d.write_csv(&args.out)?;
    eprintln!("{}", d.source);
    println!("{}", args.out.display());
    Ok(())
}

pub fn run(args: EvalArgs) -> Result<()> {
    match args.command {
        EvalCommand::AlpacaEval(a) => alpaca_eval(a),
        EvalCommand::MtBench(a) => mt_bench(a),
        EvalCommand::Leaderboard(a) => leaderboard(a),
        EvalCommand::Difficulty(a) => difficulty(a),
    }
}
