//! One module per subcommand.

mod convert;
mod image;

use crate::cli::{Cli, Command, ImageCommand};

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Convert(args) => convert::run(&cli.global, args),
        Command::Image(ImageCommand::Rpull(args)) => image::rpull(&cli.global, args),
    }
}
