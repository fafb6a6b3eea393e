//! Snapshot metadata in a crash-safe redb database (`<root>/snapshotter/metadata.db`).
//!
//! Records are keyed by (namespace, key). A second table holds parent -> child
//! links so that removing a parent can be refused without a scan. Every change is
//! one write transaction, committed durably before the call returns.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SnapshotError};
use crate::types::{Info, Kind, LabelUpdate, Labels, Usage};

/// (namespace, key) -> JSON [`Record`].
const SNAPSHOTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("snapshots");
/// (namespace, parent, child) -> ().
const CHILDREN: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("children");
/// Counters: `next_id`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// containerd's limit on the size of one label (key plus value).
const MAX_LABEL_SIZE: usize = 4096;

/// A point in time as stored (seconds and nanoseconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    secs: i64,
    nanos: u32,
}

impl Stamp {
    fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Stamp {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
        }
    }

    fn time(self) -> SystemTime {
        UNIX_EPOCH + Duration::new(self.secs.max(0) as u64, self.nanos)
    }
}

/// One stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Names the directory `snapshots/<id>`; never reused.
    pub id: u64,
    pub kind: Kind,
    pub parent: Option<String>,
    pub labels: Labels,
    pub created: Stamp,
    pub updated: Stamp,
    /// Usage measured at commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl Record {
    pub fn info(&self, name: &str) -> Info {
        Info {
            name: name.to_string(),
            parent: self.parent.clone(),
            kind: self.kind,
            labels: self.labels.clone(),
            created: self.created.time(),
            updated: self.updated.time(),
        }
    }
}

/// A snapshot together with where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub namespace: String,
    pub key: String,
    pub record: Record,
}

/// A newly created snapshot and the ids of its ancestors, nearest first.
#[derive(Debug)]
pub(crate) struct Created {
    pub record: Record,
    pub ancestors: Vec<Entry>,
}

/// The metadata database.
pub(crate) struct MetaStore {
    db: Database,
    path: PathBuf,
}

fn check_labels(labels: &Labels) -> Result<()> {
    for (k, v) in labels {
        if k.len() + v.len() > MAX_LABEL_SIZE {
            return Err(SnapshotError::InvalidArgument(format!(
                "label {k:?} is {} bytes with its value, more than the {MAX_LABEL_SIZE} allowed",
                k.len() + v.len()
            )));
        }
    }
    Ok(())
}

