//! Converted layouts are accepted by real tools: `skopeo copy --all` pushes them
//! to a real `docker-registry` on 127.0.0.1 and the SOCI index survives the trip.

mod common;

use common::*;

#[test]
fn skopeo_pushes_converted_layout_to_registry() {
    let reg = Registry::start_temp();
    let tmp = tempfile::tempdir().unwrap();
    let lb = LayoutBuilder::new(&tmp.path().join("src"));
    let items = layer_items(42, 20, 400_000);
    let blob = gzip(&tar_of(&items), 6);
    let m = lb.image("amd64", &[(OCI_LAYER_GZIP, blob)]);
    lb.finish(vec![m]);
    let out = tmp.path().join("out");
    let o = soci(&[
        "convert",
        "--standalone",
        "--format",
        "oci-dir",
        "--min-layer-size",
        "0",
        lb.dir.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let dest = format!("docker://{}/app:soci", reg.addr);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}", out.display()),
        &dest,
    ]);
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &dest]).stdout;
    let local_index = std::fs::read(out.join("index.json")).unwrap();
    let local: serde_json::Value = json(&local_index);
    let ours = json(&LayoutBuilder::read_blob(
        &out,
        local["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let index = json(&raw);
    let manifests = index["manifests"].as_array().unwrap();
    // skopeo 1.9 (Debian 12) predates OCI 1.1 and drops `artifactType` from the
    // entries; everything else of every entry must arrive unchanged.
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("artifactType");
        v
    };
    let ours_entries: Vec<_> = ours["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(strip)
        .collect();
    let pushed_entries: Vec<_> = manifests.iter().map(strip).collect();
    assert_eq!(ours_entries, pushed_entries);
    let soci_entry = manifests
        .iter()
        .find(|d| annotations(d).contains_key("com.amazon.soci.image-manifest-digest"))
        .expect("SOCI index entry in the pushed image index");
    let image_entry = manifests
        .iter()
        .find(|d| annotations(d).contains_key("com.amazon.soci.index-digest"))
        .unwrap();
    assert_eq!(
        annotations(soci_entry)["com.amazon.soci.image-manifest-digest"],
        image_entry["digest"].as_str().unwrap()
    );
    assert_eq!(
        annotations(image_entry)["com.amazon.soci.index-digest"],
        soci_entry["digest"].as_str().unwrap()
    );
    // The SOCI index manifest itself is retrievable by digest.
    let soci_ref = format!(
        "docker://{}/app@{}",
        reg.addr,
        soci_entry["digest"].as_str().unwrap()
    );
    let soci_raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &soci_ref]).stdout;
    assert_eq!(
        soci_format::Digest::of(&soci_raw).to_string(),
        soci_entry["digest"].as_str().unwrap()
    );
    assert_eq!(
        json(&soci_raw)["config"]["mediaType"],
        "application/vnd.amazon.soci.index.v2+json"
    );
}

#[test]
fn reconverting_a_copy_that_lost_artifact_type_replaces_the_soci_index() {
    let reg = Registry::start_temp();
    let tmp = tempfile::tempdir().unwrap();
    let lb = LayoutBuilder::new(&tmp.path().join("src"));
    let blob = gzip(&tar_of(&layer_items(43, 10, 300_000)), 6);
    let m = lb.image("amd64", &[(OCI_LAYER_GZIP, blob)]);
    lb.finish(vec![m]);
    let out = tmp.path().join("out");
    let args = [
        "convert",
        "--standalone",
        "--format",
        "oci-dir",
        "--min-layer-size",
        "0",
    ];
    let o = soci(
        &[
            &args[..],
            &[lb.dir.to_str().unwrap(), out.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dest = format!("docker://{}/app:soci", reg.addr);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}", out.display()),
        &dest,
    ]);
    let copy = tmp.path().join("copy");
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &dest,
        &format!("oci:{}", copy.display()),
    ]);
    let again = tmp.path().join("again");
    let o = soci(
        &[
            &args[..],
            &[copy.to_str().unwrap(), again.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let top = json(&std::fs::read(again.join("index.json")).unwrap());
    let index = json(&LayoutBuilder::read_blob(
        &again,
        top["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    assert_eq!(
        entries
            .iter()
            .filter(|d| d["artifactType"] == "application/vnd.amazon.soci.index.v2+json")
            .count(),
        1
    );
}
