//! The SFT loop: data → micro-batches → accumulated gradients → clip → AdamW, with metrics,
//! evaluation, atomic checkpoints and exact resume.

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

use crate::data::{ReadOptions, read_records, resolve_dataset};
use crate::error::{Result, SeftError};
use crate::fault::fault_point;
use crate::model::llama::CausalLm;
use crate::model::{LanguageModel, TextTokenizer};
use crate::train::adamw::FusedAdamW;
use crate::train::batch::{collate, epoch_batches};
use crate::train::config::SftConfig;
use crate::train::loss::{masked_token_loss, scalar};
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
}

/// Position of a run, saved with each checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct TrainState {
    step: usize,
    epoch: usize,
    /// Optimizer steps already taken inside `epoch`.
    step_in_epoch: usize,
    last_loss: f64,
}

fn tokenize_all(
    tok: &TextTokenizer,
    records: &[crate::data::Record],
    cfg: &SftConfig,
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

/// Reads, splits and tokenizes the configured data.
pub fn prepare_data(
    cfg: &SftConfig,
    tok: &TextTokenizer,
) -> Result<(Vec<TokenizedExample>, Vec<TokenizedExample>, DataSummary)> {
    let opts = ReadOptions {
        skip_bad_rows: cfg.data.skip_bad_rows,
    };
    let mut summary = DataSummary::default();
    let (mut records, report) = read_records(&resolve_dataset(&cfg.data.train)?, &opts)?;
    summary.skipped_rows += report.skipped;
    for example in &report.skipped_examples {
        eprintln!("skipped: {example}");
    }
    let mut rng = StdRng::seed_from_u64(cfg.train.seed);
    records.shuffle(&mut rng);
    let eval_records = match &cfg.data.eval {
        Some(path) => {
            let (r, rep) = read_records(&resolve_dataset(path)?, &opts)?;
            summary.skipped_rows += rep.skipped;
            r
        }
        None => {
            let n_eval = ((records.len() as f64) * cfg.data.eval_fraction).round() as usize;
            let n_eval = n_eval.min(records.len().saturating_sub(1));
            records.split_off(records.len() - n_eval)
        }
    };
    if cfg.data.max_rows > 0 {
        records.truncate(cfg.data.max_rows);
    }
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

/// Forward + backward over one optimizer step's micro-batches; returns the accumulated
/// gradients, the mean loss per target token, token accuracy and token count.
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
pub fn apply_lora(net: CausalLm, cfg: &crate::train::config::LoraSection, seed: u64) -> CausalLm {
    net.norm.weight.device().seed(seed);
    let pattern = format!(r"(^|\.)({})\.weight$", cfg.targets.join("|"));
    let group =
        burn::module::ParamGroup::from_regex(&pattern).expect("targets are validated names");
    net.apply_lora(burn::module::Lora::new(cfg.rank, cfg.alpha).set_param_group(group))
}

/// AdamW with the run's settings (decoupled weight decay, as `torch.optim.AdamW`).
/// On flex each parameter's update is one fused pass ([`FusedAdamW`]).
pub fn adamw(t: &crate::train::config::TrainSection) -> burn::optim::ModuleOptimizer {
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

fn checkpoints_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// The newest complete checkpoint (a `step-*` folder with its state.json).
fn latest_checkpoint(out: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(checkpoints_dir(out))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-"))
                && p.join("state.json").exists()
        })
        .collect();
    found.sort();
    found.pop()
}

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|e| SeftError::io(path, e))
}

/// Writes model, optimizer and state into `checkpoints/.partial-step-N`, renames it to
/// `step-N` when complete, then removes older checkpoints: a crash at any point leaves the
/// previous complete checkpoint in place.
fn save_checkpoint(
    out: &Path,
    net: &CausalLm,
    optim: &burn::optim::ModuleOptimizer,
    state: &TrainState,
) -> Result<()> {
    let root = checkpoints_dir(out);
    io(&root, std::fs::create_dir_all(&root))?;
    let tmp = root.join(format!(".partial-step-{:08}", state.step));
    if tmp.exists() {
        io(&tmp, std::fs::remove_dir_all(&tmp))?;
    }
    io(&tmp, std::fs::create_dir_all(&tmp))?;
    let model_path = tmp.join("model.bpk");
    net.clone()
        .save_file(&model_path)
        .map_err(|e| SeftError::file(&model_path, format!("cannot save model: {e:?}")))?;
    fault_point("checkpoint", state.step);
    let optim_path = tmp.join("optim.bpk");
    optim
        .save(&optim_path)
        .map_err(|e| SeftError::file(&optim_path, format!("cannot save optimizer: {e:?}")))?;
    let state_path = tmp.join("state.json");
    io(
        &state_path,
        std::fs::write(
            &state_path,
            serde_json::to_string_pretty(state).expect("serializable"),
        ),
    )?;
    let done = root.join(format!("step-{:08}", state.step));
    if done.exists() {
        io(&done, std::fs::remove_dir_all(&done))?;
    }
    io(&done, std::fs::rename(&tmp, &done))?;
    for entry in io(&root, std::fs::read_dir(&root))?.flatten() {
        let p = entry.path();
        if p != done
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-"))
        {
            io(&p, std::fs::remove_dir_all(&p))?;
        }
    }
    Ok(())
}

/// Keeps only metrics lines up to `step` (a resumed run rewrites what came after).
fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = io(path, std::fs::read_to_string(path))?;
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s as usize <= step)
        })
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    io(path, std::fs::write(path, out))
}

fn append_metrics(path: &Path, line: &serde_json::Value) -> Result<()> {
    crate::data::jsonl::append_jsonl(path, std::slice::from_ref(line))
}

