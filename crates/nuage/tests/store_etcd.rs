//! `nuage server --store etcd://...` against a real etcd: the same API, and
//! the state lives in etcd across server restarts (issue 3).

use nuage_testkit::etcd::EtcdServer;
use nuage_testkit::server::NuageServer;

const BIN: &str = env!("CARGO_BIN_EXE_nuage");
const SEED_SVC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/seed/svc.yaml");
const SEED_RC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/seed/rc.yaml");

#[test]
fn server_on_etcd_serves_kubectl_and_keeps_state_in_etcd() {
    let etcd = EtcdServer::start();
    let store = etcd.store_url();
    let dir = tempfile::tempdir().unwrap();
    let s = NuageServer::start_in(BIN, dir.path(), &["--no-agent", "--store", &store]);
    let out = s.kubectl_ok(&["create", "-f", SEED_SVC, "-f", SEED_RC]);
    assert!(
        out.contains("replicationcontroller/rcsise created"),
        "{out}"
    );
    s.kubectl_ok(&["scale", "rc", "rcsise", "--replicas=4"]);
    let uid = s.kubectl_ok(&["get", "rc", "rcsise", "-o", "jsonpath={.metadata.uid}"]);
    let (status, _) = s.stop();
    assert_eq!(status, "exit 0");

    // A fresh data dir: everything must come from etcd.
    let dir2 = tempfile::tempdir().unwrap();
    let s = NuageServer::start_in(BIN, dir2.path(), &["--no-agent", "--store", &store]);
    let got = s.kubectl_ok(&[
        "get",
        "rc",
        "rcsise",
        "-o",
        "jsonpath={.metadata.uid} {.spec.replicas}",
    ]);
    assert_eq!(got, format!("{uid} 4"));
    let svc = s.kubectl_ok(&["get", "svc", "simpleservice", "-o", "name"]);
    assert_eq!(svc.trim(), "service/simpleservice");
}
