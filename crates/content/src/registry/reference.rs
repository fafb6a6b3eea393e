//! Image references and the transports the CLI accepts.
//!
//! [`ImageReference`] parses `[registry/]repository[:tag][@digest]` and
//! normalises it the way docker and containerd do: a missing registry is
//! `docker.io`, `index.docker.io` is spelled `docker.io`, and one-component
//! Docker Hub names get a `library/` prefix. [`ImageLocation`] adds the
//! skopeo-style transports (`docker://`, `oci:`, `oci-archive:`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use soci_format::Digest;

/// The registry name docker and containerd use for Docker Hub.
pub const DOCKER_HUB: &str = "docker.io";
/// The host Docker Hub's API is served from.
pub const DOCKER_HUB_API_HOST: &str = "index.docker.io";
/// The key Docker Hub credentials are stored under in a docker config.
pub const DOCKER_HUB_CREDENTIAL_KEY: &str = "https://index.docker.io/v1/";

const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A string that is not a valid image reference or location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The reference is malformed.
    #[error("invalid image reference {input:?}: {reason}")]
    Invalid {
        /// What was parsed.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `transport:` prefix this implementation does not handle.
    #[error(
        "unsupported transport {transport:?} in {input:?}: use docker://REF, oci:DIR[:TAG] or oci-archive:FILE[:TAG]"
    )]
    UnknownTransport {
        /// The transport name.
        transport: String,
        /// What was parsed.
        input: String,
    },
    /// A tag is required (for example for a destination) but none was given.
    #[error("{what} {input} has no tag: add one, e.g. {example}")]
    MissingTag {
        /// What the reference is used for (`destination`, ...).
        what: String,
        /// The reference or location as given.
        input: String,
        /// The same reference with a tag, as a hint.
        example: String,
    },
}

fn invalid(input: &str, reason: impl Into<String>) -> ReferenceError {
    ReferenceError::Invalid {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// A repository on a registry, e.g. `127.0.0.1:5000` + `soci/busybox`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    registry: String,
    name: String,
}

impl Repository {
    /// A repository from a normalised registry name and repository path.
    ///
    /// Both are validated; `index.docker.io` becomes `docker.io` and
    /// one-component Docker Hub names get `library/`.
    pub fn new(registry: &str, name: &str) -> Result<Repository, ReferenceError> {
        let input = format!("{registry}/{name}");
        validate_domain(&input, registry)?;
        let registry = if registry == DOCKER_HUB_API_HOST {
            DOCKER_HUB.to_string()
        } else {
            registry.to_string()
        };
        let name = if registry == DOCKER_HUB && !name.contains('/') {
            format!("library/{name}")
        } else {
            name.to_string()
        };
        validate_path(&input, &name)?;
        if registry.len() + 1 + name.len() > MAX_NAME_LEN {
            return Err(invalid(
                &input,
                format!("repository name longer than {MAX_NAME_LEN} characters"),
            ));
        }
        Ok(Repository { registry, name })
    }

    /// The registry as written in references (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path (`library/busybox`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host (and port) the registry API is reached at: `index.docker.io`
    /// for Docker Hub, the registry name otherwise.
    pub fn api_host(&self) -> &str {
        registry_api_host(&self.registry)
    }

    /// The key under which a docker config stores this registry's credentials.
    pub fn credential_key(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_CREDENTIAL_KEY
        } else {
            &self.registry
        }
    }

    /// Whether the registry is on the loopback interface (`localhost`,
    /// `127.0.0.0/8`, `::1`), which upstream reaches over plain HTTP.
    pub fn is_loopback(&self) -> bool {
        is_loopback_registry(&self.registry)
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

/// The API host of a registry name (`docker.io` is served by `index.docker.io`).
pub fn registry_api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API_HOST
    } else {
        registry
    }
}

