//! MT-Bench (Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena",
//! arXiv 2306.05685; lm-sys/FastChat `llm_judge`): 80 two-turn questions in 8 categories,
//! answered by a model, each turn graded 1–10 by a judge with FastChat's single-answer prompts.
//! [`run`] does all of it and writes the judgments, scores and charts.

pub mod data;
pub mod grading;
pub mod pipeline;
pub mod report;

pub use pipeline::{AnsweringModel, MtBenchOptions, MtBenchOutcome, VerdictMode, run};

use std::collections::BTreeMap;

use data::{Answer, Choice, Question};

use crate::error::Result;
use crate::model::generate::SamplingConfig;
use crate::model::{LanguageModel, Message};

/// FastChat's sampling temperature per category (0 = greedy).
pub fn category_temperature(category: &str) -> f32 {
    match category {
        "writing" | "roleplay" => 0.7,
        "stem" | "humanities" => 0.1,
        _ => 0.0,
    }
}

/// Two-turn answers: turn 2 sees the question, the model's first answer and the follow-up.
pub fn answer_questions(
    model: &LanguageModel,
    model_id: &str,
    questions: &[Question],
    max_new_tokens: usize,
    seed: u64,
    on_done: &dyn Fn(usize),
) -> Result<Vec<Answer>> {
    let mut out = Vec::with_capacity(questions.len());
    for (i, q) in questions.iter().enumerate() {
        let cfg = SamplingConfig {
            max_new_tokens,
            temperature: category_temperature(&q.category),
            seed: seed.wrapping_add(q.question_id),
            ..Default::default()
        };
        let mut messages: Vec<Message> = Vec::new();
        let mut turns = Vec::new();
        for turn in &q.turns {
            messages.push(Message::new("user", turn));
            let text = model.tokenizer.apply_chat_template(&messages, true)?;
            let ids = model.tokenizer.encode(&text, false)?;
            let g = crate::model::generate::generate(model, &[ids], &cfg, |_, _| {})?.remove(0);
            messages.push(Message::new("assistant", g.text.trim()));
            turns.push(g.text.trim().to_string());
        }
        out.push(Answer {
            question_id: q.question_id,
            answer_id: format!("seft-{model_id}-{}", q.question_id),
            model_id: model_id.to_string(),
            choices: vec![Choice { index: 0, turns }],
            tstamp: chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
        });
        on_done(i + 1);
    }
    Ok(out)
}

pub type AnswersByModel = BTreeMap<String, BTreeMap<u64, Answer>>;
