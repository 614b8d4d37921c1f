//! The server's generation engine: one thread owns the model's [`Scheduler`] and runs it while
//! requests arrive through a bounded queue. Between decode steps it admits waiting sequences
//! into free KV-cache slots (prefill interleaved with decode), drops sequences whose client went
//! away (their receiver is closed), and streams each sequence's text and final generation back
//! through its request's channel.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, SeftError};
use crate::model::LanguageModel;
use crate::model::generate::{Generation, SamplingConfig, TokenLogprobs, prompt_logprobs};
use crate::model::scheduler::{Event, Scheduler, Sequence};
use crate::serve::metrics::Metrics;

/// What the engine sends back for one sequence of a request (`choice` is its index).
#[derive(Debug)]
pub enum Output {
    Text {
        choice: usize,
        delta: String,
    },
    Done {
        choice: usize,
        generation: Generation,
    },
    Failed {
        choice: usize,
        message: String,
    },
}

/// One sequence of a generation request.
pub struct Choice {
    pub index: usize,
    pub prompt: Vec<u32>,
    pub cfg: SamplingConfig,
    pub seed: u64,
}

pub enum Job {
    Generate {
        choices: Vec<Choice>,
        outputs: mpsc::UnboundedSender<Output>,
        received: Instant,
    },
    /// Prompt log-probabilities (`echo` with `logprobs`), computed between decode steps.
    Score {
        prompt: Vec<u32>,
        top: usize,
        reply: oneshot::Sender<Result<Vec<Option<TokenLogprobs>>>>,
    },
}

#[derive(Debug, PartialEq)]
pub enum SubmitError {
    /// The queue is full: answer 429.
    Busy,
    /// The engine stopped (shutdown or a crash): answer 503.
    Stopped,
}

/// A handle to the engine thread; dropping every handle lets the thread finish what it runs
/// and exit.
#[derive(Clone)]
pub struct Engine {
    jobs: mpsc::Sender<Job>,
}

impl Engine {
    /// Starts the engine thread with `slots` KV-cache slots of `capacity` positions and room for
    /// `queue` waiting requests.
    pub fn start(
        model: Arc<LanguageModel>,
        slots: usize,
        capacity: usize,
        queue: usize,
        metrics: Arc<Metrics>,
    ) -> (Engine, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let thread = std::thread::Builder::new()
            .name("seft-engine".into())
            .spawn(move || run(&model, slots, capacity, rx, &metrics))
            .expect("spawning the engine thread");
        (Engine { jobs: tx }, thread)
    }

    pub fn submit(&self, job: Job) -> std::result::Result<(), SubmitError> {
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Busy,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
        })
    }
}

/// Where a sequence's events go.
struct Sink {
    choice: usize,
    outputs: mpsc::UnboundedSender<Output>,
    received: Instant,
}

fn run(
    model: &LanguageModel,
    slots: usize,
    capacity: usize,
    mut jobs: mpsc::Receiver<Job>,
    metrics: &Metrics,
) {
    let mut scheduler = Scheduler::new(model, slots, capacity);
    let mut waiting: VecDeque<(Sequence, Sink)> = VecDeque::new();
    let mut sinks: HashMap<u64, Sink> = HashMap::new();
    let mut next_id = 0u64;
    let mut open = true;
    loop {
        // Take jobs while slots are free; block only when there is nothing to run.
        while open && waiting.len() < scheduler.free_slots() {
            let job = if scheduler.running() == 0 && waiting.is_empty() {
                jobs.blocking_recv()
            } else {
                match jobs.try_recv() {
                    Ok(job) => Some(job),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            let Some(job) = job else {
                open = false;
                break;
            };
            match job {
                Job::Generate {
                    choices,
                    outputs,
                    received,
                } => {
                    for c in choices {
                        let seq = Sequence {
                            id: next_id,
                            prompt: c.prompt,
                            cfg: c.cfg,
                            seed: c.seed,
                        };
                        next_id += 1;
                        let sink = Sink {
                            choice: c.index,
                            outputs: outputs.clone(),
                            received,
                        };
                        waiting.push_back((seq, sink));
                    }
                }
                Job::Score { prompt, top, reply } => {
                    metrics.prompt_tokens.inc_by(prompt.len() as u64);
                    let _ = reply.send(prompt_logprobs(model, &prompt, top));
                }
            }
        }
        if !open && waiting.is_empty() && scheduler.running() == 0 {
            break;
        }
        // Drop what nobody waits for any more.
        waiting.retain(|(_, sink)| !sink.outputs.is_closed());
        let gone: Vec<u64> = scheduler
            .running_ids()
            .filter(|id| sinks.get(id).is_none_or(|s| s.outputs.is_closed()))
            .collect();
        for id in gone {
            scheduler.cancel(id);
            sinks.remove(&id);
            metrics.cancelled.inc();
        }
        let joining: Vec<Sequence> = (0..scheduler.free_slots().min(waiting.len()))
            .filter_map(|_| waiting.pop_front())
            .map(|(seq, s)| {
                metrics.prompt_tokens.inc_by(seq.prompt.len() as u64);
                sinks.insert(seq.id, s);
                seq
            })
            .collect();
        if !joining.is_empty() {
            let ids: Vec<u64> = joining.iter().map(|s| s.id).collect();
            let received: Vec<Instant> = ids.iter().map(|id| sinks[id].received).collect();
            let mut sink = |event: Event<'_>| deliver(event, &mut sinks);
            if let Err(error) = scheduler.admit_all(joining, &mut sink) {
                for &id in &ids {
                    sink(Event::Failed {
                        id,
                        error: SeftError::Invalid(error.to_string()),
                    });
                }
            }
            metrics.generated_tokens.inc_by(ids.len() as u64);
            for r in received {
                metrics
                    .time_to_first_token
                    .observe(r.elapsed().as_secs_f64());
            }
        }
        let started = Instant::now();
        let produced = scheduler.step(&mut |event: Event<'_>| deliver(event, &mut sinks));
        if produced > 0 {
            metrics.generated_tokens.inc_by(produced as u64);
            metrics
                .decode_tokens_per_second
                .set(produced as f64 / started.elapsed().as_secs_f64().max(1e-9));
        }
        metrics.running.set(scheduler.running() as i64);
        metrics.queue_depth.set((waiting.len() + jobs.len()) as i64);
    }
    metrics.running.set(0);
    metrics.queue_depth.set(0);
}

fn deliver(event: Event<'_>, sinks: &mut HashMap<u64, Sink>) {
    match event {
        Event::Text { id, delta } => {
            if let Some(s) = sinks.get(&id) {
                let _ = s.outputs.send(Output::Text {
                    choice: s.choice,
                    delta: delta.to_string(),
                });
            }
        }
        Event::Finished { id, generation } => {
            if let Some(s) = sinks.remove(&id) {
                let _ = s.outputs.send(Output::Done {
                    choice: s.choice,
                    generation,
                });
            }
        }
        Event::Failed { id, error } => {
            if let Some(s) = sinks.remove(&id) {
                let _ = s.outputs.send(Output::Failed {
                    choice: s.choice,
                    message: error.to_string(),
                });
            }
        }
    }
}
