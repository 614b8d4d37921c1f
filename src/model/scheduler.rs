//! The continuous-batching scheduler every generation goes through (`seft generate`, the SEFT
//! stages, the local judges, `seft serve`): a fixed pool of KV-cache slots, each holding one
//! running sequence; a sequence is admitted into a free slot (its prompt prefilled alone and
//! copied in, its first token sampled), every [`Scheduler::step`] runs one decode step over all
//! running sequences at once, and a sequence that finishes or is cancelled frees its slot for
//! the next one at the following step. Each sequence carries its own sampling settings and RNG,
//! so requests with different settings share a batch, and a sequence's tokens do not depend on
//! what else runs beside it (up to float rounding where the batch's row count changes a matrix
//! product's kernel).
//!
//! The pool is allocated once (`slots × capacity` positions per layer); nothing grows per
//! token. A sequence stops (finish reason `length`) where its slot or the model's context ends,
//! so a requested `max_new_tokens` never sizes an allocation.

use crate::error::{Result, SeftError};
use crate::model::LanguageModel;
use crate::model::batch::Batch;
use crate::model::generate::{Generation, PREFILL_CHUNK, Row, SamplingConfig};
use crate::model::llama::{KvCache, SlotCache};
use crate::numeric::to_f32_vec;
use burn::tensor::Tensor;

/// One sequence to generate: `id` names it in the events, `seed` seeds its sampling RNG.
#[derive(Debug, Clone)]
pub struct Sequence {
    pub id: u64,
    pub prompt: Vec<u32>,
    pub cfg: SamplingConfig,
    pub seed: u64,
}

/// What a step produced for one sequence.
#[derive(Debug)]
pub enum Event<'a> {
    /// Text that became final (nothing that could still turn into a stop string).
    Text { id: u64, delta: &'a str },
    /// The sequence finished; its slot is free again.
    Finished { id: u64, generation: Generation },
    /// The sequence failed (its tokens could not be decoded); its slot is free again.
    Failed { id: u64, error: SeftError },
}

/// A sequence in the running batch: its row, its cache slot, how many positions the slot
/// holds, and the token to feed next.
struct Running {
    id: u64,
    row: Row,
    slot: usize,
    cached: usize,
    next: u32,
}

pub struct Scheduler<'m> {
    model: &'m LanguageModel,
    cache: SlotCache,
    capacity: usize,
    free: Vec<usize>,
    running: Vec<Running>,
}

impl<'m> Scheduler<'m> {
    /// A pool of `slots` KV-cache slots of `capacity` positions each (prompt + answer),
    /// bounded by the model's context.
    pub fn new(model: &'m LanguageModel, slots: usize, capacity: usize) -> Self {
        let slots = slots.max(1);
        let capacity = capacity.clamp(1, model.config.max_position_embeddings.max(1));
        Scheduler {
            model,
            cache: SlotCache::new(&model.config, slots, capacity, &model.device()),
            capacity,
            free: (0..slots).rev().collect(),
            running: Vec::with_capacity(slots),
        }
    }

