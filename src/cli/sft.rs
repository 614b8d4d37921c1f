use std::path::PathBuf;

use anyhow::Result;

use crate::train::{SftParams, run_sft};

#[derive(clap::Args, Debug)]
pub struct SftArgs {
    /// TOML run configuration (see configs/sft_example.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config value, e.g. `--set train.lr=1e-4` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Continue from the run directory's latest checkpoint.
    #[arg(long)]
    pub resume: bool,
}

pub fn run(args: SftArgs) -> Result<()> {
    let cfg = SftParams::load(&args.config, &args.overrides)?;
    let outcome = run_sft(&cfg, args.resume)?;
    println!("{}", serde_json::to_string_pretty(&outcome)?);
    Ok(())
}
