//! Preference optimization on the SFT engine: DPO and its family, with TRL's definitions.
//!
//! A pair is one prompt with a chosen and a rejected completion, tokenized as two rows that
//! share the prompt; only the completion's tokens are targets. A micro-batch of n pairs is one
//! forward pass over 2n rows (the chosen rows first, as TRL's concatenated forward), which
//! gives each row's log π(y|x) = Σ log p(target) over its completion tokens, averaged per
//! completion token for ipo, simpo and orpo. With
//! Δ = (log π_c − log π_r) − (log π_ref,c − log π_ref,r):
//!
//! - `dpo` (TRL's `sigmoid`; Rafailov et al. 2023, arXiv 2305.18290; ε is cDPO's label
//!   smoothing): −(1−ε)·log σ(βΔ) − ε·log σ(−βΔ)
//! - `robust` (Chowdhury et al. 2024, arXiv 2403.00409): (−(1−ε)·log σ(βΔ) + ε·log σ(−βΔ)) / (1−2ε)
//! - `ipo` (Azar et al. 2023, arXiv 2310.12036): (Δ − 1/(2β))²
//! - `simpo` (Meng et al. 2024, arXiv 2405.14734; no reference): with
//!   z = β·(avg_c − avg_r) − γ, −(1−ε)·log σ(z) − ε·log σ(−z)
//! - `orpo` (Hong et al. 2024, arXiv 2403.07691; no reference): NLL(chosen) − β·log σ(ℓ_c − ℓ_r)
//!   with the log-odds ℓ = avg − log(1 − exp(avg)); the NLL is the mean over the chosen
//!   completion tokens.
//!
//! Pair terms are averaged over the pairs of the accumulated step and ORPO's NLL over the
//! chosen tokens of the step, so splitting a step into micro-batches changes nothing. The
//! rewards are logged as TRL logs them: β·(log π − log π_ref) for the reference-based losses,
//! β·log π (averaged) for simpo and orpo.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Tensor, TensorData};
use serde_json::{Map, Value, json};

use crate::data::Preference;
use crate::error::Result;
use crate::model::TextTokenizer;
use crate::model::llama::CausalLm;
use crate::numeric::to_f32_vec;
use crate::train::batch::collate;
use crate::train::loss::scalar;
use crate::train::params::{PreferenceLoss, PreferenceLossKind};
use crate::train::tokenize::{TokenizedExample, tokenize_completion};

/// One preference pair as token rows sharing the prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedPair {
    pub chosen: TokenizedExample,
    pub rejected: TokenizedExample,
    /// Summed completion log-probabilities of (chosen, rejected) under the reference model,
    /// once computed (before training with `precompute_ref`, else at each step).
    pub reference: Option<[f64; 2]>,
}

impl TokenizedPair {
    /// The longer row's length (what batching by length sorts on).
    pub fn len(&self) -> usize {
        self.chosen.ids.len().max(self.rejected.ids.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens of both rows (padding excluded).
    pub fn n_tokens(&self) -> usize {
        self.chosen.ids.len() + self.rejected.ids.len()
    }
}

/// Why a well-formed pair is not trained on (counted in the data summary, not an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairSkip {
    /// Chosen and rejected are the same text (or the same tokens once cut to `max_len`): Δ is 0
    /// whatever the weights.
    Identical,
    /// The prompt fills `max_len`, so a completion has no token left after truncation.
    NoTarget,
}

/// Tokenizes a pair with targets on the completions only. Returns the pair and whether a row
/// was truncated to `max_len`, or why it is skipped.
pub fn tokenize_pair(
    tok: &TextTokenizer,
    pref: &Preference,
    max_len: usize,
) -> Result<std::result::Result<(TokenizedPair, bool), PairSkip>> {
    if pref.chosen == pref.rejected {
        return Ok(Err(PairSkip::Identical));
    }
    let (chosen, cut_c) = tokenize_completion(tok, &pref.prompt, &pref.chosen, max_len)?;
    let (rejected, cut_r) = tokenize_completion(tok, &pref.prompt, &pref.rejected, max_len)?;
    if chosen.n_targets() == 0 || rejected.n_targets() == 0 {
        return Ok(Err(PairSkip::NoTarget));
    }
    // Different completions can still be cut to the same tokens by max_len.
    if chosen == rejected {
        return Ok(Err(PairSkip::Identical));
    }
    let pair = TokenizedPair {
        chosen,
        rejected,
        reference: None,
    };
    Ok(Ok((pair, cut_c || cut_r)))
}

/// The rows of a micro-batch of pairs: every chosen row, then every rejected row.
fn pair_rows<'a>(pairs: &[&'a TokenizedPair]) -> Vec<&'a TokenizedExample> {
    let chosen = pairs.iter().map(|p| &p.chosen);
    chosen.chain(pairs.iter().map(|p| &p.rejected)).collect()
}

