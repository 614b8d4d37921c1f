//! Task families seft generates itself and grades exactly, for the quickstart and the tests.
//!
//! * `list_ops`: one number about a list of digits: `max 5 1 9 3` → `9`, `min …` → `1`,
//!   `len …` → `4`. The quickstart's family: a reviser can check an answer in the same
//!   forward pass in which it would compute it, so a tiny model learns *when* to revise.
//! * `sort`: `sort 5 1 9 3` → `1 3 5 9`. Harder to check than to write for a small model
//!   (spotting one wrong digit means comparing two multisets before the first output token),
//!   kept as a harder family.
//!
//! Besides prompts and reference answers a family makes the preference data a reviser learns
//! from: the correct answer (score 10) against a corrupted one, either a slip that keeps the
//! right content in the wrong form (score 6) or a wrong answer (score 1). Grading tells the
//! same three states apart, which is what the reviser's confusion table is built on.

use std::collections::HashSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::evolution::reviser::PreferencePair;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// `list_ops` or `sort`.
    pub family: TaskFamily,
    /// Items per list, inclusive range.
    #[serde(default = "default_min_items")]
    pub min_items: usize,
    #[serde(default = "default_max_items")]
    pub max_items: usize,
    /// Annotated (prompt, answer) examples for the starting policy.
    pub annotated: usize,
    /// Preference pairs (correct vs corrupted answer) the reviser is trained from.
    pub preference_pairs: usize,
    /// Unannotated prompts the policy evolves on.
    pub pool: usize,
    /// Held-out graded prompts (disjoint from all of the above).
    pub held_out: usize,
}

fn default_min_items() -> usize {
    3
}
fn default_max_items() -> usize {
    6
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskFamily {
    ListOps,
    Sort,
}

/// How good a response is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    Correct,
    /// Right content in the wrong form: extra characters around the right number, another
    /// separator, or (sort) one pair out of order.
    Slip,
    Wrong,
}

impl Grade {
    /// The rating a grader of this task would give (used as preference scores).
    pub fn score(self) -> f64 {
        match self {
            Grade::Correct => 10.0,
            Grade::Slip => 6.0,
            Grade::Wrong => 1.0,
        }
    }
}

/// One graded prompt with its reference answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskItem {
    pub prompt: String,
    pub answer: String,
}

/// Everything a quickstart run needs, disjoint by prompt.
#[derive(Debug, Clone, Default)]
pub struct TaskData {
    pub annotated: Vec<TaskItem>,
    pub preferences: Vec<PreferencePair>,
    pub pool: Vec<TaskItem>,
    pub held_out: Vec<TaskItem>,
}

fn join(digits: &[u8], sep: &str) -> String {
    digits
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Sort,
    Max,
    Min,
    Len,
}

const OPS: [(Op, &str); 4] = [
    (Op::Sort, "sort"),
    (Op::Max, "max"),
    (Op::Min, "min"),
    (Op::Len, "len"),
];

fn parse_task(prompt: &str) -> Option<(Op, Vec<u8>)> {
    let (word, rest) = prompt.trim().split_once(' ')?;
    let op = OPS.iter().find(|(_, w)| *w == word)?.0;
    let digits = rest
        .split_whitespace()
        .map(|t| t.parse::<u8>().ok().filter(|&d| d < 10))
        .collect::<Option<Vec<u8>>>()?;
    (!digits.is_empty()).then_some((op, digits))
}

fn reference(op: Op, digits: &[u8]) -> String {
    let mut sorted = digits.to_vec();
    sorted.sort_unstable();
    match op {
        Op::Sort => join(&sorted, " "),
        Op::Max => sorted[sorted.len() - 1].to_string(),
        Op::Min => sorted[0].to_string(),
        Op::Len => digits.len().to_string(),
    }
}

/// The maximal runs of ASCII digits in `text`.
fn numbers(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .collect()
}

