//! Programmatic evaluation for task-family runs: held-out accuracy of a policy, its win rate
//! against another policy on the same prompts, and the reviser's confusion table (true state
//! of a response × the tag the reviser gave it).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::generation::{RowsOutput, generate_rows};
use crate::data::jsonl::read_jsonl;
use crate::error::Result;
use crate::eval::data_source::BenchData;
use crate::eval::ifeval::{IfevalMetrics, IfevalOptions, ResponsesSource};
use crate::evolution::data::PromptRow;
use crate::evolution::evolve::Evolution;
use crate::evolution::generation::{ResponseRow, answer_prompts, user};
use crate::evolution::grader::Grader;
use crate::evolution::layout::{files, policy_name, stages};
use crate::evolution::reviser::{ReviserFormat, Tag};
use crate::evolution::stage::Run;
use crate::evolution::task::Grade;
use crate::model::generate::{FinishReason, SamplingConfig};
use crate::model::{LanguageModel, Message};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradedRow {
    pub id: String,
    pub prompt: String,
    pub response: String,
    pub grade: Grade,
    /// Fraction of the prompt's instructions followed (constraints grader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyEval {
    pub model: String,
    pub prompts: usize,
    pub correct: usize,
    pub slip: usize,
    pub wrong: usize,
    pub accuracy: f64,
    pub mean_response_chars: f64,
    /// Mean fraction of instructions followed (constraints grader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_score: Option<f64>,
}

/// Generates answers to the held-out prompts (into `dir/responses.jsonl`) and grades them.
pub fn eval_policy(
    model: &LanguageModel,
    model_name: &str,
    held_out: &[PromptRow],
    sampling: &SamplingConfig,
    batch_size: usize,
    dir: &Path,
    grader: &Grader,
) -> Result<(PolicyEval, Vec<GradedRow>)> {
    let inputs: Vec<Vec<Message>> = held_out.iter().map(|p| user(&p.prompt)).collect();
    let rows = generate_rows(
        model,
        &inputs,
        sampling,
        batch_size,
        RowsOutput {
            path: &dir.join(files::RESPONSES),
            label: &format!("eval {model_name}"),
            fault: "eval",
        },
        |i, g| GradedRow {
            id: held_out[i].id.clone(),
            prompt: held_out[i].prompt.clone(),
            response: g.text.clone(),
            grade: grader.grade(&held_out[i].prompt, &g.text),
            score: grader.score(&held_out[i].prompt, &g.text),
        },
    )?;
    let count = |g: Grade| rows.iter().filter(|r| r.grade == g).count();
    let n = rows.len().max(1) as f64;
    let eval = PolicyEval {
        model: model_name.to_string(),
        prompts: rows.len(),
        correct: count(Grade::Correct),
        slip: count(Grade::Slip),
        wrong: count(Grade::Wrong),
        accuracy: count(Grade::Correct) as f64 / n,
        mean_response_chars: rows
            .iter()
            .map(|r| r.response.chars().count())
            .sum::<usize>() as f64
            / n,
        mean_score: match grader {
            Grader::Task => None,
            Grader::Constraints(_) => Some(rows.iter().filter_map(|r| r.score).sum::<f64>() / n),
        },
    };
    Ok((eval, rows))
}

/// Share of prompts where `a` is graded better than `b`, ties counting half.
pub fn win_rate(a: &[GradedRow], b: &[GradedRow]) -> f64 {
    let rank = |g: Grade| g.score();
    let by_id: BTreeMap<&str, Grade> = b.iter().map(|r| (r.id.as_str(), r.grade)).collect();
    let (mut points, mut n) = (0.0, 0usize);
    for r in a {
        if let Some(&other) = by_id.get(r.id.as_str()) {
            n += 1;
            points += match rank(r.grade).total_cmp(&rank(other)) {
                std::cmp::Ordering::Greater => 1.0,
                std::cmp::Ordering::Equal => 0.5,
                std::cmp::Ordering::Less => 0.0,
            };
        }
    }
    points / n.max(1) as f64
}

