//! Canonical OCI JSON.
