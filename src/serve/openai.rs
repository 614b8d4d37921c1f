//! OpenAI's request and response shapes for `/v1/chat/completions` and `/v1/completions`:
//! strict parsing (a wrong type or range is a 400 naming the field, never a silent default;
//! a setting seft does not implement is refused rather than ignored) and the JSON of answers
//! and stream chunks.

use serde_json::{Map, Value, json};

use crate::model::generate::{FinishReason, Generation, SamplingConfig, TokenLogprobs};
use crate::model::{LanguageModel, Message};

/// An answer that is not a 200: the status and OpenAI's error object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub param: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            param: None,
        }
    }

    /// A 400 about one request field.
    pub fn field(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            param: Some(param.to_string()),
        }
    }

    pub fn body(&self) -> Value {
        let kind = match self.status {
            401 => "authentication_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            s if s >= 500 => "server_error",
            _ => "invalid_request_error",
        };
        json!({"error": {"message": self.message, "type": kind, "param": self.param, "code": null}})
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// The most choices one request may ask for (`n`).
pub const MAX_CHOICES: u64 = 16;
/// The most alternatives per token (`top_logprobs`, or the completions API's `logprobs`).
pub const MAX_TOP_LOGPROBS: u64 = 20;
/// The most stop strings per request.
pub const MAX_STOP_STRINGS: usize = 16;

/// Typed access to a request object's fields.
struct Fields<'a>(&'a Map<String, Value>);

fn kind_of(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Number(n) => format!("{n}"),
        Value::Bool(b) => format!("{b}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
        Value::Null => "null".into(),
    }
}

impl Fields<'_> {
    /// The field's value; JSON null counts as absent, as in OpenAI's API.
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        self.get(key)
            .map(|v| {
                v.as_bool().ok_or_else(|| {
                    ApiError::field(
                        key,
                        format!("'{key}' must be a boolean, got {}", kind_of(v)),
                    )
                })
            })
            .transpose()
    }

    /// An integer in `lo..=hi`.
    fn uint(&self, key: &str, lo: u64, hi: u64) -> ApiResult<Option<u64>> {
        self.get(key)
            .map(|v| match v.as_u64() {
                Some(n) if (lo..=hi).contains(&n) => Ok(n),
                _ => Err(ApiError::field(
                    key,
                    format!(
                        "'{key}' must be an integer from {lo} to {hi}, got {}",
                        kind_of(v)
                    ),
                )),
            })
            .transpose()
    }

    /// A number in `lo..=hi` (`open_lo`: excluding lo).
    fn number(&self, key: &str, lo: f64, hi: f64, open_lo: bool) -> ApiResult<Option<f64>> {
        self.get(key)
            .map(|v| match v.as_f64() {
                Some(x) if (x > lo || (!open_lo && x == lo)) && x <= hi => Ok(x),
                _ => Err(ApiError::field(
                    key,
                    format!(
                        "'{key}' must be a number in {}{lo}, {hi}], got {}",
                        if open_lo { "(" } else { "[" },
                        kind_of(v)
                    ),
                )),
            })
            .transpose()
    }

    /// A setting seft does not implement: allowed only at its neutral value.
    fn unsupported_unless(&self, key: &str, neutral: impl Fn(&Value) -> bool) -> ApiResult<()> {
        match self.get(key) {
            Some(v) if !neutral(v) => Err(ApiError::field(
                key,
                format!("'{key}' is not supported by seft serve"),
            )),
            _ => Ok(()),
        }
    }
}

/// Settings shared by both endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    pub sampling: SamplingConfig,
    /// None: as many tokens as the server's default allows.
    pub max_tokens: Option<u64>,
    /// vLLM's `min_tokens`: end-of-sequence is suppressed until this many tokens.
    pub min_tokens: u64,
    pub n: usize,
    pub stream: bool,
    pub include_usage: bool,
    /// Choice i samples with seed + i; None: a random seed, as in vLLM.
    pub seed: Option<u64>,
}

