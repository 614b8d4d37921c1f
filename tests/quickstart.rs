//! The quickstart's claims (README, issue "SEFT end to end"), checked on the committed config
//! and seed: SEFT beats the starting policy by a clear margin on held-out graded prompts, the
//! identity-reviser control gains clearly less, and the reviser is adaptive (keeps correct
//! answers, fixes most wrong ones). The run takes a few minutes on 2 cores.

use std::process::Command;

#[test]
fn quickstart_seft_beats_its_start_and_the_identity_control() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("quickstart");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/quickstart.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_seft"))
        .args(["run", config, "--out", out.to_str().unwrap()])
        .env_remove("SEFT_FAULT")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
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
