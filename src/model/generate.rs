//! Text generation with continuous batching: each running sequence has its own KV-cache slot,
//! each step runs only the new token of every running sequence, rows that finish leave the
//! batch and waiting prompts take their slots at the next step. Sampling follows transformers'
//! order (repetition penalty, temperature, top-k, top-p) with one seeded RNG per prompt, so a
//! prompt's output does not depend on what else is in its batch.

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SeftError};
use crate::model::LanguageModel;
use crate::model::batch::Batch;
use crate::model::llama::KvCache;
use crate::model::scheduler::{Event, Scheduler, Sequence};
use crate::numeric::to_f32_vec;

/// Prompt tokens per prefill forward pass (see [`crate::model::llama::CausalLm::prefill`]).
pub const PREFILL_CHUNK: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    pub max_new_tokens: usize,
    /// End-of-sequence tokens are suppressed until this many tokens were generated.
    pub min_new_tokens: usize,
    /// 0 means greedy decoding.
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1.0 = off).
    pub top_p: f32,
    /// transformers' repetition penalty over prompt and generated tokens (1.0 = off).
    pub repetition_penalty: f32,
    pub seed: u64,
    /// Generation stops when the text contains one of these; the text is cut before it.
    pub stop_strings: Vec<String>,
    /// Generation ends as soon as the whole generated text (leading whitespace ignored) is one
    /// of these, and the text is kept: a reviser's keep tag needs nothing after it.
    pub stop_when_exactly: Vec<String>,
    /// Record each generated token's log-probability and this many most likely alternatives
    /// (an OpenAI-compatible server's `logprobs`/`top_logprobs`). Not a config-file setting.
    #[serde(skip)]
    pub top_logprobs: Option<usize>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            max_new_tokens: 256,
            min_new_tokens: 0,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: 0,
            stop_strings: Vec::new(),
            stop_when_exactly: Vec::new(),
            top_logprobs: None,
        }
    }
}

impl SamplingConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(SeftError::Invalid(msg));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(format!(
                "repetition_penalty must be > 0, got {}",
                self.repetition_penalty
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence token was generated.
    Eos,
    /// A stop string appeared.
    Stop,
    /// max_new_tokens was reached.
    Length,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Generated ids, without the final EOS token.
    pub token_ids: Vec<u32>,
    /// Decoded text (special tokens skipped), cut before any stop string.
    pub text: String,
    pub finish_reason: FinishReason,
    /// One entry per generated token when [`SamplingConfig::top_logprobs`] is set.
    pub logprobs: Vec<TokenLogprobs>,
}

/// A generated token's log-probability under the model (before temperature and filtering)
/// and the most likely tokens at that position.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprobs {
    pub token: u32,
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

/// log-softmax of one row of logits.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&x| ((x - max) as f64).exp()).sum();
    let log_z = max + sum.ln() as f32;
    logits.iter().map(|&x| x - log_z).collect()
}

/// The `k` largest entries of `logprobs`, best first (ties by lower id).
pub fn top_k(logprobs: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut order: Vec<usize> = (0..logprobs.len()).collect();
    let k = k.min(order.len());
    if k == 0 {
        return Vec::new();
    }
    order.select_nth_unstable_by(k - 1, |&a, &b| {
        logprobs[b].total_cmp(&logprobs[a]).then(a.cmp(&b))
    });
    order.truncate(k);
    order.sort_by(|&a, &b| logprobs[b].total_cmp(&logprobs[a]).then(a.cmp(&b)));
    order.into_iter().map(|i| (i as u32, logprobs[i])).collect()
}

/// Next-token logits after each prompt, prompts left-padded into one batch (one forward pass
/// per prefill chunk): what a judge reading token probabilities needs.
pub fn next_token_logits(model: &LanguageModel, prompts: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
    if prompts.iter().any(Vec::is_empty) {
        return Err(SeftError::Invalid("cannot score an empty prompt".into()));
    }
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let device = model.device();
    let vocab = model.config.vocab_size;
    let pad = model.eos_token_ids.first().copied().unwrap_or(0);
    let max_len = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut cache = KvCache::new(&model.config, prompts.len(), max_len, &device);
    let batch = Batch::left_padded(prompts, pad);
    let hidden = model.net.prefill(&batch, &mut cache, PREFILL_CHUNK);
    let logits = to_f32_vec(model.net.logits(hidden));
    Ok(logits.chunks(vocab).map(<[f32]>::to_vec).collect())
}

