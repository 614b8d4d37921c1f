//! Fuzzing every reader of users' files: GGUF models, Hugging Face folders (config.json,
//! safetensors, tokenizer files), `.npy` matrices, datasets (JSON, JSONL, gzip), TOML configs
//! and the evaluation files (AlpacaEval annotations and outputs, instruction difficulties, judge
//! templates, MT-Bench questions, answers and judge prompts, leaderboard results, IFEval input
//! data and responses, whose texts then reach every instruction checker) and the server's
//! chat-completions requests.
//!
//! Each target mutates seed files (the repository's fixtures, configs and datasets, and files
//! built here) for `SEFT_FUZZ_SECONDS` (default 2) and calls the reader the way the CLI does.
//! An error is the expected answer to a broken file; a panic fails the test and the input is
//! saved under `target/tmp/fuzz/crashes/`; an allocation above [`CAP`] or a stack overflow
//! aborts the process, and the input that did it is the one left in
//! `target/tmp/fuzz/<target>/`. Inputs that once crashed live in `tests/fuzz_regressions/<target>/`
//! and are replayed first.
//!
//! An in-tree harness rather than `cargo fuzz`: libFuzzer needs a nightly toolchain and a
//! sanitizer-coverage build of Burn and its dependencies (about a quarter hour on CI's two
//! cores), while this one runs on the stable test build. It is not coverage-guided, so its
//! mutations know the formats: length and offset fields get boundary values, JSON values get
//! replaced by wrong types and extreme numbers, TOML values likewise.
//!
//! `SEFT_FUZZ_SECONDS=1800 cargo test --test fuzz -- --nocapture` is the long run
//! (`SEFT_FUZZ_SEED` picks another mutation sequence, `SEFT_FUZZ_DIR` another work folder).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// The largest single allocation a reader may make on these inputs (all under a few MiB): a
/// larger one means a size was taken from the file on trust.
const CAP: usize = 256 << 20;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// The system allocator with [`CAP`]: a larger request prints why and fails (the process
/// aborts), without allocating on the way.
struct Capped;

fn refuse(size: usize) -> *mut u8 {
    let msg = b"fuzz: an allocation above the 256 MiB cap; the input that asked for it is in target/tmp/fuzz/<target>/\n";
    // SAFETY: writing a static buffer to stderr.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    let _ = size;
    std::ptr::null_mut()
}

// SAFETY: forwards to System, refusing (null) requests above the cap.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            return refuse(layout.size());
        }
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            return refuse(layout.size());
        }
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > CAP {
            return refuse(new_size);
        }
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

