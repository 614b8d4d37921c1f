//! The run report: `report.json` for programs, `report.md` for people.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::jsonl::write_atomic;
use crate::error::Result;
use crate::eval::ifeval::IfevalMetrics;
use crate::evolution::baselines::{BaselineResult, best_point};
use crate::evolution::data::DataOutcome;
use crate::evolution::evaluate::{AnswerSet, Evaluation, PolicyEval, ReviserEval, win_rate};
use crate::evolution::evolve::IterationReport;
use crate::evolution::gate::GateOutcome;
use crate::evolution::layout::RunLayout;
use crate::evolution::layout::{Arm, policy_name};
use crate::evolution::run_config::RunConfig;
use crate::evolution::selection::SelectionReport;
use crate::evolution::sft::SftStage;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub run_dir: PathBuf,
    /// Held-out accuracy of the starting policy, of the final SEFT policy, and of the final
    /// policy of the control run whose reviser is the identity (task runs; null otherwise).
    pub before_accuracy: Option<f64>,
    pub after_accuracy: Option<f64>,
    pub identity_reviser_accuracy: Option<f64>,
    /// Pairwise win rate (ties count half) of the final policies against the starting one.
    pub win_rate_vs_start: Option<f64>,
    pub identity_win_rate_vs_start: Option<f64>,
    /// How results were judged.
    pub judge: String,
    pub data: DataOutcome,
    pub starting_policy: Option<SftStage>,
    pub reviser: SftStage,
    pub reviser_eval: Option<ReviserEval>,
    pub iterations: Vec<IterationReport>,
    pub evals: Vec<PolicyEval>,
    /// Ungraded held-out answers (runs without a task), in eval/<policy>/responses.jsonl.
    pub answer_sets: Vec<AnswerSet>,
    /// How the evolution prompts were chosen, and which kinds of prompts were revised most.
    #[serde(default)]
    pub selection: Option<SelectionReport>,
    /// Comparison arms (`[[baselines]]`): every sweep point, trained and graded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baselines: Vec<BaselineResult>,
    /// The quality gate: its training (firing trees vs dense), calibration, and use.
    #[serde(default)]
    pub gate: Option<GateOutcome>,
    /// IFEval scores of every graded policy (`[eval.ifeval]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ifeval: Vec<IfevalMetrics>,
    /// (stage, seconds of the run that finished it).
    pub stage_seconds: Vec<(String, f64)>,
    /// Wall time of this invocation (a resumed run counts only its own part).
    pub seconds: f64,
}

/// Everything a finished run measured, for [`Report::assemble`].
pub struct RunResults {
    pub data: DataOutcome,
    pub starting_policy: Option<SftStage>,
    pub reviser: SftStage,
    pub iterations: Vec<IterationReport>,
    pub evaluation: Evaluation,
    pub baselines: Vec<BaselineResult>,
    pub gate: Option<GateOutcome>,
    pub selection: Option<SelectionReport>,
    pub stage_seconds: Vec<(String, f64)>,
    pub seconds: f64,
}