fn parse_common(
    f: &Fields<'_>,
    served_name: &str,
    max_tokens_keys: &[&str],
    min_max_tokens: u64,
) -> ApiResult<Common> {
    if let Some(model) = f.get("model") {
        match model.as_str() {
            Some(m) if m == served_name => {}
            Some(m) => {
                return Err(ApiError {
                    status: 404,
                    message: format!(
                        "the model '{m}' does not exist; this server serves '{served_name}'"
                    ),
                    param: Some("model".into()),
                });
            }
            None => {
                return Err(ApiError::field(
                    "model",
                    format!("'model' must be a string, got {}", kind_of(model)),
                ));
            }
        }
    }
    for key in ["frequency_penalty", "presence_penalty"] {
        f.unsupported_unless(key, |v| v.as_f64() == Some(0.0))?;
    }
    f.unsupported_unless("logit_bias", |v| v.as_object().is_some_and(Map::is_empty))?;
    f.unsupported_unless("best_of", |v| v.as_u64() == Some(1))?;
    f.unsupported_unless("suffix", |v| v.as_str() == Some(""))?;
    f.unsupported_unless("tools", |v| v.as_array().is_some_and(Vec::is_empty))?;
    f.unsupported_unless("response_format", |v| v.get("type") == Some(&json!("text")))?;
    let mut max_tokens = None;
    for key in max_tokens_keys {
        if let Some(n) = f.uint(key, min_max_tokens, u64::MAX)? {
            max_tokens = Some(n);
        }
    }
    let stream = f.bool("stream")?.unwrap_or(false);
    let include_usage = match f.get("stream_options") {
        None => false,
        Some(_) if !stream => {
            return Err(ApiError::field(
                "stream_options",
                "'stream_options' is only allowed with stream: true",
            ));
        }
        Some(Value::Object(o)) => Fields(o).bool("include_usage")?.unwrap_or(false),
        Some(v) => {
            return Err(ApiError::field(
                "stream_options",
                format!("'stream_options' must be an object, got {}", kind_of(v)),
            ));
        }
    };
    let stop_strings = match f.get("stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.len() <= MAX_STOP_STRINGS => items
            .iter()
            .map(|v| v.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::field("stop", "'stop' must hold only strings"))?,
        Some(v) => {
            return Err(ApiError::field(
                "stop",
                format!(
                    "'stop' must be a string or an array of at most {MAX_STOP_STRINGS} strings, got {}",
                    kind_of(v)
                ),
            ));
        }
    };
    if stop_strings.iter().any(String::is_empty) {
        return Err(ApiError::field("stop", "stop strings must not be empty"));
    }
    let sampling = SamplingConfig {
        max_new_tokens: 0,
        temperature: f.number("temperature", 0.0, 2.0, false)?.unwrap_or(1.0) as f32,
        top_p: f.number("top_p", 0.0, 1.0, true)?.unwrap_or(1.0) as f32,
        top_k: f.uint("top_k", 0, u32::MAX as u64)?.unwrap_or(0) as usize,
        repetition_penalty: f
            .number("repetition_penalty", 0.0, 100.0, true)?
            .unwrap_or(1.0) as f32,
        stop_strings,
        ..Default::default()
    };
    let min_tokens = f.uint("min_tokens", 0, u64::MAX)?.unwrap_or(0);
    if max_tokens.is_some_and(|m| min_tokens > m) {
        return Err(ApiError::field(
            "min_tokens",
            "'min_tokens' must not exceed 'max_tokens'",
        ));
    }
    Ok(Common {
        sampling,
        max_tokens,
        min_tokens,
        n: f.uint("n", 1, MAX_CHOICES)?.unwrap_or(1) as usize,
        stream,
        include_usage,
        seed: f.uint("seed", 0, u64::MAX)?,
    })
}

fn object(body: &Value) -> ApiResult<&Map<String, Value>> {
    body.as_object()
        .ok_or_else(|| ApiError::new(400, "the request body must be a JSON object"))
}

/// A `/v1/chat/completions` request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub common: Common,
    /// Some(k): each token's log-probability and its k most likely alternatives.
    pub top_logprobs: Option<usize>,
}