/// One reviewed held-out response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewedRow {
    pub id: String,
    pub prompt: String,
    pub response: String,
    pub grade: Grade,
    /// `None`: the reviser gave no tag (the response is kept).
    pub tag: Option<Tag>,
    pub enhanced: String,
    pub enhanced_grade: Grade,
    pub reviser_output: String,
    pub reviser_tokens: usize,
    pub reviser_finish: FinishReason,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviserEval {
    pub responses: usize,
    /// true state → tag (`keep`, `minor`, `major`, `untagged`) → count.
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    /// Correct responses returned unchanged.
    pub correct_kept_unchanged: f64,
    /// Responses that were not correct whose enhanced version is correct.
    pub not_correct_fixed: f64,
    pub wrong_fixed: f64,
    pub slip_fixed: f64,
    /// Correct responses the reviser broke.
    pub correct_broken: f64,
    /// Mean tokens the reviser generated for keep decisions.
    pub mean_tokens_keep: f64,
    pub mean_tokens_revise: f64,
}

pub fn tag_name(tag: Option<Tag>) -> &'static str {
    match tag {
        Some(Tag::Keep) => "keep",
        Some(Tag::Minor) => "minor",
        Some(Tag::Major) => "major",
        None => "untagged",
    }
}

fn grade_name(g: Grade) -> &'static str {
    match g {
        Grade::Correct => "correct",
        Grade::Slip => "slip",
        Grade::Wrong => "wrong",
    }
}

/// Runs the reviser on graded responses (into `dir/reviewed.jsonl`) and tabulates what it did.
pub fn eval_reviser(
    reviser: &LanguageModel,
    format: &ReviserFormat,
    responses: &[GradedRow],
    sampling: &SamplingConfig,
    batch_size: usize,
    dir: &Path,
    grader: &Grader,
) -> Result<ReviserEval> {
    let sampling = &format.decoding(sampling);
    let inputs: Vec<Vec<Message>> = responses
        .iter()
        .map(|r| user(&format.user_turn(&r.prompt, &r.response)))
        .collect();
    let rows = generate_rows(
        reviser,
        &inputs,
        sampling,
        batch_size,
        RowsOutput {
            path: &dir.join(files::REVIEWED),
            label: "eval reviser",
            fault: "eval",
        },
        |i, g| {
            let r = &responses[i];
            let (tag, enhanced) = format.apply(&g.text, &r.response);
            ReviewedRow {
                id: r.id.clone(),
                prompt: r.prompt.clone(),
                response: r.response.clone(),
                grade: r.grade,
                tag,
                enhanced_grade: grader.grade(&r.prompt, &enhanced),
                enhanced,
                reviser_output: g.text.clone(),
                reviser_tokens: g.token_ids.len(),
                reviser_finish: g.finish_reason,
            }
        },
    )?;
    let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for g in [Grade::Correct, Grade::Slip, Grade::Wrong] {
        let row = confusion.entry(grade_name(g).to_string()).or_default();
        for t in [Some(Tag::Keep), Some(Tag::Minor), Some(Tag::Major), None] {
            row.insert(tag_name(t).to_string(), 0);
        }
    }
    for r in &rows {
        *confusion
            .get_mut(grade_name(r.grade))
            .and_then(|m| m.get_mut(tag_name(r.tag)))
            .expect("all cells exist") += 1;
    }
    let share = |select: &dyn Fn(&ReviewedRow) -> bool, hit: &dyn Fn(&ReviewedRow) -> bool| {
        let chosen: Vec<&ReviewedRow> = rows.iter().filter(|r| select(r)).collect();
        chosen.iter().filter(|r| hit(r)).count() as f64 / chosen.len().max(1) as f64
    };
    let mean_tokens = |keep: bool| {
        let t: Vec<usize> = rows
            .iter()
            .filter(|r| (r.tag == Some(Tag::Keep)) == keep)
            .map(|r| r.reviser_tokens)
            .collect();
        t.iter().sum::<usize>() as f64 / t.len().max(1) as f64
    };
    Ok(ReviserEval {
        responses: rows.len(),
        confusion,
        correct_kept_unchanged: share(&|r| r.grade == Grade::Correct, &|r| {
            r.enhanced == r.response
        }),
        not_correct_fixed: share(&|r| r.grade != Grade::Correct, &|r| {
            r.enhanced_grade == Grade::Correct
        }),
        wrong_fixed: share(&|r| r.grade == Grade::Wrong, &|r| {
            r.enhanced_grade == Grade::Correct
        }),
        slip_fixed: share(&|r| r.grade == Grade::Slip, &|r| {
            r.enhanced_grade == Grade::Correct
        }),
        correct_broken: share(&|r| r.grade == Grade::Correct, &|r| {
            r.enhanced_grade != Grade::Correct
        }),
        mean_tokens_keep: mean_tokens(true),
        mean_tokens_revise: mean_tokens(false),
    })
}

