//! IFEval's checkers from Rust: one verifiable instruction (an id from IFEval's registry and
//! its kwargs, as in IFEval's input_data.jsonl) checked against a response, strictly and
//! loosely (the loose check also accepts the response without its first or last line, or
//! without markdown asterisks). The whole benchmark is `seft eval ifeval`.
//!
//!     cargo run --release --example ifeval_check -- length_constraints:number_words \
//!         '{"relation": "at least", "num_words": 5}' "one two three four five six"

use seft::eval::ifeval::{IfevalPrompt, Instruction, judge};

/// (strict, loose) verdicts of `response` on the instruction `id` with `kwargs` (JSON).
pub fn run(id: &str, kwargs: &str, response: &str) -> seft::Result<(bool, bool)> {
    let kwargs: serde_json::Value = serde_json::from_str(kwargs)
        .map_err(|e| seft::SeftError::Invalid(format!("kwargs are not JSON: {e}")))?;
    let instruction =
        Instruction::parse(id, &kwargs).map_err(|e| seft::SeftError::Invalid(e.to_string()))?;
    let prompt = IfevalPrompt {
        key: 0,
        prompt: String::new(),
        instruction_ids: vec![id.to_string()],
        instructions: vec![instruction],
    };
    let verdict = judge(&prompt, response);
    Ok((
        verdict.follow_all_instructions_strict,
        verdict.follow_all_instructions_loose,
    ))
}

fn main() -> seft::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [id, kwargs, response] = args.as_slice() else {
        return Err(seft::SeftError::Invalid(
            "usage: ifeval_check INSTRUCTION_ID KWARGS_JSON RESPONSE".into(),
        ));
    };
    let (strict, loose) = run(id, kwargs, response)?;
    println!("{id}: strict {strict}, loose {loose}");
    Ok(())
}