/// Text of a message's `content`: a string or a list of `{type: "text", text}` parts.
fn content_text(content: Option<&Value>, at: &str) -> ApiResult<String> {
    let param = format!("{at}.content");
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match (p.get("type").and_then(Value::as_str), p.get("text")) {
                (Some("text"), Some(Value::String(t))) => Ok(t.clone()),
                _ => Err(ApiError::field(
                    &param,
                    format!("{param}: only {{\"type\": \"text\", \"text\": ...}} parts are supported"),
                )),
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(|v| v.join("")),
        Some(v) => Err(ApiError::field(
            &param,
            format!(
                "{param} must be a string or a list of text parts, got {}",
                kind_of(v)
            ),
        )),
    }
}

pub fn parse_chat(body: &Value, served_name: &str) -> ApiResult<ChatRequest> {
    let f = Fields(object(body)?);
    let messages = match f.get("messages") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) => return Err(ApiError::field("messages", "'messages' is empty")),
        _ => {
            return Err(ApiError::field(
                "messages",
                "the request needs a 'messages' array",
            ));
        }
    };
    let messages = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let at = format!("messages[{i}]");
            let role = m.get("role").and_then(Value::as_str).ok_or_else(|| {
                ApiError::field(&format!("{at}.role"), format!("{at} has no role string"))
            })?;
            let role = match role {
                "system" | "developer" => "system",
                "user" | "assistant" => role,
                other => {
                    return Err(ApiError::field(
                        &format!("{at}.role"),
                        format!(
                            "{at}.role {other:?} is not one of system, developer, user, assistant"
                        ),
                    ));
                }
            };
            Ok(Message::new(role, &content_text(m.get("content"), &at)?))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let common = parse_common(&f, served_name, &["max_tokens", "max_completion_tokens"], 1)?;
    let logprobs = f.bool("logprobs")?.unwrap_or(false);
    let top = f.uint("top_logprobs", 0, MAX_TOP_LOGPROBS)?;
    if top.is_some() && !logprobs {
        return Err(ApiError::field(
            "top_logprobs",
            "'top_logprobs' needs 'logprobs': true",
        ));
    }
    if logprobs && common.stream {
        return Err(ApiError::field(
            "logprobs",
            "'logprobs' with stream: true is not supported by seft serve; ask without streaming",
        ));
    }
    Ok(ChatRequest {
        messages,
        common,
        top_logprobs: logprobs.then_some(top.unwrap_or(0) as usize),
    })
}

/// One prompt of a `/v1/completions` request: text, or token ids as lm-eval sends them.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    Text(String),
    Tokens(Vec<u32>),
}

/// A `/v1/completions` request.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    pub prompts: Vec<PromptInput>,
    pub common: Common,
    pub echo: bool,
    /// Some(k): each token's log-probability and its k most likely alternatives.
    pub logprobs: Option<usize>,
}

/// max_tokens of a completions request that gives none (OpenAI's default).
pub const COMPLETION_MAX_TOKENS: u64 = 16;

/// The most prompts one completions request may carry.
pub const MAX_PROMPTS: usize = 64;

fn token_ids(items: &[Value], vocab: usize, at: &str) -> ApiResult<Vec<u32>> {
    items
        .iter()
        .map(|v| {
            v.as_u64()
                .filter(|&id| (id as usize) < vocab)
                .map(|id| id as u32)
                .ok_or_else(|| {
                    ApiError::field(
                        "prompt",
                        format!(
                            "{at} holds {}, not a token id below the vocabulary size {vocab}",
                            kind_of(v)
                        ),
                    )
                })
        })
        .collect()
}

