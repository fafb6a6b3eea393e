//! Platform specifiers, normalisation and strict matching with the semantics of
//! `containerd/platforms` v1.0.0-rc.4 (`Parse`, `Format`, `Normalize`,
//! `OnlyStrict`, `DefaultSpec`), for a Linux host.

use std::fmt;
use std::str::FromStr;

use super::oci::Platform;

/// A platform specifier that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {specifier:?}: {reason}")]
pub struct PlatformError {
    /// The specifier as given.
    pub specifier: String,
    /// Why it was rejected.
    pub reason: String,
}

fn err(specifier: &str, reason: impl Into<String>) -> PlatformError {
    PlatformError {
        specifier: specifier.to_string(),
        reason: reason.into(),
    }
}

/// Go's `runtime.GOOS` for the running host.
fn host_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

/// Go's `runtime.GOARCH` for the running host.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        "mips" if cfg!(target_endian = "little") => "mipsle",
        other => other,
    }
}

/// containerd's `cpuVariant()` without reading `/proc/cpuinfo`: `v8` on arm64,
/// `v7` on 32-bit arm, empty elsewhere.
fn host_variant() -> &'static str {
    match host_arch() {
        "arm64" => "v8",
        "arm" => "v7",
        _ => "",
    }
}

fn is_known_os(os: &str) -> bool {
    matches!(
        os,
        "aix"
            | "android"
            | "darwin"
            | "dragonfly"
            | "freebsd"
            | "hurd"
            | "illumos"
            | "ios"
            | "js"
            | "linux"
            | "nacl"
            | "netbsd"
            | "openbsd"
            | "plan9"
            | "solaris"
            | "windows"
            | "zos"
    )
}

fn is_known_arch(arch: &str) -> bool {
    matches!(
        arch,
        "386"
            | "amd64"
            | "amd64p32"
            | "arm"
            | "armbe"
            | "arm64"
            | "arm64be"
            | "ppc64"
            | "ppc64le"
            | "loong64"
            | "mips"
            | "mipsle"
            | "mips64"
            | "mips64le"
            | "mips64p32"
            | "mips64p32le"
            | "ppc"
            | "riscv"
            | "riscv64"
            | "s390"
            | "s390x"
            | "sparc"
            | "sparc64"
            | "wasm"
    )
}

fn normalize_os(os: &str) -> String {
    if os.is_empty() {
        return host_os().to_string();
    }
    let os = os.to_lowercase();
    if os == "macos" {
        "darwin".to_string()
    } else {
        os
    }
}

fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_lowercase();
    let mut variant = variant.to_lowercase();
    let arch = match arch.as_str() {
        "i386" => {
            variant.clear();
            "386".to_string()
        }
        "x86_64" | "x86-64" | "amd64" => {
            if variant == "v1" {
                variant.clear();
            }
            "amd64".to_string()
        }
        "aarch64" | "arm64" => {
            match variant.as_str() {
                "8" | "v8" | "v8.0" => variant.clear(),
                "9" | "9.0" | "v9.0" => variant = "v9".to_string(),
                _ => {}
            }
            "arm64".to_string()
        }
        "armhf" => {
            variant = "v7".to_string();
            "arm".to_string()
        }
        "armel" => {
            variant = "v6".to_string();
            "arm".to_string()
        }
        "arm" => {
            match variant.as_str() {
                "" | "7" => variant = "v7".to_string(),
                "5" | "6" | "8" => variant = format!("v{variant}"),
                _ => {}
            }
            arch
        }
        _ => arch,
    };
    (arch, variant)
}

fn is_specifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fn is_os_option_char(c: char) -> bool {
    is_specifier_char(c) || c == '%'
}

