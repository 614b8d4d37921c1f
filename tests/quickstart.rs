//! The quickstart's claims (README, issue "SEFT end to end"), checked on the committed config
//! and seed: SEFT beats the starting policy by a clear margin on held-out graded prompts, the
//! identity-reviser control gains clearly less, and the reviser is adaptive (keeps correct
//! answers, fixes most wrong ones). The run takes a few minutes on 2 cores.

mod common;

#[test]
fn quickstart_seft_beats_its_start_and_the_identity_control() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("quickstart");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/quickstart.toml");
    common::success(common::seft().args(["run", config, "--out", out.to_str().unwrap()]));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let get = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {r}"));
    let (before, after, identity) = (
        get("before_accuracy"),
        get("after_accuracy"),
        get("identity_reviser_accuracy"),
    );
    let seft_gain = after - before;
    let identity_gain = identity - before;
    eprintln!("before {before:.3} after {after:.3} identity {identity:.3}");
    assert!(
        seft_gain >= 0.20 || get("win_rate_vs_start") >= 0.65,
        "SEFT gained only {seft_gain:.3}"
    );
    assert!(
        identity_gain <= seft_gain / 2.0,
        "the identity control gained {identity_gain:.3}, SEFT {seft_gain:.3}"
    );
    let e = &r["reviser_eval"];
    let kept = e["correct_kept_unchanged"].as_f64().unwrap();
    let fixed = e["not_correct_fixed"].as_f64().unwrap();
    assert!(
        kept >= 0.9,
        "reviser kept only {kept:.3} of correct answers"
    );
    assert!(
        fixed > 0.5,
        "reviser fixed only {fixed:.3} of wrong answers"
    );
    // Keep decisions stop right after the tag.
    assert!(e["mean_tokens_keep"].as_f64().unwrap() <= 8.0);
}

/// The quickstart tables README.md and experiments/seft_quickstart/README.md quote, rebuilt
/// from the committed report (experiments/seft_quickstart/report.json, the run those files
/// describe), so that a rerun that changes the numbers cannot leave stale ones in the docs.
#[test]
fn readmes_quote_the_committed_quickstart_report() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap();
    let r: serde_json::Value =
        serde_json::from_str(&read("experiments/seft_quickstart/report.json")).unwrap();
    let pct = |v: &serde_json::Value| format!("{:.1}%", 100.0 * v.as_f64().unwrap());
    let accuracy = |arm: &str, t: u64| {
        let it = r["iterations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|it| it["arm"] == arm && it["iteration"] == t)
            .unwrap();
        pct(&it["accuracy"])
    };
    let e = &r["reviser_eval"];
    let mut reviser_rows = Vec::new();
    for state in ["correct", "slip", "wrong"] {
        let c = &e["confusion"][state];
        let cells: Vec<u64> = ["keep", "minor", "major", "untagged"]
            .map(|t| c[t].as_u64().unwrap())
            .to_vec();
        let total: u64 = cells.iter().sum();
        if total > 0 {
            reviser_rows.push(format!(
                "| {state} ({total}) | {} | {} | {} | {} |",
                cells[0], cells[1], cells[2], cells[3]
            ));
        }
    }
    let reviser_sentence = format!(
        "{} of correct answers come back unchanged, {} of wrong answers come back correct; a keep costs {:.1} generated tokens",
        pct(&e["correct_kept_unchanged"]),
        pct(&e["wrong_fixed"]),
        e["mean_tokens_keep"].as_f64().unwrap()
    );
    let (start, seft, identity) = (
        pct(&r["before_accuracy"]),
        pct(&r["after_accuracy"]),
        pct(&r["identity_reviser_accuracy"]),
    );
    let (win, identity_win) = (
        pct(&r["win_rate_vs_start"]),
        pct(&r["identity_win_rate_vs_start"]),
    );
    let mut readme = vec![
        format!("| starting policy | {start} | – |"),
        format!("| **SEFT (adaptive reviser)** | **{seft}** | {win} |"),
        format!(
            "| control: identity reviser (self-training on its own answers) | {identity} | {identity_win} |"
        ),
        reviser_sentence.clone(),
    ];
    readme.extend(reviser_rows.iter().cloned());
    let mut experiment = vec![
        format!("| starting policy | {start} | – |"),
        format!("| SEFT, iteration 1 | {} | |", accuracy("seft", 1)),
        format!("| **SEFT, iteration 2 (final)** | **{seft}** | {win} |"),
        format!(
            "| control (identity reviser), iteration 1 | {} | |",
            accuracy("identity", 1)
        ),
        format!("| control (identity reviser), iteration 2 | {identity} | {identity_win} |"),
        reviser_sentence,
    ];
    experiment.extend(reviser_rows);
    for (file, lines) in [
        ("README.md", readme),
        ("experiments/seft_quickstart/README.md", experiment),
    ] {
        let text = read(file);
        for line in lines {
            assert!(
                text.contains(&line),
                "{file} does not quote the committed report: missing `{line}`"
            );
        }
    }
}

/// README's comparison table quotes the committed comparison report
/// (experiments/preference/quickstart_comparison): start, SEFT, control and each arm's best
/// sweep point.
#[test]
fn readme_quotes_the_committed_comparison_report() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap();
    let r: serde_json::Value = serde_json::from_str(&read(
        "experiments/preference/quickstart_comparison/report.json",
    ))
    .unwrap();
    let pct = |v: &serde_json::Value| format!("{:.1}%", 100.0 * v.as_f64().unwrap());
    let mut lines = vec![
        format!("| start | {} |", pct(&r["before_accuracy"])),
        format!("| SEFT (2 iterations) | {} |", pct(&r["after_accuracy"])),
        format!(
            "| identity control | {} |",
            pct(&r["identity_reviser_accuracy"])
        ),
    ];
    let points = r["baselines"].as_array().unwrap();
    let mut names: Vec<&str> = points.iter().map(|p| p["name"].as_str().unwrap()).collect();
    names.dedup();
    assert!(names.len() >= 6, "{names:?}");
    for name in names {
        let best = points
            .iter()
            .filter(|p| p["name"] == name)
            .map(|p| p["accuracy"].as_f64().unwrap())
            .fold(0.0, f64::max);
        lines.push(format!("| {name} | {} |", pct(&best.into())));
    }
    let readme = read("README.md");
    for line in lines {
        assert!(
            readme.contains(&line),
            "README.md does not quote the comparison report: missing `{line}`"
        );
    }
}