fn budget() -> Duration {
    let secs = std::env::var("SEFT_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

/// `target/tmp/fuzz/<target>`, or under `SEFT_FUZZ_DIR` (for a long run beside the tests).
fn work_dir(target: &str) -> PathBuf {
    let root = std::env::var_os("SEFT_FUZZ_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz"));
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Values that break length, offset and count fields.
const INTERESTING_U64: &[u64] = &[
    0,
    1,
    2,
    7,
    8,
    31,
    32,
    255,
    256,
    4096,
    65535,
    65536,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    1 << 40,
    (1 << 62) + 1,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX - 31,
    u64::MAX - 1,
    u64::MAX,
];

/// Text that breaks parsers of JSON, TOML, CSV and Python literals.
const TOKENS: &[&str] = &[
    "null",
    "-1",
    "0",
    "1e999",
    "-0.0",
    "NaN",
    "18446744073709551616",
    "18446744073709551615",
    "4294967295",
    "1e12",
    "\"x\"",
    "[[[[[[[[[[[[[[[[",
    "{{{{{{{{",
    "]",
    "}",
    ",",
    ":",
    "=",
    "\"",
    "'",
    "\\",
    "\\u0000",
    "\\ud800",
    "\u{feff}",
    "\n",
    "\r\n",
    "\0",
    "True",
    "False",
    "(",
    ")",
    "'shape': (",
    "[model]",
    "[[",
    "inf",
    "nan",
    "{% for x in y %}",
    "{{ x }}",
    "{% endfor %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
];

/// Replacement values for JSON-aware mutation.
fn wild_json(rng: &mut StdRng) -> Value {
    match rng.random_range(0..14) {
        0 => Value::Null,
        1 => json!(-1),
        2 => json!(0),
        3 => json!(u64::MAX),
        4 => json!(1e300),
        5 => json!(-1e300),
        6 => json!("x"),
        7 => json!([]),
        8 => json!({}),
        9 => json!(true),
        10 => json!(1e12),
        11 => json!(rng.random_range(0..5000u64)),
        12 => json!(0.5),
        _ => {
            let mut v = json!(1);
            for _ in 0..rng.random_range(1..200) {
                v = json!([v]);
            }
            v
        }
    }
}

/// Replaces, drops or repeats one value at a random depth of `v`.
fn mutate_json(v: &mut Value, rng: &mut StdRng) {
    let descend = rng.random_bool(0.6);
    match v {
        Value::Object(m) if !m.is_empty() && descend => {
            let k = rng.random_range(0..m.len());
            return mutate_json(m.values_mut().nth(k).unwrap(), rng);
        }
        Value::Array(a) if !a.is_empty() && descend => {
            let k = rng.random_range(0..a.len());
            return mutate_json(&mut a[k], rng);
        }
        _ => {}
    }
    match v {
        Value::Object(m) if !m.is_empty() && rng.random_bool(0.3) => {
            let k = rng.random_range(0..m.len());
            let key = m.keys().nth(k).cloned().unwrap();
            m.shift_remove(&key);
        }
        Value::Array(a) if !a.is_empty() && rng.random_bool(0.3) => {
            let k = rng.random_range(0..a.len());
            let item = a[k].clone();
            for _ in 0..rng.random_range(1..50) {
                a.push(item.clone());
            }
        }
        _ => *v = wild_json(rng),
    }
}

struct Mutator {
    rng: StdRng,
}

impl Mutator {
    fn range(&mut self, len: usize) -> (usize, usize) {
        if len == 0 {
            return (0, 0);
        }
        let a = self.rng.random_range(0..len);
        let n = self.rng.random_range(0..=(len - a).min(64));
        (a, a + n)
    }

    /// Byte-level mutation: flips, boundary integers at any offset, cuts, copies, splices.
    fn bytes(&mut self, seed: &[u8], other: &[u8]) -> Vec<u8> {
        let mut d = seed.to_vec();
        for _ in 0..self.rng.random_range(1..=4) {
            let len = d.len();
            match self.rng.random_range(0..11) {
                0 if len > 0 => {
                    let i = self.rng.random_range(0..len);
                    d[i] ^= 1 << self.rng.random_range(0..8);
                }
                1 if len > 0 => {
                    let i = self.rng.random_range(0..len);
                    d[i] = [0, 1, 0x7f, 0x80, 0xff][self.rng.random_range(0..5)];
                }
                2 | 3 if len >= 8 => {
                    // Length fields in GGUF and safetensors are 8-byte aligned relative to
                    // nothing in particular: try any offset, but favour multiples of 4.
                    let mut i = self.rng.random_range(0..=len - 8);
                    if self.rng.random_bool(0.5) {
                        i -= i % 4;
                    }
                    let v = INTERESTING_U64[self.rng.random_range(0..INTERESTING_U64.len())];
                    if self.rng.random_bool(0.5) {
                        d[i..i + 8].copy_from_slice(&v.to_le_bytes());
                    } else {
                        d[i..i + 4].copy_from_slice(&(v as u32).to_le_bytes());
                    }
                }
                4 => {
                    let (a, b) = self.range(len);
                    d.drain(a..b);
                }
                5 => {
                    let (a, b) = self.range(len);
                    let chunk = d[a..b].to_vec();
                    let at = self.rng.random_range(0..=d.len());
                    for _ in 0..self.rng.random_range(1..=3) {
                        d.splice(at..at, chunk.iter().copied());
                    }
                }
                6 if len > 0 => d.truncate(self.rng.random_range(0..len)),
                7 if !other.is_empty() => {
                    let (a, b) = self.range(other.len());
                    let at = self.rng.random_range(0..=d.len());
                    let end = (at + (b - a)).min(d.len());
                    d.splice(at..end, other[a..b].iter().copied());
                }
                8 | 9 => {
                    let t = TOKENS[self.rng.random_range(0..TOKENS.len())].as_bytes();
                    let at = self.rng.random_range(0..=d.len());
                    if self.rng.random_bool(0.5) && at < d.len() {
                        let end = (at + t.len()).min(d.len());
                        d.splice(at..end, t.iter().copied());
                    } else {
                        d.splice(at..at, t.iter().copied());
                    }
                }
                _ => {
                    let at = self.rng.random_range(0..=d.len());
                    let n = self.rng.random_range(1..16);
                    let junk: Vec<u8> = (0..n).map(|_| self.rng.random()).collect();
                    d.splice(at..at, junk);
                }
            }
        }
        d
    }

    /// JSON-aware mutation: a random value anywhere in the document becomes a wrong type, an
    /// extreme number or a deep nest; keys are dropped or duplicated.
    fn json(&mut self, seed: &[u8]) -> Vec<u8> {
        let Ok(mut v) = serde_json::from_slice::<Value>(seed) else {
            return self.bytes(seed, &[]);
        };
        for _ in 0..self.rng.random_range(1..=3) {
            mutate_json(&mut v, &mut self.rng);
        }
        let text = serde_json::to_vec(&v).unwrap();
        if self.rng.random_bool(0.2) {
            self.bytes(&text, &[])
        } else {
            text
        }
    }

    /// Line-aware mutation of TOML and CSV: a value after `=` or `,` is replaced.
    fn lines(&mut self, seed: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(seed);
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        if lines.is_empty() {
            return self.bytes(seed, &[]);
        }
        for _ in 0..self.rng.random_range(1..=3) {
            let i = self.rng.random_range(0..lines.len());
            let token = TOKENS[self.rng.random_range(0..TOKENS.len())];
            let replacement = match self.rng.random_range(0..4) {
                0 => format!(
                    "{}",
                    INTERESTING_U64[self.rng.random_range(0..INTERESTING_U64.len())]
                ),
                1 => format!("-{}", self.rng.random_range(0..1_000_000u64)),
                2 => token.to_string(),
                _ => format!("\"{}\"", "a".repeat(self.rng.random_range(0..300))),
            };
            let line = &mut lines[i];
            if let Some(at) = line.find(['=', ',']) {
                line.truncate(at + 1);
                line.push(' ');
                line.push_str(&replacement);
            } else if self.rng.random_bool(0.5) {
                let copy = line.clone();
                lines.insert(i, copy);
            } else {
                lines.remove(i);
            }
        }
        let out = lines.join("\n").into_bytes();
        if self.rng.random_bool(0.2) {
            self.bytes(&out, &[])
        } else {
            out
        }
    }
}

/// A file a target reads: where it goes in the target's folder, and its seeds.
struct Input {
    name: String,
    seeds: Vec<Vec<u8>>,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Binary,
    Json,
    Lines,
}

impl Input {
    fn new(name: &str, kind: Kind, seeds: Vec<Vec<u8>>) -> Self {
        assert!(!seeds.is_empty(), "no seeds for {name}");
        Input {
            name: name.to_string(),
            seeds,
            kind,
        }
    }
}

/// Runs one target: each execution restores every input to a seed, mutates one of them, and
/// calls `read(folder, mutated input's index)`, which says whether the reader accepted it.
fn fuzz(target: &str, inputs: Vec<Input>, mut read: impl FnMut(&Path, usize) -> bool) {
    let dir = work_dir(target);
    let crashes = work_dir("crashes");
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let restore = |dir: &Path| {
        for input in &inputs {
            std::fs::write(dir.join(&input.name), &input.seeds[0]).unwrap();
        }
    };
    let mut failures: Vec<String> = Vec::new();
    let mut accepted = 0u64;
    let mut run_one = |bytes: &[u8], which: usize, label: &str| -> Option<String> {
        restore(&dir);
        std::fs::write(dir.join(&inputs[which].name), bytes).unwrap();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| read(&dir, which)));
        if let Ok(true) = outcome {
            accepted += 1;
        }
        if let Err(panic) = outcome {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let saved = crashes.join(format!("{target}-{label}-{}", inputs[which].name));
            std::fs::write(&saved, bytes).unwrap();
            return Some(format!(
                "{}: {msg} (input saved to {})",
                inputs[which].name,
                saved.display()
            ));
        }
        None
    };
    let mut replayed = 0;
    if let Ok(entries) = std::fs::read_dir(&regressions) {
        for entry in entries {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            // Regression files are named `<input name>.<anything>`.
            let Some(which) = inputs
                .iter()
                .position(|i| file.starts_with(&format!("{}.", i.name)))
            else {
                panic!("{}: names none of this target's inputs", path.display());
            };
            failures.extend(run_one(&std::fs::read(&path).unwrap(), which, "regression"));
            replayed += 1;
        }
    }
    let seed = std::env::var("SEFT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0u64);
    let mut m = Mutator {
        rng: StdRng::seed_from_u64(seed ^ target.len() as u64),
    };
    let started = Instant::now();
    let (mut execs, mut slowest) = (0u64, Duration::ZERO);
    while started.elapsed() < budget() && failures.is_empty() {
        let which = m.rng.random_range(0..inputs.len());
        let input = &inputs[which];
        let base = &input.seeds[m.rng.random_range(0..input.seeds.len())];
        let other = &input.seeds[m.rng.random_range(0..input.seeds.len())];
        let bytes = match input.kind {
            Kind::Json if m.rng.random_bool(0.7) => m.json(base),
            Kind::Lines if m.rng.random_bool(0.7) => m.lines(base),
            _ => m.bytes(base, other),
        };
        let t = Instant::now();
        failures.extend(run_one(&bytes, which, &execs.to_string()));
        slowest = slowest.max(t.elapsed());
        execs += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let summary = json!({
        "target": target,
        "executions": execs,
        "seconds": secs,
        "per_second": execs as f64 / secs.max(1e-9),
        "accepted": accepted,
        "regressions_replayed": replayed,
        "slowest_ms": slowest.as_secs_f64() * 1e3,
        "largest_allocation_bytes": LARGEST.load(Ordering::Relaxed),
        "allocation_cap_bytes": CAP,
        "crashes": failures.len(),
        "seed": seed,
    });
    eprintln!("fuzz {summary}");
    std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
    assert!(failures.is_empty(), "{target}: {}", failures.join("; "));
}

fn read(path: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

fn fixture(rel: &str) -> Vec<u8> {
    read(common::fixture(rel))
}

/// A tiny loadable GGUF (f32 weights of the tiny Llama fixture, its byte-level vocabulary).
fn tiny_gguf() -> Vec<u8> {
    use common::Meta;
    let folder = common::fixture("tiny_archs/llama");
    let cfg = seft::model::ModelConfig::from_hf_json(&folder.join("config.json")).unwrap();
    let lm =
        seft::LanguageModel::load(&folder.display().to_string(), &burn::tensor::Device::flex())
            .unwrap();
    let tensors: Vec<(String, Vec<usize>, u32, Vec<u8>)> =
        seft::model::layout::named_tensors(&lm.net)
            .into_iter()
            .map(|(name, (shape, data))| {
                (
                    seft::model::weights::gguf_name(&name),
                    shape,
                    0,
                    common::f32_bytes(&data),
                )
            })
            .collect();
    let tokens: Vec<String> = (0..cfg.vocab_size)
        .map(|i| lm.tokenizer.decode(&[i as u32], false).unwrap_or_default())
        .map(|t| if t.is_empty() { "<e>".into() } else { t })
        .collect();
    gguf_bytes(
        &[
            ("general.architecture", Meta::Str("llama".into())),
            ("llama.embedding_length", Meta::U32(cfg.hidden_size as u32)),
            (
                "llama.feed_forward_length",
                Meta::U32(cfg.intermediate_size as u32),
            ),
            (
                "llama.attention.head_count",
                Meta::U32(cfg.num_attention_heads as u32),
            ),
            (
                "llama.attention.head_count_kv",
                Meta::U32(cfg.num_key_value_heads as u32),
            ),
            ("llama.block_count", Meta::U32(cfg.num_hidden_layers as u32)),
            (
                "llama.context_length",
                Meta::U32(cfg.max_position_embeddings as u32),
            ),
            ("llama.rope.freq_base", Meta::F32(10000.0)),
            ("llama.attention.layer_norm_rms_epsilon", Meta::F32(1e-5)),
            ("tokenizer.ggml.model", Meta::Str("gpt2".into())),
            ("tokenizer.ggml.tokens", Meta::Strs(tokens)),
            (
                "tokenizer.ggml.token_type",
                Meta::I32s(vec![1; cfg.vocab_size]),
            ),
            ("tokenizer.ggml.merges", Meta::Strs(Vec::new())),
            ("tokenizer.ggml.eos_token_id", Meta::U32(1)),
            ("tokenizer.ggml.add_bos_token", Meta::Bool(false)),
        ],
        &tensors,
    )
}

/// The bytes of a GGUF file with these metadata and (name, shape, ggml type, raw) tensors.
fn gguf_bytes(
    meta: &[(&str, common::Meta)],
    tensors: &[(String, Vec<usize>, u32, Vec<u8>)],
) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.gguf");
    let refs: Vec<(&str, Vec<usize>, u32, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, t, d)| (n.as_str(), s.clone(), *t, d.clone()))
        .collect();
    common::write_gguf(&path, meta, &refs);
    read(&path)
}

/// After a successful load, the model is used as the CLI would: a chat prompt, two tokens.
fn exercise(model: &seft::LanguageModel) {
    let messages = [seft::model::Message::new("user", "hi")];
    let Ok(text) = model.tokenizer.apply_chat_template(&messages, true) else {
        return;
    };
    let Ok(ids) = model.tokenizer.encode(&text, false) else {
        return;
    };
    if ids.is_empty() {
        return;
    }
    let cfg = seft::model::generate::SamplingConfig {
        max_new_tokens: 2,
        ..Default::default()
    };
    let _ = seft::model::generate::generate(model, &[ids], &cfg, |_, _| {});
}

#[test]
fn gguf_models() {
    let mut seeds = vec![tiny_gguf()];
    // The real model's header (metadata with its 49k-token vocabulary, the tensor table).
    let real = common::smollm2_gguf();
    if let Ok(file) = std::fs::File::open(&real) {
        let mut head = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, 2 << 20), &mut head).unwrap();
        seeds.push(head);
    }
    let text = std::fs::read_to_string(common::fixture("gguf_quants/quants.json")).unwrap();
    let quants: Value = serde_json::from_str(&text).unwrap();
    let tensors: Vec<(String, Vec<usize>, u32, Vec<u8>)> = quants["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let hex = c["raw_hex"].as_str().unwrap();
            let raw = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>();
            let n = c["values"].as_array().unwrap().len();
            (
                c["type"].as_str().unwrap().to_string(),
                vec![n],
                c["ggml_id"].as_u64().unwrap() as u32,
                raw,
            )
        })
        .collect();
    seeds.push(gguf_bytes(&[], &tensors));
    let device = burn::tensor::Device::flex();
    fuzz(
        "gguf",
        vec![Input::new("model.gguf", Kind::Binary, seeds)],
        |dir, _| {
            let path = dir.join("model.gguf");
            if let Ok(g) = seft::model::gguf::GgufFile::open(&path) {
                for t in &g.tensors {
                    let _ = g.read_f32(&t.name);
                }
            }
            match seft::LanguageModel::load(&path.display().to_string(), &device) {
                Ok(model) => {
                    exercise(&model);
                    true
                }
                Err(_) => false,
            }
        },
    );
}