/// Go's `url.PathUnescape` when the text contains `%`.
fn decode_os_option(specifier: &str, v: &str) -> Result<String, PlatformError> {
    if !v.contains('%') {
        return Ok(v.to_string());
    }
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| err(specifier, format!("invalid URL escape in {v:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| err(specifier, format!("{v:?} decodes to invalid UTF-8")))
}

/// Splits the OS component `name(version+feature+...)` per containerd's `osRe`.
fn parse_os_component(
    specifier: &str,
    part: &str,
) -> Result<(String, String, Vec<String>), PlatformError> {
    let invalid = || err(specifier, format!("{part:?} is an invalid OS component"));
    let (name, options) = match part.find('(') {
        None => (part, None),
        Some(open) => {
            let inner = part[open + 1..].strip_suffix(')').ok_or_else(invalid)?;
            (&part[..open], Some(inner))
        }
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(invalid());
    }
    let mut os_version = String::new();
    let mut features = Vec::new();
    if let Some(inner) = options {
        let (version, rest) = match inner.find('+') {
            None => (inner, ""),
            Some(p) => (&inner[..p], &inner[p..]),
        };
        if !version.chars().all(is_os_option_char) {
            return Err(invalid());
        }
        os_version = decode_os_option(specifier, version)?;
        if !rest.is_empty() {
            for raw in rest[1..].split('+') {
                if raw.is_empty() || !raw.chars().all(is_os_option_char) {
                    return Err(invalid());
                }
                let feature = decode_os_option(specifier, raw)?;
                if !feature.is_empty() {
                    features.push(feature);
                }
            }
        }
    }
    Ok((name.to_string(), os_version, features))
}

/// Go's `path.Join` of non-empty elements (then `path.Clean`).
fn path_join(parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    if joined.is_empty() {
        return String::new();
    }
    let rooted = joined.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|s| *s != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

impl Platform {
    /// Parses `os[(version+features)][/arch[/variant]]` or a lone `os` / `arch`,
    /// with containerd `platforms.Parse` semantics: OS and architecture are
    /// normalised (`x86_64` -> `amd64`, `aarch64` -> `arm64`, `armhf` -> `arm`
    /// `v7`, ...); a two-part `os/arm` drops the default `v7`; a three-part
    /// `os/arm64/<v8 or empty>` keeps `v8`; a lone OS gets the host architecture and
    /// a lone architecture the host OS; wildcards and more than three parts are
    /// errors.
    pub fn parse(specifier: &str) -> Result<Platform, PlatformError> {
        if specifier.contains('*') {
            return Err(err(specifier, "wildcards not yet supported"));
        }
        let parts: Vec<&str> = specifier.splitn(4, '/').collect();
        let (os_name, os_version, os_features) = parse_os_component(specifier, parts[0])?;
        for part in &parts[1..] {
            if part.is_empty() || !part.chars().all(is_specifier_char) {
                return Err(err(
                    specifier,
                    format!("{part:?} is an invalid component: must match ^[A-Za-z0-9_.-]+$"),
                ));
            }
        }
        let mut p = Platform {
            os: normalize_os(&os_name),
            os_version,
            os_features,
            ..Platform::default()
        };
        match parts.len() {
            1 => {
                if is_known_os(&p.os) {
                    p.architecture = host_arch().to_string();
                    if p.architecture == "arm" && host_variant() != "v7" {
                        p.variant = host_variant().to_string();
                    }
                    return Ok(p);
                }
                let (arch, variant) = normalize_arch(parts[0], "");
                p.architecture = arch;
                p.variant = if p.architecture == "arm" && variant == "v7" {
                    String::new()
                } else {
                    variant
                };
                if is_known_arch(&p.architecture) {
                    p.os = host_os().to_string();
                    return Ok(p);
                }
                Err(err(specifier, "unknown operating system or architecture"))
            }
            2 => {
                let (arch, variant) = normalize_arch(parts[1], "");
                p.variant = if arch == "arm" && variant == "v7" {
                    String::new()
                } else {
                    variant
                };
                p.architecture = arch;
                Ok(p)
            }
            3 => {
                let (arch, variant) = normalize_arch(parts[1], parts[2]);
                p.variant = if arch == "arm64" && variant.is_empty() {
                    "v8".to_string()
                } else {
                    variant
                };
                p.architecture = arch;
                Ok(p)
            }
            _ => Err(err(specifier, "cannot parse platform specifier")),
        }
    }

    /// `os/arch[/variant]` (containerd `platforms.Format`; `unknown` without an OS).
    pub fn format(&self) -> String {
        if self.os.is_empty() {
            return "unknown".to_string();
        }
        path_join(&[&self.os, &self.architecture, &self.variant])
    }

    /// containerd `platforms.Normalize`: lower-cased OS (empty -> host OS, `macos` ->
    /// `darwin`), normalised architecture/variant (arm64 `v8` becomes empty, arm
    /// gets `v7` by default, ...), OS features sorted and deduplicated.
    pub fn normalize(&self) -> Platform {
        let (architecture, variant) = normalize_arch(&self.architecture, &self.variant);
        let mut os_features = self.os_features.clone();
        os_features.sort();
        os_features.dedup();
        Platform {
            architecture,
            os: normalize_os(&self.os),
            os_version: self.os_version.clone(),
            os_features,
            variant,
        }
    }

    /// containerd `platforms.OnlyStrict(self).Match(other)`: equal normalised OS,
    /// architecture and variant (so arm64 with and without `v8` match), and every
    /// OS feature of `other` present in `self`.
    pub fn matches_strict(&self, other: &Platform) -> bool {
        let m = self.normalize();
        let p = other.normalize();
        if m.os != p.os || m.architecture != p.architecture || m.variant != p.variant {
            return false;
        }
        p.os_features
            .iter()
            .all(|f| m.os_features.binary_search(f).is_ok())
    }

    /// The host's default platform (containerd `platforms.DefaultSpec`):
    /// `{"architecture":"amd64","os":"linux"}` on x86-64 Linux; arm64 adds variant
    /// `v8`.
    pub fn host_default() -> Platform {
        Platform {
            architecture: host_arch().to_string(),
            os: host_os().to_string(),
            variant: host_variant().to_string(),
            ..Platform::default()
        }
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format())
    }
}

/// Removes platforms that strictly match an earlier one (upstream
/// `ociutil.DedupePlatforms`), keeping the first occurrence as given.
pub fn dedupe_platforms(platforms: &[Platform]) -> Vec<Platform> {
    let mut kept: Vec<Platform> = Vec::new();
    for p in platforms {
        if !kept.iter().any(|k| k.matches_strict(p)) {
            kept.push(p.clone());
        }
    }
    kept
}
