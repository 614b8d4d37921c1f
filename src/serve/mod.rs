//! `seft serve`: any model seft loads behind OpenAI-compatible endpoints, on hyper/axum
//! (tokio), so other tools (the `openai` client, alpaca_eval, FastChat, lm-eval's
//! `local-completions` and chat backends) can use seft's checkpoints.
//!
//! - `POST /v1/chat/completions` and `POST /v1/completions` (`logprobs`, `echo` for prompt
//!   log-probabilities, `n`, `stop`, `seed`, `stream: true` as server-sent events ending in
//!   `data: [DONE]`, `stream_options.include_usage`, vLLM's `top_k`, `min_tokens` and
//!   `repetition_penalty`); `GET /v1/models`, `/health`, Prometheus `/metrics`; vLLM's
//!   `/tokenizer_info`, `/tokenize` and `/detokenize`, which lm-eval uses as its tokenizer.
//! - Generation runs in one engine thread with continuous batching ([`engine`]): requests join
//!   and leave the running batch at token boundaries, a disconnected client's sequence is
//!   dropped before the next step, and a request with a seed gets the tokens `seft generate`
//!   gives with that seed.
//! - Limits: an API key (`Authorization: Bearer`, required to bind a non-loopback address
//!   unless `--insecure`), JSON bodies only, a body size cap, header and body read timeouts, a
//!   bounded queue (429 with Retry-After), prompt + max_tokens within the KV-cache slot (400
//!   with the numbers), every field type- and range-checked ([`openai`]). SIGTERM or Ctrl-C
//!   stops accepting connections and finishes the running requests.
//!
//! For testing clients, `fault_plan` makes the first chat requests fail on purpose: `429`,
//! `500`, `malformed` (a 200 with a body that is not JSON) or `slow:MS` (answer after a delay).

pub mod engine;
pub mod metrics;
pub mod openai;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{Result, SeftError};
use crate::model::LanguageModel;
use crate::model::generate::{Generation, TokenLogprobs};
use engine::{Choice, Engine, Job, Output, SubmitError};
use metrics::Metrics;
use openai::{ApiError, ApiResult, Common, PromptInput};

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

#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The model's name in the API (`model` field, `/v1/models`).
    pub name: String,
    /// max_tokens of a chat request that gives none (bounded by the slot's room).
    pub default_max_tokens: usize,
    /// Sequences generated at once (KV-cache slots).
    pub slots: usize,
    /// Positions per slot: the longest prompt + answer.
    pub max_seq_len: usize,
    /// Requests waiting for a slot before new ones get 429.
    pub queue: usize,
    pub api_key: Option<String>,
    /// Allow a non-loopback address without an API key.
    pub insecure: bool,
    pub max_body_bytes: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// How long shutdown waits for running requests.
    pub drain_timeout: Duration,
    pub fault_plan: Vec<Fault>,
}

impl ServeOptions {
    pub fn new(name: &str) -> Self {
        ServeOptions {
            name: name.to_string(),
            default_max_tokens: 512,
            slots: 16,
            max_seq_len: 2048,
            queue: 64,
            api_key: None,
            insecure: false,
            max_body_bytes: 8 << 20,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(120),
            fault_plan: Vec::new(),
        }
    }
}

struct AppState {
    model: Arc<LanguageModel>,
    engine: Engine,
    metrics: Arc<Metrics>,
    opts: ServeOptions,
    /// Positions per slot, bounded by the model's context.
    max_seq_len: usize,
    chat_requests: AtomicU64,
    next_id: AtomicU64,
}

type Shared = Arc<AppState>;

fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = json_response(self.status, &self.body());
        if self.status == 429 {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == 401 {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Byte-wise comparison whose time does not depend on where the strings differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Authentication (every route but `/health` and `/metrics`), request counts by status, and latency of non-streamed answers
/// (a stream records its own latency when it ends).
async fn guard(State(st): State<Shared>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = request.uri().path().to_string();
    let endpoint = match path.as_str() {
        "/v1/chat/completions"
        | "/v1/completions"
        | "/v1/models"
        | "/health"
        | "/metrics"
        | "/stats" => path.clone(),
        _ => "other".to_string(),
    };
    let open = matches!(path.as_str(), "/health" | "/metrics");
    if let (Some(key), false) = (&st.opts.api_key, open) {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same_secret(g.as_bytes(), key.as_bytes())) {
            st.metrics.count_request(&endpoint, 401);
            return ApiError::new(
                401,
                "a valid API key is required: send 'Authorization: Bearer <key>'",
            )
            .into_response();
        }
    }
    let response = next.run(request).await;
    st.metrics
        .count_request(&endpoint, response.status().as_u16());
    let streamed = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streamed {
        st.metrics
            .request_latency
            .observe(started.elapsed().as_secs_f64());
    }
    response
}

/// The request's JSON body: `application/json` only, at most `max_body_bytes`, read within
/// `body_timeout`.
async fn read_json(st: &AppState, headers: &HeaderMap, body: Body) -> ApiResult<Value> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            415,
            format!("the request body must be application/json, not {content_type:?}"),
        ));
    }
    let limit = st.opts.max_body_bytes;
    let too_large = || {
        ApiError::new(
            413,
            format!("the request body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes =
        match tokio::time::timeout(st.opts.body_timeout, axum::body::to_bytes(body, limit)).await {
            Err(_) => {
                return Err(ApiError::new(
                    408,
                    format!(
                        "the request body did not arrive within {} s",
                        st.opts.body_timeout.as_secs_f64()
                    ),
                ));
            }
            Ok(Err(_)) => return Err(too_large()),
            Ok(Ok(b)) => b,
        };
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(400, format!("the request body is not JSON: {e}")))
}

/// Tokenizing and chat templating run off the async workers: a large prompt takes a while.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(500, format!("a worker failed: {e}")))?
}

/// max_new_tokens for a prompt of `prompt_len` tokens: the request's `max_tokens` if it fits
/// the slot (else a 400 with the numbers), or the default bounded by the room left.
fn resolve_max_tokens(
    st: &AppState,
    prompt_len: usize,
    asked: Option<u64>,
    default: usize,
) -> ApiResult<usize> {
    let limit = st.max_seq_len;
    if prompt_len >= limit || prompt_len == 0 {
        return Err(ApiError::field(
            "messages",
            format!(
                "the prompt has {prompt_len} tokens; this server takes prompts of 1 to {} tokens (max_seq_len {limit})",
                limit - 1
            ),
        ));
    }
    match asked {
        Some(n) if n > (limit - prompt_len) as u64 => Err(ApiError::field(
            "max_tokens",
            format!(
                "the prompt has {prompt_len} tokens and max_tokens asks for {n}, more than the {limit} tokens a sequence may have here ({} left for the answer)",
                limit - prompt_len
            ),
        )),
        Some(n) => Ok(n as usize),
        None => Ok(default.clamp(1, limit - prompt_len)),
    }
}

fn submit(st: &AppState, job: Job) -> ApiResult<()> {
    st.engine.submit(job).map_err(|e| match e {
        SubmitError::Busy => ApiError::new(
            429,
            format!(
                "the server's queue is full ({} requests waiting); retry later",
                st.opts.queue
            ),
        ),
        SubmitError::Stopped => ApiError::new(503, "the server is shutting down"),
    })
}

/// Every choice's generation, in choice order.
async fn collect(mut rx: mpsc::UnboundedReceiver<Output>, n: usize) -> ApiResult<Vec<Generation>> {
    let mut done: Vec<Option<Generation>> = vec![None; n];
    let mut left = n;
    while left > 0 {
        match rx.recv().await {
            None => return Err(ApiError::new(503, "the server stopped before answering")),
            Some(Output::Text { .. }) => {}
            Some(Output::Done { choice, generation }) => {
                if done[choice].replace(generation).is_none() {
                    left -= 1;
                }
            }
            Some(Output::Failed { message, .. }) => {
                return Err(ApiError::new(500, format!("generation failed: {message}")));
            }
        }
    }
    Ok(done
        .into_iter()
        .map(|g| g.expect("every choice done"))
        .collect())
}

/// What a streamed chunk looks like for one endpoint.
struct ChunkShape {
    id: String,
    object: &'static str,
    created: u64,
    model: String,
    chat: bool,
}

impl ChunkShape {
    fn chunk(&self, choices: Value, include_usage: bool) -> Value {
        let mut c = json!({"id": self.id, "object": self.object, "created": self.created,
            "model": self.model, "choices": choices});
        if include_usage {
            c["usage"] = Value::Null;
        }
        c
    }

    fn choice(&self, index: usize, delta: Option<&str>, finish: Option<&str>) -> Value {
        if self.chat {
            let delta = delta.map_or(json!({}), |d| json!({"content": d}));
            json!({"index": index, "delta": delta, "logprobs": null, "finish_reason": finish})
        } else {
            json!({"index": index, "text": delta.unwrap_or(""), "logprobs": null, "finish_reason": finish})
        }
    }
}