impl TaskConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.min_items < 2 || self.min_items > self.max_items || self.max_items > 9 {
            return Err(format!(
                "task.min_items/max_items must satisfy 2 <= min <= max <= 9, got {}..{}",
                self.min_items, self.max_items
            ));
        }
        if self.annotated == 0 || self.pool == 0 || self.held_out == 0 {
            return Err("task.annotated, task.pool and task.held_out must be at least 1".into());
        }
        Ok(())
    }

    fn sample(&self, rng: &mut StdRng) -> TaskItem {
        let n = rng.random_range(self.min_items..=self.max_items);
        let digits: Vec<u8> = (0..n).map(|_| rng.random_range(0..10)).collect();
        let op = match self.family {
            TaskFamily::Sort => Op::Sort,
            TaskFamily::ListOps => [Op::Max, Op::Min, Op::Len][rng.random_range(0..3)],
        };
        let word = OPS.iter().find(|(o, _)| *o == op).expect("listed").1;
        TaskItem {
            prompt: format!("{word} {}", join(&digits, " ")),
            answer: reference(op, &digits),
        }
    }

    /// Draws `n` prompts not in `seen` (and adds them to it).
    fn draw(&self, n: usize, rng: &mut StdRng, seen: &mut HashSet<String>) -> Vec<TaskItem> {
        let mut out = Vec::with_capacity(n);
        let mut attempts = 0usize;
        while out.len() < n && attempts < n * 1000 + 1000 {
            attempts += 1;
            let item = self.sample(rng);
            if seen.insert(item.prompt.clone()) {
                out.push(item);
            }
        }
        out
    }

    /// The quickstart's data, reproducible from `seed`. Held-out prompts are drawn first so
    /// that their set does not depend on the sizes of the others.
    pub fn generate(&self, seed: u64) -> TaskData {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut seen = HashSet::new();
        let held_out = self.draw(self.held_out, &mut rng, &mut seen);
        let annotated = self.draw(self.annotated, &mut rng, &mut seen);
        let pool = self.draw(self.pool, &mut rng, &mut seen);
        let pref_items = self.draw(self.preference_pairs, &mut rng, &mut seen);
        let preferences = pref_items
            .into_iter()
            .map(|item| {
                let slip = rng.random_bool(0.4);
                let rejected = corrupt(&item, slip, &mut rng);
                let grade = grade(&item.prompt, &rejected);
                PreferencePair {
                    prompt: item.prompt,
                    chosen: item.answer,
                    rejected,
                    score_chosen: Some(Grade::Correct.score()),
                    score_rejected: Some(grade.score()),
                }
            })
            .collect();
        TaskData {
            annotated,
            preferences,
            pool,
            held_out,
        }
    }
}

/// Grades `response` to a task prompt exactly.
pub fn grade(prompt: &str, response: &str) -> Grade {
    let Some((op, digits)) = parse_task(prompt) else {
        return Grade::Wrong;
    };
    let expected = reference(op, &digits);
    let text = response.trim();
    if text == expected {
        return Grade::Correct;
    }
    if op != Op::Sort {
        return if numbers(text) == [expected.as_str()] {
            Grade::Slip
        } else {
            Grade::Wrong
        };
    }
    let mut expected = digits;
    expected.sort_unstable();
    let mut got: Vec<u8> = text
        .chars()
        .filter(|c| c.is_ascii_digit())
        .map(|c| c as u8 - b'0')
        .collect();
    let only_digits_and_separators = text
        .chars()
        .all(|c| c.is_ascii_digit() || c == ' ' || c == ',');
    let ordered = got.clone();
    got.sort_unstable();
    if !only_digits_and_separators || got != expected {
        return Grade::Wrong;
    }
    // Same digits: a slip when only the separators differ or one pair is out of order.
    let out_of_order = ordered.windows(2).filter(|w| w[0] > w[1]).count();
    if out_of_order <= 1 {
        Grade::Slip
    } else {
        Grade::Wrong
    }
}

/// A wrong version of a one-number answer: a slip in form, or another number.
fn corrupt_number(item: &TaskItem, digits: &[u8], slip: bool, rng: &mut StdRng) -> String {
    let a = &item.answer;
    if slip {
        return match rng.random_range(0..5) {
            0 => format!("{a}."),
            1 => format!("= {a}"),
            2 => format!("({a})"),
            3 => format!("ans {a}"),
            _ => format!("{a}!"),
        };
    }
    loop {
        let candidate = match rng.random_range(0..5) {
            // Another element of the list: the most natural mistake.
            0 | 1 => digits[rng.random_range(0..digits.len())].to_string(),
            // The answer that is right most often (9 for max, 0 for min): a guess.
            2 => match item.prompt.split(' ').next() {
                Some("max") => "9".to_string(),
                Some("min") => "0".to_string(),
                _ => rng.random_range(3..7).to_string(),
            },
            3 => rng.random_range(0..10).to_string(),
            // Babbling, as an untrained policy does.
            _ => {
                let d = rng.random_range(0..10);
                vec![d.to_string(); rng.random_range(2..6)].join(" ")
            }
        };
        if grade(&item.prompt, &candidate) == Grade::Wrong {
            return candidate;
        }
    }
}

