//! The programs in examples/, run the way a library user runs them: each test calls the
//! example's entry point (the function its `main` prints the result of) and checks one claim
//! about that result.

#[allow(dead_code)]
#[path = "../examples/sft_from_rust.rs"]
mod sft_from_rust;

#[allow(dead_code)]
#[path = "../examples/seft_from_rust.rs"]
mod seft_from_rust;

#[allow(dead_code)]
#[path = "../examples/kmeans_npy.rs"]
mod kmeans_npy;

#[test]
fn sft_from_rust_lowers_the_training_loss() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = sft_from_rust::run(dir.path()).unwrap();
    let (first, last) = outcome.loss_ends();
    assert_eq!(outcome.steps, 60);
    assert!(last < 0.5 * first, "first loss {first}, last {last}");
    assert!(outcome.model_dir.join("model.safetensors").exists());
}

#[test]
fn seft_from_rust_reports_one_iteration_graded_on_the_held_out_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let report = seft_from_rust::run_small(&dir.path().join("run")).unwrap();
    assert_eq!(report.iterations.len(), 1);
    assert_eq!(report.iterations[0].revisions.rows, 100);
    assert_eq!(
        report.evals.iter().map(|e| e.prompts).collect::<Vec<_>>(),
        [60, 60]
    );
    assert!(report.before_accuracy.is_some() && report.after_accuracy.is_some());
    assert!(dir.path().join("run/report.json").exists());
}

#[test]
fn kmeans_npy_recovers_three_separated_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blobs.npy");
    seft::select::synthetic::gaussian_blobs(3000, 16, 3, 7)
        .unwrap()
        .write_npy(&path)
        .unwrap();
    let (sizes, cost) = kmeans_npy::run(&path, 3).unwrap();
    assert_eq!(sizes, [1000, 1000, 1000]);
    // Unit-variance noise in 16 dimensions: about 16 per point around the right centers.
    assert!(cost / 3000.0 < 20.0, "cost per point {}", cost / 3000.0);
}

#[allow(dead_code)]
#[path = "../examples/alpaca_metrics.rs"]
mod alpaca_metrics;

#[test]
fn alpaca_metrics_of_hand_made_annotations_are_the_hand_computed_ones() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/alpaca_annotations/annotations.json");
    let (w, length) = alpaca_metrics::run(&file).unwrap();
    // See tests/fixtures/alpaca_annotations/README.md for the arithmetic.
    assert_eq!(w.n_total, 7);
    assert!((w.win_rate - 50.0).abs() < 1e-9, "{w:?}");
    assert_eq!((w.n_wins, w.n_wins_base, w.n_draws), (3, 3, 1));
    assert!((w.discrete_win_rate - 50.0).abs() < 1e-9, "{w:?}");
    assert!(length > 0);
}

#[allow(dead_code)]
#[path = "../examples/ifeval_check.rs"]
mod ifeval_check;

#[test]
fn ifeval_check_tells_strict_from_loose() {
    // Followed once the markdown asterisks are gone: loose only.
    let (strict, loose) = ifeval_check::run(
        "startend:end_checker",
        r#"{"end_phrase": "Bye."}"#,
        "Hi.\n**Bye.**",
    )
    .unwrap();
    assert!(!strict && loose);
    let (strict, loose) = ifeval_check::run(
        "length_constraints:number_words",
        r#"{"relation": "at least", "num_words": 5}"#,
        "one two three four",
    )
    .unwrap();
    assert!(!strict && !loose);
    assert!(ifeval_check::run("keywords:telepathy", "{}", "x").is_err());
}