impl Report {
    pub fn assemble(cfg: &RunConfig, out: &Path, results: RunResults) -> Self {
        let t = cfg.iterations;
        let evaluation = results.evaluation;
        let accuracy = |name: &str| {
            evaluation
                .evals
                .iter()
                .find(|e| e.model == name)
                .map(|e| e.accuracy)
        };
        let win = |name: &str| match (evaluation.graded.get(name), evaluation.graded.get("start")) {
            (Some(a), Some(b)) => Some(win_rate(a, b)),
            _ => None,
        };
        let seft_final = policy_name(Arm::Seft, t);
        let identity_final = policy_name(Arm::Identity, t);
        Report {
            run_dir: out.to_path_buf(),
            before_accuracy: accuracy("start"),
            after_accuracy: accuracy(&seft_final),
            identity_reviser_accuracy: accuracy(&identity_final),
            win_rate_vs_start: win(&seft_final),
            identity_win_rate_vs_start: win(&identity_final),
            judge: match (&cfg.task, cfg.eval.grader) {
                (Some(task), _) => format!(
                    "programmatic: exact grading of the built-in {} task on {} held-out prompts",
                    serde_json::to_string(&task.family).expect("serializable"),
                    results.data.held_out
                ),
                (None, Some(_)) => format!(
                    "programmatic: IFEval's checkers on {} held-out verifiable-instruction prompts (accuracy = every instruction followed; score = fraction followed)",
                    results.data.held_out
                ),
                (None, None) => "none: this run has no graded task; its held-out answers (eval/*/responses.jsonl) are for `seft judge`".into(),
            },
            data: results.data,
            starting_policy: results.starting_policy,
            reviser: results.reviser,
            reviser_eval: evaluation.reviser,
            iterations: results.iterations,
            evals: evaluation.evals,
            answer_sets: evaluation.answer_sets,
            selection: results.selection,
            baselines: results.baselines,
            gate: results.gate,
            ifeval: evaluation.ifeval,
            stage_seconds: results.stage_seconds,
            seconds: results.seconds,
        }
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        self.write_result(&mut s);
        self.write_iterations(&mut s);
        self.write_baselines(&mut s);
        self.write_reviser_eval(&mut s);
        self.write_answer_sets(&mut s);
        self.write_scores(&mut s);
        let d = &self.data;
        let _ = writeln!(
            s,
            "\n## Data\n\n{} preference pairs → reviser data: {} keep, {} minor, {} major ({} pairs dropped by min_gap, {} as too long); {} annotated examples; {} unannotated prompts; {} held-out prompts; {} malformed rows skipped.",
            d.preference_pairs,
            d.reviser.keep,
            d.reviser.minor,
            d.reviser.major,
            d.reviser.dropped_small_gap,
            d.reviser.dropped_too_long,
            d.annotated,
            d.pool,
            d.held_out,
            d.skipped_rows
        );
        if let Some(sel) = &self.selection {
            let _ = writeln!(s, "\n{}", sel.markdown());
        }
        if let Some(gate) = &self.gate {
            let _ = writeln!(s, "\n{}", self.gate_markdown(gate));
        }
        let _ = writeln!(s, "\n## Time per stage\n\n| stage | seconds |\n|---|---|");
        for (name, secs) in &self.stage_seconds {
            let _ = writeln!(s, "| {name} | {secs:.1} |");
        }
        let _ = writeln!(s, "\nThis invocation: {:.1} s.", self.seconds);
        s
    }

    /// The fraction-of-instructions scores (constraints grader) and IFEval's accuracies, when
    /// the run has them.
    fn write_scores(&self, s: &mut String) {
        let scored: Vec<&PolicyEval> = self
            .evals
            .iter()
            .filter(|e| e.mean_score.is_some())
            .collect();
        if !scored.is_empty() {
            let _ = writeln!(
                *s,
                "\n## Held-out instructions followed\n\n| policy | all followed | mean fraction followed |\n|---|---|---|"
            );
            for e in scored {
                let _ = writeln!(
                    *s,
                    "| {} | {:.1}% | {:.1}% |",
                    e.model,
                    100.0 * e.accuracy,
                    100.0 * e.mean_score.unwrap_or_default()
                );
            }
        }
        if !self.ifeval.is_empty() {
            let _ = writeln!(
                *s,
                "\n## IFEval\n\n| policy | prompts | prompt strict | inst strict | prompt loose | inst loose |\n|---|---|---|---|---|---|"
            );
            for m in &self.ifeval {
                let _ = writeln!(
                    *s,
                    "| {} | {} | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
                    m.model,
                    m.prompts.total,
                    100.0 * m.prompt_level_strict,
                    100.0 * m.inst_level_strict,
                    100.0 * m.prompt_level_loose,
                    100.0 * m.inst_level_loose
                );
            }
        }
    }

    fn write_result(&self, s: &mut String) {
        let pct = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{:.1}%", 100.0 * v));
        let _ = writeln!(
            *s,
            "# SEFT run report\n\nRun directory: `{}`  ",
            self.run_dir.display()
        );
        let _ = writeln!(*s, "Judge: {}\n", self.judge);
        let _ = writeln!(*s, "## Result\n");
        let _ = writeln!(*s, "| policy | held-out accuracy | win rate vs start |");
        let _ = writeln!(*s, "|---|---|---|");
        let _ = writeln!(
            *s,
            "| starting policy | {} | – |",
            pct(self.before_accuracy)
        );
        let _ = writeln!(
            *s,
            "| SEFT (adaptive reviser) | {} | {} |",
            pct(self.after_accuracy),
            pct(self.win_rate_vs_start)
        );
        let _ = writeln!(
            *s,
            "| control: identity reviser (self-training) | {} | {} |",
            pct(self.identity_reviser_accuracy),
            pct(self.identity_win_rate_vs_start)
        );
    }

