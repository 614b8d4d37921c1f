//! A soak of `seft serve`: 16 clients for `SEFT_SOAK_SECONDS` (default 60) mixing good
//! requests (chat, streamed chat, completions with echo and logprobs) with bad ones (wrong
//! types, huge max_tokens, text/plain bodies, unknown routes, clients that hang up mid-stream).
//! The server must answer every request with a 2xx or a 4xx (never a 5xx or a dropped
//! connection), and its memory must end within 10% of where it stood after warm-up. Its own
//! test binary, so the process's memory is the server's.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// One request over a raw connection; the status, or 0 when the connection failed.
fn send(addr: &str, path: &str, content_type: &str, body: &str, hang_up: bool) -> u16 {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return 0;
    };
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut head = [0u8; 12];
    if s.read_exact(&mut head).is_err() {
        return 0;
    }
    let status = std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if !hang_up {
        let mut rest = Vec::new();
        if s.read_to_end(&mut rest).is_err() {
            return 0;
        }
    }
    status
}

#[test]
fn sixteen_clients_mixing_good_and_bad_requests() {
    let seconds: u64 = std::env::var("SEFT_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let (model, _folder) = common::tiny_model();
    let mut opts = seft::serve::ServeOptions::new("m");
    (opts.slots, opts.max_seq_len, opts.queue) = (8, 128, 256);
    let server = seft::serve::spawn(model, "127.0.0.1:0", opts).unwrap();
    let addr = server.addr.clone();
    let chat = |extra: serde_json::Value| {
        let mut b = json!({"messages": [{"role": "user", "content": "hello there"}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b.to_string()
    };
    // (path, content type, body, hang up after the status line, expected status class)
    let mix: Vec<(&str, &str, String, bool, u16)> = vec![
        (
            "/v1/chat/completions",
            "application/json",
            chat(json!({"max_tokens": 8})),
            false,
            2,
        ),
        (
            "/v1/chat/completions",
            "application/json",
            chat(json!({"max_tokens": 30, "stream": true, "temperature": 0.8})),
            false,
            2,
        ),
        (
            "/v1/chat/completions",
            "application/json",
            chat(json!({"max_tokens": 60, "min_tokens": 60, "stream": true})),
            true,
            2,
        ),
        (
            "/v1/completions",
            "application/json",
            json!({"prompt": "ab", "max_tokens": 4, "echo": true, "logprobs": 2}).to_string(),
            false,
            2,
        ),
        (
            "/v1/chat/completions",
            "application/json",
            chat(json!({"max_tokens": "x"})),
            false,
            4,
        ),
        (
            "/v1/chat/completions",
            "application/json",
            chat(json!({"max_tokens": u64::MAX})),
            false,
            4,
        ),
        (
            "/v1/chat/completions",
            "text/plain",
            chat(json!({})),
            false,
            4,
        ),
        (
            "/v1/chat/completions",
            "application/json",
            "{not json".to_string(),
            false,
            4,
        ),
        (
            "/v1/nothing",
            "application/json",
            "{}".to_string(),
            false,
            4,
        ),
    ];
    let served = AtomicU64::new(0);
    let wrong = std::sync::Mutex::new(Vec::<String>::new());
    let run_for = |d: Duration, client: usize| {
        let until = Instant::now() + d;
        let mut i = client;
        while Instant::now() < until {
            let (path, ct, body, hang_up, class) = &mix[i % mix.len()];
            let status = send(&addr, path, ct, body, *hang_up);
            served.fetch_add(1, Ordering::Relaxed);
            if status / 100 != *class {
                wrong
                    .lock()
                    .unwrap()
                    .push(format!("{path} {body}: status {status}"));
            }
            i += 7;
        }
    };
    let clients = |d: Duration| {
        std::thread::scope(|s| {
            for c in 0..16 {
                s.spawn(move || run_for(d, c));
            }
        })
    };
    clients(Duration::from_secs(5));
    let warm = rss_kib();
    clients(Duration::from_secs(seconds));
    let end = rss_kib();
    let wrong = wrong.into_inner().unwrap();
    let total = served.load(Ordering::Relaxed);
    eprintln!(
        "{total} requests, {} unexpected; RSS {warm} KiB after warm-up, {end} KiB at the end",
        wrong.len()
    );
    assert!(wrong.is_empty(), "{:#?}", &wrong[..wrong.len().min(10)]);
    assert!(
        (end as f64) <= warm as f64 * 1.10,
        "memory grew from {warm} KiB to {end} KiB"
    );
    drop(server);
}
