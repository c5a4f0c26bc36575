//! One module per subcommand; `run` dispatches.

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::config::Overrides;

mod check_config;
pub mod demo;
pub mod doctor;
pub mod outcome;
pub mod reconcile;
pub mod render;
pub mod replay;
pub mod serve;
pub mod status;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { config } => check_config::run(&config),
        Command::Reconcile { config } => reconcile::run(&config),
        Command::Serve {
            config,
            listen,
            snapshot,
        } => serve::run(config.load(&Overrides { listen, snapshot })?),
        Command::Status {
            config,
            snapshot,
            format,
            unhealthy,
        } => status::run(&config, snapshot, format, unhealthy),
        Command::Doctor {
            config,
            snapshot,
            format,
        } => doctor::run(&config, snapshot, format),
        Command::Render {
            config,
            file,
            snapshot,
            source,
            templates,
            comments,
        } => render::run(&config, &file, snapshot, source, templates, comments),
        Command::Demo { dir } => demo::run(dir),
        Command::Replay {
            config,
            files,
            snapshot,
            source,
            format,
        } => replay::run(&config, &files, snapshot, source, format),
    }
}
