//! MT-Bench end to end, as `seft eval mt-bench` runs it: answer the questions with a model (if
//! asked; an existing answer file in the output folder is reused), grade every model's answers
//! with a judge, and write `judgments.jsonl`, `scores.json`, `scores.md` and radar charts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use super::data::{model_name, read_answers, read_judge_prompts, read_questions};
use super::grading::{GradingJob, Judgment, grade};
use super::report::{ModelScores, markdown, radar_chart, scores};
use super::{AnswersByModel, answer_questions};
use crate::backend::Backend;
use crate::data::generation::progress_bar;
use crate::data::jsonl::{io, write_atomic, write_jsonl};
use crate::error::{Result, SeftError};
use crate::eval::alpaca::protocol::seeded_subset;
use crate::eval::data_source::{
    BenchData, MT_BENCH_JUDGE_PROMPTS, MT_BENCH_QUESTIONS, MT_BENCH_REFERENCE_ANSWERS,
};
use crate::eval::judges::JudgeSpec;

/// How the judge gives its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictMode {
    /// FastChat's: an explanation ending in `[[rating]]`.
    FastChat,
    /// The reply is forced to start with "Rating: [[" (local judges only), so small judges
    /// give a number.
    Prefill,
}

impl FromStr for VerdictMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "fastchat" => Ok(VerdictMode::FastChat),
            "prefill" => Ok(VerdictMode::Prefill),
            other => Err(format!(
                "unknown verdict mode {other:?} (fastchat or prefill)"
            )),
        }
    }
}

/// A model that answers the questions itself.
#[derive(Debug, Clone, PartialEq)]
pub struct AnsweringModel {
    /// GGUF file, Hugging Face folder or hub id.
    pub spec: String,
    /// Its name in reports (None: the spec).
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MtBenchOptions {
    /// Existing answer files in FastChat's model_answer schema (model name = file stem).
    pub answers: Vec<PathBuf>,
    pub model: Option<AnsweringModel>,
    pub judge: JudgeSpec,
    /// Compute backend of the local models (answering model and judge).
    pub backend: Backend,
    pub data: BenchData,
    /// FastChat's question.jsonl (None: found through `data`).
    pub questions: Option<PathBuf>,
    /// Reference answers for math, reasoning and coding (None: found through `data`).
    pub reference_answers: Option<PathBuf>,
    /// FastChat's judge_prompts.jsonl (None: found through `data`).
    pub judge_prompts: Option<PathBuf>,
    /// Judge reply length limit (FastChat: 2048; at most 4 with [`VerdictMode::Prefill`]).
    pub judge_max_tokens: usize,
    pub verdict: VerdictMode,
    /// Grade only a seeded subset of this many questions.
    pub max_questions: Option<usize>,
    pub seed: u64,
    /// Answer length limit per turn (FastChat: 1024).
    pub max_new_tokens: usize,
    /// Output folder.
    pub out: PathBuf,
}

#[derive(Debug, Clone)]
pub struct MtBenchOutcome {
    /// Best first.
    pub scores: Vec<ModelScores>,
    pub judgments: Vec<Judgment>,
    /// `scores.md`.
    pub markdown: String,
}

/// A model name usable as a file name (path separators and other odd characters become `_`).
pub fn file_stem_for(name: &str) -> String {
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

/// Answers (if asked), grades and writes every file into `opts.out`.
pub fn run(opts: &MtBenchOptions) -> Result<MtBenchOutcome> {
    let data = &opts.data;
    let questions = read_questions(&data.resolve(&MT_BENCH_QUESTIONS, opts.questions.as_deref())?)?;
    let questions = seeded_subset(&questions, opts.max_questions, opts.seed);
    let references = read_answers(&data.resolve(
        &MT_BENCH_REFERENCE_ANSWERS,
        opts.reference_answers.as_deref(),
    )?)?;
    let prompts =
        read_judge_prompts(&data.resolve(&MT_BENCH_JUDGE_PROMPTS, opts.judge_prompts.as_deref())?)?;
    io(&opts.out, std::fs::create_dir_all(&opts.out))?;
    let mut answers: AnswersByModel = BTreeMap::new();
    for path in &opts.answers {
        answers.insert(model_name(path), read_answers(path)?);
    }
    if let Some(model) = &opts.model {
        let (name, path) = own_answers(opts, model, &questions)?;
        answers.insert(name, read_answers(&path)?);
    }
    if answers.is_empty() {
        return Err(SeftError::Invalid(
            "nothing to grade: give --answers FILE... and/or --model MODEL".into(),
        ));
    }
    let judge = opts
        .judge
        .build(opts.backend, &opts.out.join("judge_cache.jsonl"))?;
    let prefill = opts.verdict == VerdictMode::Prefill;
    let job = GradingJob {
        questions: &questions,
        answers: &answers,
        references: &references,
        prompts: &prompts,
        max_tokens: if prefill {
            opts.judge_max_tokens.min(4)
        } else {
            opts.judge_max_tokens
        },
        verdict_prefix: if prefill {
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
    write_jsonl(&opts.out.join("judgments.jsonl"), &judgments)?;
    let table = scores(&judgments);
    let malformed: usize = table.iter().map(|s| s.malformed).sum();
    if malformed > 0 {
        eprintln!(
            "{malformed} verdict(s) had no [[rating]] and are excluded (score -1 in judgments.jsonl)"
        );
    }
    let md = markdown(&table, &judge.name());
    write_reports(opts, &table, &md)?;
    Ok(MtBenchOutcome {
        scores: table,
        judgments,
        markdown: md,
    })
}

/// The answering model's name and answer file, `model_answer/<name>.jsonl` in the output
/// folder, written unless it already exists.
fn own_answers(
    opts: &MtBenchOptions,
    model: &AnsweringModel,
    questions: &[super::data::Question],
) -> Result<(String, PathBuf)> {
    let name = model.name.clone().unwrap_or_else(|| model.spec.clone());
    let dir = opts.out.join("model_answer");
    let path = dir.join(format!("{}.jsonl", file_stem_for(&name)));
    if !path.exists() {
        let policy = crate::model::LanguageModel::load_on(&model.spec, opts.backend)?;
        let bar = progress_bar(questions.len(), "answer");
        let rows = answer_questions(
            &policy,
            &name,
            questions,
            opts.max_new_tokens,
            opts.seed,
            &|i| bar.set_position(i as u64),
        )?;
        bar.finish_and_clear();
        io(&dir, std::fs::create_dir_all(&dir))?;
        write_jsonl(&path, &rows)?;
    }
    Ok((name, path))
}

fn write_reports(opts: &MtBenchOptions, table: &[ModelScores], md: &str) -> Result<()> {
    let json = serde_json::to_string_pretty(table).expect("serializable scores");
    write_atomic(&opts.out.join("scores.json"), json.as_bytes())?;
    write_atomic(&opts.out.join("scores.md"), md.as_bytes())?;
    for s in table {
        radar_chart(
            &[s],
            &format!("MT-Bench: {}", s.model),
            &opts
                .out
                .join(format!("radar_{}.svg", file_stem_for(&s.model))),
        )?;
    }
    let all: Vec<&ModelScores> = table.iter().collect();
    radar_chart(
        &all,
        "MT-Bench: all models",
        &opts.out.join("radar_all.svg"),
    )
}
