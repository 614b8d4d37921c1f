//! Crash-test hook. `SEFT_FAULT=<point>:<n>` kills the process with SIGKILL (no unwinding, no
//! cleanup) when it reaches `point` for the n-th time, which is what the resume tests
//! reproduce. Points: `step` (after an SFT optimizer step), `checkpoint` (in the middle of
//! writing an SFT checkpoint), `generate`, `revise` and `eval` (after a chunk of generated rows
//! is written). Inside `seft run` a point can be narrowed to one stage by prefixing the
//! stage's directory: `SEFT_FAULT=seft/iter-1/policy/step:3`. Falls back to abort where
//! `kill` is missing.

use std::sync::Mutex;

static SCOPE: Mutex<String> = Mutex::new(String::new());

/// Names the stage that is running (its directory relative to the run directory).
pub fn set_scope(scope: &str) {
    if let Ok(mut s) = SCOPE.lock() {
        *s = scope.to_string();
    }
}

pub fn fault_point(point: &str, n: usize) {
    let Ok(spec) = std::env::var("SEFT_FAULT") else {
        return;
    };
    let plain = format!("{point}:{n}");
    let scoped = SCOPE
        .lock()
        .map(|s| format!("{s}/{plain}"))
        .unwrap_or_default();
    if spec == plain || spec == scoped {
        eprintln!("SEFT_FAULT: killing this process at {spec}");
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status();
        std::process::abort();
    }
}
