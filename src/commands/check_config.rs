//! `triage check-config`: validate and print the effective configuration.

use std::process::ExitCode;

use crate::cli::ConfigArgs;
use crate::config::Overrides;

pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = args.load(&Overrides::default())?;
    print!("{}", config.to_masked_toml()?);
    for warning in config.warnings() {
        eprintln!("triage: warning: {warning}");
    }
    Ok(ExitCode::SUCCESS)
}
