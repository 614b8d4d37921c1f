//! Comparing IFEval runs on the same prompts: each run's four accuracies with a 95% percentile
//! bootstrap interval over prompts (resampling prompts, so instruction-level accuracy keeps
//! each prompt's instructions together), and each run against reference runs with a paired
//! test: the per-prompt differences (followed or not for prompt level; instructions followed
//! for instruction level) get a paired bootstrap interval and a two-sided sign-flip
//! permutation p-value (Fisher's randomization test; under "no difference" each prompt's
//! difference is as likely negated).

use std::collections::BTreeMap;
use std::path::PathBuf;

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use super::evaluate::Verdict;
use crate::error::{Result, SeftError};

/// The four IFEval accuracies, in the order the reference prints them.
pub const METRICS: [&str; 4] = [
    "prompt_level_strict",
    "inst_level_strict",
    "prompt_level_loose",
    "inst_level_loose",
];

/// Per-prompt counts for one run: (prompt followed, instructions followed, instructions), strict
/// then loose.
#[derive(Debug, Clone)]
struct PromptCounts {
    strict: (f64, f64),
    loose: (f64, f64),
    instructions: f64,
}

fn counts(v: &Verdict) -> PromptCounts {
    let n = |list: &[bool]| list.iter().filter(|&&b| b).count() as f64;
    PromptCounts {
        strict: (
            f64::from(u8::from(v.follow_all_instructions_strict)),
            n(&v.follow_instruction_list_strict),
        ),
        loose: (
            f64::from(u8::from(v.follow_all_instructions_loose)),
            n(&v.follow_instruction_list_loose),
        ),
        instructions: v.instruction_id_list.len() as f64,
    }
}

/// The four accuracies of the prompts at `idx` (with repetition).
fn accuracies(rows: &[PromptCounts], idx: &[usize]) -> [f64; 4] {
    let (mut ps, mut is, mut pl, mut il, mut total) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &i in idx {
        let r = &rows[i];
        ps += r.strict.0;
        is += r.strict.1;
        pl += r.loose.0;
        il += r.loose.1;
        total += r.instructions;
    }
    let n = idx.len().max(1) as f64;
    let t = if total > 0.0 { total } else { 1.0 };
    [ps / n, is / t, pl / n, il / t]
}

/// A value with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// A run's accuracies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunScores {
    pub name: String,
    pub prompts: usize,
    /// By metric name ([`METRICS`]).
    pub metrics: BTreeMap<String, Estimate>,
}

/// `run` minus `reference`, per metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedTest {
    pub run: String,
    pub reference: String,
    pub difference: BTreeMap<String, Estimate>,
    /// Two-sided sign-flip permutation p-value per metric.
    pub p_value: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub resamples: usize,
    pub seed: u64,
    pub runs: Vec<RunScores>,
    pub tests: Vec<PairedTest>,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn interval(value: f64, mut draws: Vec<f64>) -> Estimate {
    draws.sort_by(f64::total_cmp);
    Estimate {
        value,
        low: percentile(&draws, 0.025),
        high: percentile(&draws, 0.975),
    }
}

/// Joins every run's verdicts on the prompt key; all runs must cover the same prompts.
fn aligned(runs: &[(String, Vec<Verdict>)]) -> Result<Vec<Vec<PromptCounts>>> {
    let Some((first_name, first)) = runs.first() else {
        return Err(SeftError::Invalid("no IFEval runs to compare".into()));
    };
    let keys: Vec<i64> = first.iter().map(|v| v.key).collect();
    runs.iter()
        .map(|(name, verdicts)| {
            let by_key: BTreeMap<i64, &Verdict> = verdicts.iter().map(|v| (v.key, v)).collect();
            if by_key.len() != keys.len() {
                return Err(SeftError::Invalid(format!(
                    "{name} has {} prompts, {first_name} {}: compare runs on the same prompts",
                    by_key.len(),
                    keys.len()
                )));
            }
            keys.iter()
                .map(|k| {
                    by_key.get(k).map(|v| counts(v)).ok_or_else(|| {
                        SeftError::Invalid(format!("{name} has no verdict for prompt key {k}"))
                    })
                })
                .collect()
        })
        .collect()
}

