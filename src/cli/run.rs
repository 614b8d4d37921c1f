use std::path::PathBuf;

use anyhow::Result;

use crate::evolution::RunConfig;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Experiment configuration (see configs/quickstart.toml and configs/seft_example.toml).
    pub config: PathBuf,
    /// Run directory (default: runs/<config name>). Rerunning into the same directory resumes
    /// at the first unfinished stage.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override a config value, e.g. `--set iterations=3` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

pub fn run(args: RunArgs) -> Result<()> {
    let cfg = RunConfig::load(&args.config, &args.overrides)?;
    let out = args.out.unwrap_or_else(|| {
        let stem = args
            .config
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("run");
        PathBuf::from("runs").join(stem)
    });
    let report = crate::evolution::run(&cfg, &out)?;
    eprintln!("\n{}", report.markdown());
    println!("{}", out.join("report.json").display());
    Ok(())
}
