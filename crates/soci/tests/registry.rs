//! Converted layouts are accepted by real tools: `skopeo copy --all` pushes them
//! to a real `docker-registry` on 127.0.0.1 and the SOCI index survives the trip.

mod common;

use common::*;

#[test]
fn skopeo_pushes_converted_layout_to_registry() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let lb = LayoutBuilder::new(&tmp.path().join("src"));
    let items = layer_items(42, 20, 400_000);
    let blob = gzip(&tar_of(&items), 6);
    let m = lb.image("amd64", &[(OCI_LAYER_GZIP, blob)]);
    lb.finish(vec![m]);
    let out = tmp.path().join("out");
    let o = soci(&[
        "convert", "--standalone", "--format", "oci-dir", "--min-layer-size", "0",
        lb.dir.to_str().unwrap(), out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let dest = format!("docker://{}/app:soci", reg.addr);
    skopeo(&["copy", "--all", "--dest-tls-verify=false", &format!("oci:{}", out.display()), &dest]);
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &dest]).stdout;
    let local_index = std::fs::read(out.join("index.json")).unwrap();
    let local: serde_json::Value = json(&local_index);
    let want = local["manifests"][0]["digest"].as_str().unwrap();
    assert_eq!(soci_format::Digest::of(&raw).to_string(), want, "registry serves the same image index bytes");
    let index = json(&raw);
    let manifests = index["manifests"].as_array().unwrap();
    let soci_entry = manifests
        .iter()
        .find(|d| d["artifactType"] == "application/vnd.amazon.soci.index.v2+json")
        .expect("SOCI index entry in the pushed image index");
    let image_entry = manifests.iter().find(|d| d.get("artifactType").is_none()).unwrap();
    assert_eq!(
        annotations(soci_entry)["com.amazon.soci.image-manifest-digest"],
        image_entry["digest"].as_str().unwrap()
    );
    assert_eq!(
        annotations(image_entry)["com.amazon.soci.index-digest"],
        soci_entry["digest"].as_str().unwrap()
    );
    // The SOCI index manifest itself is retrievable by digest.
    let soci_ref = format!("docker://{}/app@{}", reg.addr, soci_entry["digest"].as_str().unwrap());
    let soci_raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &soci_ref]).stdout;
    assert_eq!(
        soci_format::Digest::of(&soci_raw).to_string(),
        soci_entry["digest"].as_str().unwrap()
    );
    assert_eq!(json(&soci_raw)["config"]["mediaType"], "application/vnd.amazon.soci.index.v2+json");
}
