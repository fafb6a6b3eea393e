//! Chain IDs (OCI image spec, "Layer ChainID"): the name of the snapshot
//! that holds layers `0..=n` applied in order.
//!
//! `ChainID(L0) = DiffID(L0)` and `ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1)
//! + " " + DiffID(Ln))`, over the digests' text forms.

use soci_format::Digest;

/// The chain ID of a layer whose diff ID is `diff_id` on top of the chain
/// `parent` (`None` for the bottom layer).
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => Digest::of(format!("{p} {diff_id}").as_bytes()),
    }
}

/// The chain IDs of every prefix of `diff_ids`: element `i` names the
/// snapshot of layers `0..=i`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = chain_id(out.last(), d);
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        s.parse().unwrap()
    }

    #[test]
    fn empty_and_single() {
        assert!(chain_ids(&[]).is_empty());
        let a = Digest::of(b"a");
        assert_eq!(chain_ids(std::slice::from_ref(&a)), vec![a]);
    }

    #[test]
    fn chain_of_three_known_values() {
        // Expected values computed independently with coreutils:
        // printf '%s %s' "$A" "$B" | sha256sum, then the same with the result
        // and "$C".
        let a = d("sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        let b = d("sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
        let c = d("sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
        let ids = chain_ids(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::of(format!("{a} {b}").as_bytes()));
        assert_eq!(ids[2], Digest::of(format!("{} {c}", ids[1]).as_bytes()));
        assert_eq!(
            ids[1].to_string(),
            "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c"
        );
        assert_eq!(
            ids[2].to_string(),
            "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588"
        );
    }

    #[test]
    fn incremental_matches_batch() {
        let diffs: Vec<Digest> = (0..5u8).map(|i| Digest::of(&[i])).collect();
        let batch = chain_ids(&diffs);
        let mut parent: Option<Digest> = None;
        for (i, diff) in diffs.iter().enumerate() {
            let next = chain_id(parent.as_ref(), diff);
            assert_eq!(next, batch[i]);
            parent = Some(next);
        }
    }
}
