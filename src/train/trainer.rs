//! The training loop, for SFT and the preference losses alike: data → micro-batches →
//! accumulated gradients → clip → AdamW, with metrics, evaluation, atomic checkpoints and
//! exact resume.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::data::{ReadReport, read_preferences, read_records, resolve_dataset};
use crate::error::{Result, SeftError};
use crate::fault::fault_point;
use crate::model::llama::CausalLm;
use crate::model::{LanguageModel, TextTokenizer};
use crate::ownership;
use crate::train::adamw::FusedAdamW;
use crate::train::batch::{collate, epoch_batches};
use crate::train::checkpoint::{
    TrainState, io, latest_checkpoint, restore_checkpoint, save_checkpoint, truncate_metrics,
};
use crate::train::loss::{masked_token_loss, scalar};
use crate::train::params::{Objective, PreferenceLoss, SftParams};
use crate::train::preference::{
    PairSkip, TokenizedPair, accumulate_pair_step, evaluate_pairs, tokenize_pair,
};
use crate::train::reference::precompute;
use crate::train::schedule::learning_rate;
use crate::train::tokenize::{TokenizedExample, tokenize_conversation};

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct SftOutcome {
    pub steps: usize,
    pub last_loss: f64,
    pub eval_loss: Option<f64>,
    pub model_dir: PathBuf,
    pub data: DataSummary,
    /// (step, training loss) of every logged step, those of earlier invocations included.
    pub losses: Vec<(usize, f64)>,
    /// Tokens (padding excluded) this invocation trained on, and its wall time.
    pub tokens: usize,
    pub seconds: f64,
}

