use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::cli::ModelArgs;
use crate::model::ModelOrigin;

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output folder (created; replaced atomically if it exists).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: InfoArgs) -> Result<()> {
    let model = args.model.load()?;
    let c = &model.config;
    let t = &model.tokenizer;
    let origin = match &model.origin {
        ModelOrigin::HfFolder(p) => format!("Hugging Face folder {}", p.display()),
        ModelOrigin::Gguf(p) => format!("GGUF {}", p.display()),
        ModelOrigin::Hub { id, folder } => format!("hub {id} ({})", folder.display()),
        ModelOrigin::Fresh => "fresh".into(),
    };
    let info = json!({
        "source": origin,
        "architecture": c.architecture.hf_class(),
        "parameters": c.parameter_count(),
        "stored_dtype": model.stored_dtype,
        "compute_dtype": "float32",
        "layers": c.num_hidden_layers,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "attention_heads": c.num_attention_heads,
        "kv_heads": c.num_key_value_heads,
        "head_dim": c.head_dim,
        "rope_theta": c.rope_theta,
        "rope_scaling": format!("{:?}", c.rope_scaling),
        "max_position_embeddings": c.max_position_embeddings,
        "tied_embeddings": c.tie_word_embeddings,
        "qkv_bias": c.qkv_bias,
        "mlp": format!("{:?}", c.mlp),
        "vocab_size": c.vocab_size,
        "tokenizer_vocab": t.vocab_size(),
        "bos_token": t.bos_token,
        "eos_token": t.eos_token,
        "eos_token_ids": model.eos_token_ids,
        "add_bos_token": t.add_bos_token,
        "chat_template": t.chat_template.as_ref().map(|ct| ct.source.clone()),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    for (k, v) in info.as_object().expect("object") {
        if k == "chat_template" {
            continue;
        }
        let shown = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        println!("{k:<24} {shown}");
    }
    match &t.chat_template {
        Some(ct) => println!("chat_template:\n{}", ct.source),
        None => println!("{:<24} none", "chat_template"),
    }
    Ok(())
}

pub fn export(args: ExportArgs) -> Result<()> {
    let model = args.model.load()?;
    model.save_hf_folder(&args.out)?;
    eprintln!("saved {}", args.out.display());
    Ok(())
}
