//! Where `seft eval` finds the benchmark files (AlpacaEval's, IFEval's) when no flag names them:
//! a data folder (`--data-dir`, `SEFT_BENCH_DATA`), else the Hugging Face hub cache (a fake one
//! laid out as hf-hub lays it out, with `HF_HOME` pointing there), else a download, never with
//! `HF_HUB_OFFLINE=1` (a local listener standing in for the hub counts the connections).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

const INSTRUCTIONS: [&str; 3] = ["Name a color.", "Is 7 prime?", "Say hello."];

/// Writes `files` (path inside the repo, contents) as hf-hub's cache holds a dataset:
/// `datasets--org--name/refs/main` -> `snapshots/<commit>/…`.
fn fake_hub_dataset(hf_home: &Path, repo_id: &str, files: &[(&str, String)]) {
    let repo = hf_home
        .join("hub")
        .join(format!("datasets--{}", repo_id.replace('/', "--")));
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    for (name, text) in files {
        let path = repo.join("snapshots").join(commit).join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

fn reference_json(instructions: &[&str]) -> String {
    let rows: Vec<Value> = instructions
        .iter()
        .map(|i| json!({"instruction": i, "output": format!("A reference answer to: {i}"), "generator": "gpt4_1106_preview", "dataset": "test"}))
        .collect();
    serde_json::to_string(&rows).unwrap()
}

fn difficulty_csv(n: usize) -> String {
    let mut csv = String::from("index,instruction_difficulty\n");
    for i in 0..n {
        csv.push_str(&format!("{i},{}\n", 0.1 * i as f64));
    }
    csv
}

/// Annotations of a model "m" on the three instructions: it wins, loses, and ties.
fn write_annotations(path: &Path) {
    let rows: Vec<Value> = INSTRUCTIONS
        .iter()
        .zip([2.0, 1.0, 1.5])
        .map(|(i, p)| json!({"instruction": i, "output_1": "ref", "generator_1": "gpt4_1106_preview", "output_2": "an answer", "generator_2": "m", "annotator": "test", "preference": p}))
        .collect();
    std::fs::write(path, serde_json::to_string(&rows).unwrap()).unwrap();
}

/// `seft eval alpaca-eval --annotations FILE --json` with only the given environment for
/// finding the benchmark files, run from a bare folder.
fn metrics_cli(annotations: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seft"));
    cmd.args(["eval", "alpaca-eval", "--json", "--annotations"])
        .arg(annotations)
        .args(args)
        .current_dir(cwd.path())
        .env_remove("SEFT_BENCH_DATA")
        .env_remove("SEFT_SHARED_DATA")
        .env_remove("HF_ENDPOINT")
        .env("HF_HUB_OFFLINE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn alpaca_eval_reads_the_reference_and_difficulties_from_the_hub_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let hf_home = tmp.path().join("hf");
    fake_hub_dataset(
        &hf_home,
        "tatsu-lab/alpaca_eval",
        &[
            (
                "alpaca_eval_gpt4_baseline.json",
                reference_json(&INSTRUCTIONS),
            ),
            ("instruction_difficulty.csv", difficulty_csv(3)),
        ],
    );
    let annotations = tmp.path().join("annotations.json");
    write_annotations(&annotations);
    let out = metrics_cli(&annotations, &[], &[("HF_HOME", &hf_home)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["n_total"], 3);
    assert!((m["win_rate"].as_f64().unwrap() - 50.0).abs() < 1e-9, "{m}");
    let source = m["instruction_difficulty"].as_str().unwrap();
    assert!(
        source.starts_with(hf_home.to_str().unwrap())
            && source.ends_with("instruction_difficulty.csv"),
        "{source}"
    );
}

#[test]
fn a_data_folder_comes_before_the_hub_cache() {
    // The cached reference holds other instructions: read, it would reject the annotations.
    let tmp = tempfile::tempdir().unwrap();
    let hf_home = tmp.path().join("hf");
    fake_hub_dataset(
        &hf_home,
        "tatsu-lab/alpaca_eval",
        &[
            (
                "alpaca_eval_gpt4_baseline.json",
                reference_json(&["x", "y", "z"]),
            ),
            ("instruction_difficulty.csv", difficulty_csv(3)),
        ],
    );
    let data = tmp.path().join("bench");
    std::fs::create_dir_all(data.join("alpaca_eval")).unwrap();
    std::fs::write(
        data.join("alpaca_eval/reference_gpt4_1106_preview_outputs.json"),
        reference_json(&INSTRUCTIONS),
    )
    .unwrap();
    std::fs::write(
        data.join("alpaca_eval/instruction_difficulty.csv"),
        difficulty_csv(3),
    )
    .unwrap();
    let annotations = tmp.path().join("annotations.json");
    write_annotations(&annotations);
    let flag = metrics_cli(
        &annotations,
        &["--data-dir", data.to_str().unwrap()],
        &[("HF_HOME", &hf_home)],
    );
    let env = metrics_cli(
        &annotations,
        &[],
        &[("HF_HOME", &hf_home), ("SEFT_BENCH_DATA", &data)],
    );
    for out in [flag, env] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let m: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(m["n_total"], 3);
        let source = m["instruction_difficulty"].as_str().unwrap();
        assert!(source.starts_with(data.to_str().unwrap()), "{source}");
    }
    // Without the folder, the cached reference is read (and rejects the annotations).
    let out = metrics_cli(&annotations, &[], &[("HF_HOME", &hf_home)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not in the evaluation set"), "{err}");
}

#[test]
fn nothing_found_is_one_clear_error_line() {
    let tmp = tempfile::tempdir().unwrap();
    let annotations = tmp.path().join("annotations.json");
    write_annotations(&annotations);
    let hf_home = tmp.path().join("empty-hf");
    let out = metrics_cli(&annotations, &[], &[("HF_HOME", &hf_home)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for part in [
        "AlpacaEval reference outputs not found",
        "--reference FILE",
        "--data-dir DIR",
        "SEFT_BENCH_DATA=DIR",
        "tatsu-lab/alpaca_eval:alpaca_eval_gpt4_baseline.json",
        "HF_HUB_OFFLINE=1",
    ] {
        assert!(err.contains(part), "{part:?} missing from {err}");
    }
    // MT-Bench names its own files and flags, before any model is loaded.
    let out = Command::new(env!("CARGO_BIN_EXE_seft"))
        .args(["eval", "mt-bench", "--judge", "no-such-judge.gguf", "--out"])
        .arg(tmp.path().join("mt"))
        .env_remove("SEFT_BENCH_DATA")
        .env_remove("SEFT_SHARED_DATA")
        .env("HF_HOME", &hf_home)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("MT-Bench questions not found")
            && err.contains("--questions FILE")
            && err.contains("lmsys/mt-bench:data/mt_bench/question.jsonl"),
        "{err}"
    );
}

/// A stand-in for the hub that answers every request with 404 and counts connections.
fn fake_hub() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (url, hits)
}

#[test]
fn the_hub_is_asked_only_when_not_offline() {
    use seft::eval::data_source::{ALPACA_REFERENCE, BenchData};
    let tmp = tempfile::tempdir().unwrap();
    let (url, hits) = fake_hub();
    let cache = tmp.path().join("hub");
    let offline = BenchData::new(None, cache.clone(), true, Some(url.clone()));
    let err = offline
        .resolve(&ALPACA_REFERENCE, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("HF_HUB_OFFLINE=1"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let online = BenchData::new(None, cache, false, Some(url));
    let err = online
        .resolve(&ALPACA_REFERENCE, None)
        .unwrap_err()
        .to_string();
    assert!(hits.load(Ordering::SeqCst) >= 1);
    assert!(
        err.contains("downloading it failed") && err.contains("--reference FILE"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
}

/// IFEval's prompts come from the hub dataset google/IFEval's `ifeval_input_data.jsonl` in the
/// hub cache when no file or data folder names them; the hub's copy lists every kwarg of every
/// type, null when unused, which is read as absent.
#[test]
fn ifeval_reads_its_prompts_from_the_hub_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let hf_home = tmp.path().join("hf");
    let row = json!({"key": 1, "prompt": "Say hi without commas.",
        "instruction_id_list": ["punctuation:no_comma"],
        "kwargs": [{"num_highlights": null, "relation": null, "num_words": null}]});
    fake_hub_dataset(
        &hf_home,
        "google/IFEval",
        &[("ifeval_input_data.jsonl", row.to_string() + "\n")],
    );
    let responses = tmp.path().join("responses.jsonl");
    std::fs::write(
        &responses,
        json!({"prompt": "Say hi without commas.", "response": "hi there"}).to_string() + "\n",
    )
    .unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_seft"))
        .args(["eval", "ifeval", "--json", "--responses"])
        .arg(&responses)
        .current_dir(cwd.path())
        .env_remove("SEFT_BENCH_DATA")
        .env_remove("SEFT_SHARED_DATA")
        .env_remove("HF_ENDPOINT")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", &hf_home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scores: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(scores["prompt_level_strict"], json!(1.0));
    // Not in the cache, offline: one error line naming the hub file and the flag.
    let empty = tmp.path().join("empty_hf");
    let out = Command::new(env!("CARGO_BIN_EXE_seft"))
        .args(["eval", "ifeval", "--json", "--responses"])
        .arg(&responses)
        .current_dir(cwd.path())
        .env_remove("SEFT_BENCH_DATA")
        .env_remove("SEFT_SHARED_DATA")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", &empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("google/IFEval") && err.contains("--input-data"),
        "{err}"
    );
}
