//! seft: self-evolution fine-tuning (SEFT) of language models, built on Burn.
//!
//! The crate loads Llama-family decoders from real checkpoints ([`model`]), generates with a
//! KV cache ([`model::generate`]), fine-tunes them ([`train`]) and runs self-evolution
//! fine-tuning ([`evolution`]): an adaptive reviser improves the policy's own answers, and the policy
//! is trained on the improved versions.

pub mod backend;
pub mod cli;
pub mod data;
pub mod embed;
pub mod error;
pub mod eval;
pub mod evolution;
pub mod fault;
pub mod fused;
pub mod input;
pub mod memory;
pub mod model;
pub mod numeric;
pub mod ownership;
pub mod select;
pub mod serve;
pub mod sparse;
pub mod train;

pub use backend::Backend;
pub use error::{Result, SeftError};
pub use model::LanguageModel;
