//! `seft serve` as its users meet it: the official `openai` Python client, concurrent clients
//! sharing the running batch, and every abuse the server must survive (stalled bodies,
//! disconnects, huge numbers, wrong types, missing keys, non-JSON bodies, a full queue,
//! SIGTERM). Most tests serve the tiny random Llama in-process; those that need real timing
//! (one token step ≈ tens of milliseconds) serve SmolLM2-135M.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use seft::serve::{BackgroundServer, ServeOptions, spawn};

fn smollm2() -> seft::LanguageModel {
    common::load_model(&common::smollm2_gguf())
}

/// What `generate` gives for one user message with this seed, alone.
fn alone(model: &seft::LanguageModel, message: &str, max: usize, seed: u64) -> (String, usize) {
    let prompt = model
        .tokenizer
        .apply_chat_template(&[seft::model::Message::new("user", message)], true)
        .unwrap();
    let ids = model.tokenizer.encode(&prompt, false).unwrap();
    let cfg = seft::model::generate::SamplingConfig {
        max_new_tokens: max,
        temperature: 0.9,
        seed,
        ..Default::default()
    };
    let g = seft::model::generate::generate(model, std::slice::from_ref(&ids), &cfg, |_, _| {})
        .unwrap()
        .remove(0);
    (g.text, ids.len())
}

