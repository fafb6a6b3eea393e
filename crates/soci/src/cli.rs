//! Command-line definitions (flags and defaults follow upstream SOCI).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// soci: build and inspect SOCI indexes for lazy loading of container images.
#[derive(Debug, Parser)]
#[command(name = "soci", version, about, long_about = None)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Address of containerd's gRPC socket.
    #[arg(
        short = 'a',
        long,
        global = true,
        env = "CONTAINERD_ADDRESS",
        default_value = "/run/containerd/containerd.sock"
    )]
    pub address: String,
    /// containerd namespace.
    #[arg(
        short = 'n',
        long,
        global = true,
        env = "CONTAINERD_NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
    /// Timeout for containerd and registry operations (e.g. 30s, 5m).
    #[arg(long, global = true)]
    pub timeout: Option<String>,
    /// Enable debug output.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Content store for SOCI artifacts.
    #[arg(long, global = true, value_enum, default_value_t = ContentStoreKind::Containerd)]
    pub content_store: ContentStoreKind,
    /// Root directory of the SOCI artifacts (shared with soci-snapshotter-grpc).
    #[arg(long, global = true, default_value = "/var/lib/soci-snapshotter-grpc/")]
    pub root: PathBuf,
}

/// Where SOCI artifacts are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ContentStoreKind {
    /// containerd's content store.
    Containerd,
    /// The soci store: an OCI layout under `<root>/content`.
    Soci,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert an image to a SOCI-enabled image (SOCI index manifest v2).
    Convert(ConvertArgs),
    /// Work with images in containerd.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Inspect zTOCs in the local soci store.
    #[command(subcommand)]
    Ztoc(ZtocCommand),
    /// Create SOCI index manifests v1 for an image (one per platform).
    Create(CreateArgs),
    /// Push the SOCI index manifest v1 of an image and its artifacts to the image's registry.
    Push(PushArgs),
    /// Manage SOCI indexes in the local store.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Inspect prefetch artifacts in the local store.
    #[command(subcommand)]
    Prefetch(PrefetchCommand),
    /// Rebuild the artifacts database from the local content store.
    RebuildDb,
}

/// `soci ztoc` subcommands.
#[derive(Debug, Subcommand)]
pub enum ZtocCommand {
    /// List zTOCs.
    #[command(visible_alias = "ls")]
    List(ZtocListArgs),
    /// Print a zTOC's details as JSON.
    Info(ZtocInfoArgs),
    /// Extract a file from a layer using its zTOC.
    GetFile(ZtocGetFileArgs),
}

/// `soci ztoc list`.
#[derive(Debug, Args)]
pub struct ZtocListArgs {
    /// Only the zTOC with this digest.
    #[arg(long)]
    pub ztoc_digest: Option<String>,
    /// Only zTOCs of the layers of this image (containerd image name, or
    /// `docker://`, `oci:`, `oci-archive:` location).
    #[arg(long)]
    pub image_ref: Option<String>,
    /// Print only the digests.
    #[arg(short, long)]
    pub quiet: bool,
    /// Registry access for a `docker://` --image-ref.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `soci ztoc info`.
#[derive(Debug, Args)]
pub struct ZtocInfoArgs {
    /// Digest of the zTOC.
    pub digest: String,
}

/// `soci ztoc get-file`.
#[derive(Debug, Args)]
pub struct ZtocGetFileArgs {
    /// Write the file here instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Read the zTOC and the layer from this image instead of the local
    /// store (`docker://REF`, `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`);
    /// the zTOC digest is looked up in the image's SOCI indexes.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Registry access for a `docker://` --image.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Digest of the zTOC.
    pub ztoc_digest: String,
    /// Path of the file in the layer.
    pub file: String,
}

/// How to reach registries (`docker://` images).
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Use plain HTTP to reach registries (loopback registries always are).
    #[arg(long)]
    pub plain_http: bool,
    /// Accept any TLS certificate from registries.
    #[arg(short = 'k', long)]
    pub skip_verify: bool,
    /// Registry credentials; without the password it is read from stdin.
    /// Default: the docker config ($DOCKER_CONFIG or ~/.docker/config.json).
    #[arg(short = 'u', long, value_name = "USER[:PASSWORD]")]
    pub user: Option<String>,
    /// TLS and debugging of registry connections.
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// TLS, hosts directories and HTTP debugging of registry connections.
#[derive(Debug, Args, Default)]
pub struct TlsArgs {
    /// A PEM file of CA certificates to trust for registries, besides the
    /// system's (repeatable).
    #[arg(long = "tlscacert", value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// A PEM client certificate to present to registries (with --tlskey).
    #[arg(long = "tlscert", value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The PEM private key of --tlscert.
    #[arg(long = "tlskey", value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// containerd-style hosts directory: DIR/<host[:port]>/hosts.toml gives a
    /// registry's endpoint, CA, client certificate and skip_verify (repeatable).
    #[arg(long = "hosts-dir", value_name = "DIR")]
    pub hosts_dirs: Vec<PathBuf>,
    /// Print every registry HTTP request and response (headers; credentials
    /// redacted) on stderr.
    #[arg(long)]
    pub http_dump: bool,
    /// Print one line per registry HTTP request with its status and timing on stderr.
    #[arg(long)]
    pub http_trace: bool,
}

/// `soci create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Index-building flags.
    #[command(flatten)]
    pub build: BuildArgs,
    /// Registry access for a `docker://` image.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The image: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
    /// `docker://REGISTRY/REPO[:TAG|@DIGEST]`, or `REGISTRY/REPO[:TAG]`.
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// `--existing-index` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExistingIndex {
    /// Warn and push anyway.
    Warn,
    /// Do not push when the registry has an index for the image.
    Skip,
    /// Push without checking.
    Allow,
}

