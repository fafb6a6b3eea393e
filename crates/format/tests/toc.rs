//! TOC building against Go `archive/tar` semantics, on generated archives.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};

use soci_format::testutil::{
    BLOCK, EndOfArchive, GNU_RECORD_SIZE, HeaderFormat, NameStyle, RawHeader, TarEntry, TarFixture,
    TarWriter, build_tar, gzip_members, pax_body, pax_record, set_checksum, write_numeric,
};
use soci_format::toc::{Toc, TocError, build_toc, build_toc_buffered};

fn toc_of(bytes: &[u8]) -> Result<Toc, TocError> {
    build_toc(&mut &bytes[..])
}

/// The TOC equals the fixture's expectation and every regular file's bytes sit at
/// its offset.
fn check(f: &TarFixture) -> Toc {
    let toc = toc_of(&f.bytes).expect("valid archive");
    assert_eq!(toc.entries.len(), f.entries.len(), "entry count");
    for (got, want) in toc.entries.iter().zip(&f.entries) {
        assert_eq!(got, want);
    }
    assert_eq!(toc.uncompressed_archive_size, f.uncompressed_archive_size);
    for (e, content) in toc.entries.iter().zip(&f.contents) {
        let start = e.uncompressed_offset as usize;
        if e.entry_type == "reg" {
            assert_eq!(
                &f.bytes[start..start + e.uncompressed_size as usize],
                &content[..]
            );
        }
    }
    toc
}