impl SftOutcome {
    /// Mean logged training loss over the first and over the last 10% of the logged steps
    /// (at least one each; NaN without any).
    pub fn loss_ends(&self) -> (f64, f64) {
        let losses: Vec<f64> = self.losses.iter().map(|&(_, l)| l).collect();
        if losses.is_empty() {
            return (f64::NAN, f64::NAN);
        }
        let k = (losses.len() / 10).max(1);
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        (mean(&losses[..k]), mean(&losses[losses.len() - k..]))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DataSummary {
    pub train_rows: usize,
    pub eval_rows: usize,
    pub skipped_rows: usize,
    pub truncated_rows: usize,
    /// Rows left without any target token after truncation (dropped).
    pub dropped_no_target: usize,
    pub train_target_tokens: usize,
    /// Preference pairs whose chosen and rejected completions are the same (dropped).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub identical_pairs: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn tokenize_all(
    tok: &TextTokenizer,
    records: &[crate::data::Record],
    cfg: &SftParams,
    summary: &mut DataSummary,
) -> Result<Vec<TokenizedExample>> {
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let (ex, truncated) = tokenize_conversation(
            tok,
            &r.sft_messages(),
            cfg.data.train_on_prompt,
            cfg.data.max_len,
        )?;
        summary.truncated_rows += truncated as usize;
        if ex.n_targets() == 0 {
            summary.dropped_no_target += 1;
            continue;
        }
        out.push(ex);
    }
    Ok(out)
}

/// Reads the training rows with `read` (shuffled with the seed, cut to `max_rows`) and the
/// held-out rows (the eval file, or `eval_fraction` of the training rows).
fn read_split<T>(
    cfg: &SftParams,
    summary: &mut DataSummary,
    read: impl Fn(&Path) -> Result<(Vec<T>, ReadReport)>,
) -> Result<(Vec<T>, Vec<T>)> {
    let (mut rows, report) = read(&resolve_dataset(&cfg.data.train)?)?;
    summary.skipped_rows += report.skipped;
    for example in &report.skipped_examples {
        eprintln!("skipped: {example}");
    }
    let mut rng = StdRng::seed_from_u64(cfg.train.seed);
    rows.shuffle(&mut rng);
    let eval_rows = match &cfg.data.eval {
        Some(path) => {
            let (r, rep) = read(&resolve_dataset(path)?)?;
            summary.skipped_rows += rep.skipped;
            r
        }
        None => {
            let n_eval = ((rows.len() as f64) * cfg.data.eval_fraction).round() as usize;
            let n_eval = n_eval.min(rows.len().saturating_sub(1));
            rows.split_off(rows.len() - n_eval)
        }
    };
    if cfg.data.max_rows > 0 {
        rows.truncate(cfg.data.max_rows);
    }
    Ok((rows, eval_rows))
}

/// Reads, splits and tokenizes the configured data.
pub fn prepare_data(
    cfg: &SftParams,
    tok: &TextTokenizer,
) -> Result<(Vec<TokenizedExample>, Vec<TokenizedExample>, DataSummary)> {
    let opts = cfg.data.read_options();
    let mut summary = DataSummary::default();
    let (records, eval_records) = read_split(cfg, &mut summary, |p| read_records(p, &opts))?;
    let mut train = tokenize_all(tok, &records, cfg, &mut summary)?;
    let eval = tokenize_all(tok, &eval_records, cfg, &mut summary)?;
    if train.is_empty() {
        return Err(SeftError::Invalid(format!(
            "{}: no training example has a target token",
            cfg.data.train
        )));
    }
    summary.train_rows = train.len();
    summary.eval_rows = eval.len();
    summary.train_target_tokens = train.iter().map(TokenizedExample::n_targets).sum();
    if cfg.data.packing {
        train = crate::train::tokenize::pack(train, cfg.data.max_len);
    }
    Ok((train, eval, summary))
}

/// Reads, splits and tokenizes preference pairs (every row must be one); pairs with
/// identical sides or a completion truncated away are counted and dropped.
pub fn prepare_pairs(
    cfg: &SftParams,
    tok: &TextTokenizer,
) -> Result<(Vec<TokenizedPair>, Vec<TokenizedPair>, DataSummary)> {
    let opts = cfg.data.read_options();
    let mut summary = DataSummary::default();
    let (rows, eval_rows) = read_split(cfg, &mut summary, |p| read_preferences(p, &opts))?;
    let mut tokenize = |rows: &[crate::data::Preference]| -> Result<Vec<TokenizedPair>> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            match tokenize_pair(tok, row, cfg.data.max_len)? {
                Ok((pair, truncated)) => {
                    summary.truncated_rows += truncated as usize;
                    out.push(pair);
                }
                Err(PairSkip::Identical) => summary.identical_pairs += 1,
                Err(PairSkip::NoTarget) => summary.dropped_no_target += 1,
            }
        }
        Ok(out)
    };
    let train = tokenize(&rows)?;
    let eval = tokenize(&eval_rows)?;
    if train.is_empty() {
        return Err(SeftError::Invalid(format!(
            "{}: no usable preference pair ({} with identical chosen and rejected, {} whose prompt fills data.max_len = {})",
            cfg.data.train, summary.identical_pairs, summary.dropped_no_target, cfg.data.max_len
        )));
    }
    summary.train_rows = train.len();
    summary.eval_rows = eval.len();
    summary.train_target_tokens = train
        .iter()
        .map(|p| p.chosen.n_targets() + p.rejected.n_targets())
        .sum();
    Ok((train, eval, summary))
}

/// Sum of squared gradient entries over all parameters (for the global norm).
struct GradSquares<'a> {
    grads: &'a GradientsParams,
    sum: f64,
}

impl ModuleVisitor for GradSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.sum += scalar(g.powi_scalar(2).sum());
        }
    }
}

/// Multiplies every gradient by `factor` (global-norm clipping).
struct ScaleGrads<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for ScaleGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register::<D>(param.id, g * self.factor);
        }
    }
}

