//! `seft eval ifeval` end to end: the prompts (a file, the benchmark data folder, or the hub
//! dataset `google/IFEval`), the responses (generated with the model's chat template, greedy
//! by default, resumably; or read from the reference's `{"prompt", "response"}` JSONL), the
//! verdicts and the scores, written into the run folder.

use std::path::{Path, PathBuf};

use super::evaluate::{
    IfevalMetrics, IfevalPrompt, PromptResponse, Verdict, judge_all, markdown, metrics,
    read_input_data, read_responses,
};
use crate::backend::Backend;
use crate::data::generation::{RowsOutput, generate_rows, user};
use crate::data::jsonl::{complete_rows, write_atomic, write_jsonl};
use crate::error::{Result, SeftError};
use crate::eval::data_source::{BenchData, BenchFile, HubFile};
use crate::model::Message;
use crate::model::generate::SamplingConfig;

/// IFEval's prompts: `ifeval/input_data.jsonl` in a benchmark data folder (the paper's
/// `data/input_data.jsonl`), or the hub dataset's copy (same rows; its kwargs list every
/// parameter name with null for the unused ones).
pub const IFEVAL_INPUT: BenchFile = BenchFile {
    what: "IFEval input data",
    flag: "--input-data",
    rel: "ifeval/input_data.jsonl",
    hub: Some(HubFile {
        repo: "google/IFEval",
        space: false,
        file: "ifeval_input_data.jsonl",
    }),
};

/// Where the responses come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponsesSource {
    /// Generate them with this model (GGUF, HF folder or hub id); `name` (default: the spec)
    /// names it in the reports.
    Model { spec: String, name: Option<String> },
    /// A `{"prompt", "response"}` JSONL file; `name` (default: the file's stem) names the
    /// model in the reports.
    File { path: PathBuf, name: Option<String> },
}

#[derive(Debug, Clone)]
pub struct IfevalOptions {
    pub responses: ResponsesSource,
    /// The prompts file (None: found through `data`).
    pub input_data: Option<PathBuf>,
    pub data: BenchData,
    /// Run folder (responses.jsonl, verdicts.jsonl, metrics.json, metrics.md); required to
    /// generate, optional to score a file.
    pub out: Option<PathBuf>,
    pub backend: Backend,
    /// The reference setup generates up to 1280 new tokens.
    pub max_new_tokens: usize,
    /// 0 = greedy, the reference setup.
    pub temperature: f32,
    pub seed: u64,
    pub batch_size: usize,
    /// Score only the first this many prompts (a quick look; not comparable to full scores).
    pub limit: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct IfevalOutcome {
    pub metrics: IfevalMetrics,
    pub verdicts: Vec<Verdict>,
}

/// The prompts `opts` names.
pub fn load_prompts(input_data: Option<&Path>, data: &BenchData) -> Result<Vec<IfevalPrompt>> {
    read_input_data(&data.resolve(&IFEVAL_INPUT, input_data)?)
}

fn generate(
    opts: &IfevalOptions,
    spec: &str,
    prompts: &[IfevalPrompt],
    out: &Path,
) -> Result<Vec<PromptResponse>> {
    check_resumable(opts, spec, prompts, out)?;
    let model = crate::model::LanguageModel::load_on(spec, opts.backend)?;
    let inputs: Vec<Vec<Message>> = prompts.iter().map(|p| user(&p.prompt)).collect();
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
            path: &out.join("responses.jsonl"),
            label: "generate",
            fault: "generate",
        },
        |i, g| PromptResponse {
            prompt: prompts[i].prompt.clone(),
            response: g.text.clone(),
        },
    )
}

/// What a run folder's responses were generated with (`generation.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct GenerationSettings {
    model: String,
    max_new_tokens: usize,
    temperature: f32,
    seed: u64,
    batch_size: usize,
}

/// A run folder resumes only the generation it started: same model and settings, and its
/// responses answer the same prompts in the same order. Anything else is an error, so that
/// responses of two setups are never mixed.
fn check_resumable(
    opts: &IfevalOptions,
    spec: &str,
    prompts: &[IfevalPrompt],
    out: &Path,
) -> Result<()> {
    let settings = GenerationSettings {
        model: spec.to_string(),
        max_new_tokens: opts.max_new_tokens,
        temperature: opts.temperature,
        seed: opts.seed,
        batch_size: opts.batch_size.max(1),
    };
    let path = out.join("generation.json");
    if path.exists() {
        let text = crate::input::read_metadata(&path)?;
        let before: GenerationSettings = serde_json::from_str(&text)
            .map_err(|e| SeftError::file(&path, format!("not seft's generation settings: {e}")))?;
        if before != settings {
            return Err(SeftError::file(
                &path,
                format!(
                    "the responses here were generated with {before:?}, not {settings:?}: use another --out"
                ),
            ));
        }
    }
    let done: Vec<PromptResponse> = complete_rows(&out.join("responses.jsonl"))?;
    if let Some(i) = done
        .iter()
        .enumerate()
        .position(|(i, r)| prompts.get(i).is_none_or(|p| p.prompt != r.prompt))
    {
        return Err(SeftError::file(
            &out.join("responses.jsonl"),
            format!(
                "line {}: a response to another prompt than this input data's: use another --out",
                i + 1
            ),
        ));
    }
    let json = serde_json::to_string_pretty(&settings).expect("settings serialize") + "\n";
    write_atomic(&path, json.as_bytes())
}

/// Generates (or reads) the responses, scores them, and writes the run folder if one is named.
pub fn run(opts: &IfevalOptions) -> Result<IfevalOutcome> {
    let mut prompts = load_prompts(opts.input_data.as_deref(), &opts.data)?;
    if let Some(n) = opts.limit {
        prompts.truncate(n);
    }
    if let Some(out) = &opts.out {
        crate::ownership::claim_dir(out, "--out")?;
    }
    let (name, responses, responses_path) = match &opts.responses {
        ResponsesSource::File { path, name } => {
            let name = name.clone().unwrap_or_else(|| {
                path.file_stem().map_or_else(
                    || path.display().to_string(),
                    |s| s.to_string_lossy().into_owned(),
                )
            });
            (name, read_responses(path)?, path.clone())
        }
        ResponsesSource::Model { spec, name } => {
            let out = opts.out.as_deref().ok_or_else(|| {
                SeftError::Invalid("--out is needed to generate responses".into())
            })?;
            let rows = generate(opts, spec, &prompts, out)?;
            let map = rows.into_iter().map(|r| (r.prompt, r.response)).collect();
            (
                name.clone().unwrap_or_else(|| spec.clone()),
                map,
                out.join("responses.jsonl"),
            )
        }
    };
    let verdicts = judge_all(&prompts, &responses, &responses_path)?;
    let metrics = metrics(&name, &verdicts);
    if let Some(out) = &opts.out {
        write_jsonl(&out.join("verdicts.jsonl"), &verdicts)?;
        let json = serde_json::to_string_pretty(&metrics).expect("metrics serialize") + "\n";
        write_atomic(&out.join("metrics.json"), json.as_bytes())?;
        write_atomic(&out.join("metrics.md"), markdown(&metrics).as_bytes())?;
    }
    Ok(IfevalOutcome { metrics, verdicts })
}