/// Each prompt token's log-probability after its prefix (None for the first token) with the
/// `k` most likely tokens at that position: the completions API's `echo` with `logprobs`,
/// which lm-eval's log-likelihood tasks read. Runs in prefill chunks, so the logits held at
/// once are [PREFILL_CHUNK, vocab].
pub fn prompt_logprobs(
    model: &LanguageModel,
    prompt: &[u32],
    k: usize,
) -> Result<Vec<Option<TokenLogprobs>>> {
    let context = model.config.max_position_embeddings;
    if prompt.len() > context {
        return Err(SeftError::Invalid(format!(
            "a prompt of {} tokens is longer than the model's context of {context} tokens",
            prompt.len()
        )));
    }
    let vocab = model.config.vocab_size;
    let mut out = Vec::with_capacity(prompt.len());
    out.extend(prompt.first().map(|_| None));
    let mut cache = KvCache::new(&model.config, 1, prompt.len().max(1), &model.device());
    let batch = Batch::single(prompt);
    model
        .net
        .prefill_chunks(&batch, &mut cache, PREFILL_CHUNK, |start, hidden| {
            let logits = to_f32_vec(model.net.logits(hidden));
            for (i, row) in logits.chunks(vocab).enumerate() {
                let Some(&next) = prompt.get(start + i + 1) else {
                    break;
                };
                let lp = log_softmax(row);
                out.push(Some(TokenLogprobs {
                    token: next,
                    logprob: lp.get(next as usize).copied().unwrap_or(f32::NEG_INFINITY),
                    top: top_k(&lp, k),
                }));
            }
        });
    Ok(out)
}

