//! Generates the server side of containerd's Snapshots service.
//!
//! Every message type is mapped onto the ones containerd-client already
//! generates, so the daemon and its clients share one set of types; only the
//! `snapshots_server` module is produced here.

fn main() {
    let protos = "proto/github.com/containerd/containerd/api/services/snapshots/v1/snapshots.proto";
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .extern_path(".containerd.types", "::containerd_client::types")
        .extern_path(
            ".containerd.services.snapshots.v1",
            "::containerd_client::services::v1::snapshots",
        )
        .compile_protos(&[protos], &["proto"])
        .unwrap_or_else(|e| {
            panic!("compiling {protos} (needs protoc: apt-get install -y protobuf-compiler libprotobuf-dev): {e}")
        });
}
