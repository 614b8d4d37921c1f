//! A judge behind any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp's
//! server, `seft serve`): probabilities from `logprobs`/`top_logprobs`, text from the message.
//! Requests run on a bounded number of threads with a timeout each; 429, 5xx, timeouts,
//! connection errors and malformed JSON are retried with exponential backoff; successful
//! responses go to an on-disk cache first consulted on every request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::cache::ResponseCache;
use super::{Judge, Verdict};
use crate::error::{Result, SeftError};
use crate::model::Message;

pub struct HttpJudge {
    /// e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    pub max_retries: usize,
    /// First backoff; doubled after each failed attempt (capped at 60 s).
    pub backoff: Duration,
    pub concurrency: usize,
    /// How many alternatives to ask for (OpenAI allows up to 20).
    pub top_logprobs: usize,
    pub cache: Option<ResponseCache>,
    /// Requests actually sent (cache hits excluded), for reports and tests.
    pub requests_sent: AtomicUsize,
    agent: ureq::Agent,
}

impl HttpJudge {
    pub fn new(base_url: &str, model: &str, api_key: Option<String>, timeout: Duration) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        HttpJudge {
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key,
            timeout,
            max_retries: 5,
            backoff: Duration::from_millis(500),
            concurrency: 4,
            top_logprobs: 5,
            cache: None,
            requests_sent: AtomicUsize::new(0),
            agent,
        }
    }

    /// One attempt: Ok(response JSON) or Err((retryable, reason)).
    fn send_once(&self, body: &Value) -> std::result::Result<Value, (bool, String)> {
        let url = format!("{}/chat/completions", self.base_url);
        let mut request = self.agent.post(&url);
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", &format!("Bearer {key}"));
        }
        self.requests_sent.fetch_add(1, Ordering::Relaxed);
        let mut response = match request.send_json(body) {
            Ok(r) => r,
            Err(e) => return Err((true, format!("{url}: {e}"))),
        };
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| (true, format!("{url}: reading the response: {e}")))?;
        if status == 429 || status >= 500 {
            return Err((true, format!("{url}: HTTP {status}: {:.200}", text)));
        }
        if status != 200 {
            return Err((false, format!("{url}: HTTP {status}: {:.200}", text)));
        }
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            (
                true,
                format!("{url}: malformed JSON response ({e}): {:.100}", text),
            )
        })?;
        if value.pointer("/choices/0").is_none() {
            return Err((
                true,
                format!("{url}: a response without choices: {:.100}", text),
            ));
        }
        Ok(value)
    }

    /// Cached, retried request.
    fn request(&self, body: &Value) -> Verdict<Value> {
        let key = ResponseCache::key(&self.model, body);
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(&key)) {
            return Ok(hit);
        }
        let mut wait = self.backoff;
        let mut last = String::new();
        for attempt in 0..=self.max_retries {
            match self.send_once(body) {
                Ok(value) => {
                    if let Some(cache) = &self.cache {
                        cache.put(key, value.clone()).map_err(|e| e.to_string())?;
                    }
                    return Ok(value);
                }
                Err((retryable, reason)) => {
                    last = reason;
                    if !retryable {
                        break;
                    }
                    if attempt < self.max_retries {
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(60));
                    }
                }
            }
        }
        Err(format!(
            "{last} (after {} attempt(s))",
            self.max_retries + 1
        ))
    }

    /// Runs `f` over all bodies on `concurrency` threads, preserving order.
    fn run_all<T: Send>(
        &self,
        bodies: &[Value],
        on_done: &(dyn Fn(usize) + Sync),
        f: impl Fn(Value) -> Verdict<T> + Sync,
    ) -> Vec<Verdict<T>> {
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let results: Vec<std::sync::Mutex<Option<Verdict<T>>>> =
            bodies.iter().map(|_| std::sync::Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..self.concurrency.clamp(1, bodies.len().max(1)) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= bodies.len() {
                            break;
                        }
                        let verdict = self.request(&bodies[i]).and_then(&f);
                        *results[i].lock().expect("result slot") = Some(verdict);
                        on_done(done.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                });
            }
        });
        results
            .into_iter()
            .map(|m| {
                m.into_inner()
                    .expect("result slot")
                    .expect("every request ran")
            })
            .collect()
    }

    fn body(&self, messages: &[Message], max_tokens: usize, logprobs: bool) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0.0,
        });
        if logprobs {
            body["logprobs"] = json!(true);
            body["top_logprobs"] = json!(self.top_logprobs);
        }
        body
    }
}

/// The first generated token's top alternatives: token → logprob.
pub fn first_token_top_logprobs(response: &Value) -> Verdict<Vec<(String, f64)>> {
    let top = response
        .pointer("/choices/0/logprobs/content/0/top_logprobs")
        .and_then(Value::as_array)
        .ok_or("the response has no choices[0].logprobs.content[0].top_logprobs")?;
    top.iter()
        .map(|t| {
            let token = t.get("token").and_then(Value::as_str);
            let lp = t.get("logprob").and_then(Value::as_f64);
            match (token, lp) {
                (Some(token), Some(lp)) => Ok((token.to_string(), lp)),
                _ => Err(format!("a top_logprobs entry without token/logprob: {t}")),
            }
        })
        .collect()
}

impl Judge for HttpJudge {
    fn name(&self) -> String {
        format!("{} @ {}", self.model, self.base_url)
    }

    fn candidate_logprobs(
        &self,
        prompts: &[Vec<Message>],
        candidates: &[&str],
        on_done: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Verdict<Vec<Option<f64>>>>> {
        if candidates.is_empty() {
            return Err(SeftError::Invalid("no candidate tokens".into()));
        }
        let bodies: Vec<Value> = prompts.iter().map(|m| self.body(m, 1, true)).collect();
        Ok(self.run_all(&bodies, on_done, |response| {
            let top = first_token_top_logprobs(&response)?;
            Ok(candidates
                .iter()
                .map(|c| top.iter().find(|(t, _)| t == c).map(|(_, lp)| *lp))
                .collect())
        }))
    }

    fn complete(
        &self,
        prompts: &[Vec<Message>],
        max_tokens: usize,
        prefix: &str,
        on_done: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Verdict<String>>> {
        if !prefix.is_empty() {
            return Err(SeftError::Invalid(
                "an HTTP judge cannot be made to start its reply with a prefix; use the FastChat verdict mode".into(),
            ));
        }
        let bodies: Vec<Value> = prompts
            .iter()
            .map(|m| self.body(m, max_tokens, false))
            .collect();
        Ok(self.run_all(&bodies, on_done, |response| {
            response
                .pointer("/choices/0/message/content")
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| "the response has no choices[0].message.content".to_string())
        }))
    }
}
