//! Compiles the vendored Kubernetes `.proto` files (see `proto/README.md`)
//! into a descriptor set, `$OUT_DIR/kubernetes.pb`, that `src/protobuf`
//! embeds to decode protobuf request bodies. Needs `protoc` (or `$PROTOC`),
//! which the workspace already needs for etcd-client.

use std::path::PathBuf;
use std::process::Command;

/// The packages whose objects kubectl may send as protobuf; their imports
/// come along through `--include_imports`.
const ROOTS: &[&str] = &[
    "k8s.io/api/core/v1/generated.proto",
    "k8s.io/api/apps/v1/generated.proto",
    "k8s.io/api/autoscaling/v1/generated.proto",
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("kubernetes.pb");
    let proto = manifest.join("proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    println!("cargo:rerun-if-env-changed=PROTOC");

    let protoc = std::env::var_os("PROTOC").unwrap_or_else(|| "protoc".into());
    let mut descriptor_set_out = std::ffi::OsString::from("--descriptor_set_out=");
    descriptor_set_out.push(&out);
    let result = Command::new(&protoc)
        .arg("--include_imports")
        .arg(descriptor_set_out)
        .arg("--proto_path")
        .arg(&proto)
        .args(ROOTS)
        .output();
    match result {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "{} failed on the vendored Kubernetes protos: {}",
            protoc.to_string_lossy(),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => panic!(
            "cannot run {} (install protobuf-compiler or set PROTOC): {e}",
            protoc.to_string_lossy()
        ),
    }
}