/// Forward + backward over one optimizer step's micro-batches of sequences (SFT); returns the
/// accumulated gradients, the mean loss per target token, token accuracy and token count.
pub fn accumulate_step(
    net: &CausalLm,
    examples: &[TokenizedExample],
    micro_batches: &[Vec<usize>],
    pad_id: u32,
) -> (GradientsParams, f64, f64, usize) {
    let total_targets: usize = micro_batches
        .iter()
        .flat_map(|mb| mb.iter().map(|&i| examples[i].n_targets()))
        .sum();
    let mut acc = GradientsAccumulator::<CausalLm>::new();
    let (mut loss_sum, mut correct, mut tokens) = (0.0, 0usize, 0usize);
    for mb in micro_batches {
        let rows: Vec<&TokenizedExample> = mb.iter().map(|&i| &examples[i]).collect();
        let batch = collate(&rows, pad_id);
        tokens += batch.n_tokens;
        let logits = net.forward(&batch.input);
        let (sum, ok) = masked_token_loss(logits, &batch.targets);
        correct += ok;
        let loss = sum / total_targets.max(1) as f64;
        loss_sum += scalar(loss.clone().detach());
        let grads = GradientsParams::from_grads(loss.backward(), net);
        acc.accumulate(net, grads);
    }
    (
        acc.grads(),
        loss_sum,
        correct as f64 / total_targets.max(1) as f64,
        tokens,
    )
}

/// Clips the gradients to a global L2 norm of `max_grad_norm` (as `torch.nn.utils.clip_grad_norm_`:
/// factor `max / (norm + 1e-6)` when the norm exceeds it; 0 = off) and applies one AdamW step.
/// Returns the updated network and the gradient norm before clipping.
pub fn optimizer_step(
    net: CausalLm,
    optim: &mut burn::optim::ModuleOptimizer,
    mut grads: GradientsParams,
    max_grad_norm: f64,
    lr: f64,
) -> (CausalLm, f64) {
    let mut squares = GradSquares {
        grads: &grads,
        sum: 0.0,
    };
    net.visit(&mut squares);
    let grad_norm = squares.sum.sqrt();
    if max_grad_norm > 0.0 && grad_norm > max_grad_norm {
        let factor = max_grad_norm / (grad_norm + 1e-6);
        net.visit(&mut ScaleGrads {
            grads: &mut grads,
            factor,
        });
    }
    (optim.step(lr, net, grads), grad_norm)
}

/// Freezes every weight and attaches trainable LoRA factors (A ~ N(0, 1/rank), B = 0, so the
/// model is unchanged at first) to the targeted projections. Seeded through the device RNG.
/// A rank larger than a targeted projection is refused.
pub fn apply_lora(
    net: CausalLm,
    model: &crate::model::ModelConfig,
    cfg: &crate::train::params::LoraSection,
    seed: u64,
) -> Result<CausalLm> {
    cfg.check_fits(model).map_err(SeftError::Invalid)?;
    net.norm.weight.device().seed(seed);
    let pattern = format!(r"(^|\.)({})\.weight$", cfg.targets.join("|"));
    let group =
        burn::module::ParamGroup::from_regex(&pattern).expect("targets are validated names");
    Ok(net.apply_lora(burn::module::Lora::new(cfg.rank, cfg.alpha).set_param_group(group)))
}

/// AdamW with the run's settings (decoupled weight decay, as `torch.optim.AdamW`).
/// On flex each parameter's update is one fused pass ([`FusedAdamW`]).
pub fn adamw(t: &crate::train::params::TrainSection) -> burn::optim::ModuleOptimizer {
    burn::optim::ModuleOptimizer::from(FusedAdamW::new(
        t.beta1 as f32,
        t.beta2 as f32,
        t.eps as f32,
        t.weight_decay as f32,
    ))
}