/// Answers of one policy to the held-out prompts (no grading), in `eval/<policy>/responses.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerSet {
    pub model: String,
    pub prompts: usize,
    pub mean_response_chars: f64,
    pub mean_response_tokens: f64,
    /// Answers cut off by max_new_tokens.
    pub cut_off: usize,
}

impl AnswerSet {
    fn of(model: &str, rows: &[ResponseRow]) -> Self {
        let n = rows.len().max(1) as f64;
        AnswerSet {
            model: model.to_string(),
            prompts: rows.len(),
            mean_response_chars: rows
                .iter()
                .map(|r| r.response.chars().count())
                .sum::<usize>() as f64
                / n,
            mean_response_tokens: rows.iter().map(|r| r.response_tokens).sum::<usize>() as f64 / n,
            cut_off: rows
                .iter()
                .filter(|r| r.finish_reason == FinishReason::Length)
                .count(),
        }
    }
}

/// What the evaluation stages found.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// Graded policies (task runs): the start, then each arm's evaluated iterations.
    pub evals: Vec<PolicyEval>,
    /// Their graded answers, by policy name.
    pub graded: BTreeMap<String, Vec<GradedRow>>,
    pub reviser: Option<ReviserEval>,
    /// Ungraded answers of the start and each arm's final policy (runs without a task).
    pub answer_sets: Vec<AnswerSet>,
    /// How held-out answers are graded (`None`: they are only answered).
    pub grader: Option<Grader>,
    /// IFEval scores of every graded policy (`[eval.ifeval]`), in grading order.
    pub ifeval: Vec<IfevalMetrics>,
}

impl Evaluation {
    /// Grades the policy at `path` on the held-out prompts (a resumable `eval/<name>` stage),
    /// keeps its evaluation and answers under `name`, and returns its accuracy.
    pub fn grade(
        &mut self,
        run: &Run,
        held_out: &[PromptRow],
        name: &str,
        path: &str,
    ) -> Result<f64> {
        let grader = self.grader.as_ref().unwrap_or(&Grader::Task);
        let (eval, rows) = run.stage_with(
            &stages::eval(name),
            &format!("evaluate {name}"),
            |dir| {
                let model = LanguageModel::load(path, &run.device)?;
                let cfg = run.cfg;
                eval_policy(
                    &model,
                    name,
                    held_out,
                    cfg.eval.sampling(&cfg.evolution.sampling),
                    cfg.eval.batch_size,
                    dir,
                    grader,
                )
            },
            |dir| read_jsonl(&dir.join(files::RESPONSES)),
        )?;
        let accuracy = eval.accuracy;
        self.evals.push(eval);
        self.graded.insert(name.to_string(), rows);
        Ok(accuracy)
    }