/// Runs (or, with `resume`, continues) the SFT run described by `cfg`.
pub fn run_sft(cfg: &SftConfig, resume: bool) -> Result<SftOutcome> {
    let out = &cfg.output.dir;
    let latest = latest_checkpoint(out);
    if latest.is_some() && !resume {
        return Err(SeftError::file(
            out,
            "the run directory already has checkpoints: pass --resume to continue it, or choose another output.dir",
        ));
    }
    io(out, std::fs::create_dir_all(out))?;
    let config_path = out.join("config.toml");
    io(&config_path, std::fs::write(&config_path, cfg.to_toml()))?;
    let device = cfg.model.backend.device()?.autodiff();
    let mut lm = LanguageModel::load(&cfg.model.path, &device)?;
    if let Some(l) = &cfg.lora {
        lm.net = apply_lora(lm.net, l, cfg.train.seed);
    }
    let (train, eval, summary) = prepare_data(cfg, &lm.tokenizer)?;
    eprintln!(
        "data: {} train / {} eval rows, {} skipped, {} truncated to {} tokens, {} without targets dropped, {} target tokens",
        summary.train_rows,
        summary.eval_rows,
        summary.skipped_rows,
        summary.truncated_rows,
        cfg.data.max_len,
        summary.dropped_no_target,
        summary.train_target_tokens
    );
    let pad_id = lm.eos_token_ids.first().copied().unwrap_or(0);
    let t = &cfg.train;
    let lengths: Vec<usize> = train.iter().map(|e| e.ids.len()).collect();
    let micro_per_epoch = train.len().div_ceil(t.micro_batch);
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
        let state_path = ckpt.join("state.json");
        let text = io(&state_path, std::fs::read_to_string(&state_path))?;
        state = serde_json::from_str(&text)
            .map_err(|e| SeftError::file(&state_path, format!("invalid state: {e}")))?;
        let model_path = ckpt.join("model.bpk");
        lm.net = lm
            .net
            .try_load_file(&model_path)
            .map_err(|e| SeftError::file(&model_path, format!("cannot load checkpoint: {e:?}")))?;
        let optim_path = ckpt.join("optim.bpk");
        optim = optim.load(&optim_path).map_err(|e| {
            SeftError::file(&optim_path, format!("cannot load optimizer state: {e:?}"))
        })?;
        truncate_metrics(&metrics_path, state.step)?;
        eprintln!("resumed from {} (step {})", ckpt.display(), state.step);
    } else if metrics_path.exists() {
        io(&metrics_path, std::fs::remove_file(&metrics_path))?;
    }
    let bar = ProgressBar::new(total_steps as u64).with_position(state.step as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "sft {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .expect("valid template"),
    );
    let mut eval_loss = None;
    // The starting point, so every run shows how far training moved the held-out loss.
    if state.step == 0 && t.eval_every > 0 && !eval.is_empty() {
        let (l, a) = evaluate(&lm.net, &eval, t.micro_batch, pad_id);
        append_metrics(
            &metrics_path,
            &json!({"step": 0, "eval_loss": l, "eval_token_accuracy": a}),
        )?;
    }
    while state.step < total_steps {
        let batches = epoch_batches(
            &lengths,
            t.micro_batch,
            t.seed,
            state.epoch,
            t.group_by_length,
        );
        let steps: Vec<&[Vec<usize>]> = batches.chunks(t.grad_accum).collect();
        if state.step_in_epoch >= steps.len() {
            state.epoch += 1;
            state.step_in_epoch = 0;
            continue;
        }
        let started = Instant::now();
        let (grads, loss, acc, tokens) =
            accumulate_step(&lm.net, &train, steps[state.step_in_epoch], pad_id);
        let lr = learning_rate(t.schedule, t.lr, state.step, t.warmup_steps, total_steps);
        let (net, grad_norm) = optimizer_step(lm.net, &mut optim, grads, t.max_grad_norm, lr);
        lm.net = net;
        state.step += 1;
        state.step_in_epoch += 1;
        state.last_loss = loss;
        fault_point("step", state.step);
        let secs = started.elapsed().as_secs_f64();
        if !loss.is_finite() {
            return Err(SeftError::Invalid(format!(
                "loss became {loss} at step {}: lower train.lr",
                state.step
            )));
        }
        if t.log_every > 0 && (state.step % t.log_every == 0 || state.step == total_steps) {
            append_metrics(
                &metrics_path,
                &json!({"step": state.step, "epoch": state.epoch, "loss": loss, "token_accuracy": acc,
                "grad_norm": grad_norm, "lr": lr, "tokens_per_s": tokens as f64 / secs}),
            )?;
        }
        bar.set_message(format!("loss {loss:.4} lr {lr:.2e}"));
        bar.set_position(state.step as u64);
        let at_end = state.step == total_steps;
        if !eval.is_empty() && ((t.eval_every > 0 && state.step % t.eval_every == 0) || at_end) {
            let (l, a) = evaluate(&lm.net, &eval, t.micro_batch, pad_id);
            eval_loss = Some(l);
            append_metrics(
                &metrics_path,
                &json!({"step": state.step, "eval_loss": l, "eval_token_accuracy": a}),
            )?;
        }
        if (t.save_every > 0 && state.step % t.save_every == 0) || at_end {
            save_checkpoint(out, &lm.net, &optim, &state)?;
        }
    }
    bar.finish();
    let model_dir = out.join("model");
    // LoRA adapters are merged into the base weights: the saved folder is a plain model.
    lm.net = lm.net.valid().materialize();
    lm.save_hf_folder(&model_dir)?;
    crate::train::plot::loss_curve(&metrics_path, &out.join("loss.svg"))?;
    let outcome = SftOutcome {
        steps: state.step,
        last_loss: state.last_loss,
        eval_loss,
        model_dir,
        data: summary,
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