#[test]
fn hugging_face_folders() {
    let mut inputs = Vec::new();
    for file in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        let seeds = ["llama", "mistral", "qwen2"]
            .iter()
            .map(|a| fixture(&format!("tiny_archs/{a}/{file}")))
            .collect();
        let mut seeds: Vec<Vec<u8>> = seeds;
        if file == "tokenizer_config.json" {
            // First (the unmutated default), with a chat template, so that loads go on to
            // render and generate.
            seeds.insert(
                0,
                br#"{"eos_token": "<|im_end|>", "chat_template": "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"}"#
                    .to_vec(),
            );
        }
        inputs.push(Input::new(file, Kind::Json, seeds));
    }
    inputs.push(Input::new(
        "model.safetensors",
        Kind::Binary,
        vec![fixture("tiny_archs/llama/model.safetensors")],
    ));
    let device = burn::tensor::Device::flex();
    fuzz(
        "hf_folder",
        inputs,
        |dir, _| match seft::LanguageModel::load(&dir.display().to_string(), &device) {
            Ok(model) => {
                exercise(&model);
                true
            }
            Err(_) => false,
        },
    );
}

#[test]
fn npy_matrices() {
    let dir = tempfile::tempdir().unwrap();
    let f4 = dir.path().join("f4.npy");
    seft::numeric::Matrix::new(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 2)
        .unwrap()
        .write_npy(&f4)
        .unwrap();
    let dict = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }";
    let mut f8 = b"\x93NUMPY\x01\x00".to_vec();
    f8.extend((dict.len() as u16 + 1).to_le_bytes());
    f8.extend(dict.as_bytes());
    f8.push(b'\n');
    for v in [1.0f64, 4.0, 2.0, 5.0, 3.0, 6.0] {
        f8.extend(v.to_le_bytes());
    }
    let v2_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }\n";
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    v2.extend((v2_dict.len() as u32).to_le_bytes());
    v2.extend(v2_dict.as_bytes());
    v2.extend(1.5f32.to_le_bytes());
    fuzz(
        "npy",
        vec![Input::new("m.npy", Kind::Binary, vec![read(&f4), f8, v2])],
        |dir, _| seft::numeric::Matrix::read_npy(&dir.join("m.npy")).is_ok(),
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn datasets() {
    let rows = [
        r#"{"prompt": "a", "completion": "b"}"#,
        r#"{"instruction": "i", "input": "x", "output": "o"}"#,
        r#"{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}"#,
        r#"{"conversations": [{"from": "human", "value": "u"}, {"from": "gpt", "value": "a"}]}"#,
        r#"{"prompt": "p", "chosen": "c", "rejected": "r"}"#,
        r#"{"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go away"}"#,
        r#"{"prompt": [{"role": "user", "content": "u"}], "chosen": [{"role": "assistant", "content": "c"}], "rejected": [{"role": "assistant", "content": "r"}]}"#,
        r#"{"text": "t"}"#,
    ];
    let jsonl = rows.join("\n").into_bytes();
    let array = format!("[{}]", rows.join(",\n")).into_bytes();
    let inputs = vec![
        Input::new(
            "rows.jsonl",
            Kind::Json,
            rows.iter()
                .map(|r| r.as_bytes().to_vec())
                .chain([jsonl.clone()])
                .collect(),
        ),
        Input::new("rows.json", Kind::Json, vec![array.clone()]),
        Input::new(
            "rows.jsonl.gz",
            Kind::Binary,
            vec![gzip(&jsonl), gzip(&array)],
        ),
    ];
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    fuzz("datasets", inputs, |dir, which| {
        let path = dir.join(&names[which]);
        let mut ok = false;
        for skip_bad_rows in [false, true] {
            let opts = seft::data::ReadOptions {
                skip_bad_rows,
                max_file_mib: 1,
                max_row_mib: 1,
            };
            ok |= seft::data::read_records(&path, &opts).is_ok();
            let _ = seft::data::read_preferences(&path, &opts);
            let _ = seft::data::read_prompts(&path, &opts);
        }
        ok
    });
}

#[test]
fn toml_configs() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut run = Vec::new();
    let mut sft = Vec::new();
    for entry in std::fs::read_dir(&configs).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("sft_") {
            sft.push(read(&path));
        } else {
            run.push(read(&path));
        }
    }
    let inputs = vec![
        Input::new("run.toml", Kind::Lines, run),
        Input::new("sft.toml", Kind::Lines, sft),
    ];
    fuzz("configs", inputs, |dir, which| {
        if which == 0 {
            seft::evolution::RunConfig::load(&dir.join("run.toml"), &[]).is_ok()
        } else {
            seft::train::SftParams::load(&dir.join("sft.toml"), &[]).is_ok()
        }
    });
}