/// Σ log p(target) over each row's target tokens (with gradient when `net` has one), and
/// each row's target count.
pub fn sequence_log_probs(
    net: &CausalLm,
    rows: &[&TokenizedExample],
    pad_id: u32,
) -> (Tensor<1>, Vec<usize>) {
    let batch = collate(rows, pad_id);
    let logits = net.forward(&batch.input);
    let [b, t, v] = logits.dims();
    let nll = crate::fused::token_nll_per_row(logits.reshape([b * t, v]), &batch.targets);
    let sums = nll.reshape([b, t]).sum_dim(1).reshape([b]).neg();
    (sums, rows.iter().map(|r| r.n_targets()).collect())
}

/// The reference model's summed completion log-probabilities of each pair, (chosen, rejected).
pub fn reference_log_probs(
    reference: &CausalLm,
    pairs: &[&TokenizedPair],
    pad_id: u32,
) -> Vec<[f64; 2]> {
    let (sums, _) = sequence_log_probs(reference, &pair_rows(pairs), pad_id);
    let values = to_f32_vec(sums);
    let n = pairs.len();
    (0..n)
        .map(|i| [values[i] as f64, values[n + i] as f64])
        .collect()
}

/// Sums of the per-pair quantities TRL logs, over the pairs (and chosen tokens) seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreferenceStats {
    pub pairs: usize,
    /// Σ of the per-pair loss terms (ORPO's NLL excluded).
    pub pair_loss: f64,
    pub chosen_rewards: f64,
    pub rejected_rewards: f64,
    /// Pairs whose chosen reward is strictly above the rejected one.
    pub correct: usize,
    pub chosen_logps: f64,
    pub rejected_logps: f64,
    /// ORPO: −Σ log p over the chosen completion tokens, and their count.
    pub chosen_nll: f64,
    pub chosen_tokens: usize,
    /// ORPO: Σ log σ(ℓ_c − ℓ_r).
    pub log_odds_ratio: f64,
}

impl PreferenceStats {
    fn add(&mut self, other: &PreferenceStats) {
        self.pairs += other.pairs;
        self.pair_loss += other.pair_loss;
        self.chosen_rewards += other.chosen_rewards;
        self.rejected_rewards += other.rejected_rewards;
        self.correct += other.correct;
        self.chosen_logps += other.chosen_logps;
        self.rejected_logps += other.rejected_logps;
        self.chosen_nll += other.chosen_nll;
        self.chosen_tokens += other.chosen_tokens;
        self.log_odds_ratio += other.log_odds_ratio;
    }

    /// The objective's value over these pairs: mean pair term, plus ORPO's mean chosen NLL.
    pub fn loss(&self, kind: PreferenceLossKind) -> f64 {
        let pairs = self.pairs.max(1) as f64;
        let nll = match kind {
            PreferenceLossKind::Orpo => self.chosen_nll / self.chosen_tokens.max(1) as f64,
            _ => 0.0,
        };
        self.pair_loss / pairs + nll
    }

