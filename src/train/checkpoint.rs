//! Checkpoints of an SFT run: model, optimizer state and position, written atomically into
//! `checkpoints/step-N` so that a crash at any point leaves the last complete one, from which
//! a resumed run continues exactly.

use std::path::{Path, PathBuf};

use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SeftError};
use crate::fault::fault_point;
use crate::model::llama::CausalLm;

/// Position of a run, saved with each checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct TrainState {
    pub step: usize,
    pub epoch: usize,
    /// Optimizer steps already taken inside `epoch`.
    pub step_in_epoch: usize,
    pub last_loss: f64,
}

fn checkpoints_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// The newest complete checkpoint (a `step-*` folder with its state.json).
pub(crate) fn latest_checkpoint(out: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(checkpoints_dir(out))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-"))
                && p.join("state.json").exists()
        })
        .collect();
    found.sort();
    found.pop()
}

pub(crate) fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|e| SeftError::io(path, e))
}

/// Writes model, optimizer and state into `checkpoints/.partial-step-N`, renames it to
/// `step-N` when complete, then removes older checkpoints: a crash at any point leaves the
/// previous complete checkpoint in place.
pub(crate) fn save_checkpoint(
    out: &Path,
    net: &CausalLm,
    optim: &burn::optim::ModuleOptimizer,
    state: &TrainState,
) -> Result<()> {
    let root = checkpoints_dir(out);
    io(&root, std::fs::create_dir_all(&root))?;
    let tmp = root.join(format!(".partial-step-{:08}", state.step));
    if tmp.exists() {
        io(&tmp, std::fs::remove_dir_all(&tmp))?;
    }
    io(&tmp, std::fs::create_dir_all(&tmp))?;
    let model_path = tmp.join("model.bpk");
    net.clone()
        .save_file(&model_path)
        .map_err(|e| SeftError::file(&model_path, format!("cannot save model: {e:?}")))?;
    fault_point("checkpoint", state.step);
    let optim_path = tmp.join("optim.bpk");
    optim
        .save(&optim_path)
        .map_err(|e| SeftError::file(&optim_path, format!("cannot save optimizer: {e:?}")))?;
    let state_path = tmp.join("state.json");
    io(
        &state_path,
        std::fs::write(
            &state_path,
            serde_json::to_string_pretty(state).expect("serializable"),
        ),
    )?;
    let done = root.join(format!("step-{:08}", state.step));
    if done.exists() {
        io(&done, std::fs::remove_dir_all(&done))?;
    }
    io(&done, std::fs::rename(&tmp, &done))?;
    for entry in io(&root, std::fs::read_dir(&root))?.flatten() {
        let p = entry.path();
        if p != done
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-"))
        {
            io(&p, std::fs::remove_dir_all(&p))?;
        }
    }
    Ok(())
}

/// Keeps only metrics lines up to `step` (a resumed run rewrites what came after).
pub(crate) fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = io(path, std::fs::read_to_string(path))?;
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s as usize <= step)
        })
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    io(path, std::fs::write(path, out))
}

/// Loads the checkpoint in `dir` into `net` and `optim`; returns the run's position.
pub(crate) fn restore_checkpoint(
    dir: &Path,
    net: CausalLm,
    optim: burn::optim::ModuleOptimizer,
) -> Result<(CausalLm, burn::optim::ModuleOptimizer, TrainState)> {
    let state_path = dir.join("state.json");
    let text = io(&state_path, std::fs::read_to_string(&state_path))?;
    let state = serde_json::from_str(&text)
        .map_err(|e| SeftError::file(&state_path, format!("invalid state: {e}")))?;
    let model_path = dir.join("model.bpk");
    let net = net
        .try_load_file(&model_path)
        .map_err(|e| SeftError::file(&model_path, format!("cannot load checkpoint: {e:?}")))?;
    let optim_path = dir.join("optim.bpk");
    let optim = optim
        .load(&optim_path)
        .map_err(|e| SeftError::file(&optim_path, format!("cannot load optimizer state: {e:?}")))?;
    Ok((net, optim, state))
}
