//! AlpacaEval end to end, as `seft eval alpaca-eval` runs it: generate (or read) a model's
//! outputs, judge them against the reference outputs resumably, and write alpaca_eval's
//! `model_outputs.json` and `annotations.json` with seft's `metrics.json` and `metrics.md`; or
//! the metrics of existing annotation files; or instruction difficulties estimated from several
//! models' annotations.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::annotations::{
    Annotation, ModelOutput, read_annotations, read_model_outputs, write_json_rows,
};
use super::difficulty::{InstructionDifficulty, estimate};
use super::protocol::{AlpacaEvalMetrics, JudgeTemplate, annotate, metrics, seeded_subset};
use crate::backend::Backend;
use crate::data::generation::{RowsOutput, generate_rows, progress_bar, user};
use crate::data::jsonl::{append_jsonl, complete_rows, io, write_atomic, write_jsonl};
use crate::data::resolve_dataset;
use crate::error::{Result, SeftError};
use crate::eval::data_source::BenchData;
use crate::eval::data_source::{ALPACA_DIFFICULTY, ALPACA_JUDGE_TEMPLATE, ALPACA_REFERENCE};
use crate::eval::judges::{Judge, JudgeSpec};
use crate::model::Message;
use crate::model::generate::SamplingConfig;

/// The bundled instruction difficulties (see datasets/alpaca_eval/README.md).
const ESTIMATED_DIFFICULTY: &str =
    include_str!("../../../datasets/alpaca_eval/instruction_difficulty_estimated.csv");

/// Where the instruction difficulties of the length-controlled GLM come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DifficultyChoice {
    /// The official file if it is in the benchmark data folder or the Hugging Face cache (never
    /// downloaded), else [`DifficultyChoice::Estimated`].
    Auto,
    /// seft's estimate from 55 models' official annotations, bundled.
    Estimated,
    /// A CSV path or a hub dataset file `org/name:file.csv`.
    File(String),
}

impl FromStr for DifficultyChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "" => Err("an empty instruction-difficulty source".into()),
            "auto" => Ok(DifficultyChoice::Auto),
            "estimated" => Ok(DifficultyChoice::Estimated),
            other => Ok(DifficultyChoice::File(other.to_string())),
        }
    }
}

/// The bundled estimate.
pub fn estimated_difficulty() -> Result<InstructionDifficulty> {
    let mut d = InstructionDifficulty::parse_csv(
        ESTIMATED_DIFFICULTY,
        Path::new("datasets/alpaca_eval/instruction_difficulty_estimated.csv"),
    )?;
    d.source =
        "estimated by seft from 55 models' official annotations (datasets/alpaca_eval/README.md)"
            .into();
    Ok(d)
}

/// The instruction difficulties `choice` names.
pub fn load_difficulty(
    choice: &DifficultyChoice,
    data: &BenchData,
) -> Result<InstructionDifficulty> {
    match choice {
        DifficultyChoice::Estimated => estimated_difficulty(),
        DifficultyChoice::Auto => match data.find_local(&ALPACA_DIFFICULTY) {
            Some(path) => InstructionDifficulty::read_csv(&path),
            None => estimated_difficulty(),
        },
        DifficultyChoice::File(spec) => InstructionDifficulty::read_csv(&resolve_dataset(spec)?),
    }
}

/// The reference outputs (= the evaluation set): `spec` (a path or a hub dataset file) if
/// given, else found through `data`.
pub fn load_reference(spec: Option<&str>, data: &BenchData) -> Result<Vec<ModelOutput>> {
    let path = match spec {
        Some(s) => resolve_dataset(s)?,
        None => data.resolve(&ALPACA_REFERENCE, None)?,
    };
    read_model_outputs(&path)
}

