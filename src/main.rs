use std::process::ExitCode;

use clap::Parser;

/// The webhook path allocates many small short-lived objects per request (labels,
/// signals, JSON); under load glibc's malloc spent about an eighth of the server's CPU
/// on its own bookkeeping (see docs/ingest.md, "Performance").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    triage::tls::install_crypto_provider();
    let cli = triage::cli::Cli::parse();
    match triage::commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole context chain on one line: "what failed: why".
            eprintln!("triage: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
