//! seft: self-evolution fine-tuning (SEFT) of language models, built on Burn.
//!
//! The crate loads Llama-family decoders from real checkpoints ([`model`]), generates with a
//! KV cache ([`model::generate`]), and — in later modules — trains, selects data and evaluates.

pub mod backend;
pub mod cli;
pub mod data;
pub mod error;
pub mod model;
pub mod train;

pub use backend::Backend;
pub use error::{Result, SeftError};
pub use model::LanguageModel;