    /// TRL's metric names (`rewards/chosen`, ...), means over the pairs, each prefixed (""
    /// for training, "eval_" for held-out pairs).
    pub fn metrics(&self, kind: PreferenceLossKind, prefix: &str) -> Map<String, Value> {
        let n = self.pairs.max(1) as f64;
        let mut m = Map::new();
        let mut put = |k: &str, v: f64| {
            m.insert(format!("{prefix}{k}"), json!(v));
        };
        put("loss", self.loss(kind));
        put("rewards/chosen", self.chosen_rewards / n);
        put("rewards/rejected", self.rejected_rewards / n);
        put("rewards/accuracies", self.correct as f64 / n);
        put(
            "rewards/margins",
            (self.chosen_rewards - self.rejected_rewards) / n,
        );
        put("logps/chosen", self.chosen_logps / n);
        put("logps/rejected", self.rejected_logps / n);
        if kind == PreferenceLossKind::Orpo {
            put(
                "nll_loss",
                self.chosen_nll / self.chosen_tokens.max(1) as f64,
            );
            put("log_odds_ratio", self.log_odds_ratio / n);
        }
        m
    }
}

/// Per-pair loss terms `[n]` of a micro-batch from its rows' summed log-probabilities
/// `sums` `[2n]` (chosen first), with the host-side statistics of those pairs.
pub fn pair_terms(
    loss: PreferenceLoss,
    sums: Tensor<1>,
    counts: &[usize],
    references: &[[f64; 2]],
) -> (Tensor<1>, PreferenceStats) {
    let n = counts.len() / 2;
    let device = sums.device();
    let kind = loss.kind;
    let (beta, eps) = (loss.beta, loss.label_smoothing);
    let average = kind.averages_log_probs();
    let per_token = |i: usize| {
        if average {
            counts[i].max(1) as f64
        } else {
            1.0
        }
    };
    let floats = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [n]), &device);
    let logps = if average {
        let lengths: Vec<f32> = counts.iter().map(|&c| c.max(1) as f32).collect();
        sums.clone() / Tensor::<1>::from_data(TensorData::new(lengths, [2 * n]), &device)
    } else {
        sums.clone()
    };
    let chosen = logps.clone().slice(0..n);
    let rejected = logps.slice(n..2 * n);
    let sigmoid_terms = |z: Tensor<1>| {
        log_sigmoid(z.clone()).mul_scalar(-(1.0 - eps)) - log_sigmoid(z.neg()).mul_scalar(eps)
    };
    let terms = match kind {
        PreferenceLossKind::Dpo | PreferenceLossKind::Robust | PreferenceLossKind::Ipo => {
            let ref_ratio: Vec<f32> = references
                .iter()
                .enumerate()
                .map(|(i, r)| (r[0] / per_token(i) - r[1] / per_token(n + i)) as f32)
                .collect();
            let delta = (chosen - rejected) - floats(ref_ratio);
            match kind {
                PreferenceLossKind::Dpo => sigmoid_terms(delta.mul_scalar(beta)),
                PreferenceLossKind::Robust => {
                    let z = delta.mul_scalar(beta);
                    (log_sigmoid(z.clone()).mul_scalar(-(1.0 - eps))
                        + log_sigmoid(z.neg()).mul_scalar(eps))
                    .div_scalar(1.0 - 2.0 * eps)
                }
                _ => (delta - 1.0 / (2.0 * beta)).powi_scalar(2),
            }
        }
        PreferenceLossKind::Simpo => {
            let z = (chosen - rejected).sub_scalar(loss.simpo_gamma / beta);
            sigmoid_terms(z.mul_scalar(beta))
        }
        PreferenceLossKind::Orpo => {
            let log_odds = |x: Tensor<1>| x.clone() - x.exp().neg().log1p();
            log_sigmoid(log_odds(chosen) - log_odds(rejected)).mul_scalar(-beta)
        }
    };
    // The same quantities on the host, for the logged metrics.
    let values: Vec<f64> = to_f32_vec(sums.detach())
        .into_iter()
        .map(f64::from)
        .collect();
    let mut stats = PreferenceStats {
        pairs: n,
        pair_loss: scalar(terms.clone().detach().sum()),
        ..Default::default()
    };
    for i in 0..n {
        let (c, r) = (values[i] / per_token(i), values[n + i] / per_token(n + i));
        let (reward_c, reward_r) = if kind.uses_reference() {
            let reference = references[i];
            (
                beta * (c - reference[0] / per_token(i)),
                beta * (r - reference[1] / per_token(n + i)),
            )
        } else {
            (beta * c, beta * r)
        };
        stats.chosen_rewards += reward_c;
        stats.rejected_rewards += reward_r;
        stats.correct += usize::from(reward_c > reward_r);
        stats.chosen_logps += c;
        stats.rejected_logps += r;
        stats.chosen_nll -= values[i];
        stats.chosen_tokens += counts[i];
        if kind == PreferenceLossKind::Orpo {
            let log_odds = |x: f64| x - (-x.exp()).ln_1p();
            let z = log_odds(c) - log_odds(r);
            stats.log_odds_ratio += -(-z).exp().ln_1p();
        }
    }
    (terms, stats)
}

