//! Resumable batched generation into a JSONL file: [`crate::data::generation`], under the name
//! the pipeline's stages use.

pub use crate::data::generation::{generate_rows, progress_bar};
