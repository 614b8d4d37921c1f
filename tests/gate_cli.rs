//! `seft gate` on preference pairs with all-MiniLM-L6-v2 embeddings: the gate trained through
//! the firing-neuron trees classifies the held-out answers as the densely trained one does,
//! and bad input is a named error.

mod common;

fn seft(args: &[&str]) -> std::process::Output {
    common::output(common::seft().args(args))
}

/// 80 preference pairs made here: a helpful on-topic answer is chosen over an evasive or
/// off-topic one.
fn write_pairs(path: &std::path::Path) {
    let topics = [
        (
            "boil an egg",
            "Put the egg in boiling water for about nine minutes, then cool it in cold water.",
        ),
        (
            "learn to swim",
            "Start in shallow water with an instructor and practise floating and kicking.",
        ),
        (
            "save money",
            "Write down what you spend each month and move a fixed share to savings first.",
        ),
        (
            "sleep better",
            "Keep a regular bedtime, a dark quiet room, and no screens in the last hour.",
        ),
        (
            "write a cover letter",
            "Name the role, show two results that match it, and end with a clear request.",
        ),
        (
            "care for a cactus",
            "Give it bright light and water only when the soil is completely dry.",
        ),
        (
            "start running",
            "Alternate one minute of running with two of walking, three times a week.",
        ),
        (
            "fix a flat tyre",
            "Remove the wheel, find the hole, patch or replace the tube, and reinflate.",
        ),
    ];
    let evasive = [
        "I don't know.",
        "Why would you want that?",
        "Bananas are yellow.",
        "Ask someone else.",
        "It depends.",
        "The weather is nice today.",
        "No.",
        "That is a question.",
        "Maybe later.",
        "Cats sleep a lot.",
    ];
    let rows: Vec<String> = (0..80)
        .map(|i| {
            let (topic, answer) = topics[i % topics.len()];
            serde_json::json!({
                "prompt": format!("How do I {topic}? (question {i})"),
                "chosen": answer,
                "rejected": evasive[i % evasive.len()],
            })
            .to_string()
        })
        .collect();
    std::fs::write(path, rows.join("\n")).unwrap();
}

#[test]
fn tree_and_dense_gates_agree_on_held_out_pairs() {
    let tmp = tempfile::tempdir().unwrap();
    let prefs = tmp.path().join("pairs.jsonl");
    write_pairs(&prefs);
    let minilm = common::minilm_folder();
    let small_gate = |out: &std::path::Path| {
        seft(&[
            "gate",
            "--preferences",
            prefs.to_str().unwrap(),
            "--embedder",
            minilm.to_str().unwrap(),
            "--max-pairs",
            "60",
            "--width",
            "1024",
            "--steps",
            "30",
            "--splits",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ])
    };
    let o = small_gate(tmp.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["pairs"], 60);
    assert_eq!(r["dim"], 384);
    let mean = r["mean"].as_array().unwrap();
    assert_eq!(mean[0]["path"], "firing-tree");
    assert_eq!(mean[1]["path"], "dense");
    assert_eq!(mean[0]["tree_steps"], 30.0);
    let accuracy = |i: usize| mean[i]["held_out_accuracy"].as_f64().unwrap();
    assert!((accuracy(0) - accuracy(1)).abs() <= 0.02, "{mean:?}");
    assert!(r["agreement"].as_f64().unwrap() >= 0.97, "{r}");
    for run in r["runs"].as_array().unwrap() {
        assert_eq!(run["held_out_rows"], 24, "12 of 60 pairs, two answers each");
    }
    // The embeddings are cached next to the results and reused by an identical call.
    assert!(tmp.path().join("embeddings.npy").exists());
    let again = small_gate(tmp.path());
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["embeddings_reused"], true);
    assert_eq!(
        again["mean"],
        r["mean"]
            .clone()
            .as_array()
            .map(|m| {
                // Training times differ from run to run; everything else is the same.
                let mut m = m.clone();
                for (row, new) in m.iter_mut().zip(again["mean"].as_array().unwrap()) {
                    row["train_seconds"] = new["train_seconds"].clone();
                }
                serde_json::Value::Array(m)
            })
            .unwrap()
    );
}

#[test]
fn bad_gate_input_is_a_named_error() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("prefs.jsonl");
    std::fs::write(
        &bad,
        "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n{\"prompt\": \"a\", \"chosen\": \"b\"}\n",
    )
    .unwrap();
    let minilm = common::minilm_folder();
    let o = seft(&[
        "gate",
        "--preferences",
        bad.to_str().unwrap(),
        "--embedder",
        minilm.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("prefs.jsonl:2"),
        "{err}"
    );
    let o = seft(&[
        "gate",
        "--preferences",
        bad.to_str().unwrap(),
        "--embedder",
        minilm.to_str().unwrap(),
        "--held-out-fraction",
        "0",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("held_out_fraction"),
        "{err}"
    );
}
