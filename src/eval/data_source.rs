//! Where the benchmark files (AlpacaEval's reference outputs, MT-Bench's questions, …) come
//! from, resolved the same way for every file and never relative to the working directory:
//!
//! 1. the file named explicitly (a per-file flag such as `--reference` or `--questions`);
//! 2. a benchmark data folder the user names, `--data-dir DIR` or else `SEFT_BENCH_DATA=DIR`,
//!    laid out as `alpaca_eval/…`, `mt_bench/…` and `ifeval/…` (the layout of the project's
//!    shared data folder; `SEFT_SHARED_DATA`, which names that folder for the tests and
//!    experiments, is read as an alias when `SEFT_BENCH_DATA` is unset);
//! 3. the Hugging Face hub cache (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`), for the
//!    files published on the hub;
//! 4. a download from the hub into that cache, unless `HF_HUB_OFFLINE=1`.
//!
//! The hub copies: AlpacaEval's evaluation set with the gpt-4-1106-preview reference outputs is
//! `alpaca_eval_gpt4_baseline.json` and the official instruction difficulties
//! `instruction_difficulty.csv`, both in the dataset `tatsu-lab/alpaca_eval` (the files
//! alpaca_eval itself loads). MT-Bench's `data/mt_bench/question.jsonl` is in the Space
//! `lmsys/mt-bench` (where FastChat's `download_mt_bench_pregenerated.py` fetches from).
//! IFEval's prompts are `ifeval_input_data.jsonl` in the dataset `google/IFEval`.
//! FastChat's `judge_prompts.jsonl` and `reference_answer/gpt-4.jsonl`, and alpaca_eval's judge
//! prompt `alpaca_eval_clf.txt`, are published on GitHub only (FastChat, alpaca_eval), so they
//! come from a flag or a data folder.

use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};

use crate::error::{Result, SeftError};

/// A file on the Hugging Face hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubFile {
    pub repo: &'static str,
    /// `true` for a Space, `false` for a dataset.
    pub space: bool,
    pub file: &'static str,
}

impl HubFile {
    fn repo(&self) -> Repo {
        let kind = if self.space {
            RepoType::Space
        } else {
            RepoType::Dataset
        };
        Repo::new(self.repo.to_string(), kind)
    }

    fn describe(&self) -> String {
        let kind = if self.space { "Space" } else { "dataset" };
        format!("the Hugging Face {kind} file {}:{}", self.repo, self.file)
    }
}

/// One benchmark file: what it is, the flag that names it, its place in a data folder and on
/// the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchFile {
    pub what: &'static str,
    pub flag: &'static str,
    /// Path inside a benchmark data folder.
    pub rel: &'static str,
    pub hub: Option<HubFile>,
}

pub const ALPACA_REFERENCE: BenchFile = BenchFile {
    what: "AlpacaEval reference outputs",
    flag: "--reference",
    rel: "alpaca_eval/reference_gpt4_1106_preview_outputs.json",
    hub: Some(HubFile {
        repo: "tatsu-lab/alpaca_eval",
        space: false,
        file: "alpaca_eval_gpt4_baseline.json",
    }),
};

pub const ALPACA_JUDGE_TEMPLATE: BenchFile = BenchFile {
    what: "AlpacaEval judge prompt",
    flag: "--judge-template",
    rel: "alpaca_eval/judge_configs/alpaca_eval_clf.txt",
    hub: None,
};

pub const ALPACA_DIFFICULTY: BenchFile = BenchFile {
    what: "AlpacaEval instruction difficulties",
    flag: "--instruction-difficulty",
    rel: "alpaca_eval/instruction_difficulty.csv",
    hub: Some(HubFile {
        repo: "tatsu-lab/alpaca_eval",
        space: false,
        file: "instruction_difficulty.csv",
    }),
};

pub const MT_BENCH_QUESTIONS: BenchFile = BenchFile {
    what: "MT-Bench questions",
    flag: "--questions",
    rel: "mt_bench/question.jsonl",
    hub: Some(HubFile {
        repo: "lmsys/mt-bench",
        space: true,
        file: "data/mt_bench/question.jsonl",
    }),
};

pub const MT_BENCH_REFERENCE_ANSWERS: BenchFile = BenchFile {
    what: "MT-Bench reference answers",
    flag: "--reference-answers",
    rel: "mt_bench/reference_answer/gpt-4.jsonl",
    hub: None,
};

