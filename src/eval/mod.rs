//! Evaluation: AlpacaEval 2.0-style win rates against a reference ([`alpaca`]), judges behind
//! one trait, local or over HTTP ([`judges`]), and a local model's pairwise preference read
//! from its next-token logits ([`judge`]).

pub mod alpaca;
pub mod judge;
pub mod judges;
pub mod mt_bench;
