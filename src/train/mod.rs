//! The training engine: supervised fine-tuning (which trains SEFT's reviser and its policy) and
//! preference optimization (DPO and its family, [`preference`]), one loop for both.
//!
//! SFT: loss on assistant tokens only (by default), normalized by the target-token count of the
//! whole accumulated batch. Preference losses: averaged over the pairs of the accumulated step.
//! Both: AdamW with decoupled weight decay, warmup + cosine/linear schedule and
//! global gradient-norm clipping; atomic, exactly resumable checkpoints; metrics on disk.

pub mod adamw;
pub mod batch;
pub mod checkpoint;
pub mod loss;
pub mod params;
pub mod plot;
pub mod preference;
pub mod reference;
pub mod schedule;
pub mod tokenize;
pub mod trainer;

pub use params::{
    LoraSection, Objective, PreferenceLoss, PreferenceLossKind, PreferenceSection, Schedule,
    SftParams, TrainSection,
};
pub use trainer::{SftOutcome, Trainer, run_sft};
