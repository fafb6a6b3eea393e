//! A scripted, recording [`RemoteLayers`] for tests (feature `testing`).
//!
//! It "mounts" by writing a marker file into the mountpoint, so tests see the
//! whole remote flow without FUSE or root.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{RemoteError, RemoteLayers, RemoteOutcome, RemotePrepare, RemoteSnapshot};

/// Name of the file the fake writes into a "mounted" layer.
pub const MARKER: &str = "remote-layer";

/// A call the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `prepare_remote` for this key and target.
    Prepare {
        /// The active key.
        key: String,
        /// The chain ID.
        target: String,
    },
    /// `check` of this snapshot.
    Check(String),
    /// `restore` of this snapshot.
    Restore(String),
    /// `unmount` of this path (shutdown).
    Unmount(PathBuf),
    /// `remove` of this path (snapshot removal).
    Remove(PathBuf),
}

/// Returns queued outcomes (then `Defer`) and records every call.
#[derive(Debug, Clone, Default)]
pub struct FakeRemote {
    outcomes: Arc<Mutex<VecDeque<Result<RemoteOutcome, String>>>>,
    calls: Arc<Mutex<Vec<Call>>>,
    /// When set, `check` fails with this message.
    pub fail_check: Arc<Mutex<Option<String>>>,
}

impl FakeRemote {
    /// Queue the result of the next `prepare_remote`.
    pub fn push(&self, outcome: Result<RemoteOutcome, String>) {
        self.outcomes.lock().unwrap().push_back(outcome);
    }

    /// Calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl RemoteLayers for FakeRemote {
    async fn prepare_remote(&self, request: &RemotePrepare) -> Result<RemoteOutcome, RemoteError> {
        self.calls.lock().unwrap().push(Call::Prepare {
            key: request.key.clone(),
            target: request.target.clone(),
        });
        let next = self.outcomes.lock().unwrap().pop_front();
        let outcome = next
            .unwrap_or(Ok(RemoteOutcome::Defer))
            .map_err(RemoteError::from)?;
        if outcome != RemoteOutcome::Defer {
            std::fs::write(request.mountpoint.join(MARKER), request.target.as_bytes())?;
        }
        Ok(outcome)
    }

    async fn check(&self, snapshot: &RemoteSnapshot) -> Result<(), RemoteError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Check(snapshot.name.clone()));
        match self.fail_check.lock().unwrap().clone() {
            Some(msg) => Err(msg.into()),
            None => Ok(()),
        }
    }

    async fn restore(&self, snapshot: &RemoteSnapshot) -> Result<(), RemoteError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Restore(snapshot.name.clone()));
        Ok(())
    }

    async fn unmount(&self, mountpoint: &Path) -> Result<(), RemoteError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Unmount(mountpoint.to_path_buf()));
        Ok(())
    }

    async fn remove(&self, mountpoint: &Path) -> Result<(), RemoteError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Remove(mountpoint.to_path_buf()));
        Ok(())
    }
}
