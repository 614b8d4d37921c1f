//! Evaluation: AlpacaEval 2.0-style win rates against a reference ([`alpaca`]), MT-Bench
//! single-answer grading ([`mt_bench`]), IFEval's rule-checked instruction following
//! ([`ifeval`]), one table of all three ([`leaderboard`]), judges behind one
//! trait, local or over HTTP ([`judges`]), pairwise preferences between two answer files
//! ([`judge`]), and where the benchmark files come from ([`data_source`]).
//!
//! Each benchmark has a `run` entry point taking typed options, so a Rust program evaluates
//! exactly as `seft eval` does.

pub mod alpaca;
pub mod data_source;
pub mod ifeval;
pub mod judge;
pub mod judges;
pub mod leaderboard;
pub mod mt_bench;