/// `soci push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Registry access: --plain-http, -k, -u, TLS, hosts directories, HTTP debugging.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// An OAuth refresh token for the registry's token server (used instead
    /// of --user or the docker config).
    #[arg(long, value_name = "TOKEN", conflicts_with = "user")]
    pub refresh: Option<String>,
    /// containerd snapshotter of the image; accepted for compatibility, it
    /// does not change what is pushed.
    #[arg(long, env = "CONTAINERD_SNAPSHOTTER", default_value = "overlayfs")]
    pub snapshotter: String,
    /// Platform whose index is pushed (os/arch[/variant]); repeatable. Default: the host's.
    #[arg(short = 'p', long = "platform", conflicts_with = "all_platforms")]
    pub platforms: Vec<String>,
    /// Push the indexes of every platform of the image.
    #[arg(long)]
    pub all_platforms: bool,
    /// What to do when the registry already has a SOCI index for the image.
    #[arg(long, value_enum, default_value_t = ExistingIndex::Warn)]
    pub existing_index: ExistingIndex,
    /// Blobs uploaded at the same time.
    #[arg(long, default_value_t = 3)]
    pub max_concurrent_uploads: u64,
    /// Print only the digest of each index pushed.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The image in its registry: `REGISTRY/REPO:TAG` or `docker://REGISTRY/REPO[:TAG|@DIGEST]`.
    #[arg(value_name = "REF")]
    pub reference: String,
}

/// `soci index` subcommands.
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// List SOCI indexes.
    #[command(visible_alias = "ls")]
    List(IndexListArgs),
    /// Print a SOCI index manifest.
    Info(DigestArg),
    /// Remove SOCI indexes from the artifacts database.
    #[command(visible_alias = "rm")]
    Remove(IndexRemoveArgs),
}

/// `soci index list`.
#[derive(Debug, Args)]
pub struct IndexListArgs {
    /// Only indexes of this image (same forms as `soci create`).
    #[arg(long = "ref", value_name = "IMAGE")]
    pub reference: Option<String>,
    /// Print only the index digests.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Only indexes of this platform (os/arch[/variant]); repeatable.
    #[arg(short = 'p', long = "platform")]
    pub platforms: Vec<String>,
}

/// `soci index remove`.
#[derive(Debug, Args)]
pub struct IndexRemoveArgs {
    /// Remove the indexes of this image (same forms as `soci create`).
    #[arg(long = "ref", value_name = "IMAGE", conflicts_with = "digests")]
    pub reference: Option<String>,
    /// Index digests.
    #[arg(value_name = "DIGEST")]
    pub digests: Vec<String>,
}

/// A single digest argument.
#[derive(Debug, Args)]
pub struct DigestArg {
    /// The digest (`sha256:<64 hex>`).
    #[arg(value_name = "DIGEST")]
    pub digest: String,
}

/// `soci prefetch` subcommands.
#[derive(Debug, Subcommand)]
pub enum PrefetchCommand {
    /// List prefetch artifacts.
    #[command(visible_alias = "ls")]
    List(JsonFlag),
    /// Show a prefetch artifact.
    Info(PrefetchInfoArgs),
}

/// `--json`.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Output JSON.
    #[arg(long)]
    pub json: bool,
}

/// `soci prefetch info`.
#[derive(Debug, Args)]
pub struct PrefetchInfoArgs {
    /// Also print the artifact as JSON.
    #[arg(long)]
    pub json: bool,
    /// The prefetch artifact digest.
    #[arg(value_name = "DIGEST")]
    pub digest: String,
}

