//! Property tests of the TOC builder: random archives give exactly their expected
//! TOC, and no input (random, mutated or hand-assembled) makes it panic.

use proptest::collection::vec;
use proptest::prelude::*;
use soci_format::testutil::{
    BLOCK, EndOfArchive, RawHeader, TarWriter, gzip_members, pax_record, random_tar, set_checksum,
};
use soci_format::toc::{Toc, build_toc};

/// Properties every successful result has, whatever the input.
fn check_invariants(toc: &Toc, input_len: usize) {
    assert!(toc.uncompressed_archive_size <= input_len as u64);
    let mut prev = None;
    for e in &toc.entries {
        assert_eq!(e.uncompressed_offset % BLOCK as u64, 0, "{e:?}");
        assert!(e.uncompressed_offset <= toc.uncompressed_archive_size);
        if let Some(p) = prev {
            assert!(e.uncompressed_offset > p);
        }
        prev = Some(e.uncompressed_offset);
        assert!(
            ["reg", "dir", "symlink", "hardlink", "char", "block", "fifo"]
                .contains(&e.entry_type.as_str())
        );
    }
}

fn run(bytes: &[u8]) {
    if let Ok(toc) = build_toc(&mut &bytes[..]) {
        check_invariants(&toc, bytes.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_tars_give_their_expected_toc(seed in any::<u64>()) {
        let f = random_tar(seed);
        let toc = build_toc(&mut &f.bytes[..]).expect("generated archives are valid");
        prop_assert_eq!(&toc.entries, &f.entries);
        prop_assert_eq!(toc.uncompressed_archive_size, f.uncompressed_archive_size);
        for (e, content) in toc.entries.iter().zip(&f.contents) {
            let start = e.uncompressed_offset as usize;
            prop_assert_eq!(&f.bytes[start..start + content.len()], &content[..]);
        }
        check_invariants(&toc, f.bytes.len());
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..4096)) {
        run(&bytes);
    }

    #[test]
    fn blocks_with_valid_checksums_never_panic(
        blocks in vec((vec(any::<u8>(), BLOCK), 0u8..4, any::<u8>(), 0u16..4000), 1..6),
        tail in vec(any::<u8>(), 0..1500),
    ) {
        let mut bytes = Vec::new();
        for (raw, magic, typeflag, size) in blocks {
            let mut blk: [u8; BLOCK] = raw.try_into().unwrap();
            match magic {
                0 => blk[257..265].copy_from_slice(b"ustar\x0000"),
                1 => blk[257..265].copy_from_slice(b"ustar  \0"),
                2 => {
                    blk[257..265].copy_from_slice(b"ustar\x0000");
                    blk[508..512].copy_from_slice(b"tar\0");
                }
                _ => {}
            }
            blk[156] = *[b'0', b'x', b'L', b'K', b'5', b'2', 0, typeflag].get(typeflag as usize % 8).unwrap();
            blk[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
            set_checksum(&mut blk);
            bytes.extend_from_slice(&blk);
            let data_len = (size as usize).min(tail.len());
            bytes.extend_from_slice(&tail[..data_len]);
        }
        run(&bytes);
    }

    #[test]
    fn mutated_archives_never_panic(
        seed in 0u64..500,
        edits in vec((any::<bool>(), any::<usize>(), any::<u8>()), 1..10),
        fix_checksums in any::<bool>(),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let f = random_tar(seed);
        let mut bytes = f.bytes.clone();
        let headers: Vec<usize> = f
            .entries
            .iter()
            .flat_map(|e| [e.tar_header_offset as usize, e.uncompressed_offset as usize - BLOCK])
            .collect();
        for (in_header, pos, value) in edits {
            let at = if in_header {
                headers[pos % headers.len()] + pos % BLOCK
            } else {
                pos % bytes.len()
            };
            bytes[at] = value;
            if fix_checksums {
                let start = at / BLOCK * BLOCK;
                if start + BLOCK <= bytes.len() {
                    let blk: &mut [u8; BLOCK] = (&mut bytes[start..start + BLOCK]).try_into().unwrap();
                    set_checksum(blk);
                }
            }
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        run(&bytes);
    }

    #[test]
    fn arbitrary_pax_bodies_never_panic(
        recs in vec((vec(any::<u8>(), 0..12), vec(any::<u8>(), 0..24)), 0..6),
        garbage in vec(any::<u8>(), 0..40),
        keys in vec(prop_oneof![
            Just("path"), Just("linkpath"), Just("size"), Just("uid"), Just("gid"),
            Just("mtime"), Just("atime"), Just("uname"), Just("GNU.sparse.major"),
            Just("GNU.sparse.minor"), Just("GNU.sparse.map"), Just("GNU.sparse.numblocks"),
            Just("GNU.sparse.size"), Just("GNU.sparse.offset"), Just("GNU.sparse.numbytes"),
            Just("GNU.sparse.name"),
        ], 0..6),
        typeflag in prop_oneof![Just(b'0'), Just(b'5'), Just(0u8), Just(b'2')],
        data in vec(any::<u8>(), 0..1200),
    ) {
        let mut body = Vec::new();
        for (i, (k, v)) in recs.iter().enumerate() {
            let key = keys.get(i).map_or(k.clone(), |k| k.as_bytes().to_vec());
            body.extend(pax_record(&key, v));
        }
        body.extend_from_slice(&garbage);
        let mut w = TarWriter::new();
        w.append_block(&RawHeader::new("pax", b'x', body.len() as i64), &body);
        w.append_block(&RawHeader::new("entry", typeflag, data.len() as i64), &data);
        let bytes = w.finish(EndOfArchive::TwoZeroBlocks).bytes;
        run(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn toc_through_gzip_members_is_unchanged(seed in any::<u64>(), members in 1usize..6, extra in any::<bool>()) {
        let f = random_tar(seed);
        let gz = gzip_members(&f.bytes, 1, members, extra);
        let toc = build_toc(&mut flate2::read::MultiGzDecoder::new(&gz[..])).unwrap();
        prop_assert_eq!(toc, f.toc());
    }
}

#[test]
fn pax_records_are_sorted_like_go() {
    // Byte order, not locale order: upper case before lower case, shorter first.
    let mut w = TarWriter::new();
    let mut body = Vec::new();
    for k in ["b", "B", "a.b", "a", "SCHILY.xattr.z", "\u{e9}"] {
        body.extend(pax_record(k.as_bytes(), b"v"));
    }
    w.append_block(&RawHeader::new("pax", b'x', body.len() as i64), &body);
    w.append_block(&RawHeader::new("f", b'0', 0), &[]);
    let toc = build_toc(&mut &w.finish(EndOfArchive::TwoZeroBlocks).bytes[..]).unwrap();
    let keys: Vec<&String> = toc.entries[0].pax_records.keys().collect();
    assert_eq!(keys, ["B", "SCHILY.xattr.z", "a", "a.b", "b", "\u{e9}"]);
}