fn records(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn zero_blocks(n: usize) -> Vec<u8> {
    vec![0; n * BLOCK]
}

// -------------------------------------------------------------------------------
// Entry kinds and fields
// -------------------------------------------------------------------------------

#[test]
fn every_entry_kind_reports_every_field() {
    let entries = vec![
        TarEntry::dir("etc/")
            .owner(0, 0)
            .owner_names("root", "root"),
        TarEntry::file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n".to_vec())
            .mode(0o600)
            .owner(1000, 100)
            .owner_names("alice", "users")
            .mtime(1_682_942_400, 500_000_000)
            .xattr("user.comment", "hello")
            .xattr("security.selinux", "system_u:object_r:etc_t:s0"),
        TarEntry::symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
        TarEntry::hardlink("etc/passwd.bak", "etc/passwd"),
        TarEntry::char_device("dev/null", 1, 3),
        TarEntry::block_device("dev/sda", 8, 0),
        TarEntry::fifo("run/pipe"),
        TarEntry::whiteout("var/cache/old"),
        TarEntry::opaque("var/lib/"),
        TarEntry::file("empty", Vec::new()),
        TarEntry::file("exactly-one-block", vec![7u8; 512]),
        TarEntry::file("one-block-plus-one", vec![9u8; 513]),
    ];
    let f = build_tar(&entries, EndOfArchive::TwoZeroBlocks);
    let toc = check(&f);

    // Spot checks against literal values (not derived from the fixture writer).
    let e = &toc.entries;
    assert_eq!(e[0].name, "etc/");
    assert_eq!(e[0].entry_type, "dir");
    assert_eq!(e[0].uncompressed_offset, 512);
    assert_eq!(e[0].tar_header_offset, 0);
    assert_eq!(e[0].mode, 0o755);
    assert_eq!(e[0].mod_time, "2023-11-14T22:13:20Z");
    assert_eq!(e[1].entry_type, "reg");
    assert_eq!(e[1].tar_header_offset, 512);
    // PAX header block + its one-block body + the entry header.
    assert_eq!(e[1].uncompressed_offset, 512 + 3 * 512);
    assert_eq!(e[1].uncompressed_size, 26);
    assert_eq!((e[1].uid, e[1].gid), (1000, 100));
    assert_eq!(
        (e[1].uname.as_str(), e[1].gname.as_str()),
        ("alice", "users")
    );
    assert_eq!(e[1].mode, 0o600);
    assert_eq!(e[1].mod_time, "2023-05-01T12:00:00.5Z");
    assert_eq!(
        e[1].pax_records.keys().collect::<Vec<_>>(),
        [
            "SCHILY.xattr.security.selinux",
            "SCHILY.xattr.user.comment",
            "mtime"
        ]
    );
    assert_eq!(e[1].pax_records["mtime"], "1682942400.5");
    assert_eq!(e[1].xattrs().collect::<Vec<_>>().len(), 2);
    assert_eq!(
        (e[2].entry_type.as_str(), e[2].linkname.as_str()),
        ("symlink", "/usr/share/zoneinfo/UTC")
    );
    assert_eq!(
        (e[3].entry_type.as_str(), e[3].linkname.as_str()),
        ("hardlink", "etc/passwd")
    );
    assert_eq!(
        (e[4].entry_type.as_str(), e[4].devmajor, e[4].devminor),
        ("char", 1, 3)
    );
    assert_eq!(
        (e[5].entry_type.as_str(), e[5].devmajor, e[5].devminor),
        ("block", 8, 0)
    );
    assert_eq!(e[6].entry_type, "fifo");
    assert_eq!(e[7].name, "var/cache/.wh.old");
    assert_eq!(e[8].name, "var/lib/.wh..wh..opq");
    assert_eq!(e[11].uncompressed_size, 513);
    assert_eq!(toc.uncompressed_archive_size, f.bytes.len() as u64);
}

#[test]
fn tar_header_offset_matches_the_decoder_formula() {
    let f = soci_format::testutil::random_tar(7);
    let toc = check(&f);
    let mut next = 0u64;
    for e in &toc.entries {
        assert_eq!(e.tar_header_offset, next);
        next = (e.uncompressed_offset + e.uncompressed_size).div_ceil(512) * 512;
    }
}

#[test]
fn long_names_in_every_style() {
    let long_dir = format!("{}/", "d".repeat(60)).repeat(3); // 183 bytes
    let very_long = format!("{}/", "e".repeat(90)).repeat(4); // 364 bytes
    for style in [
        NameStyle::Pax,
        NameStyle::PaxAlways,
        NameStyle::Gnu,
        NameStyle::UstarPrefix,
    ] {
        let entries = vec![
            TarEntry::dir(long_dir.clone()),
            TarEntry::file(format!("{long_dir}file.txt"), b"long".to_vec()),
            TarEntry::file(format!("{very_long}file.txt"), b"very long".to_vec()),
            TarEntry::file("x".repeat(100), b"exactly 100".to_vec()),
            TarEntry::file("y".repeat(101), b"101".to_vec()),
            TarEntry::symlink("link", "t".repeat(150)),
            TarEntry::hardlink("hard", format!("{long_dir}file.txt")),
            TarEntry::dir(very_long.clone()),
        ]
        .into_iter()
        .map(|e| e.name_style(style))
        .collect::<Vec<_>>();
        let f = build_tar(&entries, EndOfArchive::TwoZeroBlocks);
        let toc = check(&f);
        assert_eq!(toc.entries[2].name.len(), 364 + 8);
        if style == NameStyle::UstarPrefix {
            // Split into prefix + name: no PAX path record needed.
            assert!(!toc.entries[1].pax_records.contains_key("path"));
            // "y" * 101 has no '/', so it falls back to PAX.
            assert!(toc.entries[4].pax_records.contains_key("path"));
        }
        if style == NameStyle::Gnu {
            assert!(toc.entries.iter().all(|e| e.pax_records.is_empty()));
        }
    }
}

#[test]
fn unicode_and_dot_slash_names_are_kept_verbatim() {
    let entries = vec![
        TarEntry::dir("./"),
        TarEntry::dir("./usr/"),
        TarEntry::file("./usr/ünïcødé.txt", b"u".to_vec()),
        TarEntry::file("./日本語/ファイル", b"j".to_vec()).name_style(NameStyle::PaxAlways),
        TarEntry::file("emoji-🎉", b"e".to_vec()).name_style(NameStyle::Gnu),
        TarEntry::file("a//b/../c", b"not cleaned".to_vec()),
        TarEntry::file(format!("./{}", "ü".repeat(60)), b"multi-byte long".to_vec()),
    ];
    let toc = check(&build_tar(&entries, EndOfArchive::TwoZeroBlocks));
    assert_eq!(toc.entries[0].name, "./");
    assert_eq!(toc.entries[5].name, "a//b/../c");
}

#[test]
fn legacy_nul_typeflag_becomes_reg_or_dir() {
    let entries = vec![
        TarEntry::file("plain", b"data".to_vec()).legacy_typeflag(),
        TarEntry::dir("legacy-dir/").legacy_typeflag(),
    ];
    let toc = check(&build_tar(&entries, EndOfArchive::TwoZeroBlocks));
    assert_eq!(toc.entries[0].entry_type, "reg");
    assert_eq!(toc.entries[1].entry_type, "dir");

    // A '\0' entry named "x/" is a directory: its size field is reported but no data
    // is skipped (Go treats directories as header-only).
    let mut w = TarWriter::new();
    w.append_block(&RawHeader::new("x/", 0, 700), &[]);
    w.append(&TarEntry::file("after", b"after".to_vec()));
    let bytes = w.finish(EndOfArchive::TwoZeroBlocks).bytes;
    let toc = toc_of(&bytes).unwrap();
    assert_eq!(toc.entries[0].entry_type, "dir");
    assert_eq!(toc.entries[0].uncompressed_size, 700);
    assert_eq!(toc.entries[1].name, "after");
    assert_eq!(toc.entries[1].uncompressed_offset, 1024);
}

#[test]
fn header_only_types_have_no_data_section() {
    for typeflag in *b"123456" {
        let mut w = TarWriter::new();
        let mut h = RawHeader::new("special", typeflag, 1000);
        h.linkname = b"target".to_vec();
        w.append_block(&h, &[]);
        w.append(&TarEntry::file("next", b"next".to_vec()));
        let bytes = w.finish(EndOfArchive::TwoZeroBlocks).bytes;
        let toc = toc_of(&bytes).unwrap();
        assert_eq!(
            toc.entries[0].uncompressed_size, 1000,
            "upstream keeps the header size"
        );
        assert_eq!(toc.entries[1].uncompressed_offset, 1024);
        // The decoder's formula assumes the data is there; this is upstream's behaviour.
        assert_eq!(toc.entries[1].tar_header_offset, 1536);
    }
}

#[test]
fn mode_is_the_raw_header_value() {
    let entries = vec![
        TarEntry::file("with-type-bits", Vec::new()).mode(0o100755),
        TarEntry::dir("sticky/").mode(0o41777),
        TarEntry::file("setuid", Vec::new()).mode(0o4755),
        TarEntry::file("zero", Vec::new()).mode(0),
    ];
    let toc = check(&build_tar(&entries, EndOfArchive::TwoZeroBlocks));
    let modes: Vec<i64> = toc.entries.iter().map(|e| e.mode).collect();
    assert_eq!(modes, [0o100755, 0o41777, 0o4755, 0]);
}

#[test]
fn big_and_negative_numbers_use_base256() {
    let entries = vec![
        TarEntry::file("big-ids", b"x".to_vec()).owner(u32::MAX, 3_000_000),
        TarEntry::file("before-1970", b"x".to_vec()).mtime(-86_400, 0),
        TarEntry::file("before-1970-frac", b"x".to_vec()).mtime(-2, 500_000_000),
        TarEntry::file("far-future", b"x".to_vec()).mtime(1 << 36, 0),
        TarEntry::char_device("big-dev", 1 << 40, 1 << 22),
    ];
    let toc = check(&build_tar(&entries, EndOfArchive::TwoZeroBlocks));
    assert_eq!(toc.entries[0].uid, u32::MAX);
    assert_eq!(toc.entries[1].mod_time, "1969-12-31T00:00:00Z");
    assert_eq!(toc.entries[2].mod_time, "1969-12-31T23:59:58.5Z");
    assert_eq!(toc.entries[2].pax_records["mtime"], "-1.5");
    assert_eq!(toc.entries[3].mod_time, "4147-08-20T07:32:16Z");
    assert_eq!(toc.entries[4].devmajor, 1 << 40);
}

#[test]
fn uid_beyond_32_bits_wraps_like_upstream() {
    let mut h = RawHeader::new("f", b'0', 0);
    h.uid = (1 << 32) + 5;
    h.gid = -1;
    let mut w = TarWriter::new();
    w.append_block(&h, &[]);
    let toc = toc_of(&w.finish(EndOfArchive::TwoZeroBlocks).bytes).unwrap();
    assert_eq!((toc.entries[0].uid, toc.entries[0].gid), (5, u32::MAX));
}

#[test]
fn octal_fields_with_spaces_and_signed_checksum() {
    let mut blk = RawHeader::new("f", b'0', 3).to_block();
    // Old-style fields: leading spaces, space terminator.
    blk[100..108].copy_from_slice(b"   644 \0");
    blk[124..136].copy_from_slice(b"          3 ");
    set_checksum(&mut blk);
    let mut bytes = blk.to_vec();
    bytes.extend_from_slice(b"abc");
    bytes.resize(1024, 0);
    bytes.extend(zero_blocks(2));
    let toc = toc_of(&bytes).unwrap();
    assert_eq!(toc.entries[0].mode, 0o644);
    assert_eq!(toc.entries[0].uncompressed_size, 3);

    // Checksum computed with signed bytes (old Sun tar) is accepted too.
    let mut blk = RawHeader::new("h\u{e9}\u{e9}".as_bytes(), b'0', 0).to_block();
    let signed: i64 = blk
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if (148..156).contains(&i) {
                32
            } else {
                i64::from(c as i8)
            }
        })
        .sum();
    blk[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
    let mut bytes = blk.to_vec();
    bytes.extend(zero_blocks(2));
    assert_eq!(toc_of(&bytes).unwrap().entries[0].name, "h\u{e9}\u{e9}");
}

