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

use anyhow::Context;

use crate::cli::{Cli, Command, ImageCommand, IndexCommand, PrefetchCommand, ZtocCommand};

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    // `push` and `image rpull` apply `--timeout` to their own registry and
    // containerd calls (and clean up after themselves); every other command
    // is bounded as a whole.
    if !matches!(cli.command, Command::Push(_) | Command::Image(_))
        && let Some(limit) = cli.global.timeout.as_deref()
    {
        watchdog(limit, command_name(&cli.command))?;
    }
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

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Convert(_) => "convert",
        Command::Image(_) => "image",
        Command::Ztoc(_) => "ztoc",
        Command::Create(_) => "create",
        Command::Push(_) => "push",
        Command::Index(_) => "index",
        Command::Prefetch(_) => "prefetch",
        Command::RebuildDb => "rebuild-db",
    }
}

/// End the process with an error when the command outlives `--timeout`.
/// Outputs are written atomically (layouts renamed into place, registry tags
/// pushed last), so stopping at any point leaves no half-written result.
fn watchdog(limit: &str, name: &'static str) -> anyhow::Result<()> {
    let d = image::parse_timeout(limit)?;
    let limit = limit.to_string();
    std::thread::Builder::new()
        .name("soci-timeout".into())
        .spawn(move || {
            std::thread::sleep(d);
            eprintln!(
                "soci: {name} did not finish within --timeout {limit}; nothing was tagged or written \
                 (raise --timeout and run it again)"
            );
            std::process::exit(1);
        })?;
    Ok(())
}

/// The async runtime of a command that talks to a registry or containerd
/// (two workers: the work is I/O-bound).
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}