/// `soci image` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Pull an image through containerd so that the SOCI snapshotter can
    /// load its layers lazily (layers it cannot are downloaded and unpacked
    /// as usual).
    Rpull(RpullArgs),
}

/// `soci image rpull`.
#[derive(Debug, Args)]
pub struct RpullArgs {
    /// Registry access: --plain-http, -k, -u, TLS, hosts directories, HTTP debugging.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Use this SOCI index instead of discovering one.
    #[arg(long, value_name = "DIGEST")]
    pub soci_index_digest: Option<String>,
    /// Platform to pull (os/arch[/variant]); default: the host's.
    #[arg(long)]
    pub platform: Option<String>,
    /// containerd snapshotter to prepare the layers on.
    #[arg(long, default_value = "soci")]
    pub snapshotter: String,
    /// The image, e.g. `registry.example.com/app:1.0`.
    #[arg(value_name = "REF")]
    pub reference: String,
}

/// Flags of index-building commands.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Span size in bytes: a checkpoint is stored every span of uncompressed data.
    #[arg(long, default_value_t = 1 << 22, value_parser = clap::value_parser!(u64).range(1..))]
    pub span_size: u64,
    /// Layers smaller than this many bytes get no zTOC and are downloaded whole at run time.
    #[arg(long, default_value_t = 10 << 20)]
    pub min_layer_size: u64,
    /// Optimizations to apply (only `xattr`: mark layers without extended attributes).
    #[arg(long = "optimizations", value_name = "OPTIMIZATION", value_parser = ["xattr"])]
    pub optimizations: Vec<String>,
    /// Rebuild zTOCs even when they already exist.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Platform to index (os/arch[/variant]); repeatable. Default: the image's own
    /// platform for single-platform images, else the host's.
    #[arg(short = 'p', long = "platform", conflicts_with = "all_platforms")]
    pub platforms: Vec<String>,
    /// Index every platform of the image.
    #[arg(long)]
    pub all_platforms: bool,
    /// A file to prefetch when a container starts (repeatable); its spans go
    /// into a prefetch artifact of the layer that holds it.
    #[arg(long = "prefetch-file", value_name = "PATH")]
    pub prefetch_files: Vec<String>,
    /// A JSON file holding an array of paths to prefetch.
    #[arg(long, value_name = "FILE")]
    pub prefetch_files_json: Option<PathBuf>,
}

/// `soci convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Work without containerd: SOURCE is an OCI image layout (directory or tar)
    /// and DEST the path of the converted layout.
    #[arg(long)]
    pub standalone: bool,
    /// Output format with --standalone.
    #[arg(long, value_enum, default_value_t = OutputFormatArg::OciArchive)]
    pub format: OutputFormatArg,
    /// Index-building flags.
    #[command(flatten)]
    pub build: BuildArgs,
    /// Registry access for `docker://` images.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print only the digest of the converted image index; no progress.
    #[arg(short, long)]
    pub quiet: bool,
    /// Source image: `docker://REF`, `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
    /// or an image name in containerd (with --standalone: a layout path).
    pub source: String,
    /// Destination image, same forms; a registry or containerd destination
    /// needs a tag (with --standalone: a path).
    pub dest: String,
}

/// `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormatArg {
    /// A tar archive of an OCI image layout.
    OciArchive,
    /// An OCI image layout directory.
    OciDir,
}

#[cfg(test)]
mod convert_ztoc_cli_tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn convert_and_ztoc_flags() {
        let c = Cli::try_parse_from([
            "soci",
            "convert",
            "-k",
            "-u",
            "me:pw",
            "--plain-http",
            "-q",
            "docker://a/b:c",
            "oci:d:e",
        ])
        .unwrap();
        let Command::Convert(a) = c.command else {
            panic!("not convert")
        };
        assert!(a.registry.skip_verify && a.registry.plain_http && a.quiet);
        assert_eq!(a.registry.user.as_deref(), Some("me:pw"));
        let c = Cli::try_parse_from([
            "soci",
            "ztoc",
            "get-file",
            "--image",
            "docker://a/b:c",
            "-o",
            "out",
            "sha256:x",
            "usr/bin/app",
        ])
        .unwrap();
        let Command::Ztoc(ZtocCommand::GetFile(g)) = c.command else {
            panic!("not get-file")
        };
        assert_eq!(g.image.as_deref(), Some("docker://a/b:c"));
        assert_eq!(g.file, "usr/bin/app");
        assert!(Cli::try_parse_from(["soci", "ztoc", "ls", "-q", "--ztoc-digest", "d"]).is_ok());
    }
}
