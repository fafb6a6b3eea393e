//! One module per subcommand.

mod convert;
mod convert_containerd;
mod image;
mod ztoc;

use crate::cli::{Cli, Command, ImageCommand, ZtocCommand};

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Convert(args) => convert::run(&cli.global, args),
        Command::Image(ImageCommand::Rpull(args)) => image::rpull(&cli.global, args),
        Command::Ztoc(ZtocCommand::List(args)) => ztoc::list(&cli.global, args),
        Command::Ztoc(ZtocCommand::Info(args)) => ztoc::info(&cli.global, args),
        Command::Ztoc(ZtocCommand::GetFile(args)) => ztoc::get_file(&cli.global, args),
    }
}