pub fn parse_completion(
    body: &Value,
    served_name: &str,
    vocab: usize,
) -> ApiResult<CompletionRequest> {
    let f = Fields(object(body)?);
    let bad = |what: String| ApiError::field("prompt", what);
    let prompts = match f.get("prompt") {
        Some(Value::String(s)) => vec![PromptInput::Text(s.clone())],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(bad("'prompt' is empty".into()));
        }
        Some(Value::Array(items)) if items.len() > MAX_PROMPTS && !items[0].is_number() => {
            return Err(bad(format!(
                "'prompt' holds {} prompts; at most {MAX_PROMPTS} per request",
                items.len()
            )));
        }
        Some(Value::Array(items)) if items[0].is_number() => {
            vec![PromptInput::Tokens(token_ids(items, vocab, "prompt")?)]
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(PromptInput::Text(s.clone())),
                Value::Array(ids) => {
                    token_ids(ids, vocab, &format!("prompt[{i}]")).map(PromptInput::Tokens)
                }
                v => Err(bad(format!(
                    "prompt[{i}] must be a string or a list of token ids, got {}",
                    kind_of(v)
                ))),
            })
            .collect::<ApiResult<Vec<_>>>()?,
        None => return Err(bad("the request needs a 'prompt'".into())),
        Some(v) => {
            return Err(bad(format!(
                "'prompt' must be a string, a list of strings or token ids, got {}",
                kind_of(v)
            )));
        }
    };
    let echo = f.bool("echo")?.unwrap_or(false);
    let mut common = parse_common(&f, served_name, &["max_tokens"], 0)?;
    common.max_tokens.get_or_insert(COMPLETION_MAX_TOKENS);
    if common.max_tokens == Some(0) && !echo {
        return Err(ApiError::field(
            "max_tokens",
            "'max_tokens' 0 is only meaningful with echo: true",
        ));
    }
    let logprobs = f.uint("logprobs", 0, MAX_TOP_LOGPROBS)?.map(|k| k as usize);
    if logprobs.is_some() && common.stream {
        return Err(ApiError::field(
            "logprobs",
            "'logprobs' with stream: true is not supported by seft serve; ask without streaming",
        ));
    }
    if echo && common.stream {
        return Err(ApiError::field(
            "echo",
            "'echo' with stream: true is not supported by seft serve",
        ));
    }
    Ok(CompletionRequest {
        prompts,
        common,
        echo,
        logprobs,
    })
}

pub fn finish_reason(g: &Generation) -> &'static str {
    match g.finish_reason {
        FinishReason::Length => "length",
        FinishReason::Eos | FinishReason::Stop => "stop",
    }
}

fn token_text(model: &LanguageModel, id: u32) -> String {
    model.tokenizer.decode(&[id], false).unwrap_or_default()
}

/// Chat's `logprobs.content` entries.
pub fn chat_logprobs(model: &LanguageModel, tokens: &[TokenLogprobs]) -> Value {
    let entry = |id: u32, logprob: f32| {
        let token = token_text(model, id);
        json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()})
    };
    json!({"content": tokens.iter().map(|t| {
        let mut e = entry(t.token, t.logprob);
        e["top_logprobs"] = t.top.iter().map(|&(id, lp)| entry(id, lp)).collect();
        e
    }).collect::<Vec<_>>()})
}

/// The completions API's `logprobs` object over `tokens` (prompt entries, if echoed, have no
/// log-probability at the first position); `text_offset` counts characters from the first.
pub fn completion_logprobs(
    model: &LanguageModel,
    tokens: &[(u32, Option<&TokenLogprobs>)],
) -> Value {
    let mut offset = 0;
    let mut texts = Vec::with_capacity(tokens.len());
    let mut logprobs = Vec::with_capacity(tokens.len());
    let mut tops = Vec::with_capacity(tokens.len());
    let mut offsets = Vec::with_capacity(tokens.len());
    for &(id, lp) in tokens {
        let text = token_text(model, id);
        offsets.push(offset);
        offset += text.chars().count();
        texts.push(text);
        logprobs.push(lp.map(|t| t.logprob));
        tops.push(lp.map(|t| {
            t.top
                .iter()
                .map(|&(id, lp)| (token_text(model, id), json!(lp)))
                .collect::<Map<_, _>>()
        }));
    }
    json!({"tokens": texts, "token_logprobs": logprobs, "top_logprobs": tops, "text_offset": offsets})
}

