//! `seft serve`: any model seft loads behind an OpenAI-compatible chat-completions endpoint
//! (`POST /v1/chat/completions`, `GET /v1/models`), with `logprobs`/`top_logprobs`, so other
//! tools (alpaca_eval, FastChat, lm-eval's chat backends) can evaluate seft's checkpoints and
//! seft's own HTTP judge can be tested against a real server. Requests are answered one at a
//! time (one model, one CPU/GPU); streaming is not implemented and is refused with a 400.
//!
//! For testing clients, `fault_plan` makes the first requests fail on purpose: `429`, `500`,
//! `malformed` (a 200 with a body that is not JSON) or `slow:MS` (answer after a delay).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tiny_http::{Header, Method, Response, Server};

use crate::error::{Result, SeftError};
use crate::model::generate::{FinishReason, SamplingConfig, generate};
use crate::model::{LanguageModel, Message};

/// A planned failure for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    Ok,
    Status(u16),
    Malformed,
    Slow(Duration),
}

pub fn parse_fault_plan(spec: &str) -> Result<Vec<Fault>> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| match s.trim() {
            "ok" => Ok(Fault::Ok),
            "malformed" => Ok(Fault::Malformed),
            s if s.starts_with("slow:") => s[5..]
                .parse::<u64>()
                .map(|ms| Fault::Slow(Duration::from_millis(ms)))
                .map_err(|_| {
                    SeftError::Invalid(format!("bad fault {s:?}: expected slow:MILLISECONDS"))
                }),
            s => s
                .parse::<u16>()
                .ok()
                .filter(|c| (400..600).contains(c))
                .map(Fault::Status)
                .ok_or_else(|| {
                    SeftError::Invalid(format!(
                        "bad fault {s:?}: expected ok, malformed, slow:MS or an HTTP status 400-599"
                    ))
                }),
        })
        .collect()
}

pub struct ServeOptions {
    pub name: String,
    pub default_max_tokens: usize,
    pub fault_plan: Vec<Fault>,
}

/// The largest request body read; prompts are bounded by the model's context anyway.
const MAX_BODY_BYTES: u64 = 16 << 20;

fn json_response(status: u16, body: &Value) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(Header::from_bytes("Content-Type", "application/json").expect("header"))
}

fn error_response(status: u16, message: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    json_response(
        status,
        &json!({"error": {"message": message, "type": "invalid_request_error"}}),
    )
}

/// Text of a message's `content`: a string or a list of `{type: "text", text}` parts.
fn content_text(content: &Value) -> std::result::Result<String, String> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| {
                p.get("text")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .ok_or_else(|| "only text content parts are supported".to_string())
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(|v| v.join("")),
        Value::Null => Ok(String::new()),
        _ => Err("message content must be a string or a list of text parts".into()),
    }
}

/// The sampling settings and messages of a chat-completions request.
pub fn parse_request(
    body: &Value,
    default_max_tokens: usize,
) -> std::result::Result<(Vec<Message>, SamplingConfig, bool), String> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("the request needs a 'messages' array")?
        .iter()
        .map(|m| {
            let role = m
                .get("role")
                .and_then(Value::as_str)
                .ok_or("a message without a role")?;
            Ok(Message::new(
                role,
                &content_text(m.get("content").unwrap_or(&Value::Null))?,
            ))
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    if messages.is_empty() {
        return Err("'messages' is empty".into());
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err("stream: true is not supported by seft serve".into());
    }
    if body
        .get("n")
        .and_then(Value::as_u64)
        .is_some_and(|n| n != 1)
    {
        return Err("only n = 1 is supported".into());
    }
    let number = |k: &str| body.get(k).and_then(Value::as_f64);
    let max_tokens = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .map_or(default_max_tokens, |n| n as usize);
    let stop_strings = match body.get("stop") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    };
    let logprobs = body.get("logprobs").and_then(Value::as_bool) == Some(true);
    let top = body
        .get("top_logprobs")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    if top > 20 {
        return Err("top_logprobs must be at most 20".into());
    }
    let cfg = SamplingConfig {
        max_new_tokens: max_tokens.max(1),
        temperature: number("temperature").unwrap_or(1.0) as f32,
        top_p: number("top_p").unwrap_or(1.0) as f32,
        seed: body.get("seed").and_then(Value::as_u64).unwrap_or(0),
        stop_strings,
        top_logprobs: logprobs.then_some(top),
        ..Default::default()
    };
    cfg.validate().map_err(|e| e.to_string())?;
    Ok((messages, cfg, logprobs))
}

fn token_entry(model: &LanguageModel, id: u32, logprob: f32) -> Value {
    let token = model.tokenizer.decode(&[id], false).unwrap_or_default();
    json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()})
}

