//! The run directory of `seft run`: every stage's name and every artifact's path, built here
//! and nowhere else.
//!
//! ```text
//! config.toml                 the resolved configuration (a rerun must use the same)
//! data/                       preferences, reviser_train, pool, held_out (and annotated) JSONL
//! base/model/                 a scratch model's initialization
//! starting_policy/model/      SFT on the annotated examples
//! reviser/model/              the reviser (SFT on reviser_train.jsonl)
//! gate/                       the quality gate (gate.json, weights.npy, embeddings.npy)
//! selection/                  pool_embeddings.npy (when a selector or the report needs them)
//! seft/iter-t/                generate/responses.jsonl → revise/revisions.jsonl →
//!                             sft_data/{sft,filtered}.jsonl → policy/model/
//! identity/iter-t/            the same with the reviser replaced by the identity
//! eval/<policy>/              graded held-out answers; eval/reviser/reviewed.jsonl
//! report.json, report.md
//! ```
//!
//! A stage's name is its directory relative to the run directory; it finishes by writing
//! `done.json` there (see [`crate::evolution::run::Run::stage`]).

use std::path::{Path, PathBuf};

/// One evolution arm: the SEFT reviser, or the identity control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    /// The reviser enhances the policy's answers.
    Seft,
    /// Control: the policy's answers are kept as they are.
    Identity,
}

impl Arm {
    pub fn name(self) -> &'static str {
        match self {
            Arm::Seft => "seft",
            Arm::Identity => "identity",
        }
    }
}

/// The four stages of one evolution iteration, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Generate,
    Revise,
    SftData,
    Policy,
}

impl Step {
    fn dir(self) -> &'static str {
        match self {
            Step::Generate => "generate",
            Step::Revise => "revise",
            Step::SftData => "sft_data",
            Step::Policy => "policy",
        }
    }
}

/// Stage names of the run (each is a directory under the run directory).
pub mod stages {
    use super::{Arm, Step};

    pub const DATA: &str = "data";
    pub const BASE: &str = "base";
    pub const STARTING_POLICY: &str = "starting_policy";
    pub const REVISER: &str = "reviser";
    pub const GATE: &str = "gate";
    pub const SELECTION: &str = "selection";
    pub const EVAL_REVISER: &str = "eval/reviser";

    pub fn iteration(arm: Arm, t: usize, step: Step) -> String {
        format!("{}/iter-{t}/{}", arm.name(), step.dir())
    }

    /// Held-out evaluation (or answers) of the policy called `policy`.
    pub fn eval(policy: &str) -> String {
        format!("eval/{policy}")
    }
}

/// Name of a policy in evaluations and the report: `start`, or `<arm>-iter-<t>`.
pub fn policy_name(arm: Arm, t: usize) -> String {
    format!("{}-iter-{t}", arm.name())
}

/// Files inside a stage's directory.
pub mod files {
    /// Generation: one policy answer per prompt; evaluation: the (graded) answers.
    pub const RESPONSES: &str = "responses.jsonl";
    pub const REVISIONS: &str = "revisions.jsonl";
    /// With a quality gate, the reviser's own rows before they are merged with skipped ones.
    pub const REVISER_OUTPUTS: &str = "reviser_outputs.jsonl";
    pub const SFT_SET: &str = "sft.jsonl";
    pub const FILTERED: &str = "filtered.jsonl";
    pub const REVIEWED: &str = "reviewed.jsonl";
    /// The model folder an SFT stage (or the scratch initialization) leaves.
    pub const MODEL: &str = "model";
    pub const POOL_EMBEDDINGS: &str = "pool_embeddings.npy";
}

/// The run's inputs, written by the data stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFile {
    Annotated,
    Preferences,
    ReviserTrain,
    Pool,
    HeldOut,
}

impl DataFile {
    fn file_name(self) -> &'static str {
        match self {
            DataFile::Annotated => "annotated.jsonl",
            DataFile::Preferences => "preferences.jsonl",
            DataFile::ReviserTrain => "reviser_train.jsonl",
            DataFile::Pool => "pool.jsonl",
            DataFile::HeldOut => "held_out.jsonl",
        }
    }

    /// The file inside the data stage's directory.
    pub fn in_dir(self, data_dir: &Path) -> PathBuf {
        data_dir.join(self.file_name())
    }
}

/// Paths of one run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLayout {
    root: PathBuf,
}

impl RunLayout {
    pub fn new(root: &Path) -> Self {
        RunLayout {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    pub fn stage_dir(&self, stage: &str) -> PathBuf {
        self.root.join(stage)
    }

    pub fn data(&self, file: DataFile) -> PathBuf {
        file.in_dir(&self.stage_dir(stages::DATA))
    }

    /// The model folder a stage leaves (`<stage>/model`).
    pub fn model(&self, stage: &str) -> PathBuf {
        self.stage_dir(stage).join(files::MODEL)
    }

    pub fn responses(&self, arm: Arm, t: usize) -> PathBuf {
        self.stage_dir(&stages::iteration(arm, t, Step::Generate))
            .join(files::RESPONSES)
    }

    pub fn revisions(&self, arm: Arm, t: usize) -> PathBuf {
        self.stage_dir(&stages::iteration(arm, t, Step::Revise))
            .join(files::REVISIONS)
    }

    pub fn sft_set(&self, arm: Arm, t: usize) -> PathBuf {
        self.stage_dir(&stages::iteration(arm, t, Step::SftData))
            .join(files::SFT_SET)
    }

    pub fn eval_responses(&self, policy: &str) -> PathBuf {
        self.stage_dir(&stages::eval(policy)).join(files::RESPONSES)
    }

    pub fn report_json(&self) -> PathBuf {
        self.root.join("report.json")
    }

    pub fn report_md(&self) -> PathBuf {
        self.root.join("report.md")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_are_the_documented_directories() {
        let l = RunLayout::new(Path::new("/r"));
        assert_eq!(
            l.responses(Arm::Identity, 2),
            Path::new("/r/identity/iter-2/generate/responses.jsonl")
        );
        assert_eq!(
            l.sft_set(Arm::Seft, 1),
            Path::new("/r/seft/iter-1/sft_data/sft.jsonl")
        );
        assert_eq!(
            l.data(DataFile::HeldOut),
            Path::new("/r/data/held_out.jsonl")
        );
        assert_eq!(
            l.eval_responses(&policy_name(Arm::Seft, 3)),
            Path::new("/r/eval/seft-iter-3/responses.jsonl")
        );
        assert_eq!(l.model(stages::REVISER), Path::new("/r/reviser/model"));
    }
}
