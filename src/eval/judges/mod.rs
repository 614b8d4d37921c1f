//! Judges: what AlpacaEval and MT-Bench need from a judge model, behind one trait so a local
//! model ([`local::LocalJudge`], probabilities read from its logits) and any OpenAI-compatible
//! endpoint ([`http::HttpJudge`], `top_logprobs`) are interchangeable.

pub mod cache;
pub mod http;
pub mod local;
pub mod spec;

pub use spec::{HttpJudgeSpec, JudgeSpec};

use crate::error::Result;
use crate::model::Message;

/// A judge's answer for one prompt; failures are per prompt so one bad request does not
/// discard a whole run (the caller records and reports them).
pub type Verdict<T> = std::result::Result<T, String>;

pub trait Judge: Sync {
    /// A name for reports and caches (model path or endpoint model name).
    fn name(&self) -> String;

    /// For each conversation, the log-probabilities of the judge's next token for each of
    /// `candidates` (None where the token is not among what the judge reports).
    fn candidate_logprobs(
        &self,
        prompts: &[Vec<Message>],
        candidates: &[&str],
        on_done: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Verdict<Vec<Option<f64>>>>>;

    /// Greedy completions (at most `max_tokens` tokens) of each conversation. A non-empty
    /// `prefix` forces the reply to start with it (returned without it); only local judges
    /// can do that.
    fn complete(
        &self,
        prompts: &[Vec<Message>],
        max_tokens: usize,
        prefix: &str,
        on_done: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Verdict<String>>>;
}

/// Splits a ChatML prompt template (`<|im_start|>role\n…<|im_end|>`, the format of
/// alpaca_eval's judge prompts) into messages, so any judge applies its own chat template.
pub fn parse_chatml(text: &str) -> std::result::Result<Vec<Message>, String> {
    let mut messages = Vec::new();
    for part in text.split("<|im_start|>").skip(1) {
        let body = part
            .split("<|im_end|>")
            .next()
            .ok_or("a message without <|im_end|>")?;
        let (role, content) = body
            .split_once('\n')
            .ok_or_else(|| format!("a message without a role line: {:.40}", body))?;
        let role = role.trim();
        if !matches!(role, "system" | "user" | "assistant") {
            return Err(format!("unknown role {role:?}"));
        }
        messages.push(Message::new(role, content.trim_end_matches('\n')));
    }
    if messages.is_empty() {
        return Err("no <|im_start|> messages".into());
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_templates_split_into_messages() {
        let m = parse_chatml("<|im_start|>system\nBe fair.\n<|im_end|>\n<|im_start|>user\nA or B?\n\nSay m.\n<|im_end|>").unwrap();
        assert_eq!(
            m,
            vec![
                Message::new("system", "Be fair."),
                Message::new("user", "A or B?\n\nSay m.")
            ]
        );
        assert!(parse_chatml("plain text").is_err());
        assert!(parse_chatml("<|im_start|>robot\nhi<|im_end|>").is_err());
    }
}
