//! Resumable stages and the context every stage of `seft run` shares.
//!
//! A stage owns a directory; when it finishes, `done.json` records its outcome and duration.
//! A rerun returns the recorded outcome instead of redoing the work, so a pipeline killed at
//! any point restarts at the first unfinished stage. [`Run::stage`] records each stage's
//! time itself, for the report.

use std::cell::RefCell;
use std::path::Path;
use std::time::Instant;

use burn::tensor::Device;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::data::jsonl::{io, write_atomic};
use crate::error::{Result, SeftError};
use crate::evolution::layout::RunLayout;
use crate::evolution::run_config::RunConfig;
use crate::ownership;

/// What `done.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord<T> {
    pub stage: String,
    /// Wall time of the run that finished the stage.
    pub seconds: f64,
    pub outcome: T,
}

/// One `seft run` invocation: its configuration, run directory, device and stage timings.
pub struct Run<'a> {
    pub cfg: &'a RunConfig,
    pub layout: RunLayout,
    pub device: Device,
    timings: RefCell<Vec<(String, f64)>>,
    started: Instant,
}

impl<'a> Run<'a> {
    /// Claims `out` for `cfg` (refusing a directory made by another configuration) and opens
    /// the configured device.
    pub fn open(cfg: &'a RunConfig, out: &Path) -> Result<Self> {
        let layout = RunLayout::new(out);
        claim_run_dir(cfg, &layout)?;
        Ok(Run {
            cfg,
            layout,
            device: cfg.backend.device()?,
            timings: RefCell::new(Vec::new()),
            started: Instant::now(),
        })
    }

    /// Runs `work` in the stage's directory unless its `done.json` says it already finished;
    /// either way the stage's time joins [`Self::stage_seconds`].
    pub fn stage<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
        label: &str,
        work: impl FnOnce(&Path) -> Result<T>,
    ) -> Result<T> {
        let record = match self.finished(name, label)? {
            Some(record) => record,
            None => self.execute(name, label, work)?,
        };
        self.timings
            .borrow_mut()
            .push((name.to_string(), record.seconds));
        Ok(record.outcome)
    }

    /// [`Self::stage`] for a stage whose artifact the next stages read: `work` returns the
    /// artifact with the outcome, and `reload` reads it back from the stage's directory only
    /// when the stage finished in an earlier invocation.
    pub fn stage_with<T: Serialize + DeserializeOwned, A>(
        &self,
        name: &str,
        label: &str,
        work: impl FnOnce(&Path) -> Result<(T, A)>,
        reload: impl FnOnce(&Path) -> Result<A>,
    ) -> Result<(T, A)> {
        let mut artifact = None;
        let outcome = self.stage(name, label, |dir| {
            let (outcome, a) = work(dir)?;
            artifact = Some(a);
            Ok(outcome)
        })?;
        let artifact = match artifact {
            Some(a) => a,
            None => reload(&self.layout.stage_dir(name))?,
        };
        Ok((outcome, artifact))
    }

    /// (stage, seconds of the invocation that finished it), in the order the stages ran.
    pub fn stage_seconds(&self) -> Vec<(String, f64)> {
        self.timings.borrow().clone()
    }

    /// Wall time of this invocation so far.
    pub fn elapsed_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn finished<T: DeserializeOwned>(
        &self,
        name: &str,
        label: &str,
    ) -> Result<Option<StageRecord<T>>> {
        let marker = self.layout.stage_dir(name).join("done.json");
        if !marker.exists() {
            return Ok(None);
        }
        let text = io(&marker, std::fs::read_to_string(&marker))?;
        let record: StageRecord<T> = serde_json::from_str(&text).map_err(|e| {
            SeftError::file(
                &marker,
                format!("unreadable stage record: {e} (delete it to redo the stage)"),
            )
        })?;
        eprintln!("== {label}: already done ({:.1}s), skipped", record.seconds);
        Ok(Some(record))
    }

    fn execute<T: Serialize>(
        &self,
        name: &str,
        label: &str,
        work: impl FnOnce(&Path) -> Result<T>,
    ) -> Result<StageRecord<T>> {
        let dir = self.layout.stage_dir(name);
        io(&dir, std::fs::create_dir_all(&dir))?;
        eprintln!("== {label}");
        crate::fault::set_scope(name);
        let started = Instant::now();
        let outcome = work(&dir)?;
        let record = StageRecord {
            stage: label.to_string(),
            seconds: started.elapsed().as_secs_f64(),
            outcome,
        };
        write_atomic(
            &dir.join("done.json"),
            serde_json::to_string_pretty(&record)
                .expect("serializable")
                .as_bytes(),
        )?;
        Ok(record)
    }
}

/// Refuses a run directory made by another configuration, or any other folder seft did not
/// write, then records this configuration.
fn claim_run_dir(cfg: &RunConfig, layout: &RunLayout) -> Result<()> {
    let path = layout.config();
    let text = cfg.to_toml();
    if path.exists() {
        let old = io(&path, std::fs::read_to_string(&path))?;
        if old != text {
            return Err(SeftError::file(
                &path,
                "this run directory was made with a different configuration: choose another --out (or delete the directory)",
            ));
        }
        return Ok(());
    }
    ownership::claim_dir(layout.root(), "--out")?;
    write_atomic(&path, text.as_bytes())
}