#[test]
fn evaluation_files() {
    let shared = std::env::var("SEFT_SHARED_DATA").ok().map(PathBuf::from);
    let head = |rel: &str, lines: usize| -> Option<Vec<u8>> {
        let text = std::fs::read_to_string(shared.as_ref()?.join(rel)).ok()?;
        Some(
            text.lines()
                .take(lines)
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes(),
        )
    };
    let mut questions = vec![
        br#"{"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Shorter."]}
{"question_id": 101, "category": "math", "turns": ["1+1?", "2+2?"], "reference": ["2", "4"]}"#
            .to_vec(),
    ];
    questions.extend(head("mt_bench/question.jsonl", 5));
    let answers = br#"{"question_id": 81, "answer_id": "x", "model_id": "m", "choices": [{"index": 0, "turns": ["a", "b"]}], "tstamp": 1.0}"#.to_vec();
    let judge_prompts = br#"{"name": "single-v1", "type": "single", "system_prompt": "You are a judge.", "prompt_template": "[Question]\n{question}\n[Answer]\n{answer}", "description": "d", "category": "general", "output_format": "[[rating]]"}"#.to_vec();
    let annotations = fixture("alpaca_annotations/annotations.json");
    let outputs =
        br#"[{"instruction": "i", "output": "o", "generator": "g", "dataset": "helpful_base"}]"#
            .to_vec();
    let difficulty = read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("datasets/alpaca_eval/instruction_difficulty_estimated.csv"),
    );
    let template = br#"<|im_start|>system