/// Mean loss and token accuracy on held-out examples, without gradients.
pub fn evaluate(
    net: &CausalLm,
    examples: &[TokenizedExample],
    micro_batch: usize,
    pad_id: u32,
) -> (f64, f64) {
    let net = net.valid();
    let (mut sum, mut correct, mut targets) = (0.0, 0usize, 0usize);
    for chunk in examples.chunks(micro_batch.max(1)) {
        let rows: Vec<&TokenizedExample> = chunk.iter().collect();
        let batch = collate(&rows, pad_id);
        let (s, ok) = masked_token_loss(net.forward(&batch.input), &batch.targets);
        sum += scalar(s);
        correct += ok;
        targets += batch.n_targets;
    }
    (
        sum / targets.max(1) as f64,
        correct as f64 / targets.max(1) as f64,
    )
}

fn append_metrics(path: &Path, line: &serde_json::Value) -> Result<()> {
    crate::data::jsonl::append_jsonl(path, std::slice::from_ref(line))
}

/// What a run trains on: sequences (SFT) or preference pairs with their loss, and the frozen
/// reference model when its log-probabilities are computed at each step.
enum TrainData {
    Sequences {
        train: Vec<TokenizedExample>,
        eval: Vec<TokenizedExample>,
    },
    Pairs {
        train: Vec<TokenizedPair>,
        eval: Vec<TokenizedPair>,
        loss: PreferenceLoss,
        /// Boxed: a model is much larger than the other variant.
        reference: Option<Box<CausalLm>>,
    },
}

/// One optimizer step's gradients, loss, tokens and logged metrics.
struct StepOutput {
    grads: GradientsParams,
    loss: f64,
    tokens: usize,
    metrics: serde_json::Map<String, serde_json::Value>,
}

impl TrainData {
    /// Token length of each training example (a pair: its longer row).
    fn lengths(&self) -> Vec<usize> {
        match self {
            TrainData::Sequences { train, .. } => train.iter().map(|e| e.ids.len()).collect(),
            TrainData::Pairs { train, .. } => train.iter().map(TokenizedPair::len).collect(),
        }
    }

    fn has_eval(&self) -> bool {
        match self {
            TrainData::Sequences { eval, .. } => !eval.is_empty(),
            TrainData::Pairs { eval, .. } => !eval.is_empty(),
        }
    }

    fn step(&self, net: &CausalLm, micro_batches: &[Vec<usize>], pad_id: u32) -> StepOutput {
        let mut metrics = serde_json::Map::new();
        match self {
            TrainData::Sequences { train, .. } => {
                let (grads, loss, acc, tokens) = accumulate_step(net, train, micro_batches, pad_id);
                metrics.insert("loss".into(), json!(loss));
                metrics.insert("token_accuracy".into(), json!(acc));
                StepOutput {
                    grads,
                    loss,
                    tokens,
                    metrics,
                }
            }
            TrainData::Pairs {
                train,
                loss,
                reference,
                ..
            } => {
                let (grads, value, stats, tokens) = accumulate_pair_step(
                    net,
                    reference.as_deref(),
                    train,
                    micro_batches,
                    pad_id,
                    *loss,
                );
                // TRL's names, with the loss that was backpropagated.
                metrics.extend(stats.metrics(loss.kind, ""));
                metrics.insert("loss".into(), json!(value));
                StepOutput {
                    grads,
                    loss: value,
                    tokens,
                    metrics,
                }
            }
        }
    }

    /// The held-out loss and the metrics to log with it (`eval_` names).
    fn evaluate(
        &self,
        net: &CausalLm,
        micro_batch: usize,
        pad_id: u32,
    ) -> (f64, serde_json::Map<String, serde_json::Value>) {
        match self {
            TrainData::Sequences { eval, .. } => {
                let (l, a) = evaluate(net, eval, micro_batch, pad_id);
                let mut m = serde_json::Map::new();
                m.insert("eval_loss".into(), json!(l));
                m.insert("eval_token_accuracy".into(), json!(a));
                (l, m)
            }
            TrainData::Pairs {
                eval,
                loss,
                reference,
                ..
            } => {
                let stats =
                    evaluate_pairs(net, reference.as_deref(), eval, micro_batch, pad_id, *loss);
                (stats.loss(loss.kind), stats.metrics(loss.kind, "eval_"))
            }
        }
    }
}

