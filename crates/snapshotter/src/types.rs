//! Native snapshot types. Wire types are converted to and from these in
//! [`crate::grpc`] only.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Labels of a snapshot, sorted by key.
pub type Labels = BTreeMap<String, String>;

/// The kind of a snapshot, as containerd defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A read-only view of a committed snapshot.
    View,
    /// A writable snapshot, which can be committed.
    Active,
    /// An immutable snapshot that can be a parent.
    Committed,
}

impl Kind {
    /// The name containerd's filters use (`view`, `active`, `committed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::View => "view",
            Kind::Active => "active",
            Kind::Committed => "committed",
        }
    }
}

/// What is known of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The key (active, view) or name (committed) in its namespace.
    pub name: String,
    /// The parent's name; `None` for a base snapshot.
    pub parent: Option<String>,
    /// Active, view or committed.
    pub kind: Kind,
    /// Labels.
    pub labels: Labels,
    /// When it was created (for committed snapshots: when committed).
    pub created: SystemTime,
    /// When its labels last changed.
    pub updated: SystemTime,
}

/// Disk usage of a snapshot's own layer (not its parents).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes allocated on disk.
    pub size: i64,
    /// Number of distinct inodes.
    pub inodes: i64,
}

/// A mount for containerd to perform, in the shape of `mount(2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// File system type: `bind` or `overlay`.
    pub kind: String,
    /// Source path (or `overlay`).
    pub source: String,
    /// fstab-style options.
    pub options: Vec<String>,
}

/// How to change a snapshot's labels in [`crate::Snapshotter::update`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelUpdate {
    /// Replace all labels (an empty field mask, or the `labels` path).
    ReplaceAll,
    /// Set or, when absent from the new labels, delete these labels
    /// (`labels.<key>` paths).
    Keys(Vec<String>),
}