You are a helpful assistant.
<|im_end|>
<|im_start|>user
{instruction} [1] {output_1} [2] {output_2}
<|im_end|>"#
        .to_vec();
    let metrics = br#"[{"generator": "m", "win_rate": {"win_rate": 50.0, "standard_error": 1.0, "n_wins": 1, "n_wins_base": 1, "n_draws": 0, "n_total": 2, "discrete_win_rate": 50.0}, "avg_length": 10, "length_controlled_winrate": 50.0, "lc_standard_error": 1.0, "instruction_difficulty": "x", "annotator": "a"}]"#.to_vec();
    let inputs = vec![
        Input::new("question.jsonl", Kind::Json, questions),
        Input::new("answers.jsonl", Kind::Json, vec![answers]),
        Input::new("judge_prompts.jsonl", Kind::Json, vec![judge_prompts]),
        Input::new("annotations.json", Kind::Json, vec![annotations]),
        Input::new("model_outputs.json", Kind::Json, vec![outputs]),
        Input::new("difficulty.csv", Kind::Lines, vec![difficulty]),
        Input::new("template.txt", Kind::Binary, vec![template]),
        Input::new("metrics.json", Kind::Json, vec![metrics]),
    ];
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    fuzz("eval_files", inputs, |dir, which| {
        use seft::eval::{alpaca, mt_bench};
        let path = dir.join(&names[which]);
        match names[which].as_str() {
            "question.jsonl" => mt_bench::data::read_questions(&path).is_ok(),
            "answers.jsonl" => mt_bench::data::read_answers(&path).is_ok(),
            "judge_prompts.jsonl" => mt_bench::data::read_judge_prompts(&path).is_ok(),
            "annotations.json" => match alpaca::annotations::read_annotations(&path) {
                Ok(a) => {
                    let prefs: Vec<Option<f64>> = a.iter().map(|x| x.preference).collect();
                    let _ = alpaca::metrics::win_rate(&prefs);
                    let difficulty = vec![0.5; a.len()];
                    let _ = alpaca::protocol::metrics(&a, &difficulty, "fuzz");
                    true
                }
                Err(_) => false,
            },
            "model_outputs.json" => alpaca::annotations::read_model_outputs(&path).is_ok(),
            "difficulty.csv" => alpaca::difficulty::InstructionDifficulty::read_csv(&path).is_ok(),
            "template.txt" => alpaca::protocol::JudgeTemplate::read(&path).is_ok(),
            _ => seft::eval::leaderboard::run(&[dir.to_path_buf()], None).is_ok(),
        }
    });
}

