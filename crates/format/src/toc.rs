//! Tar TOC builder.