/// A wrong version of `item.answer`: a slip (`slip`) or a real error.
fn corrupt(item: &TaskItem, slip: bool, rng: &mut StdRng) -> String {
    let (op, digits) = parse_task(&item.prompt).expect("generated prompt");
    if op != Op::Sort {
        return corrupt_number(item, &digits, slip, rng);
    }
    let mut sorted = digits.clone();
    sorted.sort_unstable();
    let distinct_neighbours: Vec<usize> = (0..sorted.len() - 1)
        .filter(|&i| sorted[i] != sorted[i + 1])
        .collect();
    if slip {
        if !distinct_neighbours.is_empty() && rng.random_bool(0.6) {
            let i = distinct_neighbours[rng.random_range(0..distinct_neighbours.len())];
            sorted.swap(i, i + 1);
            return join(&sorted, " ");
        }
        return join(&sorted, if rng.random_bool(0.5) { "," } else { ", " });
    }
    loop {
        let mut d = sorted.clone();
        match rng.random_range(0..10) {
            // Wrong digits in a sorted list of the right length: what a half-trained policy
            // writes most (half of all errors).
            0..5 => {
                for _ in 0..rng.random_range(1..=3) {
                    let i = rng.random_range(0..d.len());
                    d[i] = rng.random_range(0..10);
                }
                d.sort_unstable();
            }
            5 => {
                d.remove(rng.random_range(0..d.len()));
            }
            6 => {
                let i = rng.random_range(0..d.len());
                d.insert(i, rng.random_range(0..10));
                d.sort_unstable();
            }
            7 => d = digits.clone(),
            8 => d.shuffle(rng),
            // Babbling, as an untrained policy does: random digits, often one repeated.
            _ => {
                let n = rng.random_range(1..=12);
                let digit = rng.random_range(0..10);
                d = (0..n)
                    .map(|_| {
                        if rng.random_bool(0.5) {
                            digit
                        } else {
                            rng.random_range(0..10)
                        }
                    })
                    .collect();
            }
        }
        let text = join(&d, " ");
        if grade(&item.prompt, &text) == Grade::Wrong {
            return text;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grading_tells_correct_slips_and_errors_apart() {
        let p = "sort 5 1 9 3";
        assert_eq!(grade(p, "1 3 5 9"), Grade::Correct);
        assert_eq!(grade(p, " 1 3 5 9\n"), Grade::Correct);
        assert_eq!(grade(p, "1,3,5,9"), Grade::Slip);
        assert_eq!(grade(p, "1 5 3 9"), Grade::Slip);
        assert_eq!(grade(p, "9 5 3 1"), Grade::Wrong);
        assert_eq!(grade(p, "1 3 9"), Grade::Wrong);
        assert_eq!(grade(p, "1 3 5 9 9"), Grade::Wrong);
        assert_eq!(grade(p, "the answer is 1 3 5 9"), Grade::Wrong);
        assert_eq!(grade(p, ""), Grade::Wrong);
        let m = "max 5 1 9 3";
        assert_eq!(grade(m, "9"), Grade::Correct);
        assert_eq!(grade(m, "9."), Grade::Slip);
        assert_eq!(grade(m, "= 9"), Grade::Slip);
        assert_eq!(grade(m, "5"), Grade::Wrong);
        assert_eq!(grade(m, "9 9"), Grade::Wrong);
        assert_eq!(grade("len 5 1 9 3", "4"), Grade::Correct);
        assert_eq!(grade("min 5 1 9 3", "1"), Grade::Correct);
        assert_eq!(grade("median 5 1", "1"), Grade::Wrong);
    }

    #[test]
    fn generated_data_is_disjoint_reproducible_and_graded() {
        for family in [TaskFamily::Sort, TaskFamily::ListOps] {
            check_family(family);
        }
    }

    fn check_family(family: TaskFamily) {
        let cfg = TaskConfig {
            family,
            min_items: 3,
            max_items: 6,
            annotated: 20,
            preference_pairs: 200,
            pool: 100,
            held_out: 50,
        };
        let a = cfg.generate(3);
        let b = cfg.generate(3);
        assert_eq!(a.held_out, b.held_out);
        assert_eq!(a.preferences, b.preferences);
        let mut prompts: Vec<&str> = a
            .annotated
            .iter()
            .chain(&a.pool)
            .chain(&a.held_out)
            .map(|i| i.prompt.as_str())
            .chain(a.preferences.iter().map(|p| p.prompt.as_str()))
            .collect();
        let n = prompts.len();
        prompts.sort_unstable();
        prompts.dedup();
        assert_eq!(prompts.len(), n, "splits share prompts");
        for item in &a.annotated {
            assert_eq!(grade(&item.prompt, &item.answer), Grade::Correct);
        }
        let slips = a
            .preferences
            .iter()
            .filter(|p| grade(&p.prompt, &p.rejected) == Grade::Slip)
            .count();
        assert!(slips > 40 && slips < 120, "{slips} slips of 200");
        for p in &a.preferences {
            assert_eq!(grade(&p.prompt, &p.chosen), Grade::Correct);
            assert_ne!(grade(&p.prompt, &p.rejected), Grade::Correct);
        }
    }
}