#[test]
fn ifeval_files() {
    let shared = std::env::var("SEFT_SHARED_DATA").ok().map(PathBuf::from);
    // Every instruction type with its kwargs, then the official rows when the data is here.
    let mut input = r#"{"key": 1, "prompt": "a", "instruction_id_list": ["keywords:existence", "keywords:frequency", "keywords:forbidden_words"], "kwargs": [{"keywords": ["x", "y"]}, {"keyword": "z", "frequency": 2, "relation": "at least"}, {"forbidden_words": ["w"]}]}
{"key": 2, "prompt": "b", "instruction_id_list": ["keywords:letter_frequency", "language:response_language", "length_constraints:number_sentences"], "kwargs": [{"letter": "q", "let_frequency": 3, "let_relation": "less than"}, {"language": "de"}, {"num_sentences": 2, "relation": "at least"}]}
{"key": 3, "prompt": "c", "instruction_id_list": ["length_constraints:number_paragraphs", "length_constraints:number_words", "length_constraints:nth_paragraph_first_word"], "kwargs": [{"num_paragraphs": 2}, {"num_words": 5, "relation": "less than"}, {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "hi"}]}
{"key": 4, "prompt": "d", "instruction_id_list": ["detectable_content:number_placeholders", "detectable_content:postscript", "detectable_format:number_bullet_lists", "detectable_format:constrained_response"], "kwargs": [{"num_placeholders": 1}, {"postscript_marker": "P.P.S"}, {"num_bullets": 2}, {}]}
{"key": 5, "prompt": "e", "instruction_id_list": ["detectable_format:number_highlighted_sections", "detectable_format:multiple_sections", "detectable_format:json_format", "detectable_format:title"], "kwargs": [{"num_highlights": 1}, {"section_spliter": "Section", "num_sections": 2}, {}, {}]}
{"key": 6, "prompt": "f", "instruction_id_list": ["combination:two_responses", "combination:repeat_prompt", "startend:end_checker", "startend:quotation"], "kwargs": [{}, {"prompt_to_repeat": "f"}, {"end_phrase": "Bye."}, {}]}
{"key": 7, "prompt": "g", "instruction_id_list": ["change_case:capital_word_frequency", "change_case:english_capital", "change_case:english_lowercase", "punctuation:no_comma"], "kwargs": [{"capital_frequency": 2, "capital_relation": "at least"}, {}, {}, {}]}"#
        .to_string();
    if let Some(text) = shared
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.join("ifeval/input_data.jsonl")).ok())
    {
        input.push('\n');
        input.push_str(&text.lines().take(20).collect::<Vec<_>>().join("\n"));
    }
    let responses: String = ["a", "b", "c", "d", "e", "f", "g"]
        .iter()
        .zip([
            "x y z z. Not w!",
            "Dies ist ein Satz. Noch einer.",
            "hi there\n\n***\n\nsecond",
            "[a] * one\n- two\nMy answer is yes.\np.p.s bye",
            "*hi* SECTION 1 Section 2 ```json\n{\"a\": [1, NaN]}\n``` <<t>>",
            "\"f then one ****** two Bye.\"",
            "HELLO WORLD, I CANNOT",
        ])
        .map(|(p, r)| json!({"prompt": p, "response": r}).to_string() + "\n")
        .collect();
    let inputs = vec![
        Input::new("input_data.jsonl", Kind::Json, vec![input.into_bytes()]),
        Input::new("responses.jsonl", Kind::Json, vec![responses.into_bytes()]),
    ];
    fuzz("ifeval_files", inputs, |dir, _| {
        use seft::eval::ifeval::evaluate;
        let Ok(prompts) = evaluate::read_input_data(&dir.join("input_data.jsonl")) else {
            return false;
        };
        let path = dir.join("responses.jsonl");
        let Ok(mut responses) = evaluate::read_responses(&path) else {
            return false;
        };
        // Every prompt answered (by a mutated response where there is one), so that each
        // mutated text reaches every checker.
        let texts: Vec<String> = responses.values().cloned().collect();
        for (i, p) in prompts.iter().enumerate() {
            if !responses.contains_key(&p.prompt) && !texts.is_empty() {
                responses.insert(p.prompt.clone(), texts[i % texts.len()].clone());
            }
        }
        match evaluate::judge_all(&prompts, &responses, &path) {
            Ok(verdicts) => {
                let _ = evaluate::markdown(&evaluate::metrics("fuzz", &verdicts));
                true
            }
            Err(_) => false,
        }
    });
}