/// Whether a registry name (`host[:port]`) names a loopback host.
pub fn is_loopback_registry(registry: &str) -> bool {
    if let Ok(ip) = registry.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// A parsed, normalised image reference: repository plus tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    repository: Repository,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageReference {
    /// A reference to `digest` in `repository`.
    pub fn with_digest(repository: Repository, digest: Digest) -> ImageReference {
        ImageReference {
            repository,
            tag: None,
            digest: Some(digest),
        }
    }

    /// A reference to `tag` in `repository`.
    pub fn with_tag(repository: Repository, tag: &str) -> Result<ImageReference, ReferenceError> {
        validate_tag(&format!("{repository}:{tag}"), tag)?;
        Ok(ImageReference {
            repository,
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// The repository.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// The registry name.
    pub fn registry(&self) -> &str {
        self.repository.registry()
    }

    /// The tag, if one was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest when there is one, else the
    /// tag, else `latest` (docker's default).
    pub fn object(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The tag, or an error saying that `what` (e.g. `destination`) needs one.
    pub fn require_tag(&self, what: &str) -> Result<&str, ReferenceError> {
        self.tag
            .as_deref()
            .ok_or_else(|| ReferenceError::MissingTag {
                what: what.to_string(),
                input: self.to_string(),
                example: format!("{}:latest", self.repository),
            })
    }

    /// The same reference with `latest` as tag when it has neither tag nor
    /// digest (docker's `TagNameOnly`).
    pub fn with_default_tag(mut self) -> ImageReference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".to_string());
        }
        self
    }
}

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(invalid(input, "it is empty"));
        }
        if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                input,
                "a 64-character hexadecimal string is an image ID, not a repository name",
            ));
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((n, d)) => {
                let digest: Digest = d.parse().map_err(|_| {
                    invalid(input, format!("{d:?} is not a sha256:<64 hex> digest"))
                })?;
                (n, Some(digest))
            }
            None => (input, None),
        };
        // A ':' after the last '/' separates the tag (a ':' before it is a port).
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&name_and_tag[..i], Some(&name_and_tag[i + 1..]))
            }
            None => (name_and_tag, None),
        };
        if let Some(t) = tag {
            validate_tag(input, t)?;
        }
        if name.is_empty() {
            return Err(invalid(input, "the repository name is empty"));
        }
        let (registry, path) = split_domain(name);
        if path != path.to_ascii_lowercase() {
            return Err(invalid(input, "repository names must be lowercase"));
        }
        let repository = Repository::new(registry, path).map_err(|e| match e {
            ReferenceError::Invalid { reason, .. } => invalid(input, reason),
            other => other,
        })?;
        Ok(ImageReference {
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// docker's `splitDockerDomain`: the first component is a registry when it
/// has a `.` or `:`, is `localhost`, or has upper-case letters.
fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first != first.to_ascii_lowercase() =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

fn validate_domain(input: &str, domain: &str) -> Result<(), ReferenceError> {
    let bad = |why: &str| Err(invalid(input, format!("registry {domain:?} {why}")));
    if domain.is_empty() {
        return bad("is empty");
    }
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return bad("has an unclosed '['");
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return bad("is not a valid IPv6 address");
        }
        match after {
            "" => (None, None),
            p => match p.strip_prefix(':') {
                Some(p) => (None, Some(p)),
                None => return bad("has junk after the IPv6 address"),
            },
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        let ok_component = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        };
        if !host.split('.').all(ok_component) {
            return bad("is not a valid host name");
        }
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("has an invalid port");
    }
    Ok(())
}

fn validate_path(input: &str, path: &str) -> Result<(), ReferenceError> {
    if path.is_empty() {
        return Err(invalid(input, "the repository name is empty"));
    }
    for component in path.split('/') {
        if !valid_path_component(component) {
            return Err(invalid(
                input,
                format!(
                    "repository path component {component:?} must be lowercase letters and digits, separated by '.', '_', '__' or dashes"
                ),
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn validate_tag(input: &str, tag: &str) -> Result<(), ReferenceError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = !tag.is_empty()
        && tag.len() <= MAX_TAG_LEN
        && word(tag.as_bytes()[0])
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            input,
            format!(
                "tag {tag:?} must be 1 to {MAX_TAG_LEN} letters, digits, '_', '.' or '-', not starting with '.' or '-'"
            ),
        ))
    }
}

/// Where an image is: a registry, an OCI layout directory or an OCI archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageLocation {
    /// `docker://REF`, or a plain reference without a transport.
    Registry(ImageReference),
    /// `oci:DIR[:TAG]`: an OCI image layout directory and an optional
    /// `org.opencontainers.image.ref.name`.
    OciDir {
        /// The layout directory.
        path: PathBuf,
        /// The reference name inside the layout.
        tag: Option<String>,
    },
    /// `oci-archive:FILE[:TAG]`: a tar of an OCI image layout.
    OciArchive {
        /// The archive file.
        path: PathBuf,
        /// The reference name inside the layout.
        tag: Option<String>,
    },
}