pub const MT_BENCH_JUDGE_PROMPTS: BenchFile = BenchFile {
    what: "MT-Bench judge prompts",
    flag: "--judge-prompts",
    rel: "mt_bench/judge_prompts.jsonl",
    hub: None,
};

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Where benchmark files are looked for (steps 2–4 of the module's order).
#[derive(Debug, Clone)]
pub struct BenchData {
    dir: Option<PathBuf>,
    cache: Cache,
    offline: bool,
    endpoint: Option<String>,
}

impl BenchData {
    /// `dir` (from `--data-dir`), else `SEFT_BENCH_DATA`, else `SEFT_SHARED_DATA`; the hub
    /// cache of `HF_HOME`, `HF_HUB_OFFLINE` and `HF_ENDPOINT` as the hub's own tools read them.
    pub fn from_env(dir: Option<PathBuf>) -> Self {
        let dir = dir
            .or_else(|| std::env::var_os("SEFT_BENCH_DATA").map(PathBuf::from))
            .or_else(|| std::env::var_os("SEFT_SHARED_DATA").map(PathBuf::from))
            .filter(|d| !d.as_os_str().is_empty());
        BenchData {
            dir,
            cache: Cache::from_env(),
            offline: env_flag("HF_HUB_OFFLINE"),
            endpoint: std::env::var("HF_ENDPOINT").ok(),
        }
    }

    /// Without reading the environment: a data folder, a hub cache folder (the `hub` folder
    /// inside `HF_HOME`), whether downloads are forbidden, and the hub's URL (None: the hub).
    pub fn new(
        dir: Option<PathBuf>,
        hub_cache: PathBuf,
        offline: bool,
        endpoint: Option<String>,
    ) -> Self {
        BenchData {
            dir,
            cache: Cache::new(hub_cache),
            offline,
            endpoint,
        }
    }

    /// The benchmark data folder, if one is named.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The file in the data folder or the hub cache, without touching the network.
    pub fn find_local(&self, file: &BenchFile) -> Option<PathBuf> {
        if let Some(path) = self.dir.as_ref().map(|d| d.join(file.rel))
            && path.is_file()
        {
            return Some(path);
        }
        let hub = file.hub?;
        self.cache.repo(hub.repo()).get(hub.file)
    }

    /// `explicit` if given, else the data folder, the hub cache, a hub download (unless
    /// offline). Nothing found is one error line naming the file and the ways to supply it.
    pub fn resolve(&self, file: &BenchFile, explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(path) = explicit {
            return Ok(path.to_path_buf());
        }
        if let Some(path) = self.find_local(file) {
            return Ok(path);
        }
        let Some(hub) = file.hub else {
            return Err(self.not_found(file, None));
        };
        if self.offline {
            return Err(self.not_found(file, Some("HF_HUB_OFFLINE=1 forbids downloading it")));
        }
        self.download(&hub)
            .map_err(|e| self.not_found(file, Some(&format!("downloading it failed: {e}"))))
    }

    fn download(&self, hub: &HubFile) -> std::result::Result<PathBuf, String> {
        let mut builder = hf_hub::api::sync::ApiBuilder::from_cache(self.cache.clone());
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        let api = builder.build().map_err(|e| e.to_string())?;
        api.repo(hub.repo())
            .get(hub.file)
            .map_err(|e| e.to_string())
    }

    fn not_found(&self, file: &BenchFile, hub_problem: Option<&str>) -> SeftError {
        let folder = match &self.dir {
            Some(d) => format!("{} has none", d.display()),
            None => "none is named".to_string(),
        };
        let hub = match (file.hub, hub_problem) {
            (Some(h), Some(problem)) => format!(
                "; or {} (not in the hub cache {}; {problem})",
                h.describe(),
                self.cache.path().display()
            ),
            (Some(h), None) => format!("; or {}", h.describe()),
            (None, _) => "; it is not published on the Hugging Face hub".to_string(),
        };
        SeftError::Invalid(format!(
            "{} not found: give {} FILE; or a benchmark data folder holding {} with --data-dir DIR \
             or SEFT_BENCH_DATA=DIR ({folder}){hub}",
            file.what, file.flag, file.rel
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lays `files` out as hf-hub's cache does: refs/main -> snapshots/<commit>/file.
    fn fake_cache(root: &Path, hub: &HubFile, text: &str) -> PathBuf {
        let kind = if hub.space { "spaces" } else { "datasets" };
        let repo = root.join(format!("{kind}--{}", hub.repo.replace('/', "--")));
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), commit).unwrap();
        let path = repo.join("snapshots").join(commit).join(hub.file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn flag_then_folder_then_hub_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let (folder, cache) = (tmp.path().join("data"), tmp.path().join("hub"));
        let file = MT_BENCH_QUESTIONS;
        let cached = fake_cache(&cache, &file.hub.unwrap(), "{}");
        let data = BenchData::new(Some(folder.clone()), cache.clone(), true, None);
        // The folder lacks the file: the hub cache serves it.
        assert_eq!(data.resolve(&file, None).unwrap(), cached);
        std::fs::create_dir_all(folder.join("mt_bench")).unwrap();
        std::fs::write(folder.join(file.rel), "{}").unwrap();
        assert_eq!(data.resolve(&file, None).unwrap(), folder.join(file.rel));
        let explicit = Path::new("/somewhere/q.jsonl");
        assert_eq!(data.resolve(&file, Some(explicit)).unwrap(), explicit);
        // Both kinds of hub repository are found in the cache.
        let d = fake_cache(&cache, &ALPACA_REFERENCE.hub.unwrap(), "[]");
        assert_eq!(data.find_local(&ALPACA_REFERENCE), Some(d));
    }

    #[test]
    fn nothing_found_is_one_line_naming_the_three_ways() {
        let tmp = tempfile::tempdir().unwrap();
        let data = BenchData::new(None, tmp.path().join("hub"), true, None);
        let err = data
            .resolve(&ALPACA_REFERENCE, None)
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\n'), "{err}");
        for part in [
            "AlpacaEval reference outputs not found",
            "--reference FILE",
            "--data-dir DIR",
            "SEFT_BENCH_DATA=DIR",
            "alpaca_eval/reference_gpt4_1106_preview_outputs.json",
            "tatsu-lab/alpaca_eval:alpaca_eval_gpt4_baseline.json",
            "HF_HUB_OFFLINE=1",
        ] {
            assert!(err.contains(part), "{part:?} missing from {err}");
        }
        let err = data
            .resolve(&MT_BENCH_JUDGE_PROMPTS, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--judge-prompts FILE") && err.contains("not published"),
            "{err}"
        );
    }
}
