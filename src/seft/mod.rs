//! Self-evolution fine-tuning (SEFT), after Chen et al., "Self-Evolution Fine-Tuning for Policy
//! Optimization" (arXiv 2406.10813).
//!
//! Algorithm:
//! 1. Train an *adaptive reviser* with plain SFT on preference data `(x, y_chosen, y_rejected)`:
//!    `(x, y_rejected)` → a revision tag (`minor`/`major`, from the rating gap) followed by
//!    `y_chosen`; `(x, y_chosen)` → the `keep` tag. The reviser thus learns *when* to revise
//!    as well as how, and leaves good answers alone.
//! 2. For t = 1..T: take a slice of *unannotated* prompts, let the current policy answer them,
//!    let the reviser enhance each answer (keep → the answer itself), filter, and fine-tune the
//!    policy with plain SFT on the enhanced answers.
//!
//! Modules: [`reviser`] (data, tags, output format), [`task`] (a self-graded task family for
//! the quickstart), [`scratch`] (a small decoder trained from scratch), [`pipeline`] (the
//! resumable stages of `seft run`), [`selection`] (which prompts), [`gate`] (the quality gate
//! that skips the reviser), [`evaluate`] and [`report`].

pub mod config;
pub mod evaluate;
pub mod gate;
pub mod generation;
pub mod pipeline;
pub mod report;
pub mod reviser;
pub mod scratch;
pub mod selection;
pub mod stage;
pub mod task;

pub use config::RunConfig;
pub use pipeline::run;
pub use report::Report;