/// One run to compare: `PATH` or `NAME=PATH`, where PATH is a `seft eval ifeval` run folder
/// or its verdicts.jsonl. Without a NAME, the run is named by its metrics.json's model, else
/// by its folder.
pub fn load_run(spec: &str) -> Result<(String, Vec<Verdict>)> {
    let (name, path) = match spec.split_once('=') {
        Some((n, p)) => (Some(n.to_string()), PathBuf::from(p)),
        None => (None, PathBuf::from(spec)),
    };
    let (dir, verdicts) = if path.is_dir() {
        (path.clone(), path.join("verdicts.jsonl"))
    } else {
        (path.parent().map(PathBuf::from).unwrap_or_default(), path)
    };
    let name = name
        .or_else(|| {
            let text = std::fs::read_to_string(dir.join("metrics.json")).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            v["model"].as_str().map(str::to_string)
        })
        .unwrap_or_else(|| {
            dir.file_name()
                .map_or(spec.to_string(), |n| n.to_string_lossy().into_owned())
        });
    Ok((name, crate::data::jsonl::read_jsonl(&verdicts)?))
}

/// Scores every run and tests each against each of `references` (indices into `runs`).
pub fn compare(
    runs: &[(String, Vec<Verdict>)],
    references: &[usize],
    resamples: usize,
    seed: u64,
) -> Result<Comparison> {
    let rows = aligned(runs)?;
    let n = rows[0].len();
    if n == 0 {
        return Err(SeftError::Invalid("the runs have no prompts".into()));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    // One set of resampled prompt indices, shared by every run: the paired intervals come from
    // the same draws.
    let draws: Vec<Vec<usize>> = (0..resamples)
        .map(|_| (0..n).map(|_| rng.random_range(0..n)).collect())
        .collect();
    let all: Vec<usize> = (0..n).collect();
    let scores: Vec<[f64; 4]> = rows.iter().map(|r| accuracies(r, &all)).collect();
    let boot: Vec<Vec<[f64; 4]>> = rows
        .iter()
        .map(|r| draws.iter().map(|idx| accuracies(r, idx)).collect())
        .collect();
    let per_draw = |f: &dyn Fn(usize) -> f64| -> Vec<f64> { (0..resamples).map(f).collect() };
    let run_scores = runs
        .iter()
        .enumerate()
        .map(|(r, (name, _))| RunScores {
            name: name.clone(),
            prompts: n,
            metrics: METRICS
                .iter()
                .enumerate()
                .map(|(m, key)| {
                    let d = per_draw(&|b| boot[r][b][m]);
                    (key.to_string(), interval(scores[r][m], d))
                })
                .collect(),
        })
        .collect();
    let mut tests = Vec::new();
    for &reference in references {
        for r in 0..runs.len() {
            if r == reference {
                continue;
            }
            let mut difference = BTreeMap::new();
            let mut p_value = BTreeMap::new();
            for (m, key) in METRICS.iter().enumerate() {
                let d = per_draw(&|b| boot[r][b][m] - boot[reference][b][m]);
                difference.insert(
                    key.to_string(),
                    interval(scores[r][m] - scores[reference][m], d),
                );
                p_value.insert(
                    key.to_string(),
                    sign_flip_p(&rows[r], &rows[reference], m, resamples, &mut rng),
                );
            }
            tests.push(PairedTest {
                run: runs[r].0.clone(),
                reference: runs[reference].0.clone(),
                difference,
                p_value,
            });
        }
    }
    Ok(Comparison {
        resamples,
        seed,
        runs: run_scores,
        tests,
    })
}

/// Per-prompt contribution to metric `m` (prompt level: followed or not; instruction level:
/// instructions followed), and the metric's denominator.
fn contributions(a: &[PromptCounts], m: usize) -> (Vec<f64>, f64) {
    let value = |c: &PromptCounts| match m {
        0 => c.strict.0,
        1 => c.strict.1,
        2 => c.loose.0,
        _ => c.loose.1,
    };
    let denominator = if m.is_multiple_of(2) {
        a.len() as f64
    } else {
        a.iter().map(|c| c.instructions).sum()
    };
    (a.iter().map(value).collect(), denominator.max(1.0))
}

/// Two-sided p-value of "no difference" by random sign flips of the per-prompt differences
/// (with the observed statistic counted, so p > 0).
fn sign_flip_p(
    a: &[PromptCounts],
    b: &[PromptCounts],
    m: usize,
    draws: usize,
    rng: &mut StdRng,
) -> f64 {
    let (va, denominator) = contributions(a, m);
    let (vb, _) = contributions(b, m);
    let diffs: Vec<f64> = va
        .iter()
        .zip(&vb)
        .map(|(x, y)| x - y)
        .filter(|d| *d != 0.0)
        .collect();
    let observed = diffs.iter().sum::<f64>().abs() / denominator;
    let mut extreme = 1usize;
    for _ in 0..draws {
        let s: f64 = diffs
            .iter()
            .map(|d| if rng.random::<bool>() { *d } else { -*d })
            .sum();
        if s.abs() / denominator >= observed - 1e-12 {
            extreme += 1;
        }
    }
    extreme as f64 / (draws + 1) as f64
}

/// The comparison as Markdown: one table of accuracies with intervals, one of paired tests.
pub fn markdown(c: &Comparison) -> String {
    let pct = |e: &Estimate| {
        format!(
            "{:.1} [{:.1}, {:.1}]",
            100.0 * e.value,
            100.0 * e.low,
            100.0 * e.high
        )
    };
    let mut s = String::from(
        "| run | prompts | prompt strict | inst strict | prompt loose | inst loose |\n|---|---:|---|---|---|---|\n",
    );
    for r in &c.runs {
        s.push_str(&format!("| {} | {} |", r.name, r.prompts));
        for m in METRICS {
            s.push_str(&format!(" {} |", pct(&r.metrics[m])));
        }
        s.push('\n');
    }
    if !c.tests.is_empty() {
        s.push_str(
            "\n| run − reference | prompt strict | inst strict | prompt loose | inst loose |\n|---|---|---|---|---|\n",
        );
        for t in &c.tests {
            s.push_str(&format!("| {} − {} |", t.run, t.reference));
            for m in METRICS {
                let d = &t.difference[m];
                s.push_str(&format!(
                    " {:+.1} [{:+.1}, {:+.1}], p = {:.3} |",
                    100.0 * d.value,
                    100.0 * d.low,
                    100.0 * d.high,
                    t.p_value[m]
                ));
            }
            s.push('\n');
        }
    }
    s.push_str(&format!(
        "\nAccuracies in %, 95% percentile bootstrap intervals over prompts ({} resamples, seed {}); differences with paired bootstrap intervals and two-sided sign-flip permutation p-values.\n",
        c.resamples, c.seed
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(key: i64, strict: &[bool], loose: &[bool]) -> Verdict {
        Verdict {
            key,
            prompt: format!("p{key}"),
            response: String::new(),
            instruction_id_list: vec!["punctuation:no_comma".into(); strict.len()],
            follow_all_instructions_strict: strict.iter().all(|&b| b),
            follow_instruction_list_strict: strict.to_vec(),
            follow_all_instructions_loose: loose.iter().all(|&b| b),
            follow_instruction_list_loose: loose.to_vec(),
        }
    }

    #[test]
    fn intervals_contain_the_value_and_identical_runs_do_not_differ() {
        let a: Vec<Verdict> = (0..200)
            .map(|k| verdict(k, &[k % 2 == 0, k % 3 == 0], &[k % 2 == 0, true]))
            .collect();
        let better: Vec<Verdict> = (0..200)
            .map(|k| verdict(k, &[k % 5 != 0, true], &[true, true]))
            .collect();
        let runs = vec![
            ("a".into(), a.clone()),
            ("a again".into(), a),
            ("better".into(), better),
        ];
        let c = compare(&runs, &[0], 2000, 1).unwrap();
        let ps = &c.runs[0].metrics["prompt_level_strict"];
        // Prompts where k is even and divisible by 3: k % 6 == 0 → 34 of 200.
        assert!((ps.value - 34.0 / 200.0).abs() < 1e-12);
        assert!(ps.low < ps.value && ps.value < ps.high);
        let same = &c.tests[0];
        assert_eq!(same.run, "a again");
        assert_eq!(same.difference["inst_level_loose"].value, 0.0);
        assert_eq!(same.p_value["prompt_level_strict"], 1.0);
        let diff = &c.tests[1];
        assert!(diff.difference["prompt_level_strict"].low > 0.0);
        assert!(diff.p_value["prompt_level_strict"] < 0.001);
        assert!(markdown(&c).contains("| better − a |"));
        // Different prompt sets are refused.
        let short = vec![
            ("x".into(), vec![verdict(0, &[true], &[true])]),
            ("y".into(), vec![verdict(1, &[true], &[true])]),
        ];
        assert!(compare(&short, &[0], 10, 0).is_err());
    }
}