    /// Positions per slot: the longest prompt + answer a sequence can have.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn free_slots(&self) -> usize {
        self.free.len()
    }

    /// Sequences in the running batch.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Ids of the running sequences.
    pub fn running_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.running.iter().map(|r| r.id)
    }

    /// Prefills the prompts of `seqs` (at most [`Self::free_slots`]) in one right-padded batch,
    /// copies each into a free slot and samples each one's first token: each sequence joins the
    /// running batch, or finishes at once (an end-of-sequence first token, max_new_tokens 1).
    /// A sequence that cannot run (an empty prompt, one too long for a slot, invalid sampling
    /// settings) gets [`Event::Failed`]; the others go on.
    pub fn admit_all(
        &mut self,
        seqs: Vec<Sequence>,
        sink: &mut impl FnMut(Event<'_>),
    ) -> Result<()> {
        if seqs.len() > self.free.len() {
            return Err(SeftError::Invalid(format!(
                "{} sequences to admit into {} free KV-cache slots",
                seqs.len(),
                self.free.len()
            )));
        }
        let capacity = self.capacity;
        let mut ready = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let problem = if seq.prompt.is_empty() {
                Some("cannot generate from an empty prompt".to_string())
            } else if seq.prompt.len() >= capacity {
                Some(format!(
                    "a prompt of {} tokens leaves no room in a sequence of at most {capacity} tokens",
                    seq.prompt.len()
                ))
            } else {
                seq.cfg.validate().err().map(|e| e.to_string())
            };
            match problem {
                Some(message) => sink(Event::Failed {
                    id: seq.id,
                    error: SeftError::Invalid(message),
                }),
                None => ready.push(seq),
            }
        }
        if ready.is_empty() {
            return Ok(());
        }
        let model = self.model;
        let prompts: Vec<&[u32]> = ready.iter().map(|s| s.prompt.as_slice()).collect();
        let width = prompts.iter().map(|p| p.len()).max().unwrap_or(1);
        let mut prefilled = KvCache::new(&model.config, prompts.len(), width, &model.device());
        let hidden = self.prefill_last_positions(&prompts, width, &mut prefilled);
        let logits = to_f32_vec(model.net.logits(hidden));
        let vocab = model.config.vocab_size;
        for (r, seq) in ready.into_iter().enumerate() {
            let Sequence {
                id,
                prompt,
                cfg,
                seed,
            } = seq;
            let slot = self.free.pop().expect("a free slot per admitted sequence");
            self.cache.admit(slot, &prefilled, r, prompt.len());
            let limit = cfg.max_new_tokens.min(capacity - prompt.len());
            let mut row = Row::new(&prompt, limit, seed, cfg);
            let row_logits = logits[r * vocab..(r + 1) * vocab].to_vec();
            match row.step(row_logits, model, &mut |delta| {
                sink(Event::Text { id, delta })
            }) {
                Err(error) => {
                    self.free.push(slot);
                    sink(Event::Failed { id, error });
                }
                Ok((_, Some(generation))) => {
                    self.free.push(slot);
                    sink(Event::Finished { id, generation });
                }
                Ok((next, None)) => self.running.push(Running {
                    id,
                    row,
                    slot,
                    cached: prompt.len(),
                    next,
                }),
            }
        }
        Ok(())
    }

    /// Runs right-padded prompts through the model in prefill chunks, filling `cache`, and
    /// returns each prompt's final hidden state at its last real position, [rows, 1, hidden].
    /// Padding comes after each prompt, so causal attention keeps it out of the real positions.
    fn prefill_last_positions(
        &self,
        prompts: &[&[u32]],
        width: usize,
        cache: &mut KvCache,
    ) -> Tensor<3> {
        let net = &self.model.net;
        if let [prompt] = prompts {
            return net.prefill(&Batch::single(prompt), cache, PREFILL_CHUNK);
        }
        let pad = self.model.eos_token_ids.first().copied().unwrap_or(0);
        let batch = Batch::right_padded(prompts, width, pad);
        let mut last: Vec<Option<Tensor<3>>> = vec![None; prompts.len()];
        net.prefill_chunks(&batch, cache, PREFILL_CHUNK, |start, hidden| {
            let [_, n, h] = hidden.dims();
            for (r, prompt) in prompts.iter().enumerate() {
                let at = prompt.len() - 1;
                if (start..start + n).contains(&at) {
                    let i = at - start;
                    last[r] = Some(hidden.clone().slice([r..r + 1, i..i + 1, 0..h]));
                }
            }
        });
        Tensor::cat(
            last.into_iter()
                .map(|t| t.expect("every prompt ends inside the batch"))
                .collect(),
            0,
        )
    }

    /// One decode step over every running sequence; returns how many tokens it produced.
    pub fn step(&mut self, sink: &mut impl FnMut(Event<'_>)) -> usize {
        if self.running.is_empty() {
            return 0;
        }
        let model = self.model;
        let vocab = model.config.vocab_size;
        let ids: Vec<u32> = self.running.iter().map(|r| r.next).collect();
        let slots: Vec<usize> = self.running.iter().map(|r| r.slot).collect();
        let lens: Vec<usize> = self.running.iter().map(|r| r.cached).collect();
        let hidden = model.net.decode_slots(&ids, &slots, &lens, &mut self.cache);
        let logits = to_f32_vec(model.net.logits(hidden));
        let produced = self.running.len();
        let mut still = Vec::with_capacity(self.running.len());
        for (r, mut run) in std::mem::take(&mut self.running).into_iter().enumerate() {
            run.cached += 1;
            let id = run.id;
            let row_logits = logits[r * vocab..(r + 1) * vocab].to_vec();
            match run.row.step(row_logits, model, &mut |delta| {
                sink(Event::Text { id, delta })
            }) {
                Err(error) => {
                    self.free.push(run.slot);
                    sink(Event::Failed { id, error });
                }
                Ok((_, Some(generation))) => {
                    self.free.push(run.slot);
                    sink(Event::Finished { id, generation });
                }
                Ok((next, None)) => {
                    run.next = next;
                    still.push(run);
                }
            }
        }
        self.running = still;
        produced
    }

    /// Drops a running sequence and frees its slot; false when no sequence has this id.
    pub fn cancel(&mut self, id: u64) -> bool {
        let Some(i) = self.running.iter().position(|r| r.id == id) else {
            return false;
        };
        let run = self.running.swap_remove(i);
        self.free.push(run.slot);
        true
    }
}