/// An SFT run ready to start: `Trainer::new(params).resume(true).run()`.
pub struct Trainer {
    params: SftParams,
    resume: bool,
}

impl Trainer {
    pub fn new(params: SftParams) -> Self {
        Trainer {
            params,
            resume: false,
        }
    }

    /// Continue from the run directory's last checkpoint, if it has one (otherwise a run
    /// directory with checkpoints is refused).
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    pub fn run(self) -> Result<SftOutcome> {
        run_sft(&self.params, self.resume)
    }
}

/// The model, data and optimizer of a run, at the position it starts (or resumes) from.
struct Session {
    lm: LanguageModel,
    optim: burn::optim::ModuleOptimizer,
    state: TrainState,
    data: TrainData,
    summary: DataSummary,
    pad_id: u32,
    total_steps: usize,
    metrics_path: PathBuf,
    /// (step, loss) of every logged step so far, earlier invocations' included.
    losses: Vec<(usize, f64)>,
}

/// Runs (or, with `resume`, continues) the SFT run described by `cfg`.
pub fn run_sft(cfg: &SftParams, resume: bool) -> Result<SftOutcome> {
    let started = Instant::now();
    let session = open_session(cfg, resume)?;
    let (mut session, eval_loss, tokens) = train_steps(cfg, session)?;
    let out = &cfg.output.dir;
    let model_dir = out.join("model");
    // LoRA adapters are merged into the base weights: the saved folder is a plain model.
    session.lm.net = session.lm.net.valid().materialize();
    session.lm.save_hf_folder(&model_dir)?;
    crate::train::plot::loss_curve(&session.metrics_path, &out.join("loss.svg"))?;
    crate::train::plot::reward_curves(&session.metrics_path, out)?;
    let outcome = SftOutcome {
        steps: session.state.step,
        last_loss: session.state.last_loss,
        eval_loss,
        model_dir,
        data: session.summary,
        losses: session.losses,
        tokens,
        seconds: started.elapsed().as_secs_f64(),
    };
    let summary_path = out.join("summary.json");
    io(
        &summary_path,
        std::fs::write(
            &summary_path,
            serde_json::to_string_pretty(&outcome).expect("serializable"),
        ),
    )?;
    Ok(outcome)
}