    /// IFEval on the policy at `path` (`[eval.ifeval]`, else nothing), as the resumable stage
    /// `eval/<name>-ifeval` (its folder holds responses, verdicts and metrics). Runs score the
    /// starting policy, each arm's final policy and each comparison arm's best sweep point
    /// (every point when held-out answers are not graded).
    pub fn score_ifeval(&mut self, run: &Run, name: &str, path: &str) -> Result<()> {
        let Some(cfg) = &run.cfg.eval.ifeval else {
            return Ok(());
        };
        let metrics = run.stage(
            &format!("{}-ifeval", stages::eval(name)),
            &format!("IFEval {name}"),
            |dir| {
                let opts = IfevalOptions {
                    responses: ResponsesSource::Model {
                        spec: path.to_string(),
                        name: Some(name.to_string()),
                    },
                    input_data: cfg.input_data.as_ref().map(|s| s.into()),
                    data: BenchData::from_env(None),
                    out: Some(dir.to_path_buf()),
                    backend: run.cfg.backend,
                    max_new_tokens: cfg.max_new_tokens,
                    temperature: 0.0,
                    seed: run.cfg.seed,
                    batch_size: cfg.batch_size,
                    limit: (cfg.limit > 0).then_some(cfg.limit),
                };
                Ok(crate::eval::ifeval::run(&opts)?.metrics)
            },
        )?;
        self.ifeval.push(metrics);
        Ok(())
    }
}

/// Evaluates the starting policy and the evolved ones on the held-out prompts: graded, with
/// the reviser's confusion table, when the run has a task; answered for a judge otherwise.
/// Sets each evaluated iteration's accuracy.
pub fn evaluate_run(
    run: &Run,
    held_out: &[PromptRow],
    start: &str,
    reviser: &str,
    evolution: &mut Evolution,
) -> Result<Evaluation> {
    if held_out.is_empty() {
        return Ok(Evaluation::default());
    }
    let Some(grader) = Grader::for_run(run.cfg, held_out)? else {
        return answer_run(run, held_out, start, evolution);
    };
    let mut evaluation = Evaluation {
        grader: Some(grader),
        ..Evaluation::default()
    };
    evaluation.grade(run, held_out, "start", start)?;
    evaluation.score_ifeval(run, "start", start)?;
    for (arm, policies) in &evolution.policies {
        for (i, path) in policies.iter().enumerate() {
            let t = i + 1;
            if !run.cfg.eval.every_iteration && t != policies.len() {
                continue;
            }
            let name = policy_name(*arm, t);
            let accuracy = evaluation.grade(run, held_out, &name, path)?;
            if t == policies.len() {
                evaluation.score_ifeval(run, &name, path)?;
            }
            if let Some(it) = evolution
                .iterations
                .iter_mut()
                .find(|it| it.arm == arm.name() && it.iteration == t)
            {
                it.accuracy = Some(accuracy);
            }
        }
    }
    let start_rows = &evaluation.graded["start"];
    let grader = evaluation.grader.as_ref().unwrap_or(&Grader::Task);
    let reviser_eval = run.stage(stages::EVAL_REVISER, "evaluate the reviser", |dir| {
        let model = LanguageModel::load(reviser, &run.device)?;
        let r = &run.cfg.reviser;
        eval_reviser(
            &model,
            &r.format,
            start_rows,
            &r.sampling,
            r.batch_size,
            dir,
            grader,
        )
    })?;
    evaluation.reviser = Some(reviser_eval);
    Ok(evaluation)
}

/// Without a task there is no grader: the starting and final policies answer the held-out
/// prompts, for a judge (`seft judge`) or a person to compare.
fn answer_run(
    run: &Run,
    held_out: &[PromptRow],
    start: &str,
    evolution: &Evolution,
) -> Result<Evaluation> {
    let mut targets = vec![("start".to_string(), start.to_string())];
    for (arm, policies) in &evolution.policies {
        if let Some(last) = policies.last() {
            targets.push((policy_name(*arm, policies.len()), last.clone()));
        }
    }
    let mut evaluation = Evaluation::default();
    for (name, path) in targets {
        let set = run.stage(
            &stages::eval(&name),
            &format!("answer held-out prompts: {name}"),
            |dir| {
                let model = LanguageModel::load(&path, &run.device)?;
                let rows = answer_prompts(
                    &model,
                    held_out,
                    run.cfg.eval.sampling(&run.cfg.evolution.sampling),
                    run.cfg.eval.batch_size,
                    &dir.join(files::RESPONSES),
                    &format!("eval {name}"),
                    "eval",
                )?;
                Ok(AnswerSet::of(&name, &rows))
            },
        )?;
        evaluation.answer_sets.push(set);
        evaluation.score_ifeval(run, &name, &path)?;
    }
    Ok(evaluation)
}