    fn write_iterations(&self, s: &mut String) {
        let pct = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{:.1}%", 100.0 * v));
        let _ = writeln!(*s, "\n## Iterations\n");
        let _ = writeln!(
            *s,
            "| arm | iter | prompts | keep | minor | major | untagged | SFT rows | filtered | SFT loss first→last | answer chars → enhanced | accuracy |"
        );
        let _ = writeln!(*s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for it in &self.iterations {
            let r = &it.revisions;
            let n = r.rows.max(1) as f64;
            let share = |c: usize| format!("{:.0}%", 100.0 * c as f64 / n);
            let f = &it.filters;
            let _ = writeln!(
                *s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3}→{:.3} | {:.1} → {:.1} | {} |",
                it.arm,
                it.iteration,
                it.prompts,
                share(r.keep),
                share(r.minor),
                share(r.major),
                r.untagged,
                f.rows,
                f.dropped_empty
                    + f.dropped_degenerate
                    + f.dropped_duplicate
                    + f.dropped_length_ratio
                    + f.dropped_gate,
                it.sft.first_loss,
                it.sft.final_loss,
                r.mean_response_chars,
                r.mean_enhanced_chars,
                pct(it.accuracy)
            );
        }
    }

    /// Every arm in one table: start, SEFT, the identity control, then each comparison arm at
    /// its best sweep point, with its whole sweep.
    fn write_baselines(&self, s: &mut String) {
        if self.baselines.is_empty() {
            return;
        }
        let pct = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{:.1}%", 100.0 * v));
        let _ = writeln!(
            *s,
            "\n## Comparison arms\n\nAll from the same preference pairs and the same starting policy (`from = seft`: the final SEFT policy); each arm's best sweep point, with the whole sweep.\n"
        );
        let _ = writeln!(
            *s,
            "| arm | method | from | accuracy | best β | best lr | sweep: β, lr → accuracy |"
        );
        let _ = writeln!(*s, "|---|---|---|---|---|---|---|");
        for (name, accuracy) in [
            ("start", self.before_accuracy),
            ("SEFT", self.after_accuracy),
            ("identity control", self.identity_reviser_accuracy),
        ] {
            let _ = writeln!(*s, "| {name} | | | {} | | | |", pct(accuracy));
        }
        let mut names: Vec<&str> = self.baselines.iter().map(|b| b.name.as_str()).collect();
        names.dedup();
        for name in names {
            let points: Vec<&BaselineResult> =
                self.baselines.iter().filter(|b| b.name == name).collect();
            let best = best_point(&points).expect("an arm has at least one point");
            let beta = |b: Option<f64>| b.map_or("–".to_string(), |v| v.to_string());
            let sweep: Vec<String> = points
                .iter()
                .map(|p| format!("{}, {} → {}", beta(p.beta), p.lr, pct(p.accuracy)))
                .collect();
            let _ = writeln!(
                *s,
                "| {name} | {} | {} | {} | {} | {} | {} |",
                best.method.name(),
                best.from.name(),
                pct(best.accuracy),
                beta(best.beta),
                best.lr,
                sweep.join("; ")
            );
        }
    }

    fn write_reviser_eval(&self, s: &mut String) {
        if let Some(e) = &self.reviser_eval {
            let _ = writeln!(
                *s,
                "\n## Reviser on the starting policy's held-out answers ({} answers)\n",
                e.responses
            );
            let _ = writeln!(*s, "| true state | keep | minor | major | untagged |");
            let _ = writeln!(*s, "|---|---|---|---|---|");
            for (state, row) in &e.confusion {
                let c = |k: &str| row.get(k).copied().unwrap_or(0);
                let _ = writeln!(
                    *s,
                    "| {state} | {} | {} | {} | {} |",
                    c("keep"),
                    c("minor"),
                    c("major"),
                    c("untagged")
                );
            }
            let _ = writeln!(
                *s,
                "\nCorrect answers kept unchanged: {:.1}% (broken: {:.1}%). Answers that were not correct and are fixed: {:.1}% (wrong: {:.1}%, slips: {:.1}%). Tokens generated per keep: {:.1}, per revision: {:.1}.",
                100.0 * e.correct_kept_unchanged,
                100.0 * e.correct_broken,
                100.0 * e.not_correct_fixed,
                100.0 * e.wrong_fixed,
                100.0 * e.slip_fixed,
                e.mean_tokens_keep,
                e.mean_tokens_revise
            );
        }
    }