#[test]
fn v7_star_and_gnu_header_layouts() {
    // V7: no magic, so user/group names and device numbers are not read.
    let mut v7 = RawHeader::new("v7file", b'0', 2);
    v7.format = HeaderFormat::V7;
    let mut blk = v7.to_block();
    blk[265..270].copy_from_slice(b"ghost");
    set_checksum(&mut blk);
    let mut w = TarWriter::new();
    w.append_raw(&blk).append_raw(b"hi").append_raw(&[0; 510]);

    // ustar reads device numbers for every type.
    let mut dev = RawHeader::new("reg-with-dev", b'0', 0);
    dev.devmajor = 5;
    dev.devminor = 6;
    w.append_block(&dev, &[]);

    // star: 131-byte prefix.
    let mut star = RawHeader::new("name", b'0', 0);
    star.format = HeaderFormat::Star;
    star.prefix = b"star/prefix".to_vec();
    w.append_block(&star, &[]);

    // ustar prefix on a short name.
    let mut ustar = RawHeader::new("name", b'0', 0);
    ustar.prefix = b"ustar/prefix".to_vec();
    w.append_block(&ustar, &[]);

    // GNU: the prefix area holds atime/ctime; a prefix is used only when those are
    // not numbers (files from an old buggy Go writer).
    let mut gnu = RawHeader::new("name", b'0', 0);
    gnu.format = HeaderFormat::Gnu;
    let mut blk = gnu.to_block();
    blk[345..360].copy_from_slice(b"gnu/odd/prefix/");
    set_checksum(&mut blk);
    w.append_raw(&blk);
    let mut blk = gnu.to_block();
    write_numeric(&mut blk[345..357], 12345);
    set_checksum(&mut blk);
    w.append_raw(&blk);

    let toc = toc_of(&w.finish(EndOfArchive::TwoZeroBlocks).bytes).unwrap();
    let e = &toc.entries;
    assert_eq!((e[0].name.as_str(), e[0].uname.as_str()), ("v7file", ""));
    assert_eq!(e[0].uncompressed_size, 2);
    assert_eq!((e[1].devmajor, e[1].devminor), (5, 6));
    assert_eq!(e[2].name, "star/prefix/name");
    assert_eq!(e[3].name, "ustar/prefix/name");
    assert_eq!(e[4].name, "gnu/odd/prefix//name");
    assert_eq!(e[5].name, "name");
}

// -------------------------------------------------------------------------------
// PAX and GNU extension headers
// -------------------------------------------------------------------------------

#[test]
fn pax_records_override_header_fields() {
    let mut w = TarWriter::new();
    w.append_pax_header(
        b'x',
        &records(&[
            ("path", "pax/name"),
            ("linkpath", "pax/link"),
            ("uid", "123456789"),
            ("gid", "+42"),
            ("uname", "a-very-long-user-name-that-does-not-fit-32"),
            ("gname", "g"),
            ("mtime", "1350244992.023960108"),
            ("atime", "1350244992.5"),
            ("ctime", "-1"),
            ("size", "5"),
            ("comment", "kept"),
            ("SCHILY.xattr.user.x", "v"),
        ]),
    );
    let mut h = RawHeader::new("ustar-name", b'2', 999);
    h.linkname = b"ustar-link".to_vec();
    h.uname = b"u".to_vec();
    w.append_block(&h, &[]);
    // A second entry proves the PAX header applied only to the first.
    w.append(&TarEntry::file("plain", b"data".to_vec()));
    let toc = toc_of(&w.finish(EndOfArchive::TwoZeroBlocks).bytes).unwrap();
    let e = &toc.entries[0];
    assert_eq!(e.name, "pax/name");
    assert_eq!(e.linkname, "pax/link");
    assert_eq!((e.uid, e.gid), (123456789, 42));
    assert_eq!(e.uname, "a-very-long-user-name-that-does-not-fit-32");
    assert_eq!(e.gname, "g");
    assert_eq!(e.mod_time, "2012-10-14T20:03:12.023960108Z");
    assert_eq!(e.uncompressed_size, 5);
    assert_eq!(e.pax_records.len(), 12);
    assert_eq!(e.pax_records["comment"], "kept");
    assert_eq!(e.tar_header_offset, 0);
    assert_eq!(e.uncompressed_offset, 3 * 512);
    assert!(toc.entries[1].pax_records.is_empty());
    assert_eq!(toc.entries[1].name, "plain");
}

