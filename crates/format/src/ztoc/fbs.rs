//! Flatbuffer encoding and decoding of the zTOC (schema `ztoc/fbs/ztoc.fbs` upstream).

use super::{Ztoc, ZtocError};

pub(super) fn encode(_z: &Ztoc) -> Vec<u8> {
    unimplemented!("ztoc encoder")
}

pub(super) fn decode(_b: &[u8]) -> Result<Ztoc, ZtocError> {
    unimplemented!("ztoc decoder")
}
