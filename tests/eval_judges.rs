//! Judges end to end with the real SmolLM2 model: the HTTP judge against `seft serve` (normal
//! answers equal the local judge's; timeouts, 429, 500 and malformed JSON survived by retries;
//! a rerun from the cache sends nothing), and the `seft eval alpaca-eval` / `mt-bench` commands
//! with a local judge.

mod common;

use std::process::{Child, Command};
use std::time::Duration;

use seft::eval::judges::Judge;
use seft::eval::judges::cache::ResponseCache;
use seft::eval::judges::http::HttpJudge;
use seft::eval::judges::local::LocalJudge;
use seft::model::Message;

use common::shared;

/// A `seft serve` process, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(faults: &str) -> Server {
        let (child, url) =
            common::serve_smollm2(&["--name", "smollm2", "--inject-faults", faults], &[]);
        Server { child, url }
    }

    fn chat_requests(&self) -> u64 {
        let stats = self.url.trim_end_matches("/v1").to_string() + "/stats";
        let v: serde_json::Value = ureq::get(&stats)
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        v["chat_requests"].as_u64().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn judge(url: &str, timeout_ms: u64, retries: usize, cache: Option<&std::path::Path>) -> HttpJudge {
    let mut j = HttpJudge::new(url, "smollm2", None, Duration::from_millis(timeout_ms));
    j.max_retries = retries;
    j.backoff = Duration::from_millis(10);
    j.concurrency = 1;
    j.cache = cache.map(|p| ResponseCache::open(p).unwrap());
    j
}

fn prompt(text: &str) -> Vec<Message> {
    vec![Message::new(
        "user",
        &format!("{text} Answer with the letter m or M."),
    )]
}

#[test]
fn http_judge_survives_faults_matches_the_local_judge_and_caches() {
    // Request 1 meets 429, 500 and malformed JSON, then an answer (patient client). Request 2
    // meets a server too slow for its 0.5 s timeout (no retry: a clear error, no hang).
    // Request 3 meets three 500s with only 2 retries. Only the timeout depends on the clock,
    // and it has a 6× margin.
    let server = Server::start("429,500,malformed,ok,slow:3000,500,500,500");
    let noop = |_: usize| {};
    let patient = judge(&server.url, 60_000, 5, None);
    let first = patient
        .candidate_logprobs(&[prompt("Is water wet?")], &["m", "M"], &noop)
        .unwrap();
    assert!(first[0].is_ok(), "{:?}", first[0]);
    assert_eq!(
        patient
            .requests_sent
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
    let hasty = judge(&server.url, 500, 0, None);
    let slow = hasty
        .candidate_logprobs(&[prompt("Is ice cold?")], &["m", "M"], &noop)
        .unwrap();
    let err = slow[0].as_ref().unwrap_err();
    assert!(
        err.to_lowercase().contains("timeout") || err.to_lowercase().contains("timed out"),
        "{err}"
    );
    let impatient = judge(&server.url, 60_000, 2, None);
    let failed = impatient
        .candidate_logprobs(&[prompt("Is fire hot?")], &["m", "M"], &noop)
        .unwrap();
    let err = failed[0].as_ref().unwrap_err();
    assert!(
        err.contains("HTTP 500") && err.contains("3 attempt"),
        "{err}"
    );
    assert_eq!(server.chat_requests(), 8);

    // Normal answers, concurrently, equal the in-process local judge's probabilities.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.jsonl");
    let prompts: Vec<Vec<Message>> = ["Name a color.", "Is 7 prime?", "Say hello.", "What is 2+2?"]
        .iter()
        .map(|t| prompt(t))
        .collect();
    let mut http = judge(&server.url, 60_000, 2, Some(&cache));
    http.concurrency = 3;
    http.top_logprobs = 20;
    let remote = http
        .candidate_logprobs(&prompts, &["m", "M"], &noop)
        .unwrap();
    let device = seft::Backend::default().device().unwrap();
    let local = LocalJudge {
        model: seft::LanguageModel::load(common::smollm2_gguf().to_str().unwrap(), &device)
            .unwrap(),
        label: "local".into(),
        batch_size: 4,
    };
    let here = local
        .candidate_logprobs(&prompts, &["m", "M"], &noop)
        .unwrap();
    for (r, h) in remote.iter().zip(&here) {
        let (r, h) = (r.as_ref().unwrap(), h.as_ref().unwrap());
        for (a, b) in r.iter().zip(h) {
            // A token outside the server's top 20 is reported as absent.
            if let Some(a) = a {
                assert!((a - b.unwrap()).abs() < 1e-3, "{a} vs {b:?}");
            }
        }
        assert!(r.iter().any(Option::is_some));
    }
    let before = server.chat_requests();
    let sent = http
        .requests_sent
        .load(std::sync::atomic::Ordering::Relaxed) as u64;
    assert!(sent >= 4);
    assert_eq!(before, 8 + sent);

    // A rerun with the cache sends nothing and gives the same answers.
    let mut again = judge(&server.url, 60_000, 2, Some(&cache));
    again.top_logprobs = 20;
    let cached = again
        .candidate_logprobs(&prompts, &["m", "M"], &noop)
        .unwrap();
    assert_eq!(
        again
            .requests_sent
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(server.chat_requests(), before);
    assert_eq!(format!("{cached:?}"), format!("{remote:?}"));

    // Free text through the same endpoint.
    let text = again.complete(&[prompt("Say yes.")], 8, "", &noop).unwrap();
    assert!(text[0].as_ref().is_ok_and(|t| !t.is_empty()));
}

#[test]
#[ignore = "needs the shared benchmark data: SEFT_SHARED_DATA=DIR cargo test --test alpaca_eval --test eval_judges -- --ignored"]
fn alpaca_eval_with_a_local_judge_writes_alpaca_eval_files_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_seft"))
            .args([
                "eval",
                "alpaca-eval",
                "--max-instructions",
                "3",
                "--seed",
                "1",
                "--json",
                "--judge-batch-size",
                "3",
            ])
            .arg("--outputs")
            .arg(shared().join("alpaca_eval/model_outputs/alpaca-7b.json"))
            .arg("--judge")
            .arg(common::smollm2_gguf())
            .arg("--out")
            .arg(dir.path())
            .env("SEFT_BENCH_DATA", shared())
            .output()
            .unwrap()
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(metrics["n_total"], 3);
    // Three pairs cannot support the LC GLM: reported as null, not invented.
    assert!(metrics["length_controlled_winrate"].is_null());
    let wr = metrics["win_rate"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&wr));
    let annotations: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("annotations.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(annotations.len(), 3);
    for a in &annotations {
        let p = a["preference"].as_f64().unwrap();
        assert!((1.0..=2.0).contains(&p), "{p}");
        assert_eq!(a["generator_1"], "gpt4_1106_preview");
        assert_eq!(a["generator_2"], "alpaca-7b");
    }
    assert!(dir.path().join("metrics.md").exists());
    // A rerun finds every pair judged and gives the same numbers.
    let again = run();
    assert!(again.status.success());
    assert_eq!(again.stdout, out.stdout);
}

#[test]
#[ignore = "needs the shared benchmark data: SEFT_SHARED_DATA=DIR cargo test --test alpaca_eval --test eval_judges -- --ignored"]
fn mt_bench_grades_three_models_and_draws_charts() {
    let dir = tempfile::tempdir().unwrap();
    let answers = shared().join("mt_bench/model_answer");
    let out = Command::new(env!("CARGO_BIN_EXE_seft"))
        .args([
            "eval",
            "mt-bench",
            "--verdict",
            "prefill",
            "--max-questions",
            "4",
            "--seed",
            "2",
            "--judge-batch-size",
            "6",
            "--answers",
        ])
        .args(["gpt-4", "vicuna-13b-v1.3", "llama-13b"].map(|m| answers.join(format!("{m}.jsonl"))))
        // A fourth model answers the questions itself (two turns, 8 tokens each).
        .args(["--name", "smollm2", "--max-new-tokens", "8", "--model"])
        .arg(common::smollm2_gguf())
        .arg("--judge")
        .arg(common::smollm2_gguf())
        .arg("--out")
        .arg(dir.path())
        .env("SEFT_BENCH_DATA", shared())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let judgments = std::fs::read_to_string(dir.path().join("judgments.jsonl")).unwrap();
    assert_eq!(judgments.lines().count(), 4 * 4 * 2);
    let own = std::fs::read_to_string(dir.path().join("model_answer/smollm2.jsonl")).unwrap();
    assert_eq!(own.lines().count(), 4);
    for line in own.lines() {
        let a: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(a["choices"][0]["turns"].as_array().unwrap().len(), 2);
    }
    let scores: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("scores.json")).unwrap())
            .unwrap();
    assert_eq!(scores.len(), 4);
    for s in &scores {
        let graded = s["graded"].as_u64().unwrap() + s["malformed"].as_u64().unwrap();
        assert_eq!(graded, 8);
        if s["graded"].as_u64().unwrap() > 0 {
            let score = s["score"].as_f64().unwrap();
            assert!((1.0..=10.0).contains(&score), "{score}");
        }
    }
    for f in [
        "scores.md",
        "radar_all.svg",
        "radar_gpt-4.svg",
        "radar_llama-13b.svg",
    ] {
        let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert!(text.len() > 100, "{f}");
    }
    // The leaderboard gathers it.
    let lb = Command::new(env!("CARGO_BIN_EXE_seft"))
        .args(["eval", "leaderboard"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(lb.status.success());
    assert!(String::from_utf8_lossy(&lb.stdout).contains("vicuna-13b-v1.3"));
}