/// A server-sent-events answer fed by the engine: one chunk per text delta, a final chunk per
/// choice with its finish reason, the usage chunk if asked, then `[DONE]`. When the client
/// goes away the stream is dropped, which closes the engine's channel and cancels the sequences.
fn stream_response(
    st: Shared,
    shape: ChunkShape,
    mut rx: mpsc::UnboundedReceiver<Output>,
    n: usize,
    prompt_tokens: usize,
    include_usage: bool,
) -> Response {
    let (tx, events) = mpsc::channel::<std::result::Result<SseEvent, Infallible>>(64);
    let started = Instant::now();
    tokio::spawn(async move {
        let send = |v: Value| SseEvent::default().data(v.to_string());
        if shape.chat {
            for i in 0..n {
                let first = json!({"index": i, "delta": {"role": "assistant", "content": ""},
                    "logprobs": null, "finish_reason": null});
                if tx
                    .send(Ok(send(shape.chunk(json!([first]), include_usage))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        let mut left = n;
        let mut completion_tokens = 0;
        while left > 0 {
            let chunk = match rx.recv().await {
                None => ApiError::new(503, "the server stopped before answering").body(),
                Some(Output::Text { choice, delta }) => shape.chunk(
                    json!([shape.choice(choice, Some(&delta), None)]),
                    include_usage,
                ),
                Some(Output::Done { choice, generation }) => {
                    left -= 1;
                    completion_tokens += generation.token_ids.len();
                    let finish = openai::finish_reason(&generation);
                    shape.chunk(
                        json!([shape.choice(choice, None, Some(finish))]),
                        include_usage,
                    )
                }
                Some(Output::Failed { message, .. }) => {
                    ApiError::new(500, format!("generation failed: {message}")).body()
                }
            };
            let is_error = chunk.get("error").is_some();
            if tx.send(Ok(send(chunk))).await.is_err() {
                return;
            }
            if is_error {
                break;
            }
        }
        if left == 0 && include_usage {
            let mut last = shape.chunk(json!([]), false);
            last["usage"] = openai::usage(prompt_tokens, completion_tokens);
            let _ = tx.send(Ok(send(last))).await;
        }
        let _ = tx.send(Ok(SseEvent::default().data("[DONE]"))).await;
        st.metrics
            .request_latency
            .observe(started.elapsed().as_secs_f64());
    });
    Sse::new(ReceiverStream::new(events)).into_response()
}

fn seed_of(common: &Common) -> u64 {
    common.seed.unwrap_or_else(rand::random)
}

async fn chat(State(st): State<Shared>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let n = st.chat_requests.fetch_add(1, Ordering::Relaxed) as usize;
    match st.opts.fault_plan.get(n).cloned().unwrap_or(Fault::Ok) {
        Fault::Status(code) => {
            return Err(ApiError::new(code, format!("injected fault: HTTP {code}")));
        }
        Fault::Malformed => {
            return Ok((StatusCode::OK, "{\"choices\": [ this is not JSON").into_response());
        }
        Fault::Slow(d) => tokio::time::sleep(d).await,
        Fault::Ok => {}
    }
    chat_inner(st, headers, body).await
}

async fn chat_inner(st: Shared, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let received = Instant::now();
    let body = read_json(&st, &headers, body).await?;
    let request = openai::parse_chat(&body, &st.opts.name)?;
    let model = st.model.clone();
    let messages = request.messages.clone();
    let prompt = blocking(move || {
        model
            .tokenizer
            .apply_chat_template(&messages, true)
            .and_then(|t| model.tokenizer.encode(&t, false))
            .map_err(|e| ApiError::field("messages", e.to_string()))
    })
    .await?;
    let common = &request.common;
    let max_tokens = resolve_max_tokens(
        &st,
        prompt.len(),
        common.max_tokens,
        st.opts.default_max_tokens,
    )?;
    let mut cfg = common.sampling.clone();
    cfg.max_new_tokens = max_tokens;
    cfg.min_new_tokens = (common.min_tokens as usize).min(max_tokens);
    cfg.top_logprobs = request.top_logprobs;
    let seed = seed_of(common);
    let choices = (0..common.n)
        .map(|i| Choice {
            index: i,
            prompt: prompt.clone(),
            cfg: cfg.clone(),
            seed: seed.wrapping_add(i as u64),
        })
        .collect();
    let (tx, rx) = mpsc::unbounded_channel();
    submit(
        &st,
        Job::Generate {
            choices,
            outputs: tx,
            received,
        },
    )?;
    let id = format!(
        "chatcmpl-seft-{}",
        st.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let created = now_secs();
    if common.stream {
        let shape = ChunkShape {
            id,
            object: "chat.completion.chunk",
            created,
            model: st.opts.name.clone(),
            chat: true,
        };
        let (n, usage) = (common.n, common.include_usage);
        return Ok(stream_response(st, shape, rx, n, prompt.len(), usage));
    }
    let generations = collect(rx, common.n).await?;
    let completion_tokens: usize = generations.iter().map(|g| g.token_ids.len()).sum();
    let choices: Vec<Value> = generations
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let logprobs = request
                .top_logprobs
                .map(|_| openai::chat_logprobs(&st.model, &g.logprobs));
            json!({
                "index": i,
                "message": {"role": "assistant", "content": g.text},
                "logprobs": logprobs,
                "finish_reason": openai::finish_reason(g),
            })
        })
        .collect();
    Ok(json_response(
        200,
        &json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": st.opts.name,
            "choices": choices,
            "usage": openai::usage(prompt.len(), completion_tokens),
        }),
    ))
}

async fn completions(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let received = Instant::now();
    let body = read_json(&st, &headers, body).await?;
    let vocab = st.model.config.vocab_size;
    let request = openai::parse_completion(&body, &st.opts.name, vocab)?;
    let model = st.model.clone();
    let inputs = request.prompts.clone();
    // Each prompt's token ids and its text (what `echo` repeats).
    let prompts: Vec<(Vec<u32>, String)> = blocking(move || {
        inputs
            .into_iter()
            .map(|p| match p {
                PromptInput::Text(t) => model
                    .tokenizer
                    .encode(&t, true)
                    .map(|ids| (ids, t))
                    .map_err(|e| ApiError::field("prompt", e.to_string())),
                PromptInput::Tokens(ids) => model
                    .tokenizer
                    .decode(&ids, false)
                    .map(|t| (ids, t))
                    .map_err(|e| ApiError::field("prompt", e.to_string())),
            })
            .collect()
    })
    .await?;
    let common = &request.common;
    let asked = common.max_tokens.unwrap_or(openai::COMPLETION_MAX_TOKENS);
    let mut max_tokens = Vec::with_capacity(prompts.len());
    for (ids, _) in &prompts {
        if asked == 0 && !ids.is_empty() && ids.len() <= st.max_seq_len {
            max_tokens.push(0);
        } else {
            max_tokens.push(resolve_max_tokens(&st, ids.len(), Some(asked), 0)?);
        }
    }
    // Prompt log-probabilities first (echo with logprobs), then the answers.
    let mut scored: Vec<Vec<Option<TokenLogprobs>>> = Vec::new();
    if let (true, Some(k)) = (request.echo, request.logprobs) {
        for (ids, _) in &prompts {
            let (reply, answer) = oneshot::channel();
            submit(
                &st,
                Job::Score {
                    prompt: ids.clone(),
                    top: k,
                    reply,
                },
            )?;
            let lp = answer
                .await
                .map_err(|_| ApiError::new(503, "the server stopped before answering"))?
                .map_err(|e| ApiError::new(500, format!("scoring the prompt failed: {e}")))?;
            scored.push(lp);
        }
    }
    let seed = seed_of(common);
    let n = common.n;
    let mut choices = Vec::new();
    for (p, (ids, _)) in prompts.iter().enumerate() {
        if max_tokens[p] == 0 {
            continue;
        }
        let mut cfg = common.sampling.clone();
        cfg.max_new_tokens = max_tokens[p];
        cfg.min_new_tokens = (common.min_tokens as usize).min(max_tokens[p]);
        cfg.top_logprobs = request.logprobs;
        for j in 0..n {
            choices.push(Choice {
                index: p * n + j,
                prompt: ids.clone(),
                cfg: cfg.clone(),
                seed: seed.wrapping_add(j as u64),
            });
        }
    }
    let generating = choices.len();
    let (tx, rx) = mpsc::unbounded_channel();
    if generating > 0 {
        submit(
            &st,
            Job::Generate {
                choices,
                outputs: tx,
                received,
            },
        )?;
    } else {
        drop(tx);
    }
    let id = format!("cmpl-seft-{}", st.next_id.fetch_add(1, Ordering::Relaxed));
    let created = now_secs();
    let prompt_tokens: usize = prompts.iter().map(|(ids, _)| ids.len()).sum();
    if common.stream {
        let shape = ChunkShape {
            id,
            object: "text_completion",
            created,
            model: st.opts.name.clone(),
            chat: false,
        };
        let usage = common.include_usage;
        return Ok(stream_response(
            st,
            shape,
            rx,
            prompts.len() * n,
            prompt_tokens,
            usage,
        ));
    }
    let mut generations = if generating > 0 {
        collect(rx, prompts.len() * n)
            .await?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None; prompts.len() * n]
    };
    let mut completion_tokens = 0;
    let mut out = Vec::with_capacity(prompts.len() * n);
    for (p, (ids, prompt_text)) in prompts.iter().enumerate() {
        for j in 0..n {
            let index = p * n + j;
            let g = generations[index].take();
            let answer = g.as_ref().map_or("", |g| g.text.as_str());
            let text = if request.echo {
                format!("{prompt_text}{answer}")
            } else {
                answer.to_string()
            };
            let logprobs = request.logprobs.map(|_| {
                let mut tokens: Vec<(u32, Option<&TokenLogprobs>)> = Vec::new();
                if request.echo {
                    tokens.extend(
                        ids.iter()
                            .zip(&scored[p])
                            .map(|(&id, lp)| (id, lp.as_ref())),
                    );
                }
                if let Some(g) = &g {
                    tokens.extend(
                        g.logprobs
                            .iter()
                            .take(g.token_ids.len())
                            .map(|t| (t.token, Some(t))),
                    );
                }
                openai::completion_logprobs(&st.model, &tokens)
            });
            completion_tokens += g.as_ref().map_or(0, |g| g.token_ids.len());
            let finish = g.as_ref().map_or("length", openai::finish_reason);
            out.push(json!({"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}));
        }
    }
    Ok(json_response(
        200,
        &json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": st.opts.name,
            "choices": out,
            "usage": openai::usage(prompt_tokens, completion_tokens),
        }),
    ))
}

async fn models(State(st): State<Shared>) -> Response {
    json_response(
        200,
        &json!({"object": "list", "data": [{"id": st.opts.name, "object": "model",
            "created": now_secs(), "owned_by": "seft", "max_model_len": st.max_seq_len}]}),
    )
}

async fn metrics_text(State(st): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}

async fn stats(State(st): State<Shared>) -> Response {
    json_response(
        200,
        &json!({"chat_requests": st.chat_requests.load(Ordering::Relaxed)}),
    )
}

/// vLLM's tokenizer endpoints, which lm-eval's `local-completions` uses instead of
/// downloading the model's tokenizer from the hub (`tokenizer_backend=remote`).
async fn tokenizer_info(State(st): State<Shared>) -> Response {
    let t = &st.model.tokenizer;
    json_response(
        200,
        &json!({
            "eos_token": t.eos_token,
            "bos_token": t.bos_token,
            "pad_token": t.pad_token,
            "chat_template": t.chat_template.as_ref().map(|c| c.source.clone()),
            "model_max_length": st.max_seq_len,
        }),
    )
}

async fn tokenize(State(st): State<Shared>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let body = read_json(&st, &headers, body).await?;
    let text = body
        .get("prompt")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::field("prompt", "'prompt' must be a string"))?
        .to_string();
    let special = match body.get("add_special_tokens") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::field(
                "add_special_tokens",
                "'add_special_tokens' must be a boolean",
            ));
        }
    };
    let model = st.model.clone();
    let tokens = blocking(move || {
        model
            .tokenizer
            .encode(&text, special)
            .map_err(|e| ApiError::field("prompt", e.to_string()))
    })
    .await?;
    Ok(json_response(
        200,
        &json!({"tokens": tokens, "count": tokens.len(), "max_model_len": st.max_seq_len}),
    ))
}