/// Transports of skopeo (containers/image) that are recognised but not supported.
const OTHER_TRANSPORTS: &[&str] = &[
    "containers-storage",
    "dir",
    "docker-archive",
    "docker-daemon",
    "ostree",
    "sif",
    "tarball",
];

impl ImageLocation {
    /// The tag (registry tag or layout reference name), if any.
    pub fn tag(&self) -> Option<&str> {
        match self {
            ImageLocation::Registry(r) => r.tag(),
            ImageLocation::OciDir { tag, .. } | ImageLocation::OciArchive { tag, .. } => {
                tag.as_deref()
            }
        }
    }

    /// The tag, or an error saying that `what` (e.g. `destination`) needs one.
    pub fn require_tag(&self, what: &str) -> Result<&str, ReferenceError> {
        if let ImageLocation::Registry(r) = self {
            return r.require_tag(what);
        }
        self.tag().ok_or_else(|| ReferenceError::MissingTag {
            what: what.to_string(),
            input: self.to_string(),
            example: format!("{self}:latest"),
        })
    }
}

impl FromStr for ImageLocation {
    type Err = ReferenceError;

    /// Parse `docker://REF`, `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, or a
    /// plain image reference. A prefix that names another skopeo transport, or
    /// any `scheme://`, is rejected. Like skopeo, the path of `oci:` and
    /// `oci-archive:` ends at its first `:`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if let Some(r) = input.strip_prefix("docker://") {
            return Ok(ImageLocation::Registry(r.parse()?));
        }
        if let Some((transport, rest)) = input.split_once(':') {
            let layout = |rest: &str| -> Result<(PathBuf, Option<String>), ReferenceError> {
                let (path, tag) = match rest.split_once(':') {
                    Some((p, t)) => (p, Some(t)),
                    None => (rest, None),
                };
                if path.is_empty() {
                    return Err(invalid(input, format!("{transport}: needs a path")));
                }
                let tag = match tag {
                    None | Some("") => None,
                    Some(t) => {
                        validate_layout_ref_name(input, t)?;
                        Some(t.to_string())
                    }
                };
                Ok((PathBuf::from(path), tag))
            };
            match transport {
                "oci" => {
                    let (path, tag) = layout(rest)?;
                    return Ok(ImageLocation::OciDir { path, tag });
                }
                "oci-archive" => {
                    let (path, tag) = layout(rest)?;
                    return Ok(ImageLocation::OciArchive { path, tag });
                }
                t if OTHER_TRANSPORTS.contains(&t) || rest.starts_with("//") => {
                    return Err(ReferenceError::UnknownTransport {
                        transport: t.to_string(),
                        input: input.to_string(),
                    });
                }
                _ => {}
            }
        }
        Ok(ImageLocation::Registry(input.parse()?))
    }
}

/// A layout reference name: a tag or a full reference (as skopeo allows).
fn validate_layout_ref_name(input: &str, name: &str) -> Result<(), ReferenceError> {
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-:/@+".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(invalid(
            input,
            format!("{name:?} is not a valid reference name for an OCI layout"),
        ))
    }
}