#[test]
fn pax_size_moves_the_next_header() {
    let mut w = TarWriter::new();
    w.append_pax_header(b'x', &records(&[("size", "600")]));
    w.append_block(&RawHeader::new("f", b'0', 1), &[1u8; 600]);
    w.append(&TarEntry::file("g", b"g".to_vec()));
    let toc = toc_of(&w.finish(EndOfArchive::TwoZeroBlocks).bytes).unwrap();
    assert_eq!(toc.entries[0].uncompressed_size, 600);
    assert_eq!(toc.entries[1].tar_header_offset, 1536 + 1024);
    assert_eq!(toc.entries[1].uncompressed_offset, 1536 + 1024 + 512);
}

#[test]
fn empty_pax_values_keep_header_fields_but_stay_in_records() {
    let mut w = TarWriter::new();
    w.append_pax_header(b'x', &records(&[("path", ""), ("uid", ""), ("mtime", "")]));
    let mut h = RawHeader::new("header-name", b'0', 0);
    h.uid = 7;
    w.append_block(&h, &[]);
    let toc = toc_of(&w.finish(EndOfArchive::TwoZeroBlocks).bytes).unwrap();
    let e = &toc.entries[0];
    assert_eq!((e.name.as_str(), e.uid), ("header-name", 7));
    assert_eq!(e.mod_time, "2023-11-14T22:13:20Z");
    assert_eq!(
        e.pax_records,
        records(&[("mtime", ""), ("path", ""), ("uid", "")])
    );
}

#[test]
fn a_later_pax_header_replaces_an_earlier_one() {
    let mut w = TarWriter::new();
    w.append_pax_header(
        b'x',
        &records(&[("path", "first"), ("SCHILY.xattr.a", "1")]),
    );
    w.append_pax_header(b'x', &records(&[("SCHILY.xattr.b", "2")]));
    w.append_block(&RawHeader::new("header", b'0', 0), &[]);
    let toc = toc_of(&w.finish(EndOfArchive::TwoZeroBlocks).bytes).unwrap();
    assert_eq!(toc.entries[0].name, "header");
    assert_eq!(
        toc.entries[0].pax_records,
        records(&[("SCHILY.xattr.b", "2")])
    );
    assert_eq!(toc.entries[0].uncompressed_offset, 5 * 512);
}

#[test]
fn gnu_long_name_beats_pax_path_and_last_long_name_wins() {
    let gnu_long = |w: &mut TarWriter, typeflag: u8, value: &str| {
        let mut data = value.as_bytes().to_vec();
        data.extend_from_slice(b"\0garbage after the NUL");
        let mut h = RawHeader::new("././@LongLink", typeflag, data.len() as i64);
        h.format = HeaderFormat::Gnu;
        w.append_block(&h, &data);
    };
    let mut w = TarWriter::new();
    gnu_long(&mut w, b'L', "ignored-long-name");
    w.append_pax_header(
        b'x',
        &records(&[("path", "pax-path"), ("linkpath", "pax-link")]),
    );
    gnu_long(&mut w, b'L', "gnu-long-name");
    gnu_long(&mut w, b'K', "gnu-long-link");
    let mut h = RawHeader::new("short", b'2', 0);
    h.format = HeaderFormat::Gnu;
    w.append_block(&h, &[]);
    let toc = toc_of(&w.finish(EndOfArchive::TwoZeroBlocks).bytes).unwrap();
    let e = &toc.entries[0];
    assert_eq!(e.name, "gnu-long-name");
    assert_eq!(e.linkname, "gnu-long-link");
    assert_eq!(
        e.pax_records,
        records(&[("linkpath", "pax-link"), ("path", "pax-path")])
    );
}

#[test]
fn extension_headers_before_the_end_marker_are_dropped() {
    let mut w = TarWriter::new();
    w.append(&TarEntry::file("only", b"x".to_vec()));
    w.append_pax_header(b'x', &records(&[("path", "orphan")]));
    let f = w.finish(EndOfArchive::TwoZeroBlocks);
    let toc = toc_of(&f.bytes).unwrap();
    assert_eq!(toc.entries.len(), 1);
    assert_eq!(toc.uncompressed_archive_size, f.bytes.len() as u64);
}

#[test]
fn pax_sparse_formats_follow_go() {
    // GNU sparse 0.1: map in the PAX records, data = fragments back to back.
    let mut w = TarWriter::new();
    w.append_pax_header(
        b'x',
        &records(&[
            ("GNU.sparse.major", "0"),
            ("GNU.sparse.minor", "1"),
            ("GNU.sparse.name", "real/name"),
            ("GNU.sparse.realsize", "10000"),
            ("GNU.sparse.numblocks", "2"),
            ("GNU.sparse.map", "0,3,9000,2"),
        ]),
    );
    w.append_block(&RawHeader::new("GNUSparseFile.0/name", b'0', 5), b"abcde");
    // GNU sparse 1.0: map in the first data block(s).
    w.append_pax_header(
        b'x',
        &records(&[
            ("GNU.sparse.major", "1"),
            ("GNU.sparse.minor", "0"),
            ("GNU.sparse.name", "real/one-oh"),
            ("GNU.sparse.realsize", "1048581"),
        ]),
    );
    let mut data = b"1\n1048576\n5\n".to_vec();
    data.resize(512, 0);
    data.extend_from_slice(b"hello");
    w.append_block(
        &RawHeader::new("GNUSparseFile.0/one-oh", b'0', data.len() as i64),
        &data,
    );
    // GNU sparse 0.0: offset/numbytes pairs folded into GNU.sparse.map.
    let mut body = Vec::new();
    body.extend(pax_record(b"GNU.sparse.size", b"100"));
    body.extend(pax_record(b"GNU.sparse.numblocks", b"1"));
    body.extend(pax_record(b"GNU.sparse.offset", b"10"));
    body.extend(pax_record(b"GNU.sparse.numbytes", b"4"));
    w.append_block(&RawHeader::new("pax", b'x', body.len() as i64), &body);
    w.append_block(&RawHeader::new("zero-zero", b'0', 4), b"wxyz");
    // Unknown sparse version: a plain file.
    w.append_pax_header(
        b'x',
        &records(&[("GNU.sparse.major", "2"), ("GNU.sparse.minor", "0")]),
    );
    w.append_block(&RawHeader::new("plain", b'0', 1), b"p");
    let f = w.finish(EndOfArchive::TwoZeroBlocks);
    let toc = toc_of(&f.bytes).unwrap();
    let e = &toc.entries;
    assert_eq!(
        (e[0].name.as_str(), e[0].entry_type.as_str()),
        ("real/name", "reg")
    );
    assert_eq!(e[0].uncompressed_size, 10000);
    assert_eq!(&f.bytes[e[0].uncompressed_offset as usize..][..5], b"abcde");
    assert_eq!(e[1].name, "real/one-oh");
    assert_eq!(e[1].uncompressed_size, 1048581);
    // Go leaves the stream after the map block.
    assert_eq!(&f.bytes[e[1].uncompressed_offset as usize..][..5], b"hello");
    assert_eq!(e[2].name, "zero-zero");
    assert_eq!(e[2].uncompressed_size, 100);
    assert_eq!(e[2].pax_records["GNU.sparse.map"], "10,4");
    assert!(!e[2].pax_records.contains_key("GNU.sparse.offset"));
    assert_eq!((e[3].name.as_str(), e[3].uncompressed_size), ("plain", 1));
    assert_eq!(toc.uncompressed_archive_size, f.bytes.len() as u64);
}

