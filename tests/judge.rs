//! The pairwise judge: both-order averaging makes it symmetric and blind to position.

mod common;

use seft::eval::judge::{judge_pairs, pair_by_id};
use seft::eval::judges::local::LocalJudge;

#[test]
fn swapping_the_answers_mirrors_the_preference() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny_hf_folder(dir.path(), 5);
    let model =
        seft::LanguageModel::load(dir.path().to_str().unwrap(), &burn::tensor::Device::flex())
            .unwrap();
    let judge = LocalJudge {
        model,
        label: "tiny".into(),
        batch_size: 1,
    };
    let row = |a: &str, b: &str| {
        (
            "x".to_string(),
            "say hi".to_string(),
            a.to_string(),
            b.to_string(),
        )
    };
    let (ab, _) = judge_pairs(&judge, &[row("hello there", "no")], &|_| {}).unwrap();
    let (ba, summary) = judge_pairs(&judge, &[row("no", "hello there")], &|_| {}).unwrap();
    assert!((0.0..=1.0).contains(&ab[0].p_a));
    assert!(
        (ab[0].p_a + ba[0].p_a - 1.0).abs() < 1e-6,
        "{} vs {}",
        ab[0].p_a,
        ba[0].p_a
    );
    assert_eq!(summary.pairs, 1);
    // The same answer twice is a tie whatever the judge's position bias.
    let (same, summary) = judge_pairs(&judge, &[row("hi", "hi")], &|_| {}).unwrap();
    assert!((same[0].p_a - 0.5).abs() < 1e-9);
    assert_eq!(summary.win_rate_a, 0.5);
}

#[test]
fn answer_files_are_paired_by_id() {
    let a = vec![
        serde_json::json!({"id": "1", "prompt": "p1", "response": "a1"}),
        serde_json::json!({"id": "2", "prompt": "p2", "response": "a2"}),
    ];
    let b = vec![serde_json::json!({"id": "2", "prompt": "p2", "response": "b2"})];
    let pairs = pair_by_id(&a, &b).unwrap();
    assert_eq!(
        pairs,
        vec![("2".into(), "p2".into(), "a2".into(), "b2".into())]
    );
    assert!(pair_by_id(&a, &[]).unwrap_err().contains("share no row id"));
    let bad = vec![serde_json::json!({"id": "1"})];
    assert!(pair_by_id(&bad, &a).unwrap_err().contains("'prompt'"));
}
