//! Errors and warnings of loading a config file.

use std::fmt;
use std::path::{Path, PathBuf};

/// Displays `config file <path>: ` when the text came from a file.
struct Origin<'a>(&'a Option<PathBuf>);

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, "config file {}: ", path.display()),
            None => Ok(()),
        }
    }
}

/// Why a configuration could not be loaded or used.
///
/// Every variant names the file (when there is one) and, for problems in the
/// text, the key path and the line and column (1-based) it was found at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An explicitly given config file does not exist.
    #[error("config file {} does not exist", .path.display())]
    NotFound {
        /// The missing file.
        path: PathBuf,
    },
    /// The config file exists but could not be read.
    #[error("failed to read config file {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The text is not valid TOML (or not UTF-8).
    #[error("{}invalid TOML at line {line}, column {column}: {message}", Origin(.file))]
    Syntax {
        /// The file, if the text came from one.
        file: Option<PathBuf>,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What the TOML parser reported.
        message: String,
    },
    /// A known key has a value of the wrong TOML type.
    #[error("{}{key}: expected {expected}, found {found} (line {line}, column {column})", Origin(.file))]
    WrongType {
        /// The file, if the text came from one.
        file: Option<PathBuf>,
        /// Dotted key path, e.g. `background_fetch.fetch_period_msec`.
        key: String,
        /// The type the key takes, e.g. `an integer`.
        expected: &'static str,
        /// The type found, e.g. `a string`.
        found: &'static str,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
    },
    /// A known key has a value of the right type that upstream rejects.
    #[error("{}{key}: {message} (line {line}, column {column})", Origin(.file))]
    Invalid {
        /// The file, if the text came from one.
        file: Option<PathBuf>,
        /// Dotted key path.
        key: String,
        /// What is wrong and what is accepted.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
    },
    /// A combination of settings, or the system, does not allow the daemon
    /// to start with this configuration (see [`crate::Config::check_startup`]).
    #[error("{key}: {message}")]
    Startup {
        /// Dotted key path of the setting at fault.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl ConfigError {
    /// The dotted key path the error is about, if it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::WrongType { key, .. } | Self::Invalid { key, .. } | Self::Startup { key, .. } => {
                Some(key)
            }
            _ => None,
        }
    }

    /// The 1-based line and column the error was found at, if known.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            Self::Syntax { line, column, .. }
            | Self::WrongType { line, column, .. }
            | Self::Invalid { line, column, .. } => Some((*line, *column)),
            _ => None,
        }
    }

    /// Attaches the file the text was read from.
    pub(crate) fn in_file(mut self, path: &Path) -> Self {
        match &mut self {
            Self::Syntax { file, .. }
            | Self::WrongType { file, .. }
            | Self::Invalid { file, .. } => {
                *file = Some(path.to_owned());
            }
            _ => {}
        }
        self
    }
}

/// Something in a config file that was accepted but ignored.
///
/// Upstream ignores these silently; they are reported so that typos are
/// visible, while configs written for upstream keep working unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigWarning {
    /// A key this implementation (and upstream) does not know.
    UnknownKey {
        /// Dotted key path, e.g. `pull_modes.soci_v1.enabled`.
        key: String,
        /// 1-based line of the key.
        line: usize,
        /// 1-based column of the key.
        column: usize,
    },
    /// A `decompress_streams` entry for an algorithm other than `gzip` or
    /// `zstd`; upstream logs and ignores these.
    UnsupportedDecompressor {
        /// The table name, e.g. `bzip2`.
        algorithm: String,
    },
}

impl ConfigWarning {
    /// The 1-based line and column the warning is about, if known.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            Self::UnknownKey { line, column, .. } => Some((*line, *column)),
            Self::UnsupportedDecompressor { .. } => None,
        }
    }

    /// The dotted key path the warning is about.
    pub fn key(&self) -> String {
        match self {
            Self::UnknownKey { key, .. } => key.clone(),
            Self::UnsupportedDecompressor { algorithm } => crate::schema::KeyPath::root()
                .key("pull_modes")
                .key("parallel_pull_unpack")
                .key("decompress_streams")
                .key(algorithm)
                .to_string(),
        }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKey { key, .. } => write!(f, "unknown configuration key {key} (ignored)"),
            Self::UnsupportedDecompressor { .. } => write!(
                f,
                "unsupported compression algorithm in {} (ignored; supported: gzip, zstd)",
                self.key()
            ),
        }
    }
}