pub fn usage(prompt_tokens: usize, completion_tokens: usize) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(extra: Value) -> ApiResult<ChatRequest> {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        parse_chat(&body, "m")
    }

    #[test]
    fn chat_requests_map_to_sampling_settings() {
        let body = json!({"messages": [{"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "h"}, {"type": "text", "text": "i"}]}],
            "max_tokens": 1, "temperature": 0, "logprobs": true, "top_logprobs": 5, "stop": "\n",
            "seed": 7, "n": 2, "top_k": 3, "frequency_penalty": 0});
        let r = parse_chat(&body, "m").unwrap();
        assert_eq!(
            r.messages,
            vec![
                Message::new("system", "be brief"),
                Message::new("user", "hi")
            ]
        );
        assert_eq!(
            (
                r.common.max_tokens,
                r.common.sampling.temperature,
                r.top_logprobs
            ),
            (Some(1), 0.0, Some(5))
        );
        assert_eq!(
            (r.common.seed, r.common.n, r.common.sampling.top_k),
            (Some(7), 2, 3)
        );
        assert_eq!(r.common.sampling.stop_strings, vec!["\n".to_string()]);
    }

    #[test]
    fn wrong_types_and_ranges_name_the_field() {
        let cases = [
            (json!({"max_tokens": "x"}), "max_tokens"),
            (json!({"max_tokens": -5}), "max_tokens"),
            (json!({"max_tokens": 1.5}), "max_tokens"),
            (json!({"max_tokens": 0}), "max_tokens"),
            (json!({"temperature": "hot"}), "temperature"),
            (json!({"temperature": 3}), "temperature"),
            (json!({"top_p": 0}), "top_p"),
            (json!({"n": 0}), "n"),
            (json!({"n": 1000}), "n"),
            (json!({"seed": -1}), "seed"),
            (json!({"stream": "yes"}), "stream"),
            (json!({"stop": [1]}), "stop"),
            (json!({"top_logprobs": 3}), "top_logprobs"),
            (
                json!({"logprobs": true, "top_logprobs": 50}),
                "top_logprobs",
            ),
            (json!({"presence_penalty": 0.5}), "presence_penalty"),
            (json!({"logit_bias": {"1": 5}}), "logit_bias"),
            (
                json!({"stream_options": {"include_usage": true}}),
                "stream_options",
            ),
            (
                json!({"messages": [{"role": "wizard", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"messages": [{"role": "user", "content": 5}]}),
                "messages[0].content",
            ),
            (json!({"messages": []}), "messages"),
        ];
        for (extra, field) in cases {
            let err = chat(extra.clone()).unwrap_err();
            assert_eq!(err.status, 400, "{extra}");
            assert_eq!(
                err.param.as_deref(),
                Some(field),
                "{extra}: {}",
                err.message
            );
        }
        let err = chat(json!({"model": "other"})).unwrap_err();
        assert_eq!(err.status, 404);
        assert!(err.message.contains("'m'"), "{}", err.message);
    }

    #[test]
    fn completion_prompts_take_text_or_token_ids() {
        let r = parse_completion(
            &json!({"prompt": [[1, 2], "ab"], "echo": true, "max_tokens": 0, "logprobs": 1}),
            "m",
            10,
        )
        .unwrap();
        assert_eq!(
            r.prompts,
            vec![
                PromptInput::Tokens(vec![1, 2]),
                PromptInput::Text("ab".into())
            ]
        );
        assert_eq!(
            (r.common.max_tokens, r.echo, r.logprobs),
            (Some(0), true, Some(1))
        );
        let r = parse_completion(&json!({"prompt": [3, 4]}), "m", 10).unwrap();
        assert_eq!(r.prompts, vec![PromptInput::Tokens(vec![3, 4])]);
        assert_eq!(r.common.max_tokens, Some(16));
        for bad in [
            json!({"prompt": [3, 40]}),
            json!({"prompt": []}),
            json!({"prompt": 5}),
            json!({"prompt": "x", "max_tokens": 0}),
            json!({}),
        ] {
            assert_eq!(
                parse_completion(&bad, "m", 10).unwrap_err().status,
                400,
                "{bad}"
            );
        }
    }
}
