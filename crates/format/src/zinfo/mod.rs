//! Checkpoints (zinfo).