#[test]
fn server_requests() {
    let requests = [
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}),
        json!({"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "max_completion_tokens": 2, "temperature": 0.7, "top_p": 0.9, "seed": 3, "stop": ["\n"], "logprobs": true, "top_logprobs": 2}),
        json!({"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}], "n": 2, "stop": "x", "max_tokens": 1, "stream": true}),
        json!({"model": "m", "prompt": ["ab", [1, 2, 3]], "max_tokens": 2, "echo": true, "logprobs": 2}),
        json!({"prompt": "a", "max_tokens": 3, "stream": true, "stream_options": {"include_usage": true}}),
    ];
    let seeds = requests
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap())
        .collect();
    // The tiny Llama with a chat template, behind the real server (slots of 64 positions).
    let (model, _folder) = common::tiny_model();
    let mut opts = seft::serve::ServeOptions::new("m");
    (opts.slots, opts.max_seq_len, opts.default_max_tokens) = (2, 64, 4);
    let server = seft::serve::spawn(model, "127.0.0.1:0", opts).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let post = |path: &str, body: &[u8]| -> u16 {
        let response = agent
            .post(&format!("{}{path}", server.url()))
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap_or_else(|e| panic!("the server dropped the request: {e}"));
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap_or_default();
        assert!(status < 500, "HTTP {status}: {text}");
        status
    };
    assert_eq!(post("/chat/completions", &seeds_of(&requests[0])), 200);
    assert_eq!(post("/completions", &seeds_of(&requests[3])), 200);
    fuzz(
        "serve",
        vec![Input::new("request.json", Kind::Json, seeds)],
        |dir, _| {
            // Raw bytes to both endpoints: every answer is a 200 or a 4xx, never a 5xx or a
            // dropped connection.
            let Ok(body) = std::fs::read(dir.join("request.json")) else {
                return false;
            };
            let chat = post("/chat/completions", &body);
            let completion = post("/completions", &body);
            chat == 200 || completion == 200
        },
    );
}

fn seeds_of(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}
