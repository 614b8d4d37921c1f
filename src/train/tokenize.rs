//! Conversations → token ids with a per-token target mask, through the model's chat template.
//!
//! Assistant turns are located by rendering the conversation up to each of them (with the
//! generation prompt) and through them: the bytes in between are that turn, end-of-turn
//! marker included, so the model learns to stop. Tokens whose text starts inside such a span
//! are targets; everything else (system, user, template scaffolding) carries no loss unless
//! `train_on_prompt` is set.

use crate::error::{Result, SeftError};
use crate::model::{Message, TextTokenizer};

/// ChatML, used when a tokenizer has no template of its own (base models), as TRL does.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedExample {
    pub ids: Vec<u32>,
    /// `is_target[i]`: token `ids[i]` is predicted by the loss (from position i-1).
    pub is_target: Vec<bool>,
    /// Start index of each packed sequence after the first (empty when not packed).
    pub boundaries: Vec<usize>,
}

impl TokenizedExample {
    pub fn n_targets(&self) -> usize {
        self.is_target.iter().skip(1).filter(|&&t| t).count()
    }
}

fn render(tok: &TextTokenizer, messages: &[Message], generation_prompt: bool) -> Result<String> {
    match &tok.chat_template {
        Some(_) => tok.apply_chat_template(messages, generation_prompt),
        None => crate::model::ChatTemplate::new(CHATML_TEMPLATE, "", "")
            .map_err(SeftError::Invalid)?
            .render(messages, generation_prompt),
    }
}

/// Byte spans of the assistant turns in the rendered conversation, and the rendered text.
pub fn assistant_spans(
    tok: &TextTokenizer,
    messages: &[Message],
) -> Result<(String, Vec<(usize, usize)>)> {
    assistant_spans_from(tok, messages, 0)
}

/// [`assistant_spans`] of the assistant turns at index `from_turn` or later.
fn assistant_spans_from(
    tok: &TextTokenizer,
    messages: &[Message],
    from_turn: usize,
) -> Result<(String, Vec<(usize, usize)>)> {
    let full = render(tok, messages, false)?;
    let mut spans = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if m.role != "assistant" || i < from_turn {
            continue;
        }
        let before = render(tok, &messages[..i], true)?;
        let through = render(tok, &messages[..=i], false)?;
        if !through.starts_with(&before) || !full.starts_with(&through) {
            return Err(SeftError::Invalid(
                "the chat template renders earlier turns differently as the conversation grows, so assistant turns cannot be located; set data.train_on_prompt = true to train on every token".into(),
            ));
        }
        spans.push((before.len(), through.len()));
    }
    Ok((full, spans))
}

/// Tokenizes one conversation. Returns the example and whether it was truncated to `max_len`.
pub fn tokenize_conversation(
    tok: &TextTokenizer,
    messages: &[Message],
    train_on_prompt: bool,
    max_len: usize,
) -> Result<(TokenizedExample, bool)> {
    let (text, spans) = if train_on_prompt {
        (render(tok, messages, false)?, Vec::new())
    } else {
        assistant_spans(tok, messages)?
    };
    encode_with_targets(
        tok,
        &text,
        (!train_on_prompt).then_some(spans.as_slice()),
        max_len,
    )
}

/// Tokenizes `prompt` followed by `completion` with targets on the completion's assistant
/// turns only (earlier assistant turns of the prompt carry no loss), as preference training
/// needs. Returns the example and whether it was truncated to `max_len`.
pub fn tokenize_completion(
    tok: &TextTokenizer,
    prompt: &[Message],
    completion: &[Message],
    max_len: usize,
) -> Result<(TokenizedExample, bool)> {
    let messages: Vec<Message> = prompt.iter().chain(completion).cloned().collect();
    let (text, spans) = assistant_spans_from(tok, &messages, prompt.len())?;
    encode_with_targets(tok, &text, Some(spans.as_slice()), max_len)
}

/// Encodes `text`; tokens whose text starts inside one of `spans` are targets (every token
/// when `spans` is `None`).
fn encode_with_targets(
    tok: &TextTokenizer,
    text: &str,
    spans: Option<&[(usize, usize)]>,
    max_len: usize,
) -> Result<(TokenizedExample, bool)> {
    let enc = tok
        .inner
        .encode(text, false)
        .map_err(|e| SeftError::Invalid(format!("tokenization failed: {e}")))?;
    let mut ids = enc.get_ids().to_vec();
    let mut is_target: Vec<bool> = match spans {
        None => vec![true; ids.len()],
        Some(spans) => enc
            .get_offsets()
            .iter()
            .map(|&(start, end)| {
                spans
                    .iter()
                    .any(|&(a, b)| start >= a && start < b && end > start)
            })
            .collect(),
    };
    // A BOS the template did not write but the tokenizer wants.
    if tok.add_bos_token
        && let Some(bos) = tok.bos_token.as_deref().and_then(|t| tok.token_id(t))
        && ids.first() != Some(&bos)
    {
        ids.insert(0, bos);
        is_target.insert(0, false);
    }
    let truncated = ids.len() > max_len;
    ids.truncate(max_len);
    is_target.truncate(max_len);
    Ok((
        TokenizedExample {
            ids,
            is_target,
            boundaries: Vec::new(),
        },
        truncated,
    ))
}

/// Packs examples, in order, into rows of at most `max_len` tokens (a new row when the next
/// example does not fit). The first token of each packed sequence is never a target (it would
/// be predicted from the previous sequence), and `boundaries` lets the batcher restart
/// positions and block attention between sequences, so packing changes speed, not the loss.
pub fn pack(examples: Vec<TokenizedExample>, max_len: usize) -> Vec<TokenizedExample> {
    let mut rows: Vec<TokenizedExample> = Vec::new();
    for ex in examples {
        match rows.last_mut() {
            Some(row) if row.ids.len() + ex.ids.len() <= max_len => {
                row.boundaries.push(row.ids.len());
                row.ids.extend_from_slice(&ex.ids);
                row.is_target.push(false);
                row.is_target.extend_from_slice(&ex.is_target[1..]);
            }
            _ => rows.push(ex),
        }
    }
    rows
}