async fn detokenize(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let body = read_json(&st, &headers, body).await?;
    let vocab = st.model.config.vocab_size;
    let ids = body
        .get("tokens")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::field("tokens", "'tokens' must be a list of token ids"))?;
    let ids: Vec<u32> = ids
        .iter()
        .map(|v| {
            v.as_u64()
                .filter(|&i| (i as usize) < vocab)
                .map(|i| i as u32)
        })
        .collect::<Option<_>>()
        .ok_or_else(|| {
            ApiError::field(
                "tokens",
                format!("'tokens' must hold token ids below the vocabulary size {vocab}"),
            )
        })?;
    let text = st
        .model
        .tokenizer
        .decode(&ids, false)
        .map_err(|e| ApiError::field("tokens", e.to_string()))?;
    Ok(json_response(200, &json!({"prompt": text})))
}

async fn not_found(request: Request) -> Response {
    ApiError::new(
        404,
        format!("no route {} {}", request.method(), request.uri().path()),
    )
    .into_response()
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route(
            "/health",
            get(|| async { json_response(200, &json!({"status": "ok"})) }),
        )
        .route("/metrics", get(metrics_text))
        .route("/stats", get(stats))
        .route("/tokenizer_info", get(tokenizer_info))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Serves until SIGTERM or Ctrl-C, then finishes the running requests (at most
/// `drain_timeout`). `on_ready` receives the bound address (port 0 picks a free one).
pub fn serve(
    model: LanguageModel,
    addr: &str,
    opts: ServeOptions,
    on_ready: impl FnOnce(&str),
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| SeftError::Invalid(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve_async(model, addr, opts, on_ready, shutdown_signal()))
}

/// A server running on its own thread (tests, or a program embedding seft); dropping it shuts
/// the server down as SIGTERM would.
pub struct BackgroundServer {
    /// The bound address, e.g. `127.0.0.1:41234`.
    pub addr: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl BackgroundServer {
    /// The OpenAI base URL, `http://ADDR/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts serving on a background thread and returns once the address is bound.
pub fn spawn(model: LanguageModel, addr: &str, opts: ServeOptions) -> Result<BackgroundServer> {
    let (stop, stopped) = oneshot::channel::<()>();
    let (ready, bound) = std::sync::mpsc::channel::<String>();
    let addr = addr.to_string();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| SeftError::Invalid(format!("cannot start the async runtime: {e}")))?;
        let on_ready = move |a: &str| {
            let _ = ready.send(a.to_string());
        };
        runtime.block_on(serve_async(model, &addr, opts, on_ready, async {
            let _ = stopped.await;
        }))
    });
    match bound.recv() {
        Ok(addr) => Ok(BackgroundServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }),
        Err(_) => Err(thread
            .join()
            .unwrap_or_else(|_| Err(SeftError::Invalid("the server thread panicked".into())))
            .err()
            .unwrap_or_else(|| SeftError::Invalid("the server stopped before binding".into()))),
    }
}