fn serve_with(
    model: seft::LanguageModel,
    edit: impl FnOnce(&mut ServeOptions),
) -> BackgroundServer {
    let mut opts = ServeOptions::new("m");
    opts.max_seq_len = 128;
    edit(&mut opts);
    spawn(model, "127.0.0.1:0", opts).unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// POSTs `body` as JSON (with `key` as Bearer token if given); the status and the JSON answer.
fn post(url: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
    let mut request = agent().post(url).header("Content-Type", "application/json");
    if let Some(k) = key {
        request = request.header("Authorization", &format!("Bearer {k}"));
    }
    let mut response = request.send(body.to_string().as_bytes()).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn chat_body(content: &str, extra: Value) -> Value {
    let mut body = json!({"model": "m", "messages": [{"role": "user", "content": content}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn metrics_text(server: &BackgroundServer) -> String {
    agent()
        .get(&format!("http://{}/metrics", server.addr))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// A metric's value from `/metrics` (the first sample whose name matches exactly).
fn metric(server: &BackgroundServer, name: &str) -> f64 {
    let text = metrics_text(server);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

/// Opens a raw connection and sends `head` (and nothing else yet).
fn raw(server: &BackgroundServer, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

fn raw_post(path: &str, body: &str, content_type: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn concurrent_requests_share_the_batch_and_keep_their_seeds() {
    let (model, folder) = common::tiny_model();
    let lone = common::load_model(folder.path());
    let server = serve_with(model, |o| o.slots = 4);
    let url = server.url() + "/chat/completions";
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let url = url.clone();
                s.spawn(move || {
                    post(
                        &url,
                        &chat_body(
                            &format!("q{i}"),
                            json!({"max_tokens": 20, "temperature": 0.9, "seed": 100 + i}),
                        ),
                        None,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (status, answer)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "{answer}");
        // The same prompt and seed through `generate`, alone.
        let (text, prompt_tokens) = alone(&lone, &format!("q{i}"), 20, 100 + i as u64);
        assert_eq!(
            answer["choices"][0]["message"]["content"], text,
            "request {i}"
        );
        assert_eq!(answer["usage"]["prompt_tokens"], prompt_tokens);
    }
    // n choices: choice i samples with seed + i.
    let (status, answer) = post(
        &url,
        &chat_body(
            "q0",
            json!({"max_tokens": 12, "temperature": 0.9, "seed": 40, "n": 3}),
        ),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    for i in 0..3 {
        let (text, _) = alone(&lone, "q0", 12, 40 + i as u64);
        assert_eq!(answer["choices"][i]["index"], i);
        assert_eq!(
            answer["choices"][i]["message"]["content"], text,
            "choice {i}"
        );
    }
    assert_eq!(metric(&server, "seft_running_sequences"), 0.0);
}

#[test]
fn wrong_types_and_ranges_get_400_naming_the_field() {
    let (model, _folder) = common::tiny_model();
    let server = serve_with(model, |_| {});
    let url = server.url() + "/chat/completions";
    for (extra, field) in [
        (json!({"max_tokens": "x"}), "max_tokens"),
        (json!({"max_tokens": -5}), "max_tokens"),
        (json!({"max_tokens": 1.5}), "max_tokens"),
        (json!({"temperature": "hot"}), "temperature"),
        (
            json!({"messages": [{"role": "wizard", "content": "x"}]}),
            "messages[0].role",
        ),
    ] {
        let (status, answer) = post(&url, &chat_body("hi", extra.clone()), None);
        assert_eq!(status, 400, "{extra}: {answer}");
        assert_eq!(answer["error"]["param"], field, "{extra}: {answer}");
    }
    // Numbers that once wrapped a size or sized an allocation: a 400 with the numbers.
    for n in [
        json!(u64::MAX),
        json!(1_000_000_000u64),
        json!(10_000_000u64),
    ] {
        let (status, answer) = post(&url, &chat_body("hi", json!({"max_tokens": n})), None);
        assert_eq!(status, 400, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&n.to_string()) && message.contains("128"),
            "{message}"
        );
    }
    let (status, _) = post(&url, &chat_body("hi", json!({"max_tokens": 3})), None);
    assert_eq!(status, 200, "the server still answers");
}

#[test]
fn huge_prompts_and_bodies_are_refused_without_growing() {
    let (model, _folder) = common::tiny_model();
    let server = serve_with(model, |o| o.max_body_bytes = 1 << 20);
    let url = server.url() + "/chat/completions";
    // Under the body cap but far over the slot: 400 with the prompt's length.
    let (status, answer) = post(&url, &chat_body(&"word ".repeat(100_000), json!({})), None);
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prompt has"),
        "{answer}"
    );
    // Over the body cap (50 MB declared and sent): 413 before reading it all.
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        50 << 20
    );
    let mut s = raw(&server, &head);
    let _ = s.write_all(&[b'x'; 1 << 16]);
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert!(line.contains("413"), "{line:?}");
    let (status, _) = post(&url, &chat_body("hi", json!({"max_tokens": 2})), None);
    assert_eq!(status, 200);
}

#[test]
fn a_stalled_body_blocks_nobody_and_times_out() {
    let (model, _folder) = common::tiny_model();
    let server = serve_with(model, |o| {
        o.body_timeout = Duration::from_secs(2);
        o.header_timeout = Duration::from_secs(2);
    });
    let stalled = raw(
        &server,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"mess",
    );
    let half_headers = raw(&server, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n");
    let started = Instant::now();
    let (status, _) = post(
        &(server.url() + "/chat/completions"),
        &chat_body("hi", json!({"max_tokens": 4})),
        None,
    );
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let mut line = String::new();
    BufReader::new(&stalled).read_line(&mut line).unwrap();
    assert!(line.contains("408"), "{line:?}");
    // Headers never finished: hyper closes the connection at the header timeout.
    let mut rest = Vec::new();
    let read = (&half_headers).read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(10), "{read:?}");
}

#[test]
fn keys_content_types_routes_and_names() {
    let (model, _folder) = common::tiny_model();
    let server = serve_with(model, |o| o.api_key = Some("sekrit".into()));
    let url = server.url() + "/chat/completions";
    let body = chat_body("hi", json!({"max_tokens": 2}));
    assert_eq!(post(&url, &body, None).0, 401);
    assert_eq!(post(&url, &body, Some("wrong")).0, 401);
    assert_eq!(post(&url, &body, Some("sekrit")).0, 200);
    // A cross-site form or text/plain POST never reaches the model.
    let mut s = raw(
        &server,
        &raw_post("/v1/chat/completions", &body.to_string(), "text/plain"),
    );
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 401"),
        "the key is checked first: {answer}"
    );
    drop(s);
    let (model, _folder) = common::tiny_model();
    let open = serve_with(model, |_| {});
    let mut s = raw(
        &open,
        &raw_post("/v1/chat/completions", &body.to_string(), "text/plain"),
    );
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    let models: Value = agent()
        .get(&(open.url() + "/models"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(models["data"][0]["id"], "m");
    assert!(!models.to_string().contains('/'), "{models}");
    assert_eq!(post(&(open.url() + "/nothing"), &json!({}), None).0, 404);
    let (status, answer) = post(
        &(open.url() + "/chat/completions"),
        &chat_body("hi", json!({"model": "gpt-4"})),
        None,
    );
    assert_eq!(status, 404, "{answer}");
    // A non-loopback address needs a key (or --insecure).
    let (model, _folder) = common::tiny_model();
    let err = spawn(model, "0.0.0.0:0", ServeOptions::new("m"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("API key"), "{err}");
}

#[test]
fn completions_echo_prompt_logprobs_match_a_forward_pass() {
    let (model, folder) = common::tiny_model();
    let lone = common::load_model(folder.path());
    let server = serve_with(model, |_| {});
    let (status, answer) = post(
        &(server.url() + "/completions"),
        &json!({"prompt": [[5, 6, 7, 8]], "max_tokens": 0, "echo": true, "logprobs": 1}),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    let lp = &answer["choices"][0]["logprobs"]["token_logprobs"];
    assert_eq!(lp[0], Value::Null);
    // The reference: log-softmax of one forward pass's logits.
    let logits = seft::numeric::to_f32_vec(
        lone.net
            .forward(&seft::model::batch::Batch::single(&[5, 6, 7, 8])),
    );
    let vocab = lone.config.vocab_size;
    for (i, next) in [6usize, 7, 8].into_iter().enumerate() {
        let row = seft::model::generate::log_softmax(&logits[i * vocab..(i + 1) * vocab]);
        let served = lp[i + 1].as_f64().unwrap() as f32;
        assert!(
            (served - row[next]).abs() < 1e-4,
            "position {}: {served} vs {}",
            i + 1,
            row[next]
        );
    }
    // vLLM's tokenizer endpoints, which lm-eval's local-completions uses offline.
    let base = format!("http://{}", server.addr);
    let (status, tokens) = post(
        &format!("{base}/tokenize"),
        &json!({"prompt": "ab c", "add_special_tokens": false}),
        None,
    );
    assert_eq!(status, 200, "{tokens}");
    let ids = lone.tokenizer.encode("ab c", false).unwrap();
    assert_eq!(tokens["tokens"], json!(ids));
    let (_, text) = post(&format!("{base}/detokenize"), &json!({"tokens": ids}), None);
    assert_eq!(text["prompt"], "ab c");
    let info: Value = agent()
        .get(&format!("{base}/tokenizer_info"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(info["eos_token"], "<|im_end|>", "{info}");
    assert_eq!(
        post(
            &format!("{base}/detokenize"),
            &json!({"tokens": [99999]}),
            None
        )
        .0,
        400
    );
    // Streaming completions end in [DONE] with usage.
    let mut s = raw(
        &server,
        &raw_post(
            "/v1/completions",
            &json!({"prompt": "ab", "max_tokens": 3, "min_tokens": 3, "stream": true, "stream_options": {"include_usage": true}}).to_string(),
            "application/json",
        ),
    );
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
    let usage: Value = serde_json::from_str(events[events.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 3, "{text}");
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    let server = serve_with(smollm2(), |o| {
        (o.slots, o.queue, o.max_seq_len) = (1, 1, 512);
    });
    let long = chat_body(
        "Count to one hundred.",
        json!({"max_tokens": 400, "min_tokens": 400, "stream": true}),
    );
    // One request runs, one waits in the queue, the third is turned away.
    let running = raw(
        &server,
        &raw_post(
            "/v1/chat/completions",
            &long.to_string(),
            "application/json",
        ),
    );
    let mut first = String::new();
    BufReader::new(&running).read_line(&mut first).unwrap();
    assert!(first.contains("200"), "{first}");
    let started = Instant::now();
    while metric(&server, "seft_running_sequences") < 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the first request never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let waiting = raw(
        &server,
        &raw_post(
            "/v1/chat/completions",
            &long.to_string(),
            "application/json",
        ),
    );
    let started = Instant::now();
    while metric(&server, "seft_queue_depth") < 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the second request never queued: {}",
            metrics_text(&server)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut response = agent()
        .post(&(server.url() + "/chat/completions"))
        .header("Content-Type", "application/json")
        .send(long.to_string().as_bytes())
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers().get("retry-after").unwrap(), "1");
    let _ = response.body_mut().read_to_string();
    drop((running, waiting));
}

#[test]
fn a_disconnect_mid_answer_stops_generation() {
    let server = serve_with(smollm2(), |o| o.max_seq_len = 1024);
    let body = chat_body(
        "Write a long story.",
        json!({"max_tokens": 500, "min_tokens": 500, "stream": true, "temperature": 0}),
    );
    let s = raw(
        &server,
        &raw_post(
            "/v1/chat/completions",
            &body.to_string(),
            "application/json",
        ),
    );
    let mut reader = BufReader::new(&s);
    let mut chunks = 0;
    let mut line = String::new();
    while chunks < 5 {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.starts_with("data: ") {
            chunks += 1;
        }
    }
    let before = metric(&server, "seft_generation_tokens_total");
    s.shutdown(std::net::Shutdown::Both).unwrap();
    drop(reader);
    let closed = Instant::now();
    while metric(&server, "seft_running_sequences") > 0.0 {
        assert!(
            closed.elapsed() < Duration::from_secs(10),
            "still generating"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = metric(&server, "seft_generation_tokens_total");
    assert_eq!(metric(&server, "seft_cancelled_sequences_total"), 1.0);
    let extra = after - before;
    eprintln!(
        "tokens generated after the client closed: {extra} in {:?}",
        closed.elapsed()
    );
    assert!(extra <= 3.0, "{extra} tokens after the disconnect");
    assert!(after < 100.0, "{after}");
}

#[test]
fn sigterm_finishes_running_requests_then_exits() {
    let (mut child, line) = common::serve_smollm2(&["--name", "m", "--max-seq-len", "1024"], &[]);
    let addr = line
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_string();
    let body = chat_body(
        "Hi",
        json!({"max_tokens": 40, "min_tokens": 40, "stream": true}),
    );
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(
        raw_post(
            "/v1/chat/completions",
            &body.to_string(),
            "application/json",
        )
        .as_bytes(),
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut text = String::new();
    while !text.contains("data: ") {
        reader.read_line(&mut text).unwrap();
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    reader.read_to_string(&mut text).unwrap();
    assert!(
        text.contains("\"finish_reason\":\"length\"") && text.contains("data: [DONE]"),
        "{text}"
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        TcpStream::connect(&addr).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn the_official_openai_client_works() {
    let client = std::env::var_os("SEFT_OPENAI_CLIENT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var("HOME").expect("HOME"))
                .join(".cache/seft/openai-client")
        });
    assert!(
        client.join("openai").is_dir(),
        "the openai Python package is missing at {} (scripts/fetch-test-models.sh installs it)",
        client.display()
    );
    let (mut child, line) = common::serve_smollm2(
        &["--name", "smollm2", "--api-key-env", "SEFT_TEST_KEY"],
        &[("SEFT_TEST_KEY", "k-123")],
    );
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/openai_client.py"
        ))
        .args([line.trim(), "smollm2", "k-123"])
        .env("PYTHONPATH", &client)
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
}
