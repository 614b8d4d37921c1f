use anyhow::Result;

use crate::serve::{ServeOptions, parse_fault_plan, serve};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: super::ModelArgs,
    /// Address to listen on (port 0 picks a free port; the address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Model name reported by the API (default: the model spec).
    #[arg(long)]
    pub name: Option<String>,
    /// max_tokens when a request gives none.
    #[arg(long, default_value_t = 512)]
    pub default_max_tokens: usize,
    /// For testing clients: make the first requests fail in this order, e.g.
    /// "429,500,malformed,slow:5000" (ok = answer normally).
    #[arg(long, hide = true, default_value = "")]
    pub inject_faults: String,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let fault_plan = parse_fault_plan(&args.inject_faults)?;
    let model = args.model.load()?;
    let opts = ServeOptions {
        name: args
            .name
            .clone()
            .unwrap_or_else(|| args.model.model.clone()),
        default_max_tokens: args.default_max_tokens,
        fault_plan,
    };
    serve(&model, &args.addr, &opts, |addr| {
        println!("http://{addr}/v1");
        eprintln!(
            "serving {} at http://{addr}/v1 (POST /chat/completions)",
            opts.name
        );
    })?;
    Ok(())
}