    fn write_answer_sets(&self, s: &mut String) {
        if !self.answer_sets.is_empty() {
            let _ = writeln!(*s, "\n## Held-out answers (ungraded)\n");
            let _ = writeln!(
                *s,
                "| policy | prompts | mean chars | mean tokens | cut off |"
            );
            let _ = writeln!(*s, "|---|---|---|---|---|");
            for a in &self.answer_sets {
                let _ = writeln!(
                    *s,
                    "| {} | {} | {:.0} | {:.0} | {} |",
                    a.model, a.prompts, a.mean_response_chars, a.mean_response_tokens, a.cut_off
                );
            }
        }
    }
}

impl Report {
    /// The quality-gate section: how it was trained, calibrated, and what it saved.
    fn gate_markdown(&self, g: &GateOutcome) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "## Quality gate\n\nA shifted-ReLU classifier on frozen embeddings ({}, dimension {}) of {} preference pairs' (prompt, chosen) = good and (prompt, rejected) = needs revision; {} training and {} held-out answers (split by pair); embedding took {:.1} s.\n",
            g.embedder, g.dim, g.pairs, g.train_rows, g.held_out_rows, g.embed_seconds
        );
        let _ = writeln!(
            s,
            "| training path | width m | b | steps (through trees) | firing k/m | union/m | loss first→last | train s | train acc. | held-out acc. |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        for (i, f) in g.fits.iter().enumerate() {
            let _ = writeln!(
                s,
                "| {}{} | {} | {:.3} | {} ({}) | {:.4} | {:.3} | {:.4}→{:.4} | {:.3} | {:.1}% | {:.1}% |",
                f.path,
                if i == 0 { " (used)" } else { " (comparison)" },
                f.width,
                f.threshold,
                f.steps,
                f.tree_steps,
                f.firing_fraction,
                f.union_fraction,
                f.first_loss,
                f.final_loss,
                f.train_seconds,
                100.0 * f.train_accuracy,
                100.0 * f.held_out_accuracy
            );
        }
        if let Some(a) = g.agreement {
            let _ = writeln!(
                s,
                "\nThe two training paths classify {:.1}% of the held-out answers alike.",
                100.0 * a
            );
        }
        let _ = match g.skip_score {
            Some(t) => writeln!(
                s,
                "\nSkip the reviser at score ≥ {t:.4} (held-out precision target {:.0}%): passes {} held-out answers, {} of them chosen ones.",
                100.0 * g.skip_precision,
                g.held_out_skipped,
                g.held_out_skipped_chosen
            ),
            None => writeln!(
                s,
                "\nNo score reaches a held-out precision of {:.0}% on at least {} answers: the gate skips no reviser call.",
                100.0 * g.skip_precision,
                crate::evolution::gate::MIN_SUPPORT
            ),
        };
        if let Some(t) = g.filter_score {
            let _ = writeln!(
                s,
                "Drop enhanced answers at score ≤ {t:.4} (held-out precision target {:.0}%).",
                100.0 * g.filter_precision
            );
        }
        let seft: Vec<&IterationReport> = self
            .iterations
            .iter()
            .filter(|it| it.arm == "seft")
            .collect();
        if !seft.is_empty() {
            let _ = writeln!(
                s,
                "\n| iteration | answers | reviser calls | saved by the gate | dropped by the gate | accuracy |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|");
            for it in seft {
                let r = &it.revisions;
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} ({:.0}%) | {} | {} |",
                    it.iteration,
                    r.rows,
                    r.rows - r.gate_skipped,
                    r.gate_skipped,
                    100.0 * r.gate_skipped as f64 / r.rows.max(1) as f64,
                    it.filters.dropped_gate,
                    it.accuracy
                        .map_or("–".to_string(), |a| format!("{:.1}%", 100.0 * a))
                );
            }
        }
        s
    }
}

pub fn write_report(report: &Report, layout: &RunLayout) -> Result<()> {
    write_atomic(
        &layout.report_json(),
        serde_json::to_string_pretty(report)
            .expect("serializable")
            .as_bytes(),
    )?;
    write_atomic(&layout.report_md(), report.markdown().as_bytes())
}