async fn serve_async(
    model: LanguageModel,
    addr: &str,
    opts: ServeOptions,
    on_ready: impl FnOnce(&str),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| SeftError::Invalid(format!("cannot listen on {addr}: {e}")))?;
    let bound: SocketAddr = listener
        .local_addr()
        .map_err(|e| SeftError::Invalid(format!("cannot listen on {addr}: {e}")))?;
    if !bound.ip().is_loopback() && opts.api_key.is_none() && !opts.insecure {
        return Err(SeftError::Invalid(format!(
            "refusing to serve on {bound} (reachable from other machines) without an API key: \
             set one with --api-key-env VAR, or pass --insecure"
        )));
    }
    let max_seq_len = opts
        .max_seq_len
        .clamp(2, model.config.max_position_embeddings.max(2));
    let metrics = Arc::new(Metrics::new());
    let model = Arc::new(model);
    let (engine, engine_thread) = Engine::start(
        model.clone(),
        opts.slots,
        max_seq_len,
        opts.queue,
        metrics.clone(),
    );
    let header_timeout = opts.header_timeout;
    let drain_timeout = opts.drain_timeout;
    let state = Arc::new(AppState {
        model,
        engine,
        metrics,
        opts,
        max_seq_len,
        chat_requests: AtomicU64::new(0),
        next_id: AtomicU64::new(0),
    });
    let app = router(state.clone());
    drop(state);
    on_ready(&bound.to_string());
    let graceful = GracefulShutdown::new();
    let mut signal = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let service = TowerToHyperService::new(app.clone());
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = &mut signal => break,
        }
    }
    drop(listener);
    eprintln!("serve: shutting down, finishing running requests");
    drop(app);
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "serve: requests still running after {} s; stopping",
            drain_timeout.as_secs()
        );
        return Ok(());
    }
    // Every connection closed, so the router's engine handles are gone: the engine thread
    // ends once its queue is empty.
    let _ = tokio::task::spawn_blocking(move || engine_thread.join()).await;
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
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
    }
}
