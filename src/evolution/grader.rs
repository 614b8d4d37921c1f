//! How a run grades held-out answers: the built-in task family's exact grader
//! ([`crate::evolution::task::grade`]), or IFEval's checkers on verifiable-instruction prompts
//! (`eval.grader = "constraints"`): correct when the answer follows every instruction of its
//! prompt, a slip when it follows some, wrong when none; its score is the fraction followed.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Result, SeftError};
use crate::eval::ifeval::evaluate::{IfevalPrompt, read_input_data};
use crate::eval::ifeval::synthetic::constraint_score;
use crate::evolution::data::PromptRow;
use crate::evolution::run_config::{GraderKind, RunConfig};
use crate::evolution::task::{Grade, grade};

#[derive(Debug, Default)]
pub enum Grader {
    /// The task family's grader (the prompt says what is asked).
    #[default]
    Task,
    /// Each held-out prompt's instructions, by prompt text.
    Constraints(HashMap<String, IfevalPrompt>),
}

impl Grader {
    /// The run's grader, or `None` when its held-out answers are not graded (no task, no
    /// `eval.grader`). Every held-out prompt must have its instructions.
    pub fn for_run(cfg: &RunConfig, held_out: &[PromptRow]) -> Result<Option<Self>> {
        if cfg.task.is_some() {
            return Ok(Some(Grader::Task));
        }
        match (cfg.eval.grader, &cfg.data.eval_prompts) {
            (Some(GraderKind::Constraints), Some(file)) => {
                let path = crate::data::resolve_dataset(file)?;
                let prompts: HashMap<String, IfevalPrompt> = read_input_data(&path)?
                    .into_iter()
                    .map(|p| (p.prompt.clone(), p))
                    .collect();
                if let Some(missing) = held_out.iter().find(|r| !prompts.contains_key(&r.prompt)) {
                    return Err(SeftError::file(
                        Path::new(file),
                        format!(
                            "held-out prompt {} has no instructions in this file",
                            missing.id
                        ),
                    ));
                }
                Ok(Some(Grader::Constraints(prompts)))
            }
            _ => Ok(None),
        }
    }

    pub fn grade(&self, prompt: &str, response: &str) -> Grade {
        match self {
            Grader::Task => grade(prompt, response),
            Grader::Constraints(_) => match self.score(prompt, response) {
                Some(s) if s >= 1.0 => Grade::Correct,
                Some(s) if s > 0.0 => Grade::Slip,
                // No instructions for the prompt cannot happen: `for_run` checked them all.
                _ => Grade::Wrong,
            },
        }
    }

    /// The fraction of the prompt's instructions followed (constraints grader only).
    pub fn score(&self, prompt: &str, response: &str) -> Option<f64> {
        match self {
            Grader::Task => None,
            Grader::Constraints(prompts) => {
                prompts.get(prompt).map(|p| constraint_score(p, response))
            }
        }
    }
}