/// The model outputs to judge.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputsSource {
    /// Generate them with this model (GGUF, HF folder or hub id); `name` (default: the spec)
    /// is the generator's name in the reports.
    Model { spec: String, name: Option<String> },
    /// An existing alpaca_eval `model_outputs.json`.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct AlpacaEvalOptions {
    pub outputs: OutputsSource,
    pub judge: JudgeSpec,
    /// Compute backend of the local models (policy and judge).
    pub backend: Backend,
    /// Output folder; also holds the partial files an interrupted run resumes from.
    pub out: PathBuf,
    pub data: BenchData,
    /// The reference outputs: a path or a hub dataset file (None: found through `data`).
    pub reference: Option<String>,
    /// The judge prompt (None: found through `data`).
    pub judge_template: Option<PathBuf>,
    pub instruction_difficulty: DifficultyChoice,
    /// Evaluate a seeded subset of this many instructions.
    pub max_instructions: Option<usize>,
    /// Seed of the subset and of sampling.
    pub seed: u64,
    pub max_new_tokens: usize,
    /// Sampling temperature (0 = greedy).
    pub temperature: f32,
    /// Prompts generated per batch.
    pub batch_size: usize,
}

#[derive(Debug, Clone)]
pub struct AlpacaEvalOutcome {
    pub metrics: AlpacaEvalMetrics,
    pub annotations: Vec<Annotation>,
    /// Pairs the judge could not rate (left out of the win rates; a rerun retries them).
    pub unjudged: usize,
}

/// Generates (or reads) the outputs, judges them and writes every file into `opts.out`.
pub fn run(opts: &AlpacaEvalOptions) -> Result<AlpacaEvalOutcome> {
    let difficulty = load_difficulty(&opts.instruction_difficulty, &opts.data)?;
    let reference = load_reference(opts.reference.as_deref(), &opts.data)?;
    let out = &opts.out;
    io(out, std::fs::create_dir_all(out))?;
    let subset = seeded_subset(&reference, opts.max_instructions, opts.seed);
    let outputs = match &opts.outputs {
        OutputsSource::File(path) => {
            let wanted: HashSet<&str> = subset.iter().map(|r| r.instruction.as_str()).collect();
            read_model_outputs(path)?
                .into_iter()
                .filter(|o| wanted.contains(o.instruction.as_str()))
                .collect()
        }
        OutputsSource::Model { spec, name } => {
            let name = name.clone().unwrap_or_else(|| spec.clone());
            let rows = generate_outputs(opts, spec, &name, &subset)?;
            write_json_rows(&out.join("model_outputs.json"), &rows)?;
            rows
        }
    };
    if outputs.is_empty() {
        return Err(SeftError::Invalid(
            "no model outputs match the evaluation instructions".into(),
        ));
    }
    let template_path = opts
        .data
        .resolve(&ALPACA_JUDGE_TEMPLATE, opts.judge_template.as_deref())?;
    let template = JudgeTemplate::read(&template_path)?;
    let judge = opts
        .judge
        .build(opts.backend, &out.join("judge_cache.jsonl"))?;
    let (annotations, unjudged) =
        judge_resumably(judge.as_ref(), &template, &reference, &outputs, out)?;
    write_json_rows(&out.join("annotations.json"), &annotations)?;
    let eval: Vec<String> = reference.iter().map(|r| r.instruction.clone()).collect();
    let d = difficulty.for_annotations(&eval, &annotations)?;
    let m = metrics(&annotations, &d, &difficulty.source)?;
    write_metrics(out, std::slice::from_ref(&m))?;
    Ok(AlpacaEvalOutcome {
        metrics: m,
        annotations,
        unjudged,
    })
}

fn generate_outputs(
    opts: &AlpacaEvalOptions,
    spec: &str,
    name: &str,
    subset: &[ModelOutput],
) -> Result<Vec<ModelOutput>> {
    let model = crate::model::LanguageModel::load_on(spec, opts.backend)?;
    let inputs: Vec<Vec<Message>> = subset.iter().map(|r| user(&r.instruction)).collect();
    let sampling = SamplingConfig {
        max_new_tokens: opts.max_new_tokens,
        temperature: opts.temperature,
        seed: opts.seed,
        ..Default::default()
    };
    generate_rows(
        &model,
        &inputs,
        &sampling,
        opts.batch_size.max(1),
        RowsOutput {
            path: &opts.out.join("generations.partial.jsonl"),
            label: "generate",
            fault: "generate",
        },
        |i, g| ModelOutput {
            instruction: subset[i].instruction.clone(),
            output: g.text.trim().to_string(),
            generator: name.to_string(),
            dataset: subset[i].dataset.clone(),
        },
    )
}