impl MetaStore {
    /// Open or create the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        let db = Database::create(&path).map_err(|e| SnapshotError::Db {
            path: path.clone(),
            source: Box::new(e.into()),
        })?;
        let store = MetaStore { db, path };
        let txn = store.db.begin_write().map_err(store.err())?;
        {
            txn.open_table(SNAPSHOTS).map_err(store.err())?;
            txn.open_table(CHILDREN).map_err(store.err())?;
            txn.open_table(META).map_err(store.err())?;
        }
        txn.commit().map_err(store.err())?;
        Ok(store)
    }

    fn err<E: Into<redb::Error>>(&self) -> impl Fn(E) -> SnapshotError + '_ {
        |e| SnapshotError::Db {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    fn decode(&self, ns: &str, key: &str, bytes: &[u8]) -> Result<Record> {
        serde_json::from_slice(bytes).map_err(|e| SnapshotError::Corrupt {
            path: self.path.clone(),
            key: format!("{ns}/{key}"),
            reason: e.to_string(),
        })
    }

    fn encode(record: &Record) -> Vec<u8> {
        serde_json::to_vec(record).expect("records always serialize")
    }

    fn load<T>(&self, table: &T, ns: &str, key: &str) -> Result<Option<Record>>
    where
        T: ReadableTable<(&'static str, &'static str), &'static [u8]>,
    {
        match table.get((ns, key)).map_err(self.err())? {
            None => Ok(None),
            Some(guard) => self.decode(ns, key, guard.value()).map(Some),
        }
    }

    /// A parent snapshot: in `ns`, else the one committed snapshot of that
    /// name in any namespace. containerd 1.6 shares a committed remote layer
    /// between namespaces by its bare name (it finds it with a label filter
    /// and uses it as a parent elsewhere), as upstream keeps one backend
    /// snapshot per layer.
    fn load_parent<T>(&self, table: &T, ns: &str, key: &str) -> Result<Option<(String, Record)>>
    where
        T: ReadableTable<(&'static str, &'static str), &'static [u8]>,
    {
        if let Some(r) = self.load(table, ns, key)? {
            return Ok(Some((ns.to_string(), r)));
        }
        let mut found = None;
        for item in table.iter().map_err(self.err())? {
            let (k, v) = item.map_err(self.err())?;
            let (other, name) = k.value();
            if name != key {
                continue;
            }
            let record = self.decode(other, name, v.value())?;
            if record.kind != Kind::Committed {
                continue;
            }
            if found.is_some() {
                return Ok(None);
            }
            found = Some((other.to_string(), record));
        }
        Ok(found)
    }

    fn must_load<T>(&self, table: &T, ns: &str, key: &str) -> Result<Record>
    where
        T: ReadableTable<(&'static str, &'static str), &'static [u8]>,
    {
        self.load(table, ns, key)?
            .ok_or_else(|| SnapshotError::NotFound {
                key: key.to_string(),
            })
    }

    /// The ancestors of `parent` (included), nearest first.
    fn chain<T>(&self, table: &T, ns: &str, parent: Option<&str>) -> Result<Vec<Entry>>
    where
        T: ReadableTable<(&'static str, &'static str), &'static [u8]>,
    {
        let mut out: Vec<Entry> = Vec::new();
        let mut next = parent.map(str::to_string);
        let mut ns = ns.to_string();
        while let Some(name) = next {
            let (found_ns, record) =
                self.load_parent(table, &ns, &name)?
                    .ok_or_else(|| SnapshotError::Corrupt {
                        path: self.path.clone(),
                        key: format!("{ns}/{name}"),
                        reason: "parent of a stored snapshot is missing".into(),
                    })?;
            ns = found_ns;
            if out.len() > 100_000 {
                return Err(SnapshotError::Corrupt {
                    path: self.path.clone(),
                    key: format!("{ns}/{name}"),
                    reason: "parent chain has a cycle".into(),
                });
            }
            next = record.parent.clone();
            out.push(Entry {
                namespace: ns.clone(),
                key: name,
                record,
            });
        }
        Ok(out)
    }

    /// Look a snapshot up. Without a namespace the key must be unique across
    /// namespaces (containerd's garbage collector calls without one; its keys
    /// are unique).
    pub fn resolve(&self, scope: Option<&str>, key: &str) -> Result<Entry> {
        let txn = self.db.begin_read().map_err(self.err())?;
        let table = txn.open_table(SNAPSHOTS).map_err(self.err())?;
        if let Some(ns) = scope {
            let record = self.must_load(&table, ns, key)?;
            return Ok(Entry {
                namespace: ns.to_string(),
                key: key.to_string(),
                record,
            });
        }
        let mut found: Option<Entry> = None;
        for item in table.iter().map_err(self.err())? {
            let (k, v) = item.map_err(self.err())?;
            let (ns, name) = k.value();
            if name != key {
                continue;
            }
            if found.is_some() {
                return Err(SnapshotError::precondition(
                    key,
                    "exists in several namespaces; give a namespace",
                ));
            }
            let record = self.decode(ns, name, v.value())?;
            found = Some(Entry {
                namespace: ns.to_string(),
                key: key.to_string(),
                record,
            });
        }
        found.ok_or_else(|| SnapshotError::NotFound {
            key: key.to_string(),
        })
    }

    /// A snapshot and its ancestors, nearest first.
    pub fn with_ancestors(&self, scope: Option<&str>, key: &str) -> Result<(Entry, Vec<Entry>)> {
        let entry = self.resolve(scope, key)?;
        let txn = self.db.begin_read().map_err(self.err())?;
        let table = txn.open_table(SNAPSHOTS).map_err(self.err())?;
        let ancestors = self.chain(&table, &entry.namespace, entry.record.parent.as_deref())?;
        Ok((entry, ancestors))
    }

    /// Create an active or view snapshot. `place` runs inside the transaction
    /// once the id is known (it moves the snapshot's directory into place); if
    /// it fails, nothing is stored.
    pub fn create(
        &self,
        ns: &str,
        key: &str,
        kind: Kind,
        parent: Option<&str>,
        labels: Labels,
        place: impl FnOnce(u64) -> Result<()>,
    ) -> Result<Created> {
        debug_assert!(kind != Kind::Committed);
        check_labels(&labels)?;
        if key.is_empty() {
            return Err(SnapshotError::InvalidArgument(
                "snapshot key is empty".into(),
            ));
        }
        let txn = self.db.begin_write().map_err(self.err())?;
        let created = {
            let mut snaps = txn.open_table(SNAPSHOTS).map_err(self.err())?;
            if self.load(&snaps, ns, key)?.is_some() {
                return Err(SnapshotError::AlreadyExists {
                    key: key.to_string(),
                });
            }
            let mut parent_ns = ns.to_string();
            if let Some(p) = parent {
                let rec = match self.load_parent(&snaps, ns, p)? {
                    Some((found, rec)) => {
                        parent_ns = found;
                        rec
                    }
                    None => {
                        return Err(SnapshotError::NotFound { key: p.to_string() });
                    }
                };
                if rec.kind != Kind::Committed {
                    return Err(SnapshotError::InvalidArgument(format!(
                        "parent {p:?} of {key:?} is not a committed snapshot"
                    )));
                }
            }
            let ancestors = self.chain(&snaps, ns, parent)?;
            let mut meta = txn.open_table(META).map_err(self.err())?;
            let id = meta
                .get("next_id")
                .map_err(self.err())?
                .map(|v| v.value())
                .unwrap_or(1);
            meta.insert("next_id", id + 1).map_err(self.err())?;
            let now = Stamp::now();
            let record = Record {
                id,
                kind,
                parent: parent.map(str::to_string),
                labels,
                created: now,
                updated: now,
                usage: None,
            };
            place(id)?;
            snaps
                .insert((ns, key), Self::encode(&record).as_slice())
                .map_err(self.err())?;
            if let Some(p) = parent {
                // Under the parent's namespace, so that removing the parent sees it.
                let mut children = txn.open_table(CHILDREN).map_err(self.err())?;
                children
                    .insert((parent_ns.as_str(), p, key), ())
                    .map_err(self.err())?;
            }
            Created { record, ancestors }
        };
        txn.commit().map_err(self.err())?;
        Ok(created)
    }

    /// Turn the active snapshot `key` into the committed snapshot `name`
    /// (same id, so the same directory and content).
    pub fn commit(
        &self,
        ns: &str,
        key: &str,
        name: &str,
        labels: Labels,
        usage: Usage,
    ) -> Result<Record> {
        check_labels(&labels)?;
        if name.is_empty() {
            return Err(SnapshotError::InvalidArgument(
                "snapshot name is empty".into(),
            ));
        }
        let txn = self.db.begin_write().map_err(self.err())?;
        let record = {
            let mut snaps = txn.open_table(SNAPSHOTS).map_err(self.err())?;
            let active = self.must_load(&snaps, ns, key)?;
            if active.kind != Kind::Active {
                return Err(SnapshotError::precondition(
                    key,
                    format!("is a {} snapshot, not an active one", active.kind.as_str()),
                ));
            }
            if self.load(&snaps, ns, name)?.is_some() {
                return Err(SnapshotError::AlreadyExists {
                    key: name.to_string(),
                });
            }
            let now = Stamp::now();
            let record = Record {
                id: active.id,
                kind: Kind::Committed,
                parent: active.parent.clone(),
                labels,
                created: now,
                updated: now,
                usage: Some(usage),
            };
            snaps.remove((ns, key)).map_err(self.err())?;
            snaps
                .insert((ns, name), Self::encode(&record).as_slice())
                .map_err(self.err())?;
            if let Some(p) = active.parent.as_deref() {
                let pns = self
                    .load_parent(&snaps, ns, p)?
                    .map_or_else(|| ns.to_string(), |(n, _)| n);
                let mut children = txn.open_table(CHILDREN).map_err(self.err())?;
                children
                    .remove((pns.as_str(), p, key))
                    .map_err(self.err())?;
                children
                    .insert((pns.as_str(), p, name), ())
                    .map_err(self.err())?;
            }
            record
        };
        txn.commit().map_err(self.err())?;
        Ok(record)
    }

    /// Delete a snapshot's record. Refused while it has children.
    pub fn remove(&self, ns: &str, key: &str) -> Result<Record> {
        let txn = self.db.begin_write().map_err(self.err())?;
        let record = {
            let mut snaps = txn.open_table(SNAPSHOTS).map_err(self.err())?;
            let record = self.must_load(&snaps, ns, key)?;
            let mut children = txn.open_table(CHILDREN).map_err(self.err())?;
            let child = {
                let mut range = children.range((ns, key, "")..).map_err(self.err())?;
                match range.next() {
                    Some(item) => {
                        let (k, _) = item.map_err(self.err())?;
                        let (n, p, c) = k.value();
                        (n == ns && p == key).then(|| c.to_string())
                    }
                    None => None,
                }
            };
            if let Some(child) = child {
                return Err(SnapshotError::precondition(
                    key,
                    format!("cannot remove a snapshot with children (e.g. {child:?})"),
                ));
            }
            snaps.remove((ns, key)).map_err(self.err())?;
            if let Some(p) = record.parent.as_deref() {
                let pns = self
                    .load_parent(&snaps, ns, p)?
                    .map_or_else(|| ns.to_string(), |(n, _)| n);
                children
                    .remove((pns.as_str(), p, key))
                    .map_err(self.err())?;
            }
            record
        };
        txn.commit().map_err(self.err())?;
        Ok(record)
    }

    /// Change a snapshot's labels.
    pub fn update_labels(
        &self,
        ns: &str,
        key: &str,
        labels: Labels,
        how: &LabelUpdate,
    ) -> Result<Record> {
        check_labels(&labels)?;
        let txn = self.db.begin_write().map_err(self.err())?;
        let record = {
            let mut snaps = txn.open_table(SNAPSHOTS).map_err(self.err())?;
            let mut record = self.must_load(&snaps, ns, key)?;
            match how {
                LabelUpdate::ReplaceAll => record.labels = labels,
                LabelUpdate::Keys(keys) => {
                    for k in keys {
                        match labels.get(k) {
                            Some(v) => record.labels.insert(k.clone(), v.clone()),
                            None => record.labels.remove(k),
                        };
                    }
                }
            }
            record.updated = Stamp::now();
            snaps
                .insert((ns, key), Self::encode(&record).as_slice())
                .map_err(self.err())?;
            record
        };
        txn.commit().map_err(self.err())?;
        Ok(record)
    }

    /// Every snapshot in `scope` (all namespaces for `None`), sorted by
    /// namespace and key.
    pub fn list(&self, scope: Option<&str>) -> Result<Vec<Entry>> {
        let txn = self.db.begin_read().map_err(self.err())?;
        let table = txn.open_table(SNAPSHOTS).map_err(self.err())?;
        let mut out = Vec::new();
        for item in table.iter().map_err(self.err())? {
            let (k, v) = item.map_err(self.err())?;
            let (ns, key) = k.value();
            if scope.is_some_and(|s| s != ns) {
                continue;
            }
            out.push(Entry {
                namespace: ns.to_string(),
                key: key.to_string(),
                record: self.decode(ns, key, v.value())?,
            });
        }
        Ok(out)
    }

    /// Ids of all stored snapshots.
    pub fn ids(&self) -> Result<HashSet<u64>> {
        Ok(self.list(None)?.into_iter().map(|e| e.record.id).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, MetaStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = MetaStore::open(&dir.path().join("metadata.db")).unwrap();
        (dir, store)
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ok(_: u64) -> Result<()> {
        Ok(())
    }

    #[test]
    fn create_commit_chain_and_ids_are_never_reused() {
        let (_d, s) = store();
        let a = s
            .create("ns", "a", Kind::Active, None, Labels::new(), ok)
            .unwrap();
        assert_eq!(a.record.id, 1);
        assert!(a.ancestors.is_empty());
        let c = s
            .commit("ns", "a", "base", labels(&[("x", "1")]), Usage::default())
            .unwrap();
        assert_eq!((c.id, c.kind), (1, Kind::Committed));
        assert!(matches!(
            s.resolve(Some("ns"), "a"),
            Err(SnapshotError::NotFound { .. })
        ));
        let b = s
            .create("ns", "b", Kind::Active, Some("base"), Labels::new(), ok)
            .unwrap();
        s.commit("ns", "b", "top", Labels::new(), Usage::default())
            .unwrap();
        let v = s
            .create("ns", "v", Kind::View, Some("top"), Labels::new(), ok)
            .unwrap();
        assert_eq!(b.record.id, 2);
        assert_eq!(v.record.id, 3);
        let names: Vec<_> = v.ancestors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(names, ["top", "base"]);
        s.remove("ns", "v").unwrap();
        let w = s
            .create("ns", "w", Kind::View, Some("top"), Labels::new(), ok)
            .unwrap();
        assert_eq!(w.record.id, 4);
        assert_eq!(s.ids().unwrap(), HashSet::from([1, 2, 4]));
    }

    #[test]
    fn namespaces_are_separate() {
        let (_d, s) = store();
        s.create("one", "k", Kind::Active, None, Labels::new(), ok)
            .unwrap();
        s.create("two", "k", Kind::Active, None, Labels::new(), ok)
            .unwrap();
        assert_eq!(s.list(Some("one")).unwrap().len(), 1);
        assert_eq!(s.list(None).unwrap().len(), 2);
        assert!(matches!(
            s.resolve(None, "k"),
            Err(SnapshotError::FailedPrecondition { .. })
        ));
        s.remove("one", "k").unwrap();
        assert_eq!(s.resolve(None, "k").unwrap().namespace, "two");
        assert!(matches!(
            s.create("one", "p", Kind::Active, Some("k"), Labels::new(), ok),
            Err(SnapshotError::NotFound { .. })
        ));
        // A committed snapshot of another namespace is a parent (a remote
        // layer shared by its bare name), with its own chain.
        s.create("two", "base-a", Kind::Active, None, Labels::new(), ok)
            .unwrap();
        s.commit("two", "base-a", "base", Labels::new(), Usage::default())
            .unwrap();
        s.create(
            "two",
            "layer-a",
            Kind::Active,
            Some("base"),
            Labels::new(),
            ok,
        )
        .unwrap();
        s.commit("two", "layer-a", "layer", Labels::new(), Usage::default())
            .unwrap();
        let c = s
            .create("one", "p", Kind::Active, Some("layer"), Labels::new(), ok)
            .unwrap();
        let names: Vec<_> = c.ancestors.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(names, ["layer", "base"]);
        let (_, chain) = s.with_ancestors(Some("one"), "p").unwrap();
        assert_eq!(chain.len(), 2);
        assert!(matches!(
            s.remove("two", "layer"),
            Err(SnapshotError::FailedPrecondition { .. })
        ));
        s.remove("one", "p").unwrap();
        s.remove("two", "layer").unwrap();
    }

    #[test]
    fn errors_follow_containerd() {
        let (_d, s) = store();
        s.create("ns", "a", Kind::Active, None, Labels::new(), ok)
            .unwrap();
        assert!(matches!(
            s.create("ns", "a", Kind::Active, None, Labels::new(), ok),
            Err(SnapshotError::AlreadyExists { .. })
        ));
        // Parent must be committed.
        assert!(matches!(
            s.create("ns", "b", Kind::View, Some("a"), Labels::new(), ok),
            Err(SnapshotError::InvalidArgument(_))
        ));
        s.commit("ns", "a", "c", Labels::new(), Usage::default())
            .unwrap();
        s.create("ns", "v", Kind::View, Some("c"), Labels::new(), ok)
            .unwrap();
        // Only active snapshots commit.
        assert!(matches!(
            s.commit("ns", "v", "d", Labels::new(), Usage::default()),
            Err(SnapshotError::FailedPrecondition { .. })
        ));
        s.create("ns", "a2", Kind::Active, None, Labels::new(), ok)
            .unwrap();
        assert!(matches!(
            s.commit("ns", "a2", "c", Labels::new(), Usage::default()),
            Err(SnapshotError::AlreadyExists { .. })
        ));
        // A parent with children stays.
        assert!(matches!(
            s.remove("ns", "c"),
            Err(SnapshotError::FailedPrecondition { .. })
        ));
        s.remove("ns", "v").unwrap();
        s.remove("ns", "c").unwrap();
        assert!(matches!(
            s.remove("ns", "c"),
            Err(SnapshotError::NotFound { .. })
        ));
        let big = "x".repeat(MAX_LABEL_SIZE);
        assert!(matches!(
            s.create("ns", "l", Kind::Active, None, labels(&[("k", &big)]), ok),
            Err(SnapshotError::InvalidArgument(_))
        ));
    }

    #[test]
    fn failed_placement_stores_nothing() {
        let (_d, s) = store();
        let r = s.create("ns", "a", Kind::Active, None, Labels::new(), |_| {
            Err(SnapshotError::Unsupported("no".into()))
        });
        assert!(r.is_err());
        assert!(s.list(None).unwrap().is_empty());
        // The id was not consumed either: the transaction was aborted.
        assert_eq!(
            s.create("ns", "a", Kind::Active, None, Labels::new(), ok)
                .unwrap()
                .record
                .id,
            1
        );
    }

    #[test]
    fn label_updates() {
        let (_d, s) = store();
        s.create(
            "ns",
            "a",
            Kind::Active,
            None,
            labels(&[("a", "1"), ("b", "2")]),
            ok,
        )
        .unwrap();
        let r = s
            .update_labels(
                "ns",
                "a",
                labels(&[("b", "3"), ("c", "4")]),
                &LabelUpdate::Keys(vec!["a".into(), "b".into()]),
            )
            .unwrap();
        assert_eq!(r.labels, labels(&[("b", "3")]));
        let r = s
            .update_labels("ns", "a", labels(&[("z", "9")]), &LabelUpdate::ReplaceAll)
            .unwrap();
        assert_eq!(r.labels, labels(&[("z", "9")]));
        assert!(r.updated.time() >= r.created.time());
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        {
            let s = MetaStore::open(&path).unwrap();
            s.create("ns", "a", Kind::Active, None, labels(&[("k", "v")]), ok)
                .unwrap();
            s.commit(
                "ns",
                "a",
                "c",
                labels(&[("k", "v")]),
                Usage { size: 5, inodes: 2 },
            )
            .unwrap();
        }
        let s = MetaStore::open(&path).unwrap();
        let e = s.resolve(Some("ns"), "c").unwrap();
        assert_eq!(e.record.usage, Some(Usage { size: 5, inodes: 2 }));
        assert_eq!(e.record.labels, labels(&[("k", "v")]));
        assert_eq!(
            s.create("ns", "b", Kind::Active, None, Labels::new(), ok)
                .unwrap()
                .record
                .id,
            2
        );
    }
}