/// Answers one chat-completions request.
pub fn complete(
    model: &LanguageModel,
    name: &str,
    body: &Value,
    default_max_tokens: usize,
    id: usize,
) -> std::result::Result<Value, (u16, String)> {
    let (messages, cfg, logprobs) =
        parse_request(body, default_max_tokens).map_err(|e| (400, e))?;
    let prompt = model
        .tokenizer
        .apply_chat_template(&messages, true)
        .and_then(|t| model.tokenizer.encode(&t, false))
        .map_err(|e| (400, e.to_string()))?;
    let g = generate(model, std::slice::from_ref(&prompt), &cfg, |_, _| {})
        .map_err(|e| (500, e.to_string()))?
        .remove(0);
    let logprobs = logprobs.then(|| {
        json!({"content": g.logprobs.iter().map(|t| {
            let mut entry = token_entry(model, t.token, t.logprob);
            entry["top_logprobs"] = t.top.iter().map(|&(id, lp)| token_entry(model, id, lp)).collect();
            entry
        }).collect::<Vec<_>>()})
    });
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(json!({
        "id": format!("chatcmpl-seft-{id}"),
        "object": "chat.completion",
        "created": created,
        "model": name,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": g.text},
            "logprobs": logprobs,
            "finish_reason": if g.finish_reason == FinishReason::Length { "length" } else { "stop" },
        }],
        "usage": {
            "prompt_tokens": prompt.len(),
            "completion_tokens": g.token_ids.len(),
            "total_tokens": prompt.len() + g.token_ids.len(),
        },
    }))
}

/// Serves until the process is stopped. `on_ready` receives the bound address (port 0 picks
/// a free one).
pub fn serve(
    model: &LanguageModel,
    addr: &str,
    opts: &ServeOptions,
    on_ready: impl FnOnce(&str),
) -> Result<()> {
    let server = Server::http(addr)
        .map_err(|e| SeftError::Invalid(format!("cannot listen on {addr}: {e}")))?;
    let bound = server.server_addr().to_string();
    on_ready(&bound);
    let chat_requests = AtomicUsize::new(0);
    for mut request in server.incoming_requests() {
        let url = request.url().split('?').next().unwrap_or("").to_string();
        let response = match (request.method(), url.as_str()) {
            (Method::Get, "/v1/models") => json_response(
                200,
                &json!({"object": "list", "data": [{"id": opts.name, "object": "model", "owned_by": "seft"}]}),
            ),
            (Method::Get, "/health") => json_response(200, &json!({"status": "ok"})),
            (Method::Get, "/stats") => json_response(
                200,
                &json!({"chat_requests": chat_requests.load(Ordering::Relaxed)}),
            ),
            (Method::Post, "/v1/chat/completions") => {
                let n = chat_requests.fetch_add(1, Ordering::Relaxed);
                let mut text = String::new();
                let fault = opts.fault_plan.get(n).cloned().unwrap_or(Fault::Ok);
                let mut body = std::io::Read::take(request.as_reader(), MAX_BODY_BYTES + 1);
                if let Err(e) = std::io::Read::read_to_string(&mut body, &mut text) {
                    error_response(400, &format!("cannot read the request body: {e}"))
                } else if text.len() as u64 > MAX_BODY_BYTES {
                    error_response(
                        413,
                        &format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
                    )
                } else {
                    match fault {
                        Fault::Status(code) => {
                            error_response(code, &format!("injected fault: HTTP {code}"))
                        }
                        Fault::Malformed => {
                            Response::from_string("{\"choices\": [ this is not JSON")
                                .with_status_code(200)
                        }
                        Fault::Ok | Fault::Slow(_) => {
                            if let Fault::Slow(d) = fault {
                                std::thread::sleep(d);
                            }
                            match serde_json::from_str::<Value>(&text) {
                                Err(e) => error_response(
                                    400,
                                    &format!("the request body is not JSON: {e}"),
                                ),
                                Ok(body) => match complete(
                                    model,
                                    &opts.name,
                                    &body,
                                    opts.default_max_tokens,
                                    n,
                                ) {
                                    Ok(v) => json_response(200, &v),
                                    Err((code, msg)) => error_response(code, &msg),
                                },
                            }
                        }
                    }
                }
            }
            _ => error_response(404, &format!("no route {} {url}", request.method())),
        };
        if let Err(e) = request.respond(response) {
            eprintln!("serve: could not send a response: {e}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_plans_parse_and_reject_nonsense() {
        assert_eq!(
            parse_fault_plan("429, ok,500,malformed,slow:250").unwrap(),
            vec![
                Fault::Status(429),
                Fault::Ok,
                Fault::Status(500),
                Fault::Malformed,
                Fault::Slow(Duration::from_millis(250))
            ]
        );
        assert!(parse_fault_plan("200").is_err());
        assert!(parse_fault_plan("slow:x").is_err());
    }

    #[test]
    fn requests_map_to_sampling_settings() {
        let body = json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "max_tokens": 1, "temperature": 0, "logprobs": true, "top_logprobs": 5, "stop": "\n"});
        let (m, cfg, lp) = parse_request(&body, 64).unwrap();
        assert_eq!(m, vec![Message::new("user", "hi")]);
        assert_eq!(
            (cfg.max_new_tokens, cfg.temperature, cfg.top_logprobs, lp),
            (1, 0.0, Some(5), true)
        );
        assert_eq!(cfg.stop_strings, vec!["\n".to_string()]);
        assert!(parse_request(&json!({"messages": []}), 8).is_err());
        assert!(
            parse_request(
                &json!({"messages": [{"role": "user", "content": "x"}], "stream": true}),
                8
            )
            .is_err()
        );
        assert!(
            parse_request(
                &json!({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 50}),
                8
            )
            .is_err()
        );
    }
}
