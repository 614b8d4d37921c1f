//! Training data as people have it: Alpaca, messages/ShareGPT, prompt/completion, preference
//! pairs and Anthropic HH dialogues, in JSON or JSONL (optionally gzipped), from a local path or
//! a Hugging Face hub dataset repo. Every row becomes a [`Record`]; a malformed row is an error
//! naming `file:line` and the reason, or, with `skip_bad_rows`, is skipped and counted.

mod formats;
pub mod generation;
pub mod jsonl;
mod read;

pub use formats::{Preference, Record, parse_hh_dialogue, parse_prompt, parse_row};
pub use read::{
    DEFAULT_MAX_FILE_MIB, DEFAULT_MAX_ROW_MIB, ReadOptions, ReadReport, read_preferences,
    read_prompts, read_records, read_text, resolve_dataset,
};
