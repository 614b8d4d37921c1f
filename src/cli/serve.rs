use std::time::Duration;

use anyhow::{Context, Result};

use crate::serve::{ServeOptions, parse_fault_plan, serve};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: super::ModelArgs,
    /// Address to listen on (port 0 picks a free port; the address is printed on stdout).
    /// A non-loopback address needs --api-key-env (or --insecure).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Model name reported by the API (default: the model file's or folder's name).
    #[arg(long)]
    pub name: Option<String>,
    /// max_tokens when a chat request gives none (bounded by the room --max-seq-len leaves).
    #[arg(long, default_value_t = 512)]
    pub default_max_tokens: usize,
    /// Sequences generated at once (KV-cache slots of --max-seq-len positions each).
    #[arg(long, default_value_t = 16)]
    pub slots: usize,
    /// The longest prompt + answer, in tokens (bounded by the model's context).
    #[arg(long, default_value_t = 2048)]
    pub max_seq_len: usize,
    /// Requests waiting for a slot before new ones are answered 429.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Name of an environment variable holding the API key clients must send
    /// (`Authorization: Bearer KEY`).
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// Serve a non-loopback address without an API key.
    #[arg(long)]
    pub insecure: bool,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    pub max_body_bytes: usize,
    /// Seconds a client has to send its headers, and then its body.
    #[arg(long, default_value_t = 10.0)]
    pub read_timeout: f64,
    /// For testing clients: make the first chat requests fail in this order, e.g.
    /// "429,500,malformed,slow:5000" (ok = answer normally).
    #[arg(long, hide = true, default_value = "")]
    pub inject_faults: String,
}

/// The served name: the model file's stem or the folder's name, never a full path.
fn default_name(spec: &str) -> String {
    let path = std::path::Path::new(spec);
    let name = if path.extension().is_some_and(|e| e == "gguf") {
        path.file_stem()
    } else {
        path.file_name()
    };
    name.map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "model".into())
}

pub fn run(args: ServeArgs) -> Result<()> {
    let fault_plan = parse_fault_plan(&args.inject_faults)?;
    if !(args.read_timeout > 0.0 && args.read_timeout.is_finite()) {
        anyhow::bail!("--read-timeout must be a positive number of seconds");
    }
    let api_key = match &args.api_key_env {
        None => None,
        Some(var) => {
            let key = std::env::var(var)
                .with_context(|| format!("--api-key-env {var}: the variable is not set"))?;
            if key.trim().is_empty() {
                anyhow::bail!("--api-key-env {var}: the variable is empty");
            }
            Some(key)
        }
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| default_name(args.model.model.trim_end_matches('/')));
    let mut opts = ServeOptions::new(&name);
    opts.default_max_tokens = args.default_max_tokens;
    opts.slots = args.slots.max(1);
    opts.max_seq_len = args.max_seq_len;
    opts.queue = args.queue.max(1);
    opts.api_key = api_key;
    opts.insecure = args.insecure;
    opts.max_body_bytes = args.max_body_bytes;
    opts.header_timeout = Duration::from_secs_f64(args.read_timeout);
    opts.body_timeout = Duration::from_secs_f64(args.read_timeout);
    opts.fault_plan = fault_plan;
    let model = args.model.load()?;
    let (slots, max_seq_len) = (opts.slots, opts.max_seq_len);
    serve(model, &args.addr, opts, |addr| {
        println!("http://{addr}/v1");
        eprintln!(
            "serving {name} at http://{addr}/v1 ({slots} slots of up to {max_seq_len} tokens)"
        );
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::default_name;

    #[test]
    fn served_names_hide_paths() {
        assert_eq!(
            default_name("/home/u/models/SmolLM2.Q4_1.gguf"),
            "SmolLM2.Q4_1"
        );
        assert_eq!(default_name("/home/u/ckpt/final"), "final");
        assert_eq!(default_name("HuggingFaceTB/SmolLM2-135M"), "SmolLM2-135M");
    }
}