impl fmt::Display for ImageLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (transport, path, tag) = match self {
            ImageLocation::Registry(r) => return write!(f, "docker://{r}"),
            ImageLocation::OciDir { path, tag } => ("oci", path, tag),
            ImageLocation::OciArchive { path, tag } => ("oci-archive", path, tag),
        };
        write!(f, "{transport}:{}", path.display())?;
        if let Some(t) = tag {
            write!(f, ":{t}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    fn parse(s: &str) -> ImageReference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_normalisation() {
        let r = parse("busybox");
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository().name(), "library/busybox");
        assert_eq!(r.tag(), None);
        assert_eq!(r.object(), "latest");
        assert_eq!(r.to_string(), "docker.io/library/busybox");
        assert_eq!(
            r.clone().with_default_tag().to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(r.repository().api_host(), "index.docker.io");
        assert_eq!(
            r.repository().credential_key(),
            "https://index.docker.io/v1/"
        );

        assert_eq!(parse("user/app:1.0").to_string(), "docker.io/user/app:1.0");
        assert_eq!(
            parse("index.docker.io/busybox:1").to_string(),
            "docker.io/library/busybox:1"
        );
        assert_eq!(
            parse("docker.io/library/busybox").to_string(),
            "docker.io/library/busybox"
        );
        let r = parse("localhost/app");
        assert_eq!((r.registry(), r.repository().name()), ("localhost", "app"));
        let r = parse("127.0.0.1:5000/a/b:t");
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository().name(), "a/b");
        assert_eq!(r.tag(), Some("t"));
        assert!(r.repository().is_loopback());
        assert_eq!(r.repository().credential_key(), "127.0.0.1:5000");
        let r = parse(&format!("localhost:5000/a:t@{D}"));
        assert_eq!(r.tag(), Some("t"));
        assert_eq!(r.digest().unwrap().to_string(), D);
        assert_eq!(r.object(), D);
        let r = parse(&format!("busybox@{D}"));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        let r = parse("[::1]:5000/x");
        assert_eq!(r.registry(), "[::1]:5000");
        assert!(r.repository().is_loopback());
        let r = parse("Registry.Example/x");
        assert_eq!(r.registry(), "Registry.Example");
        assert!(!r.repository().is_loopback());
        assert_eq!(
            parse("a__b/c-d---e/f_g.h").to_string(),
            "docker.io/a__b/c-d---e/f_g.h"
        );
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "UPPER",
            "docker.io/Upper/x",
            "a:",
            "a:.tag",
            "a@sha256:abc",
            "a@md5:00",
            "a//b",
            "-a",
            "a/b-",
            "a___b",
            "host:port/x",
            "ex ample.com/x",
            "0123456789012345678901234567890123456789012345678901234567890123",
        ] {
            assert!(bad.parse::<ImageReference>().is_err(), "{bad} accepted");
        }
        let e = "a:".parse::<ImageReference>().unwrap_err().to_string();
        assert!(e.contains("\"a:\"") && e.contains("tag"), "{e}");
        let long_tag = format!("a:{}", "t".repeat(129));
        assert!(long_tag.parse::<ImageReference>().is_err());
    }

    #[test]
    fn loopback_detection() {
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback_registry(r), "{r}");
        }
        for r in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:1",
        ] {
            assert!(!is_loopback_registry(r), "{r}");
        }
    }

    #[test]
    fn transports() {
        let l: ImageLocation = "docker://127.0.0.1:5000/x:1".parse().unwrap();
        assert_eq!(l, ImageLocation::Registry(parse("127.0.0.1:5000/x:1")));
        assert_eq!(l.require_tag("destination").unwrap(), "1");
        let l: ImageLocation = "busybox".parse().unwrap();
        assert_eq!(l, ImageLocation::Registry(parse("busybox")));
        let e = l.require_tag("destination").unwrap_err().to_string();
        assert_eq!(
            e,
            "destination docker.io/library/busybox has no tag: add one, e.g. docker.io/library/busybox:latest"
        );
        let l: ImageLocation = "oci:/tmp/layout:v1".parse().unwrap();
        assert_eq!(
            l,
            ImageLocation::OciDir {
                path: "/tmp/layout".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(l.to_string(), "oci:/tmp/layout:v1");
        let l: ImageLocation = "oci:dir".parse().unwrap();
        assert_eq!(l.tag(), None);
        let e = l.require_tag("destination").unwrap_err().to_string();
        assert!(
            e.contains("oci:dir has no tag") && e.contains("oci:dir:latest"),
            "{e}"
        );
        let l: ImageLocation = "oci-archive:img.tar:docker.io/library/x:latest"
            .parse()
            .unwrap();
        assert_eq!(
            l,
            ImageLocation::OciArchive {
                path: "img.tar".into(),
                tag: Some("docker.io/library/x:latest".into())
            }
        );
        let l: ImageLocation = "oci-archive:img.tar:".parse().unwrap();
        assert_eq!(l.tag(), None);
        // A registry with a port is a reference, not a transport.
        let l: ImageLocation = "localhost:5000/x".parse().unwrap();
        assert_eq!(l, ImageLocation::Registry(parse("localhost:5000/x")));

        for (bad, transport) in [
            ("docker-archive:x.tar", "docker-archive"),
            ("dir:/tmp/x", "dir"),
            ("containers-storage:x", "containers-storage"),
            ("http://example.com/x", "http"),
        ] {
            match bad.parse::<ImageLocation>() {
                Err(ReferenceError::UnknownTransport { transport: t, .. }) => {
                    assert_eq!(t, transport)
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        let e = "dir:/x".parse::<ImageLocation>().unwrap_err().to_string();
        assert!(e.contains("docker://REF"), "{e}");
        assert!("oci:".parse::<ImageLocation>().is_err());
        assert!("oci:x:bad tag".parse::<ImageLocation>().is_err());
        assert!("docker://UPPER".parse::<ImageLocation>().is_err());
    }
}
