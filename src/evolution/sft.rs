//! Supervised fine-tuning inside a run: the starting policy, the reviser and every
//! iteration's policy are trained by the SFT engine ([`crate::train`]) in their stage's
//! directory, resuming from the stage's own checkpoints.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::evolution::stage::Run;
use crate::train::{LoraSection, PreferenceSection, SftParams, TrainSection, Trainer};

/// What an SFT stage reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftStage {
    pub model: PathBuf,
    pub rows: usize,
    pub steps: usize,
    pub truncated_rows: usize,
    /// Mean training loss of the first and of the last 10% of logged steps.
    pub first_loss: f64,
    pub final_loss: f64,
}

/// One fine-tuning job of a run.
pub struct SftJob<'a> {
    /// The model to start from (a path or hub id).
    pub model: &'a str,
    /// The training file (prompt/completion or messages rows; preference rows with a loss).
    pub data: &'a Path,
    pub train: &'a TrainSection,
    pub lora: Option<&'a LoraSection>,
    pub max_len: usize,
    /// A preference loss instead of SFT (the data are then preference pairs).
    pub preference: Option<&'a PreferenceSection>,
}

/// Runs `job` in `dir` on the run's backend.
pub fn fine_tune(run: &Run, job: SftJob, dir: &Path) -> Result<SftStage> {
    let mut params = SftParams::new(job.model, &job.data.to_string_lossy(), dir)
        .with_backend(run.cfg.backend)
        .with_train(job.train.clone())
        .with_max_len(job.max_len)
        .with_eval_fraction(0.0);
    if let Some(lora) = job.lora {
        params = params.with_lora(lora.clone());
    }
    if let Some(preference) = job.preference {
        params = params.with_preference(preference.clone());
    }
    let outcome = Trainer::new(params).resume(true).run()?;
    let (first_loss, final_loss) = outcome.loss_ends();
    Ok(SftStage {
        model: outcome.model_dir,
        rows: outcome.data.train_rows,
        steps: outcome.steps,
        truncated_rows: outcome.data.truncated_rows,
        first_loss,
        final_loss,
    })
}