/// The reference log-probabilities of these pairs: computed now by `reference` when given,
/// else those stored in the pairs (precomputed); zeros for the reference-free losses.
fn references_of(
    pairs: &[&TokenizedPair],
    loss: PreferenceLoss,
    reference: Option<&CausalLm>,
    pad_id: u32,
) -> Vec<[f64; 2]> {
    if !loss.kind.uses_reference() {
        return vec![[0.0; 2]; pairs.len()];
    }
    if let Some(net) = reference {
        return reference_log_probs(net, pairs, pad_id);
    }
    pairs
        .iter()
        .map(|p| {
            p.reference.expect(
                "reference log-probabilities are precomputed when no reference model is held",
            )
        })
        .collect()
}

/// Forward + backward over one optimizer step's micro-batches of pairs; returns the
/// accumulated gradients, the step's loss, its statistics and its token count. `reference`
/// (a frozen model, `no_grad`) computes the reference log-probabilities of each
/// micro-batch; without it they come from the pairs (precomputed).
pub fn accumulate_pair_step(
    net: &CausalLm,
    reference: Option<&CausalLm>,
    pairs: &[TokenizedPair],
    micro_batches: &[Vec<usize>],
    pad_id: u32,
    loss: PreferenceLoss,
) -> (GradientsParams, f64, PreferenceStats, usize) {
    let total_pairs: usize = micro_batches.iter().map(Vec::len).sum();
    let chosen_tokens: usize = micro_batches
        .iter()
        .flatten()
        .map(|&i| pairs[i].chosen.n_targets())
        .sum();
    let mut acc = GradientsAccumulator::<CausalLm>::new();
    let (mut loss_sum, mut tokens) = (0.0, 0usize);
    let mut stats = PreferenceStats::default();
    for mb in micro_batches {
        let batch: Vec<&TokenizedPair> = mb.iter().map(|&i| &pairs[i]).collect();
        tokens += batch.iter().map(|p| p.n_tokens()).sum::<usize>();
        let (sums, counts) = sequence_log_probs(net, &pair_rows(&batch), pad_id);
        let references = references_of(&batch, loss, reference, pad_id);
        let (terms, mb_stats) = pair_terms(loss, sums.clone(), &counts, &references);
        stats.add(&mb_stats);
        let mut total = terms.sum() / total_pairs.max(1) as f64;
        if loss.kind == PreferenceLossKind::Orpo {
            let nll = sums.slice(0..batch.len()).sum().neg();
            total = total + nll / chosen_tokens.max(1) as f64;
        }
        loss_sum += scalar(total.clone().detach());
        let grads = GradientsParams::from_grads(total.backward(), net);
        acc.accumulate(net, grads);
    }
    (acc.grads(), loss_sum, stats, tokens)
}

/// Statistics of held-out pairs under `net`, without gradients (references as in training).
pub fn evaluate_pairs(
    net: &CausalLm,
    reference: Option<&CausalLm>,
    pairs: &[TokenizedPair],
    micro_batch: usize,
    pad_id: u32,
    loss: PreferenceLoss,
) -> PreferenceStats {
    // Untracked on the training device: the same kernels as the training forward.
    let net = net.clone().no_grad();
    let mut stats = PreferenceStats::default();
    for chunk in pairs.chunks(micro_batch.max(1)) {
        let batch: Vec<&TokenizedPair> = chunk.iter().collect();
        let (sums, counts) = sequence_log_probs(&net, &pair_rows(&batch), pad_id);
        let references = references_of(&batch, loss, reference, pad_id);
        stats.add(&pair_terms(loss, sums, &counts, &references).1);
    }
    stats
}
