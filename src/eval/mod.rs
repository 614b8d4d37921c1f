//! Evaluation of policies' answers by a judge model. For now one judge: a local model's
//! pairwise preference read from its next-token logits ([`judge`]).

pub mod judge;