/// Applies transformers' processors to one row of logits and picks the next token.
pub fn sample_next(
    logits: &mut [f32],
    history: &[u32],
    cfg: &SamplingConfig,
    rng: &mut StdRng,
) -> u32 {
    if cfg.repetition_penalty != 1.0 {
        let mut seen = history.to_vec();
        seen.sort_unstable();
        seen.dedup();
        for &id in &seen {
            if let Some(x) = logits.get_mut(id as usize) {
                *x = if *x < 0.0 {
                    *x * cfg.repetition_penalty
                } else {
                    *x / cfg.repetition_penalty
                };
            }
        }
    }
    if cfg.temperature == 0.0 {
        return argmax(logits);
    }
    let t = cfg.temperature;
    logits.iter_mut().for_each(|x| *x /= t);
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let mut keep = order.len();
    if cfg.top_k > 0 {
        keep = keep.min(cfg.top_k);
    }
    let max = logits[order[0]];
    let mut probs: Vec<f64> = order[..keep]
        .iter()
        .map(|&i| ((logits[i] - max) as f64).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if cfg.top_p < 1.0 {
        // Keep tokens while the mass *before* them is below top_p (at least one).
        let mut mass = 0.0;
        let mut n = 0;
        for p in &probs {
            if mass >= cfg.top_p as f64 && n > 0 {
                break;
            }
            mass += p;
            n += 1;
        }
        probs.truncate(n);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (p, &i) in probs.iter().zip(&order) {
        acc += p;
        if u < acc {
            return i as u32;
        }
    }
    order[probs.len() - 1] as u32
}

fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as u32
}

/// Text that can be shown so far: nothing that might still become a stop string, and no
/// incomplete UTF-8 character.
fn stable_prefix_len(text: &str, stops: &[String]) -> usize {
    let mut end = text.len();
    if text.ends_with('\u{FFFD}') {
        end -= '\u{FFFD}'.len_utf8();
    }
    for stop in stops {
        for k in (1..stop.len()).rev() {
            if end >= k && text.is_char_boundary(end - k) && stop.starts_with(&text[end - k..end]) {
                end -= k;
                break;
            }
        }
    }
    end
}

/// One sequence being generated, with its own sampling settings and RNG.
pub(crate) struct Row {
    cfg: SamplingConfig,
    /// max_new_tokens, bounded by what the sequence's slot leaves after the prompt.
    max_new_tokens: usize,
    history: Vec<u32>,
    generated: Vec<u32>,
    logprobs: Vec<TokenLogprobs>,
    rng: StdRng,
    /// Bytes of the decoded text already passed to `on_text`.
    streamed: usize,
}

impl Row {
    pub(crate) fn new(
        prompt: &[u32],
        max_new_tokens: usize,
        seed: u64,
        cfg: SamplingConfig,
    ) -> Self {
        Row {
            cfg,
            max_new_tokens,
            history: prompt.to_vec(),
            generated: Vec::new(),
            logprobs: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            streamed: 0,
        }
    }

    /// Samples the next token from this row's `logits`, passes the text that became final to
    /// `on_text`, and returns the token with the finished generation when the row stops.
    pub(crate) fn step(
        &mut self,
        mut logits: Vec<f32>,
        model: &LanguageModel,
        on_text: &mut impl FnMut(&str),
    ) -> Result<(u32, Option<Generation>)> {
        let cfg = &self.cfg;
        if self.generated.len() < cfg.min_new_tokens {
            for &eos in &model.eos_token_ids {
                if let Some(x) = logits.get_mut(eos as usize) {
                    *x = f32::NEG_INFINITY;
                }
            }
        }
        let raw = cfg.top_logprobs.map(|_| log_softmax(&logits));
        let next = sample_next(&mut logits, &self.history, cfg, &mut self.rng);
        if let (Some(k), Some(raw)) = (cfg.top_logprobs, raw) {
            self.logprobs.push(TokenLogprobs {
                token: next,
                logprob: raw[next as usize],
                top: top_k(&raw, k),
            });
        }
        let is_eos = model.eos_token_ids.contains(&next);
        if !is_eos {
            self.generated.push(next);
            self.history.push(next);
        }
        let text = model.tokenizer.decode(&self.generated, true)?;
        let stop_at = cfg
            .stop_strings
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min();
        let complete = cfg
            .stop_when_exactly
            .iter()
            .any(|s| text.trim_start() == s.as_str());
        let reason = if is_eos {
            Some(FinishReason::Eos)
        } else if stop_at.is_some() || complete {
            Some(FinishReason::Stop)
        } else if self.generated.len() >= self.max_new_tokens {
            Some(FinishReason::Length)
        } else {
            None
        };
        let shown = match (reason, stop_at) {
            (_, Some(cut)) => cut,
            (Some(_), None) => text.len(),
            (None, None) => stable_prefix_len(&text, &cfg.stop_strings),
        };
        if shown > self.streamed
            && text.is_char_boundary(shown)
            && text.is_char_boundary(self.streamed)
        {
            on_text(&text[self.streamed..shown]);
            self.streamed = shown;
        }
        let done = reason.map(|reason| Generation {
            token_ids: self.generated.clone(),
            text: text[..shown].to_string(),
            finish_reason: reason,
            logprobs: std::mem::take(&mut self.logprobs),
        });
        Ok((next, done))
    }
}

/// Generates continuations of tokenized prompts, all at once. `on_text(row, delta)` receives
/// text as it becomes final (for streaming).
pub fn generate(
    model: &LanguageModel,
    prompts: &[Vec<u32>],
    cfg: &SamplingConfig,
    on_text: impl FnMut(usize, &str),
) -> Result<Vec<Generation>> {
    generate_batched(model, prompts, cfg, prompts.len(), on_text, |_, _| {})
}

/// Generates continuations of tokenized prompts with continuous batching ([`Scheduler`]): at
/// most `slots` sequences run at once, each in its own KV-cache slot; when one finishes, the
/// next prompt is prefilled into its slot and joins the running batch at the next step.
/// `on_text(row, delta)` receives text as it becomes final, `on_finish(row, generation)` each
/// finished row.
///
/// Prompt i is sampled with seed `cfg.seed + i` and each row attends only to its own slot, so
/// its tokens do not depend on the other prompts. A generation stops (finish reason `length`)
/// where the model's context ends, as vLLM does, so max_new_tokens never sizes an allocation.
pub fn generate_batched(
    model: &LanguageModel,
    prompts: &[Vec<u32>],
    cfg: &SamplingConfig,
    slots: usize,
    mut on_text: impl FnMut(usize, &str),
    mut on_finish: impl FnMut(usize, &Generation),
) -> Result<Vec<Generation>> {
    cfg.validate()?;
    if prompts.iter().any(Vec::is_empty) {
        return Err(SeftError::Invalid(
            "cannot generate from an empty prompt".into(),
        ));
    }
    let context = model.config.max_position_embeddings;
    if let Some(len) = prompts.iter().map(Vec::len).filter(|&n| n >= context).max() {
        return Err(SeftError::Invalid(format!(
            "a prompt of {len} tokens leaves no room in the model's context of {context} tokens (max_position_embeddings)"
        )));
    }
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let capacity = prompts
        .iter()
        .map(|p| p.len() + cfg.max_new_tokens.clamp(1, context - p.len()))
        .max()
        .unwrap_or(1);
    let mut scheduler = Scheduler::new(model, slots.clamp(1, prompts.len()), capacity);
    let mut outputs: Vec<Option<Generation>> = vec![None; prompts.len()];
    let mut failure = None;
    let mut sink = |event: Event<'_>| match event {
        Event::Text { id, delta } => on_text(id as usize, delta),
        Event::Finished { id, generation } => {
            on_finish(id as usize, &generation);
            outputs[id as usize] = Some(generation);
        }
        Event::Failed { error, .. } => {
            failure.get_or_insert(error);
        }
    };
    let mut queue = prompts.iter().enumerate();
    loop {
        let joining: Vec<Sequence> = queue
            .by_ref()
            .take(scheduler.free_slots())
            .map(|(index, prompt)| Sequence {
                id: index as u64,
                prompt: prompt.clone(),
                cfg: cfg.clone(),
                seed: cfg.seed.wrapping_add(index as u64),
            })
            .collect();
        scheduler.admit_all(joining, &mut sink)?;
        if scheduler.running() == 0 {
            break;
        }
        scheduler.step(&mut sink);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(outputs
        .into_iter()
        .map(|o| o.expect("every row finishes"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_ignores_rng_and_takes_argmax() {
        let cfg = SamplingConfig::default();
        let mut rng = StdRng::seed_from_u64(0);
        let mut logits = vec![0.1, 2.0, -1.0, 1.9];
        assert_eq!(sample_next(&mut logits, &[], &cfg, &mut rng), 1);
    }

    #[test]
    fn repetition_penalty_demotes_seen_tokens() {
        let cfg = SamplingConfig {
            repetition_penalty: 2.0,
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(0);
        let mut logits = vec![0.0, 2.0, 1.5];
        assert_eq!(sample_next(&mut logits, &[1], &cfg, &mut rng), 2);
        assert_eq!(logits[1], 1.0);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_keeps_the_head() {
        let mut rng = StdRng::seed_from_u64(7);
        let k1 = SamplingConfig {
            temperature: 1.0,
            top_k: 1,
            ..Default::default()
        };
        let p = SamplingConfig {
            temperature: 1.0,
            top_p: 0.5,
            ..Default::default()
        };
        for _ in 0..50 {
            let mut logits = vec![0.0, 3.0, 2.9, -5.0];
            assert_eq!(sample_next(&mut logits, &[], &k1, &mut rng), 1);
            // p(1) ≈ 0.51 ≥ 0.5, so top-p keeps only token 1.
            let mut logits = vec![0.0, 3.0, 2.9, -5.0];
            assert_eq!(sample_next(&mut logits, &[], &p, &mut rng), 1);
        }
    }

    #[test]
    fn sampling_is_reproducible_and_follows_probabilities() {
        let cfg = SamplingConfig {
            temperature: 1.0,
            ..Default::default()
        };
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..2000)
                .map(|_| sample_next(&mut [0.0, (3f32).ln()], &[], &cfg, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        let ones = draw(3).iter().filter(|&&t| t == 1).count() as f64 / 2000.0;
        assert!((ones - 0.75).abs() < 0.04, "p(1) = {ones}, expected 0.75");
    }

    #[test]
    fn streaming_holds_back_possible_stop_prefixes() {
        let stops = vec!["</end>".to_string()];
        assert_eq!(stable_prefix_len("hello </e", &stops), 6);
        assert_eq!(stable_prefix_len("hello", &stops), 5);
        assert_eq!(stable_prefix_len("ab\u{FFFD}", &[]), 2);
    }
}
