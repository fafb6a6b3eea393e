//! One module per subcommand.

mod convert;
mod convert_containerd;
mod create;
mod image;
mod index;
mod local;
mod prefetch;
mod push;
mod ztoc;

use crate::cli::{Cli, Command, ImageCommand, IndexCommand, PrefetchCommand, ZtocCommand};

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Convert(args) => convert::run(&cli.global, args),
        Command::Image(ImageCommand::Rpull(args)) => image::rpull(&cli.global, args),
        Command::Ztoc(ZtocCommand::List(args)) => ztoc::list(&cli.global, args),
        Command::Ztoc(ZtocCommand::Info(args)) => ztoc::info(&cli.global, args),
        Command::Ztoc(ZtocCommand::GetFile(args)) => ztoc::get_file(&cli.global, args),
        Command::Create(args) => create::run(&cli.global, args),
        Command::Push(args) => push::run(&cli.global, args),
        Command::Index(IndexCommand::List(args)) => index::list(&cli.global, args),
        Command::Index(IndexCommand::Info(args)) => index::info(&cli.global, args),
        Command::Index(IndexCommand::Remove(args)) => index::remove(&cli.global, args),
        Command::Prefetch(PrefetchCommand::List(args)) => prefetch::list(&cli.global, args),
        Command::Prefetch(PrefetchCommand::Info(args)) => prefetch::info(&cli.global, args),
        Command::RebuildDb => local::rebuild_db(&cli.global),
    }
}
