//! The `soci` command line, compatible with upstream SOCI's flags and output.
//!
//! Parsing lives in [`cli`]; each subcommand is a short function in
//! [`commands`] that calls into the library crates.

pub mod cli;
pub mod commands;
pub mod progress;

use clap::Parser;

/// Run the CLI with the process arguments; returns the exit code.
pub fn main() -> i32 {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("soci: {e:#}");
            1
        }
    }
}
