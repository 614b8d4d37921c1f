//! Instruction difficulty for the length-controlled GLM. alpaca_eval's official values
//! (`instruction_difficulty.csv` in the Hugging Face dataset tatsu-lab/alpaca_eval) come from
//! the joint fit in its `notebooks/instruction_difficulty.ipynb`:
//!
//! ```text
//!   preference ~ C(model):tanh(Δlen/sd_model) + C(model) + C(instruction) + not_gamed − 1
//! ```
//!
//! an L1 logistic regression over many models' annotations against the same baseline, where
//! the per-instruction coefficients become the difficulties (the first instruction is the
//! reference level, 0). [`estimate`] runs that fit on whatever annotation sets are at hand;
//! with few models the estimate is noisier than the official one, so reports say which was
//! used. (The notebook adds ±5e-5 of random jitter to Δlen to break ties; it changes nothing
//! measurable and is left out to keep the fit deterministic.)

use std::collections::HashMap;
use std::path::Path;

use super::annotations::{Annotation, text_len};
use super::glm::{Design, Targets, fit_l1_logistic_cv};
use super::lc::std_dev;
use crate::data::jsonl::write_atomic;
use crate::error::{Result, SeftError};

/// Difficulty per instruction of the evaluation set, by the instruction's index in it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstructionDifficulty {
    pub values: Vec<f64>,
    /// Where the values came from (a file, or "estimated from N models' annotations").
    pub source: String,
}

impl InstructionDifficulty {
    /// Reads alpaca_eval's CSV (`index,instruction_difficulty`, one row per instruction).
    pub fn read_csv(path: &Path) -> Result<Self> {
        let text = crate::input::read_metadata(path)?;
        Self::parse_csv(&text, path)
    }

    /// Parses the CSV text; errors name `path` (the file the text came from).
    pub fn parse_csv(text: &str, path: &Path) -> Result<Self> {
        let mut pairs = Vec::new();
        for (n, line) in text.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let bad =
                || SeftError::file(path, format!("line {}: expected index,difficulty", n + 1));
            let (i, v) = line.split_once(',').ok_or_else(bad)?;
            let i: usize = i.trim().parse().map_err(|_| bad())?;
            let v: f64 = v.trim().parse().map_err(|_| bad())?;
            if !v.is_finite() {
                return Err(SeftError::file(path, format!("line {}: value {v}", n + 1)));
            }
            pairs.push((i, v));
        }
        let n = pairs.len();
        let mut values = vec![f64::NAN; n];
        for (i, v) in pairs {
            if i >= n || !values[i].is_nan() {
                return Err(SeftError::file(
                    path,
                    format!("index {i} is repeated or out of 0..{n}"),
                ));
            }
            values[i] = v;
        }
        if n == 0 {
            return Err(SeftError::file(path, "no rows"));
        }
        Ok(InstructionDifficulty {
            values,
            source: path.display().to_string(),
        })
    }

    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let mut text = String::from("index,instruction_difficulty\n");
        for (i, v) in self.values.iter().enumerate() {
            text.push_str(&format!("{i},{v:.16}\n"));
        }
        write_atomic(path, text.as_bytes())
    }

    /// The difficulty of each annotation, matched by instruction text against the eval set.
    pub fn for_annotations(
        &self,
        eval_instructions: &[String],
        annotations: &[Annotation],
    ) -> Result<Vec<f64>> {
        if eval_instructions.len() != self.values.len() {
            return Err(SeftError::Invalid(format!(
                "{} has {} difficulties but the evaluation set has {} instructions",
                self.source,
                self.values.len(),
                eval_instructions.len()
            )));
        }
        let index = instruction_index(eval_instructions);
        annotations
            .iter()
            .enumerate()
            .map(|(row, a)| {
                index
                    .get(a.instruction.as_str())
                    .map(|&i| self.values[i])
                    .ok_or_else(|| {
                        SeftError::Invalid(format!(
                            "annotation {row}: instruction not in the evaluation set: {:.60}",
                            a.instruction
                        ))
                    })
            })
            .collect()
    }
}

pub fn instruction_index(instructions: &[String]) -> HashMap<&str, usize> {
    let mut map = HashMap::new();
    for (i, s) in instructions.iter().enumerate() {
        map.entry(s.as_str()).or_insert(i);
    }
    map
}

/// The notebook's joint fit over several models' annotations against one baseline.
pub fn estimate(
    eval_instructions: &[String],
    models: &[Vec<Annotation>],
) -> Result<InstructionDifficulty> {
    if models.is_empty() {
        return Err(SeftError::Invalid(
            "estimating instruction difficulty needs at least one model's annotations".into(),
        ));
    }
    let index = instruction_index(eval_instructions);
    // Rows: (model, instruction index, standardized length difference, preference).
    let mut rows = Vec::new();
    for (m, annotations) in models.iter().enumerate() {
        let judged: Vec<&Annotation> = annotations
            .iter()
            .filter(|a| a.preference.is_some() && !a.output_2.is_empty())
            .collect();
        let delta: Vec<f64> = judged
            .iter()
            .map(|a| text_len(&a.output_1) as f64 - text_len(&a.output_2) as f64)
            .collect();
        let sd = std_dev(&delta);
        for (a, d) in judged.iter().zip(&delta) {
            let &i = index.get(a.instruction.as_str()).ok_or_else(|| {
                SeftError::Invalid(format!(
                    "{}: instruction not in the evaluation set: {:.60}",
                    a.generator_2, a.instruction
                ))
            })?;
            // `judged` holds only annotations with a preference.
            let pref = a.preference.expect("judged");
            let p = if pref == 0.0 { 0.5 } else { pref - 1.0 };
            rows.push((m, i, if sd > 0.0 { d / sd } else { 0.0 }, p));
        }
    }
    let mut x = Design::new(rows.len());
    for m in 0..models.len() {
        let col = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.0 == m)
            .map(|(k, r)| (k, r.2.tanh()))
            .collect();
        x.push_sparse(&format!("model{m}:tanh(len)"), col);
    }
    for m in 0..models.len() {
        let col = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.0 == m)
            .map(|(k, _)| (k, 1.0))
            .collect();
        x.push_sparse(&format!("model{m}"), col);
    }
    // Treatment coding: the lowest instruction index present is the reference level.
    let mut present: Vec<usize> = rows.iter().map(|r| r.1).collect();
    present.sort_unstable();
    present.dedup();
    let mut by_instruction: HashMap<usize, Vec<(usize, f64)>> = HashMap::new();
    for (k, r) in rows.iter().enumerate() {
        by_instruction.entry(r.1).or_default().push((k, 1.0));
    }
    let first_feature = x.columns.len();
    for &i in present.iter().skip(1) {
        x.push_sparse(
            &format!("C(index)[T.{i}]"),
            // `present` lists exactly the instructions `by_instruction` was filled with.
            by_instruction.remove(&i).unwrap(),
        );
    }
    x.push_dense("not_gamed_baseline", &vec![1.0; rows.len()]);
    let p: Vec<f64> = rows.iter().map(|r| r.3).collect();
    let fit = fit_l1_logistic_cv(
        &x,
        &Targets {
            p: &p,
            weight: None,
        },
        5,
    );
    let mut values = vec![0.0; eval_instructions.len()];
    for (k, &i) in present.iter().skip(1).enumerate() {
        values[i] = fit.coefficients[first_feature + k];
    }
    Ok(InstructionDifficulty {
        values,
        source: format!(
            "estimated from {} model(s)' annotations (joint L1 GLM, C = {:.4})",
            models.len(),
            fit.c
        ),
    })
}