/// Loads the model and data, and restores the last checkpoint when resuming.
fn open_session(cfg: &SftParams, resume: bool) -> Result<Session> {
    let out = &cfg.output.dir;
    let latest = latest_checkpoint(out);
    if latest.is_some() && !resume {
        return Err(SeftError::file(
            out,
            "the run directory already has checkpoints: pass --resume to continue it, or choose another output.dir",
        ));
    }
    // Refuses a folder that holds anything seft did not write (its files stay untouched).
    ownership::claim_dir(out, "output.dir")?;
    let config_path = out.join("config.toml");
    io(&config_path, std::fs::write(&config_path, cfg.to_toml()))?;
    let device = cfg.model.backend.device()?.autodiff();
    let mut lm = LanguageModel::load(&cfg.model.path, &device)?;
    // The starting weights (without LoRA adapters), frozen: they share storage with the model,
    // so they cost memory only once full fine-tuning rewrites the weights. They stay on the
    // autodiff device, untracked, so that their forward runs the same kernels as the policy's
    // and the first step's Δ is exactly 0, as in PyTorch.
    let initial = lm.net.clone().no_grad();
    if let Some(l) = &cfg.lora {
        lm.net = apply_lora(lm.net, &lm.config, l, cfg.train.seed)?;
    }
    let pad_id = lm.eos_token_ids.first().copied().unwrap_or(0);
    let (data, summary) = match &cfg.preference {
        None => {
            let (train, eval, summary) = prepare_data(cfg, &lm.tokenizer)?;
            (TrainData::Sequences { train, eval }, summary)
        }
        Some(p) => {
            let loss = p.loss();
            let (mut train, mut eval, summary) = prepare_pairs(cfg, &lm.tokenizer)?;
            let mut reference = match loss.kind.uses_reference() {
                true => Some(reference_model(p.reference_model(), initial, &lm, &device)?),
                false => None,
            };
            // Precomputed: the reference's values go into the pairs and the model is dropped.
            if p.precompute_ref
                && let Some(net) = reference.take()
            {
                let micro_batch = cfg.train.micro_batch;
                precompute(out, &net, &mut train, &mut eval, micro_batch, pad_id)?;
            }
            let reference = reference.map(Box::new);
            let data = TrainData::Pairs {
                train,
                eval,
                loss,
                reference,
            };
            (data, summary)
        }
    };
    eprintln!(
        "data: {} train / {} eval rows, {} skipped, {} truncated to {} tokens, {} without targets dropped, {} identical pairs dropped, {} target tokens",
        summary.train_rows,
        summary.eval_rows,
        summary.skipped_rows,
        summary.truncated_rows,
        cfg.data.max_len,
        summary.dropped_no_target,
        summary.identical_pairs,
        summary.train_target_tokens
    );
    let t = &cfg.train;
    let micro_per_epoch = data.lengths().len().div_ceil(t.micro_batch);
    let steps_per_epoch = micro_per_epoch.div_ceil(t.grad_accum);
    // As transformers: max_steps, when set, wins over epochs (cycling through the data).
    let total_steps = match t.max_steps {
        0 => t.epochs * steps_per_epoch,
        m => m,
    };
    let mut optim = adamw(t);
    let metrics_path = out.join("metrics.jsonl");
    let mut state = TrainState::default();
    if let Some(ckpt) = latest.filter(|_| resume) {
        let (net, restored_optim, restored_state) = restore_checkpoint(&ckpt, lm.net, optim)?;
        (lm.net, optim, state) = (net, restored_optim, restored_state);
        truncate_metrics(&metrics_path, state.step)?;
        eprintln!("resumed from {} (step {})", ckpt.display(), state.step);
    } else if metrics_path.exists() {
        io(&metrics_path, std::fs::remove_file(&metrics_path))?;
    }
    let losses = logged_losses(&metrics_path)?;
    Ok(Session {
        lm,
        optim,
        state,
        data,
        summary,
        pad_id,
        total_steps,
        metrics_path,
        losses,
    })
}

/// The frozen reference of dpo/robust/ipo: the starting weights (`initial`), or the model at
/// `path`, which must share the policy's vocabulary.
fn reference_model(
    path: Option<&str>,
    initial: CausalLm,
    policy: &LanguageModel,
    device: &burn::tensor::Device,
) -> Result<CausalLm> {
    let Some(path) = path else {
        return Ok(initial);
    };
    drop(initial);
    let reference = LanguageModel::load(path, device)?;
    if reference.config.vocab_size != policy.config.vocab_size
        || reference.tokenizer.inner.get_vocab_size(true)
            != policy.tokenizer.inner.get_vocab_size(true)
    {
        return Err(SeftError::Invalid(format!(
            "preference.reference {path}: its vocabulary ({} tokens) is not the policy's ({}): the log-probabilities would not compare",
            reference.config.vocab_size, policy.config.vocab_size
        )));
    }
    Ok(reference.net.no_grad())
}

/// (step, loss) of the training lines in a metrics file (none when it does not exist).
fn logged_losses(path: &Path) -> Result<Vec<(usize, f64)>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = io(path, std::fs::read_to_string(path))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v.get("step")?.as_u64()? as usize, v.get("loss")?.as_f64()?)))
        .collect())
}

fn progress(total_steps: usize, step: usize, objective: Objective) -> ProgressBar {
    let bar = ProgressBar::new(total_steps as u64).with_position(step as u64);
    let name = match objective {
        Objective::Sft => "sft",
        Objective::Preference(loss) => loss.kind.name(),
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{name} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}}<{{eta_precise}}] {{msg}}"
        ))
        .expect("valid template"),
    );
    bar
}