#[test]
fn invalid_pax_sparse_maps_are_errors() {
    let cases: Vec<(Vec<(&str, &str)>, u8)> = vec![
        // Fragment beyond the real size.
        (
            vec![
                ("GNU.sparse.major", "0"),
                ("GNU.sparse.minor", "1"),
                ("GNU.sparse.size", "10"),
                ("GNU.sparse.numblocks", "1"),
                ("GNU.sparse.map", "5,6"),
            ],
            b'0',
        ),
        // Count mismatch.
        (
            vec![("GNU.sparse.map", "1,2,3"), ("GNU.sparse.numblocks", "2")],
            b'0',
        ),
        // Overlapping fragments.
        (
            vec![
                ("GNU.sparse.map", "0,5,4,1"),
                ("GNU.sparse.numblocks", "2"),
                ("GNU.sparse.size", "10"),
            ],
            b'0',
        ),
        // Bad size.
        (
            vec![
                ("GNU.sparse.map", "0,1"),
                ("GNU.sparse.numblocks", "1"),
                ("GNU.sparse.size", "x"),
            ],
            b'0',
        ),
        // Sparse directory.
        (
            vec![("GNU.sparse.map", "0,0"), ("GNU.sparse.numblocks", "1")],
            b'5',
        ),
        // 1.0 with no map data.
        (
            vec![("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0")],
            b'0',
        ),
    ];
    for (recs, typeflag) in cases {
        let mut w = TarWriter::new();
        w.append_pax_header(b'x', &records(&recs));
        w.append_block(&RawHeader::new("s", typeflag, 0), &[]);
        let err = toc_of(&w.finish(EndOfArchive::TwoZeroBlocks).bytes).unwrap_err();
        assert!(
            matches!(
                err,
                TocError::InvalidSparse { .. } | TocError::Truncated { .. }
            ),
            "{recs:?}: {err}"
        );
    }
}

// -------------------------------------------------------------------------------
// End of archive
// -------------------------------------------------------------------------------

#[test]
fn archive_size_for_every_end_marker() {
    let entries = vec![TarEntry::file("a", vec![1u8; 700]), TarEntry::dir("d/")];
    let body_len = 512 + 1024 + 512;
    for (end, size) in [
        (EndOfArchive::TwoZeroBlocks, body_len + 1024),
        (EndOfArchive::OneZeroBlock, body_len + 512),
        (EndOfArchive::Missing, body_len),
        (EndOfArchive::RecordPadded(GNU_RECORD_SIZE), body_len + 1024),
    ] {
        let f = build_tar(&entries, end);
        let toc = check(&f);
        assert_eq!(toc.uncompressed_archive_size, size as u64, "{end:?}");
    }
    let f = build_tar(&entries, EndOfArchive::RecordPadded(GNU_RECORD_SIZE));
    assert_eq!(f.bytes.len(), GNU_RECORD_SIZE);
}

#[test]
fn stream_ending_inside_the_last_padding_is_a_clean_end() {
    let mut w = TarWriter::new();
    w.append(&TarEntry::file("a", b"abc".to_vec()));
    let mut bytes = w.finish(EndOfArchive::Missing).bytes;
    bytes.truncate(512 + 100);
    let toc = toc_of(&bytes).unwrap();
    assert_eq!(toc.entries.len(), 1);
    assert_eq!(toc.uncompressed_archive_size, 612);
}

#[test]
fn empty_stream_and_trailing_data() {
    let toc = toc_of(&[]).unwrap();
    assert_eq!(toc, Toc::default());
    let toc = toc_of(&zero_blocks(2)).unwrap();
    assert_eq!(
        (toc.entries.len(), toc.uncompressed_archive_size),
        (0, 1024)
    );

    // Anything after two zero blocks is never read.
    let mut f = build_tar(
        &[TarEntry::file("a", b"a".to_vec())],
        EndOfArchive::TwoZeroBlocks,
    );
    let size = f.bytes.len() as u64;
    f.bytes
        .extend_from_slice(b"trailing garbage that is not a header");
    assert_eq!(toc_of(&f.bytes).unwrap().uncompressed_archive_size, size);
}

#[test]
fn buffered_variant_stops_exactly_at_the_end() {
    let mut f = build_tar(
        &[TarEntry::file("a", vec![5u8; 3000])],
        EndOfArchive::TwoZeroBlocks,
    );
    let size = f.bytes.len();
    f.bytes.extend_from_slice(b"rest");
    let mut r = BufReader::with_capacity(7, &f.bytes[..]);
    let toc = build_toc_buffered(&mut r).unwrap();
    assert_eq!(toc.uncompressed_archive_size as usize, size);
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"rest");
    // Same with a fully buffered slice.
    let mut slice = &f.bytes[..];
    build_toc_buffered(&mut slice).unwrap();
    assert_eq!(slice, b"rest");
}

