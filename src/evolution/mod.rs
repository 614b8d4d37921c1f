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
//! Modules, in the order a run uses them: [`run_config`] (the TOML file), [`stage`] (the
//! [`Run`](stage::Run) context and its resumable stages), [`layout`] (every path of the run
//! directory), [`data`] (the inputs; [`task`] makes them for the built-in task family),
//! [`scratch`] (a small decoder from scratch), [`sft`] (fine-tuning inside a run), [`reviser`]
//! (tags, data, output format), [`gate`] (the quality gate that skips the reviser),
//! [`selection`] (which prompts each iteration), [`evolve`] (generate → revise → filter
//! ([`filters`]) → fine-tune, per arm and iteration; [`generation`] writes the answers),
//! [`evaluate`] (held-out grading by the run's [`grader`], the reviser's confusion table,
//! IFEval scores), [`baselines`] (the
//! comparison arms: SFT on chosen, DPO and its family, SEFT+DPO) and [`report`];
//! [`pipeline`] chains them.

pub mod baselines;
pub mod data;
pub mod evaluate;
pub mod evolve;
pub mod filters;
pub mod gate;
pub mod generation;
pub mod grader;
pub mod layout;
pub mod pipeline;
pub mod report;
pub mod reviser;
pub mod run_config;
pub mod scratch;
pub mod selection;
pub mod sft;
pub mod stage;
pub mod task;

pub use pipeline::run;
pub use report::Report;
pub use run_config::RunConfig;
