//! One table of every model evaluated: the `metrics.json` (AlpacaEval, or IFEval's, told apart
//! by its `"benchmark": "ifeval"`) and `scores.json` (MT-Bench) files found under result
//! folders, one row per model, best AlpacaEval LC win rate first (then best MT-Bench score,
//! then best IFEval prompt-level strict accuracy).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data::jsonl::{io, write_atomic};
use crate::error::{Result, SeftError};
use crate::eval::alpaca::protocol::AlpacaEvalMetrics;
use crate::eval::ifeval::IfevalMetrics;
use crate::eval::mt_bench::report::ModelScores;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LeaderboardRow {
    pub model: String,
    pub alpaca_eval_lc: Option<f64>,
    pub alpaca_eval_win_rate: Option<f64>,
    pub alpaca_eval_avg_length: Option<usize>,
    pub alpaca_eval_n: Option<usize>,
    pub mt_bench: Option<f64>,
    pub mt_bench_turn_1: Option<f64>,
    pub mt_bench_turn_2: Option<f64>,
    /// IFEval accuracies as fractions in [0, 1].
    pub ifeval_prompt_strict: Option<f64>,
    pub ifeval_inst_strict: Option<f64>,
    pub ifeval_prompt_loose: Option<f64>,
    pub ifeval_inst_loose: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Leaderboard {
    /// Sorted best first.
    pub rows: Vec<LeaderboardRow>,
    /// The rows as a Markdown table (`leaderboard.md`).
    pub markdown: String,
}

fn find_files(dir: &Path, name: &str, found: &mut Vec<PathBuf>) -> Result<()> {
    for entry in io(dir, std::fs::read_dir(dir))? {
        let path = io(dir, entry)?.path();
        if path.is_dir() {
            find_files(&path, name, found)?;
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    Ok(())
}

fn read_rows<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<Vec<T>> {
    let text = crate::input::read_metadata(path)?;
    serde_json::from_str(&text).map_err(|e| SeftError::file(path, format!("not {what}: {e}")))
}

/// Gathers every result under `dirs` (searched recursively); writes `leaderboard.md` and
/// `leaderboard.json` into `out` if given.
pub fn run(dirs: &[PathBuf], out: Option<&Path>) -> Result<Leaderboard> {
    let mut by_model: BTreeMap<String, LeaderboardRow> = BTreeMap::new();
    for dir in dirs {
        let (mut ae, mut mt) = (Vec::new(), Vec::new());
        find_files(dir, "metrics.json", &mut ae)?;
        find_files(dir, "scores.json", &mut mt)?;
        for p in ae {
            let text = crate::input::read_metadata(&p)?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| SeftError::file(&p, format!("not JSON: {e}")))?;
            if value.get("benchmark").and_then(|b| b.as_str()) == Some("ifeval") {
                let m: IfevalMetrics = serde_json::from_value(value)
                    .map_err(|e| SeftError::file(&p, format!("not IFEval metrics: {e}")))?;
                let r = by_model.entry(m.model.clone()).or_default();
                r.ifeval_prompt_strict = Some(m.prompt_level_strict);
                r.ifeval_inst_strict = Some(m.inst_level_strict);
                r.ifeval_prompt_loose = Some(m.prompt_level_loose);
                r.ifeval_inst_loose = Some(m.inst_level_loose);
                continue;
            }
            let rows: Vec<AlpacaEvalMetrics> = serde_json::from_value(value)
                .map_err(|e| SeftError::file(&p, format!("not AlpacaEval metrics: {e}")))?;
            for m in rows {
                let r = by_model.entry(m.generator.clone()).or_default();
                r.alpaca_eval_lc = m.length_controlled_winrate;
                r.alpaca_eval_win_rate = Some(m.win_rate.win_rate);
                r.alpaca_eval_avg_length = Some(m.avg_length);
                r.alpaca_eval_n = Some(m.win_rate.n_total);
            }
        }
        for p in mt {
            for s in read_rows::<ModelScores>(&p, "MT-Bench scores")? {
                let r = by_model.entry(s.model.clone()).or_default();
                r.mt_bench = Some(s.score);
                r.mt_bench_turn_1 = Some(s.turn_1);
                r.mt_bench_turn_2 = Some(s.turn_2);
            }
        }
    }
    if by_model.is_empty() {
        return Err(SeftError::Invalid(
            "no metrics.json or scores.json under the given folders".into(),
        ));
    }
    let mut rows: Vec<LeaderboardRow> = by_model
        .into_iter()
        .map(|(model, r)| LeaderboardRow { model, ..r })
        .collect();
    rows.sort_by(|a, b| {
        let key = |v: Option<f64>| v.unwrap_or(-1.0);
        key(b.alpaca_eval_lc)
            .total_cmp(&key(a.alpaca_eval_lc))
            .then(key(b.mt_bench).total_cmp(&key(a.mt_bench)))
            .then(key(b.ifeval_prompt_strict).total_cmp(&key(a.ifeval_prompt_strict)))
    });
    let md = markdown(&rows);
    if let Some(out) = out {
        io(out, std::fs::create_dir_all(out))?;
        write_atomic(&out.join("leaderboard.md"), md.as_bytes())?;
        let json = serde_json::to_string_pretty(&rows).expect("serializable rows");
        write_atomic(&out.join("leaderboard.json"), json.as_bytes())?;
    }
    Ok(Leaderboard { rows, markdown: md })
}

pub fn markdown(rows: &[LeaderboardRow]) -> String {
    let f = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.2}"));
    let n = |v: Option<usize>| v.map_or("–".to_string(), |x| x.to_string());
    let pct = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{:.1}", 100.0 * x));
    let mut md = String::from(
        "| model | AlpacaEval LC | AlpacaEval WR | avg length | n | MT-Bench | turn 1 | turn 2 | IFEval prompt strict | IFEval inst strict | IFEval prompt loose | IFEval inst loose |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.model,
            f(r.alpaca_eval_lc),
            f(r.alpaca_eval_win_rate),
            n(r.alpaca_eval_avg_length),
            n(r.alpaca_eval_n),
            f(r.mt_bench),
            f(r.mt_bench_turn_1),
            f(r.mt_bench_turn_2),
            pct(r.ifeval_prompt_strict),
            pct(r.ifeval_inst_strict),
            pct(r.ifeval_prompt_loose),
            pct(r.ifeval_inst_loose)
        ));
    }
    md
}