/// A reader that returns tiny chunks and spurious `Interrupted` errors.
struct Choppy<'a> {
    data: &'a [u8],
    calls: usize,
}

impl Read for Choppy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(5) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "try again"));
        }
        let n = buf.len().min(self.data.len()).min(1 + self.calls % 13);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn small_reads_and_interruptions_give_the_same_toc() {
    for seed in 0..8 {
        let f = soci_format::testutil::random_tar(seed);
        let want = toc_of(&f.bytes).unwrap();
        let got = build_toc(&mut Choppy {
            data: &f.bytes,
            calls: 0,
        })
        .unwrap();
        assert_eq!(got, want);
        let mut small = BufReader::with_capacity(
            3,
            Choppy {
                data: &f.bytes,
                calls: 0,
            },
        );
        assert_eq!(build_toc_buffered(&mut small).unwrap(), want);
    }
}

/// A header for a huge file followed by `size` bytes the reader never writes.
struct HugeFile {
    prefix: Vec<u8>,
    data_left: u64,
    suffix: Vec<u8>,
}

impl Read for HugeFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.prefix.is_empty() {
            let n = buf.len().min(self.prefix.len());
            buf[..n].copy_from_slice(&self.prefix[..n]);
            self.prefix.drain(..n);
            return Ok(n);
        }
        if self.data_left > 0 {
            let n = (buf.len() as u64).min(self.data_left);
            self.data_left -= n;
            return Ok(n as usize);
        }
        let n = buf.len().min(self.suffix.len());
        buf[..n].copy_from_slice(&self.suffix[..n]);
        self.suffix.drain(..n);
        Ok(n)
    }
}

#[test]
fn huge_files_are_skipped_not_read() {
    // 12 GiB needs base-256 in the size field; a PAX size works as well.
    let size: u64 = 12 << 30;
    let mut prefix = RawHeader::new("huge", b'0', size as i64)
        .to_block()
        .to_vec();
    let mut second = Vec::new();
    second.extend(pax_body(&records(&[("size", &size.to_string())])));
    let pax_len = second.len();
    second.resize(512, 0);
    let mut suffix = RawHeader::new("pax", b'x', pax_len as i64)
        .to_block()
        .to_vec();
    suffix.extend(second);
    suffix.extend(RawHeader::new("huge2", b'0', 0).to_block());
    let first = HugeFile {
        prefix: std::mem::take(&mut prefix),
        data_left: size,
        suffix,
    };
    let second_data = HugeFile {
        prefix: Vec::new(),
        data_left: size,
        suffix: zero_blocks(2),
    };
    let mut r = first.chain(second_data);
    let start = std::time::Instant::now();
    let toc = build_toc(&mut r).unwrap();
    assert_eq!(toc.entries.len(), 2);
    assert_eq!(toc.entries[0].uncompressed_size, size);
    assert_eq!(toc.entries[1].uncompressed_size, size);
    assert_eq!(
        toc.entries[1].uncompressed_offset,
        512 + size + 512 + 512 + 512
    );
    assert_eq!(
        toc.uncompressed_archive_size,
        512 + size + 3 * 512 + size + 1024
    );
    assert!(
        start.elapsed().as_secs() < 60,
        "skipping 24 GiB took {:?}",
        start.elapsed()
    );
}

// -------------------------------------------------------------------------------
// Errors
// -------------------------------------------------------------------------------

fn err_of(build: impl FnOnce(&mut TarWriter)) -> TocError {
    let mut w = TarWriter::new();
    w.append(&TarEntry::file("ok", b"fine".to_vec()));
    build(&mut w);
    toc_of(&w.finish(EndOfArchive::TwoZeroBlocks).bytes).unwrap_err()
}

#[test]
fn pax_global_header_is_rejected_with_a_clear_message() {
    let err = err_of(|w| {
        w.append_pax_header(b'g', &records(&[("comment", "global")]));
    });
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            TocError::UnsupportedType {
                typeflag: b'g',
                offset: 1024,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        msg,
        "unsupported tar entry type 'g' (PAX global header) for \"pax_global_header\" at offset 1024: SOCI cannot index this layer"
    );
}

