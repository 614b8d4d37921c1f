//! `seft run`: data → (starting policy) → reviser → (quality gate) → prompt selection →
//! T evolution iterations per arm → evaluation → (comparison arms) → report. Every step is a resumable stage
//! ([`Run::stage`]) with its artifacts in the run directory ([`crate::evolution::layout`]); the
//! stages hand their results to the next in memory and read artifacts back only when a
//! rerun skips a finished stage.

use std::path::Path;

use crate::error::{Result, SeftError};
use crate::evolution::baselines::run_baselines;
use crate::evolution::data::{RunInputs, make_data};
use crate::evolution::evaluate::evaluate_run;
use crate::evolution::evolve::{EvolutionInputs, evolve};
use crate::evolution::gate::gate_stage;
use crate::evolution::layout::{Arm, DataFile, files, stages};
use crate::evolution::report::{Report, RunResults, write_report};
use crate::evolution::run_config::{ReviserBase, RunConfig};
use crate::evolution::scratch::write_scratch_model;
use crate::evolution::selection::{SelectionReport, selection_stage};
use crate::evolution::sft::{SftJob, SftStage, fine_tune};
use crate::evolution::stage::Run;

/// Runs (or resumes) the experiment described by `cfg` in `out`.
pub fn run(cfg: &RunConfig, out: &Path) -> Result<Report> {
    let run = Run::open(cfg, out)?;
    let (data, inputs) = run.stage_with(
        stages::DATA,
        "data",
        |dir| make_data(cfg, dir),
        RunInputs::read,
    )?;
    let base = base_model(&run)?;
    let (start, starting_policy) = starting_policy(&run, &base)?;
    let reviser_base = match cfg.reviser.base {
        ReviserBase::Base => &base,
        ReviserBase::StartingPolicy => &start,
    };
    let reviser = run.stage(stages::REVISER, "reviser SFT", |dir| {
        let job = SftJob {
            model: reviser_base,
            data: &run.layout.data(DataFile::ReviserTrain),
            train: &cfg.reviser.train,
            lora: cfg.reviser.lora.as_ref(),
            max_len: cfg.reviser.max_len,
            preference: None,
        };
        fine_tune(&run, job, dir)
    })?;
    let reviser_model = reviser.model.to_string_lossy().into_owned();
    let gate = gate_stage(&run, &start, &reviser_model, &inputs.pairs)?;
    let (selection, embeddings) = selection_stage(&run, &start, &inputs.pool)?;
    let mut evolution = evolve(
        &run,
        &EvolutionInputs {
            start: &start,
            reviser: &reviser_model,
            gate: gate.as_ref(),
            pool: &inputs.pool,
            selection: &selection.iterations,
        },
    )?;
    let mut evaluation = evaluate_run(
        &run,
        &inputs.held_out,
        &start,
        &reviser_model,
        &mut evolution,
    )?;
    let seft_final = evolution
        .policies
        .iter()
        .find(|(arm, _)| *arm == Arm::Seft)
        .and_then(|(_, policies)| policies.last())
        .map(String::as_str);
    let baselines = run_baselines(&run, &start, seft_final, &inputs.held_out, &mut evaluation)?;
    let selection_report = SelectionReport::new(
        &selection,
        &inputs.pool,
        &evolution.revised_by_prompt,
        embeddings.as_ref(),
    )?;
    let report = Report::assemble(
        cfg,
        out,
        RunResults {
            data,
            starting_policy,
            reviser,
            iterations: evolution.iterations,
            evaluation,
            baselines,
            gate: gate.map(|g| g.outcome),
            selection: Some(selection_report),
            stage_seconds: run.stage_seconds(),
            seconds: run.elapsed_seconds(),
        },
    );
    write_report(&report, &run.layout)?;
    Ok(report)
}

/// The model every policy and the reviser start from: a checkpoint, or a scratch model's
/// initialization (the `base` stage).
fn base_model(run: &Run) -> Result<String> {
    let cfg = run.cfg;
    match (&cfg.model.path, &cfg.model.scratch) {
        (Some(p), _) => Ok(p.clone()),
        (None, Some(spec)) => {
            let model = run.stage(stages::BASE, "initialize the scratch model", |dir| {
                write_scratch_model(spec, cfg.seed, &dir.join(files::MODEL))?;
                Ok(dir.join(files::MODEL))
            })?;
            Ok(model.to_string_lossy().into_owned())
        }
        (None, None) => Err(SeftError::Invalid(
            "[model] needs exactly one of path or scratch".into(),
        )),
    }
}

/// The policy evolution starts from: the base, or the base fine-tuned on the annotated
/// examples (a `[starting_policy]` section).
fn starting_policy(run: &Run, base: &str) -> Result<(String, Option<SftStage>)> {
    let Some(sp) = &run.cfg.starting_policy else {
        return Ok((base.to_string(), None));
    };
    let stage = run.stage(stages::STARTING_POLICY, "starting policy SFT", |dir| {
        let job = SftJob {
            model: base,
            data: &run.layout.data(DataFile::Annotated),
            train: &sp.train,
            lora: sp.lora.as_ref(),
            max_len: sp.max_len,
            preference: None,
        };
        fine_tune(run, job, dir)
    })?;
    Ok((stage.model.to_string_lossy().into_owned(), Some(stage)))
}