/// A metrics.jsonl line: the step (and epoch), then `metrics` in their order.
fn step_line(
    step: usize,
    epoch: Option<usize>,
    metrics: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    let mut line = serde_json::Map::new();
    line.insert("step".into(), json!(step));
    if let Some(e) = epoch {
        line.insert("epoch".into(), json!(e));
    }
    line.extend(metrics);
    serde_json::Value::Object(line)
}

/// Optimizer steps from the session's position to the end, with metrics, evaluation and
/// checkpoints. Returns the last held-out loss and the tokens this invocation trained on.
fn train_steps(cfg: &SftParams, mut s: Session) -> Result<(Session, Option<f64>, usize)> {
    let t = &cfg.train;
    let lengths = s.data.lengths();
    let bar = progress(s.total_steps, s.state.step, cfg.objective());
    let (mut eval_loss, mut trained_tokens) = (None, 0usize);
    // The starting point, so every run shows how far training moved the held-out loss.
    if s.state.step == 0 && t.eval_every > 0 && s.data.has_eval() {
        let (_, metrics) = s.data.evaluate(&s.lm.net, t.micro_batch, s.pad_id);
        append_metrics(&s.metrics_path, &step_line(0, None, metrics))?;
    }
    while s.state.step < s.total_steps {
        let batches = epoch_batches(
            &lengths,
            t.micro_batch,
            t.seed,
            s.state.epoch,
            t.group_by_length,
        );
        let steps: Vec<&[Vec<usize>]> = batches.chunks(t.grad_accum).collect();
        if s.state.step_in_epoch >= steps.len() {
            s.state.epoch += 1;
            s.state.step_in_epoch = 0;
            continue;
        }
        let started = Instant::now();
        let StepOutput {
            grads,
            loss,
            tokens,
            mut metrics,
        } = s
            .data
            .step(&s.lm.net, steps[s.state.step_in_epoch], s.pad_id);
        let lr = learning_rate(
            t.schedule,
            t.lr,
            s.state.step,
            t.warmup_steps,
            s.total_steps,
        );
        let (net, grad_norm) = optimizer_step(s.lm.net, &mut s.optim, grads, t.max_grad_norm, lr);
        s.lm.net = net;
        s.state.step += 1;
        s.state.step_in_epoch += 1;
        s.state.last_loss = loss;
        trained_tokens += tokens;
        let step = s.state.step;
        fault_point("step", step);
        let secs = started.elapsed().as_secs_f64();
        if !loss.is_finite() {
            return Err(SeftError::Invalid(format!(
                "loss became {loss} at step {step}: lower train.lr"
            )));
        }
        if t.log_every > 0 && (step.is_multiple_of(t.log_every) || step == s.total_steps) {
            metrics.insert("grad_norm".into(), json!(grad_norm));
            metrics.insert("lr".into(), json!(lr));
            metrics.insert("tokens_per_s".into(), json!(tokens as f64 / secs));
            append_metrics(
                &s.metrics_path,
                &step_line(step, Some(s.state.epoch), metrics),
            )?;
            s.losses.push((step, loss));
        }
        bar.set_message(format!("loss {loss:.4} lr {lr:.2e}"));
        bar.set_position(step as u64);
        let at_end = step == s.total_steps;
        if s.data.has_eval() && ((t.eval_every > 0 && step.is_multiple_of(t.eval_every)) || at_end)
        {
            let (l, metrics) = s.data.evaluate(&s.lm.net, t.micro_batch, s.pad_id);
            eval_loss = Some(l);
            append_metrics(&s.metrics_path, &step_line(step, None, metrics))?;
        }
        if (t.save_every > 0 && step.is_multiple_of(t.save_every)) || at_end {
            save_checkpoint(&cfg.output.dir, &s.lm.net, &s.optim, &s.state)?;
        }
    }
    bar.finish();
    Ok((s, eval_loss, trained_tokens))
}