#[test]
fn unsupported_types_are_rejected() {
    for (typeflag, what) in [
        (b'S', "GNU sparse file"),
        (b'7', "contiguous file"),
        (b'V', "GNU volume header"),
        (b'M', "GNU multi-volume continuation"),
        (b'D', "GNU dump directory"),
        (b'Z', "vendor extension"),
        (b'9', "unknown type"),
        (0xff, "unknown type"),
    ] {
        let err = err_of(|w| {
            let mut h = RawHeader::new("odd", typeflag, 0);
            h.format = HeaderFormat::Gnu;
            w.append_block(&h, &[]);
        });
        match &err {
            TocError::UnsupportedType {
                typeflag: t,
                name,
                offset,
            } => {
                assert_eq!((*t, name.as_str(), *offset), (typeflag, "odd", 1024));
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains(what), "{err}");
    }
    // The offset is the entry's first block, PAX header included.
    let err = err_of(|w| {
        w.append_pax_header(b'x', &records(&[("path", "from-pax")]));
        w.append_block(&RawHeader::new("odd", b'7', 0), &[]);
    });
    assert!(
        matches!(&err, TocError::UnsupportedType { name, offset: 1024, .. } if name == "from-pax"),
        "{err:?}"
    );
}

#[test]
fn truncation_is_an_error() {
    let f = build_tar(
        &[TarEntry::file("a", vec![3u8; 2000])],
        EndOfArchive::TwoZeroBlocks,
    );
    // Inside the first header, inside the data, inside the end marker.
    for cut in [
        100,
        511,
        512 + 1000,
        512 + 1999,
        512 + 2048 + 100,
        512 + 2048 + 512 + 7,
    ] {
        let err = toc_of(&f.bytes[..cut]).unwrap_err();
        assert!(
            matches!(err, TocError::Truncated { .. }),
            "cut {cut}: {err:?}"
        );
    }
    // Data cut exactly at a block boundary is still missing data.
    let err = toc_of(&f.bytes[..1024]).unwrap_err();
    assert!(
        err.to_string()
            .contains("data of \"a\" should end at offset 2512"),
        "{err}"
    );
    // Truncated PAX body.
    let mut w = TarWriter::new();
    w.append(&TarEntry::file("a", Vec::new()).xattr("user.x", "y".repeat(300)));
    let bytes = w.finish(EndOfArchive::TwoZeroBlocks).bytes;
    assert!(matches!(
        toc_of(&bytes[..700]).unwrap_err(),
        TocError::Truncated { .. }
    ));
}

#[test]
fn bad_checksum_and_bad_numbers_are_header_errors() {
    let f = build_tar(
        &[TarEntry::file("a", b"a".to_vec())],
        EndOfArchive::TwoZeroBlocks,
    );
    let mut bad = f.bytes.clone();
    bad[0] ^= 1;
    let err = toc_of(&bad).unwrap_err();
    assert!(
        matches!(err, TocError::InvalidHeader { offset: 0, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("checksum"), "{err}");

    let mut bad = f.bytes.clone();
    bad[148..156].copy_from_slice(b"garbage!");
    assert!(matches!(
        toc_of(&bad).unwrap_err(),
        TocError::InvalidHeader { .. }
    ));

    for (range, what) in [
        (124..136, "size"),
        (100..108, "mode"),
        (136..148, "mtime"),
        (329..337, "devmajor"),
    ] {
        let mut blk: [u8; 512] = f.bytes[..512].try_into().unwrap();
        blk[range.clone()].fill(b'9');
        set_checksum(&mut blk);
        let mut bytes = blk.to_vec();
        bytes.extend_from_slice(&f.bytes[512..]);
        let err = toc_of(&bytes).unwrap_err();
        assert!(err.to_string().contains(what), "{what}: {err}");
    }

    // Negative size on a file.
    let mut h = RawHeader::new("neg", b'0', 0);
    h.size = -1;
    let mut w = TarWriter::new();
    w.append_block(&h, &[]);
    let err = toc_of(&w.finish(EndOfArchive::TwoZeroBlocks).bytes).unwrap_err();
    assert!(err.to_string().contains("negative size"), "{err}");

    // Negative size on a header-only entry: Go accepts it, a zTOC cannot hold it.
    let mut h = RawHeader::new("negdir/", b'5', 0);
    h.size = -1;
    let mut w = TarWriter::new();
    w.append_block(&h, &[]);
    let err = toc_of(&w.finish(EndOfArchive::TwoZeroBlocks).bytes).unwrap_err();
    assert!(
        matches!(err, TocError::NegativeSize { size: -1, .. }),
        "{err:?}"
    );
}

#[test]
fn zero_block_followed_by_a_header_is_an_error() {
    let mut bytes = zero_blocks(1);
    bytes.extend(
        build_tar(
            &[TarEntry::file("a", Vec::new())],
            EndOfArchive::TwoZeroBlocks,
        )
        .bytes,
    );
    let err = toc_of(&bytes).unwrap_err();
    assert!(
        matches!(err, TocError::InvalidHeader { offset: 512, .. }),
        "{err:?}"
    );
}

#[test]
fn malformed_pax_headers_are_errors() {
    let bodies: Vec<&[u8]> = vec![
        b"11 foo=bar",
        b"12 foo=bar\n",
        b"garbage",
        b"9 foobar\n",
        b"5 =a\n",
        b"12 path=a\0b\n",
        b"25 GNU.sparse.numbytes=2\n",
        b"8 uid=x\n",
        b"11 gid=1.5\n",
        b"14 mtime=1.x5\n",
        b"11 atime=.\n",
        b"9 size=-\n",
    ];
    for body in bodies {
        let err = err_of(|w| {
            w.append_block(&RawHeader::new("pax", b'x', body.len() as i64), body);
            w.append_block(&RawHeader::new("f", b'0', 0), &[]);
        });
        assert!(
            matches!(err, TocError::InvalidPax { offset: 1024, .. }),
            "{:?}: {err:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn oversized_special_headers_are_errors() {
    for typeflag in [b'x', b'L', b'K'] {
        let err = err_of(|w| {
            w.append_block(&RawHeader::new("big", typeflag, (1 << 20) + 1), &[]);
        });
        assert!(matches!(err, TocError::FieldTooLong { .. }), "{err:?}");
    }
    // Exactly 1 MiB is fine.
    let mut w = TarWriter::new();
    let mut value = vec![b'v'; (1 << 20) - 40];
    while pax_record(b"SCHILY.xattr.user.big", &value).len() < 1 << 20 {
        value.push(b'v');
    }
    let body = pax_record(b"SCHILY.xattr.user.big", &value);
    assert_eq!(body.len(), 1 << 20);
    w.append_block(&RawHeader::new("pax", b'x', body.len() as i64), &body);
    w.append_block(&RawHeader::new("f", b'0', 0), &[]);
    let toc = toc_of(&w.finish(EndOfArchive::TwoZeroBlocks).bytes).unwrap();
    assert_eq!(
        toc.entries[0].pax_records["SCHILY.xattr.user.big"].len(),
        value.len()
    );
}

#[test]
fn non_utf8_strings_are_errors() {
    let err = err_of(|w| {
        w.append_block(&RawHeader::new(b"bad-\xff-name", b'0', 0), &[]);
    });
    assert!(
        matches!(
            err,
            TocError::NotUtf8 {
                field: "name",
                offset: 1024,
                ..
            }
        ),
        "{err:?}"
    );
    let err = err_of(|w| {
        let mut h = RawHeader::new("f", b'0', 0);
        h.uname = b"\xc3".to_vec();
        w.append_block(&h, &[]);
    });
    assert!(
        matches!(
            err,
            TocError::NotUtf8 {
                field: "user name",
                ..
            }
        ),
        "{err:?}"
    );
    let err = err_of(|w| {
        let body = pax_record(b"SCHILY.xattr.user.bin", b"\xfe\xff");
        w.append_block(&RawHeader::new("pax", b'x', body.len() as i64), &body);
        w.append_block(&RawHeader::new("f", b'0', 0), &[]);
    });
    assert!(
        matches!(
            err,
            TocError::NotUtf8 {
                field: "PAX record value",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn io_errors_carry_the_offset() {
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.0).min(512);
            buf[..n].fill(0);
            self.0 -= n;
            Ok(n)
        }
    }
    let err = build_toc(&mut Failing(512)).unwrap_err();
    assert!(matches!(err, TocError::Io { offset: 512, .. }), "{err:?}");
    assert!(err.to_string().contains("disk on fire"));
}

// -------------------------------------------------------------------------------
// gzip fixtures
// -------------------------------------------------------------------------------

#[test]
fn gzip_members_round_trip_and_headers() {
    let f = soci_format::testutil::random_tar(99);
    for (members, extra) in [(1, false), (1, true), (4, false), (7, true), (1000, false)] {
        let gz = gzip_members(&f.bytes, 1, members, extra);
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        let flags = gz[3];
        if extra {
            assert_eq!(flags & 0x1c, 0x1c, "FEXTRA|FNAME|FCOMMENT");
        } else {
            assert_eq!(flags, 0);
        }
        let mut decoded = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, f.bytes);
        // A single-member decoder sees only the first part when there are several.
        let mut first = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut first)
            .unwrap();
        let expect_first = if members == 1 {
            f.bytes.len()
        } else {
            f.bytes.len().div_ceil(members)
        };
        assert_eq!(first.len(), expect_first.min(f.bytes.len()));
        // And the TOC through the decompressor equals the plain one.
        let toc = build_toc(&mut flate2::read::MultiGzDecoder::new(&gz[..])).unwrap();
        assert_eq!(toc, f.toc());
    }
    assert_eq!(
        gzip_members(b"same", 6, 2, true),
        gzip_members(b"same", 6, 2, true)
    );
}

#[test]
fn fixture_entries_are_deterministic() {
    assert_eq!(
        soci_format::testutil::random_tar(5),
        soci_format::testutil::random_tar(5)
    );
    assert_ne!(
        soci_format::testutil::random_tar(5).bytes,
        soci_format::testutil::random_tar(6).bytes
    );
}

#[test]
fn buffered_variant_consumes_exactly_the_archive() {
    // build_toc_buffered over a BufRead that counts consumed bytes: it consumes
    // exactly the archive, whatever the internal block boundaries are.
    struct Counting<'a>(&'a [u8], u64);
    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    impl BufRead for Counting<'_> {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            Ok(&self.0[..self.0.len().min(1000)])
        }
        fn consume(&mut self, n: usize) {
            self.0 = &self.0[n..];
            self.1 += n as u64;
        }
    }
    let f = build_tar(
        &[TarEntry::file("a", vec![1u8; 5000]), TarEntry::dir("b/")],
        EndOfArchive::RecordPadded(GNU_RECORD_SIZE),
    );
    let mut r = Counting(&f.bytes, 0);
    let toc = build_toc_buffered(&mut r).unwrap();
    assert_eq!(r.1, toc.uncompressed_archive_size);
    assert_eq!(toc.entries, f.entries);
}

#[test]
fn works_through_a_trait_object() {
    let f = soci_format::testutil::random_tar(3);
    let mut reader: &mut dyn Read = &mut &f.bytes[..];
    assert_eq!(build_toc(&mut reader).unwrap(), f.toc());
    let mut slice = &f.bytes[..];
    let buffered: &mut dyn BufRead = &mut slice;
    assert_eq!(build_toc_buffered(buffered).unwrap(), f.toc());
}

/// Each entry's header blocks, parsed alone, give the same metadata as the
/// whole-archive walk (what file verification on first read relies on).
#[test]
fn entry_headers_parse_alone_to_the_toc_entry() {
    use soci_format::toc::parse_entry_headers;
    let mut long_gnu = TarEntry::file(format!("gnu/{}", "g".repeat(150)), b"gnu".to_vec());
    long_gnu.name_style = NameStyle::Gnu;
    let mut xattr = TarEntry::file("x.bin", vec![7u8; 1000]);
    xattr
        .pax_records
        .insert("SCHILY.xattr.user.k".into(), "v".into());
    xattr.mtime_nanos = 123_456_789;
    let entries = vec![
        TarEntry::dir("d/"),
        TarEntry::file("d/a.txt", b"hello".to_vec()).owner(1000, 1000),
        TarEntry::file(format!("d/{}", "p".repeat(200)), b"pax".to_vec()),
        long_gnu,
        xattr,
        TarEntry::symlink("l", "d/a.txt"),
        TarEntry::hardlink("h", "d/a.txt"),
        TarEntry::char_device("c", 1, 3),
        TarEntry::file("empty", Vec::new()),
    ];
    let f = build_tar(&entries, EndOfArchive::TwoZeroBlocks);
    let toc = check(&f);
    for e in &toc.entries {
        let hdr = &f.bytes[e.tar_header_offset as usize..e.uncompressed_offset as usize];
        let got = parse_entry_headers(hdr, e.tar_header_offset).unwrap();
        assert_eq!(&got, e, "{}", e.name);
        // Trailing data is not read.
        let with_data = &f.bytes[e.tar_header_offset as usize..];
        assert_eq!(
            &parse_entry_headers(with_data, e.tar_header_offset).unwrap(),
            e
        );
    }
    // Headers cut short are an error, never a guess.
    let e = &toc.entries[2];
    let cut = &f.bytes[e.tar_header_offset as usize..e.uncompressed_offset as usize - 1];
    assert!(parse_entry_headers(cut, e.tar_header_offset).is_err());
    // The end-of-archive blocks are no entry.
    let end = toc.entries.last().unwrap().uncompressed_offset;
    assert!(parse_entry_headers(&f.bytes[end as usize..], end).is_err());
}
