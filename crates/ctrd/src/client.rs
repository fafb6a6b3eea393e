//! A connection to containerd: one channel, one namespace and optionally a
//! lease, sent as gRPC metadata on every call.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{CreateRequest, DeleteRequest};
use tonic::Request;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use crate::error::{CtrdError, Result};
use crate::labels::{GC_EXPIRE, rfc3339_utc};

/// gRPC metadata key containerd reads the namespace from.
pub const NAMESPACE_HEADER: &str = "containerd-namespace";
/// gRPC metadata key containerd reads the lease from.
pub const LEASE_HEADER: &str = "containerd-lease";

/// How long to wait for containerd's socket to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A containerd client bound to a namespace (and, with
/// [`Containerd::with_lease`], to a lease). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Containerd {
    channel: Channel,
    address: String,
    namespace: AsciiMetadataValue,
    namespace_name: String,
    lease: Option<AsciiMetadataValue>,
}

/// A lease created by [`Containerd::create_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lease ID.
    pub id: String,
}

/// The socket path of a containerd address: `unix://PATH` or `PATH`.
pub fn socket_path(address: &str) -> Result<PathBuf> {
    let bad = |reason: &str| CtrdError::InvalidAddress {
        address: address.to_string(),
        reason: reason.to_string(),
    };
    let path = address.strip_prefix("unix://").unwrap_or(address);
    if path.is_empty() {
        return Err(bad("it is empty"));
    }
    if let Some((scheme, _)) = path.split_once("://") {
        return Err(bad(&format!(
            "scheme {scheme:?} is not supported, only unix sockets are"
        )));
    }
    Ok(PathBuf::from(path))
}

impl Containerd {
    /// Connect to containerd's socket at `address` (`unix://PATH` or `PATH`)
    /// for `namespace`, and check that containerd answers.
    pub async fn connect(address: &str, namespace: &str) -> Result<Containerd> {
        let path = socket_path(address)?;
        let shown = path.display().to_string();
        let namespace_value = namespace_value(namespace)?;
        let unreachable = |reason: String| CtrdError::Unreachable {
            address: shown.clone(),
            reason,
        };
        if !path.exists() {
            return Err(unreachable("no such socket".into()));
        }
        let channel = tokio::time::timeout(CONNECT_TIMEOUT, containerd_client::connect(&path))
            .await
            .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| unreachable(error_chain(&e)))?;
        let client = Containerd {
            channel,
            address: shown.clone(),
            namespace: namespace_value,
            namespace_name: namespace.to_string(),
            lease: None,
        };
        let version = tokio::time::timeout(
            CONNECT_TIMEOUT,
            VersionClient::new(client.channel()).version(Request::new(())),
        )
        .await
        .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|s| unreachable(format!("{} ({:?})", s.message(), s.code())))?;
        tracing::debug!(address = %shown, version = %version.into_inner().version, "connected to containerd");
        Ok(client)
    }

    /// The same client, sending `lease` with every call so that what is
    /// created is held by it.
    pub fn with_lease(&self, lease: &Lease) -> Result<Containerd> {
        let value =
            AsciiMetadataValue::try_from(lease.id.as_str()).map_err(|_| CtrdError::Rpc {
                operation: "use lease",
                object: lease.id.clone(),
                code: tonic::Code::InvalidArgument,
                message: "the lease ID is not valid gRPC metadata".into(),
                hint: String::new(),
            })?;
        Ok(Containerd {
            lease: Some(value),
            ..self.clone()
        })
    }

    /// The socket path this client talks to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The namespace of every call.
    pub fn namespace(&self) -> &str {
        &self.namespace_name
    }

    /// The underlying channel, for services this crate does not wrap.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A request carrying the namespace (and lease) metadata.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut req = Request::new(message);
        let md = req.metadata_mut();
        md.insert(NAMESPACE_HEADER, self.namespace.clone());
        if let Some(lease) = &self.lease {
            md.insert(LEASE_HEADER, lease.clone());
        }
        req
    }

    /// A failed call on `object`.
    pub(crate) fn rpc_error(
        &self,
        operation: &'static str,
        object: impl Into<String>,
        status: &tonic::Status,
    ) -> CtrdError {
        CtrdError::rpc(operation, object, status, &self.address)
    }

    /// Create a lease that expires after `expire` (so that an interrupted
    /// pull does not pin content forever) with `labels`.
    pub async fn create_lease(
        &self,
        id: &str,
        expire: Duration,
        labels: BTreeMap<String, String>,
    ) -> Result<Lease> {
        let mut labels: HashMap<String, String> = labels.into_iter().collect();
        labels.insert(
            GC_EXPIRE.to_string(),
            rfc3339_utc(SystemTime::now() + expire),
        );
        let resp = LeasesClient::new(self.channel())
            .create(self.request(CreateRequest {
                id: id.to_string(),
                labels,
            }))
            .await
            .map_err(|s| self.rpc_error("create lease", id, &s))?;
        let id = resp
            .into_inner()
            .lease
            .map(|l| l.id)
            .unwrap_or_else(|| id.to_string());
        Ok(Lease { id })
    }

    /// Delete a lease; what only it held becomes garbage.
    pub async fn delete_lease(&self, lease: &Lease) -> Result<()> {
        LeasesClient::new(self.channel())
            .delete(self.request(DeleteRequest {
                id: lease.id.clone(),
                sync: false,
            }))
            .await
            .map_err(|s| self.rpc_error("delete lease", &lease.id, &s))?;
        Ok(())
    }
}

fn namespace_value(namespace: &str) -> Result<AsciiMetadataValue> {
    let bad = |reason: &str| CtrdError::InvalidNamespace {
        namespace: namespace.to_string(),
        reason: reason.to_string(),
    };
    if namespace.is_empty() {
        return Err(bad("it is empty"));
    }
    if !namespace
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(bad("only letters, digits, '.', '_' and '-' are allowed"));
    }
    AsciiMetadataValue::try_from(namespace).map_err(|_| bad("not valid gRPC metadata"))
}

/// An error and its sources, `: `-separated (tonic's transport errors hide
/// the interesting part in the source chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths() {
        assert_eq!(
            socket_path("unix:///run/c.sock").unwrap(),
            PathBuf::from("/run/c.sock")
        );
        assert_eq!(
            socket_path("/run/c.sock").unwrap(),
            PathBuf::from("/run/c.sock")
        );
        let e = socket_path("tcp://127.0.0.1:1").unwrap_err().to_string();
        assert!(e.contains("--address"), "{e}");
        assert!(socket_path("").is_err());
        assert!(socket_path("unix://").is_err());
    }

    #[test]
    fn namespaces() {
        assert!(namespace_value("default").is_ok());
        assert!(namespace_value("k8s.io").is_ok());
        let e = namespace_value("a b").unwrap_err().to_string();
        assert!(e.contains("--namespace"), "{e}");
        assert!(namespace_value("").is_err());
    }

    #[tokio::test]
    async fn missing_socket_names_the_address() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("nope.sock");
        let e = Containerd::connect(sock.to_str().unwrap(), "default")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(sock.to_str().unwrap()), "{e}");
        assert!(e.contains("--address"), "{e}");
    }

    #[tokio::test]
    async fn socket_without_server_names_the_address() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("dead.sock");
        // A socket file nobody listens on: bind, then drop the listener.
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        let e = Containerd::connect(sock.to_str().unwrap(), "default")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot reach containerd"), "{e}");
        assert!(e.contains(sock.to_str().unwrap()), "{e}");
    }
}