/// Judges in chunks appended to `annotations.partial.jsonl`, so an interrupted run resumes;
/// returns every annotation and how many pairs the judge could not rate.
fn judge_resumably(
    judge: &dyn Judge,
    template: &JudgeTemplate,
    reference: &[ModelOutput],
    outputs: &[ModelOutput],
    out: &Path,
) -> Result<(Vec<Annotation>, usize)> {
    let partial = out.join("annotations.partial.jsonl");
    let mut done: Vec<Annotation> = complete_rows(&partial)?;
    if done.len() > outputs.len()
        || done
            .iter()
            .zip(outputs)
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
        let (rows, f) = annotate(judge, template, reference, chunk, &judge.name(), 0, &|i| {
            bar.set_position(start + i as u64)
        })?;
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
    Ok((done, failures))
}

/// Metrics of existing annotation files (one model each).
#[derive(Debug, Clone)]
pub struct AnnotationMetricsOptions {
    pub annotations: Vec<PathBuf>,
    pub data: BenchData,
    /// The reference outputs: a path or a hub dataset file (None: found through `data`).
    pub reference: Option<String>,
    pub instruction_difficulty: DifficultyChoice,
    /// Where to write metrics.json and metrics.md (None: nowhere).
    pub out: Option<PathBuf>,
}

/// One metrics row per annotation file, in the order given.
pub fn metrics_of_annotations(opts: &AnnotationMetricsOptions) -> Result<Vec<AlpacaEvalMetrics>> {
    let sets: Vec<Vec<Annotation>> = opts
        .annotations
        .iter()
        .map(|p| read_annotations(p))
        .collect::<Result<_>>()?;
    let difficulty = load_difficulty(&opts.instruction_difficulty, &opts.data)?;
    let reference = load_reference(opts.reference.as_deref(), &opts.data)?;
    let eval: Vec<String> = reference.into_iter().map(|r| r.instruction).collect();
    let rows = sets
        .iter()
        .zip(&opts.annotations)
        .map(|(set, path)| {
            metrics(
                set,
                &difficulty.for_annotations(&eval, set)?,
                &difficulty.source,
            )
            .map_err(|e| SeftError::file(path, e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(out) = &opts.out {
        io(out, std::fs::create_dir_all(out))?;
        write_metrics(out, &rows)?;
    }
    Ok(rows)
}

fn write_metrics(out: &Path, rows: &[AlpacaEvalMetrics]) -> Result<()> {
    let json = serde_json::to_string_pretty(rows).expect("serializable metrics");
    write_atomic(&out.join("metrics.json"), json.as_bytes())?;
    write_atomic(&out.join("metrics.md"), markdown(rows).as_bytes())
}

/// The metrics as the Markdown table of `metrics.md`.
pub fn markdown(rows: &[AlpacaEvalMetrics]) -> String {
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

/// Instruction difficulties estimated from several models' annotations.
#[derive(Debug, Clone)]
pub struct DifficultyOptions {
    /// Annotation files of several models against the same baseline.
    pub annotations: Vec<PathBuf>,
    /// The evaluation set, whose order defines the instruction index (None: through `data`).
    pub reference: Option<String>,
    pub data: BenchData,
    /// Where to write the CSV (`index,instruction_difficulty`).
    pub out: PathBuf,
}

/// Fits the joint GLM (minutes for dozens of models) and writes the CSV.
pub fn estimate_difficulty(opts: &DifficultyOptions) -> Result<InstructionDifficulty> {
    let reference = load_reference(opts.reference.as_deref(), &opts.data)?;
    let eval: Vec<String> = reference.into_iter().map(|r| r.instruction).collect();
    let sets: Vec<Vec<Annotation>> = opts
        .annotations
        .iter()
        .map(|p| read_annotations(p))
        .collect::<Result<_>>()?;
    eprintln!(
        "fitting the joint GLM over {} models' annotations (minutes for dozens of models)",
        sets.len()
    );
    let d = estimate(&eval, &sets)?;
    d.write_csv(&opts.out)?;
    Ok(d)
}
