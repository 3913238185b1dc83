//! The raw Kubernetes protocol, below kubectl: watch ordering from a
//! resourceVersion, 410 after compaction, paging, selectors (issue 3).

use std::sync::OnceLock;
use std::time::Duration;

use nuage_testkit::http::ApiClient;
use nuage_testkit::server::NuageServer;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_nuage");

fn server() -> &'static NuageServer {
    static SERVER: OnceLock<NuageServer> = OnceLock::new();
    SERVER.get_or_init(|| NuageServer::start(BIN))
}

async fn client(s: &NuageServer) -> ApiClient {
    ApiClient::connect(&s.api, &s.dir).await.expect("connect")
}

async fn namespace(c: &mut ApiClient, name: &str) {
    let r = c
        .post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

fn cm(name: &str, v: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"v": v}}, "data": {"v": v}})
}

fn rv(obj: &Value) -> i64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The events of a watch that ends after `timeoutSeconds`.
fn events(body: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn watch_from_a_resource_version_delivers_exactly_the_later_events_in_order() {
    let s = server();
    let mut c = client(s).await;
    namespace(&mut c, "order").await;
    let base = "/api/v1/namespaces/order/configmaps";
    let a = c.post(base, &cm("a", "1")).await.unwrap().json();
    let from = rv(&a);
    c.post(base, &cm("b", "1")).await.unwrap();
    let mut a2 = a.clone();
    a2["data"]["v"] = json!("2");
    let r = c
        .send(
            "PUT",
            &format!("{base}/a"),
            "application/json",
            a2.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = c
        .send("DELETE", &format!("{base}/b"), "application/json", "")
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    let w = c
        .get(&format!(
            "{base}?watch=1&resourceVersion={from}&timeoutSeconds=1"
        ))
        .await
        .unwrap();
    assert_eq!(w.status, 200);
    let evs = events(&w.body);
    let got: Vec<(String, String)> = evs
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
            .map(|(t, n)| (t.to_string(), n.to_string()))
    );
    let rvs: Vec<i64> = evs.iter().map(|e| rv(&e["object"])).collect();
    assert!(
        rvs.windows(2).all(|w| w[0] < w[1]) && rvs[0] > from,
        "{rvs:?}"
    );

    // Without a resourceVersion the watch starts with the current objects.
    let w = c
        .get(&format!("{base}?watch=1&timeoutSeconds=1"))
        .await
        .unwrap();
    let evs = events(&w.body);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["type"], "ADDED");
    assert_eq!(evs[0]["object"]["data"]["v"], "2");
}

#[tokio::test]
async fn an_object_leaving_a_label_selection_is_deleted_for_the_watcher() {
    let s = server();
    let mut c = client(s).await;
    namespace(&mut c, "leave").await;
    let base = "/api/v1/namespaces/leave/configmaps";
    let a = c.post(base, &cm("a", "1")).await.unwrap().json();
    let patch = json!({"metadata": {"labels": {"v": "2"}}});
    let r = c
        .send(
            "PATCH",
            &format!("{base}/a"),
            "application/merge-patch+json",
            patch.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let w = c
        .get(&format!(
            "{base}?watch=1&resourceVersion={}&labelSelector=v%3D1&timeoutSeconds=1",
            rv(&a)
        ))
        .await
        .unwrap();
    let evs = events(&w.body);
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0]["type"], "DELETED");
}

#[tokio::test]
async fn lists_page_with_limit_and_continue_at_one_revision() {
    let s = server();
    let mut c = client(s).await;
    namespace(&mut c, "pages").await;
    let base = "/api/v1/namespaces/pages/configmaps";
    for i in 0..25 {
        assert_eq!(
            c.post(base, &cm(&format!("cm-{i:02}"), "x"))
                .await
                .unwrap()
                .status,
            201
        );
    }
    let mut names = Vec::new();
    let mut url = format!("{base}?limit=10");
    let mut list_rv = None;
    let mut pages = 0;
    loop {
        let page = c.get(&url).await.unwrap().json();
        pages += 1;
        let this_rv = page["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            *list_rv.get_or_insert(this_rv.clone()),
            this_rv,
            "one revision for every page"
        );
        // A write between pages is not seen by the paged list.
        if pages == 1 {
            c.post(base, &cm("zz-late", "x")).await.unwrap();
        }
        for i in page["items"].as_array().unwrap() {
            names.push(i["metadata"]["name"].as_str().unwrap().to_string());
        }
        match page["metadata"]["continue"].as_str() {
            Some(cont) => url = format!("{base}?limit=10&continue={cont}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(names, want);
}

#[tokio::test]
async fn unsupported_field_selector_and_bad_continue_are_400() {
    let s = server();
    let mut c = client(s).await;
    let r = c
        .get("/api/v1/namespaces/default/configmaps?fieldSelector=spec.bogus%3Dx")
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("field label not supported"));
    let r = c
        .get("/api/v1/namespaces/default/configmaps?limit=1&continue=garbage")
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let r = c
        .get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_compacted_resource_version_gets_410() {
    let dir = tempfile::tempdir().unwrap();
    let s = NuageServer::start_in(
        BIN,
        dir.path(),
        &[
            "--no-agent",
            "--compact-interval",
            "1",
            "--compact-min-retain",
            "1",
            "--compact-retain-for",
            "0",
        ],
    );
    let mut c = client(&s).await;
    let base = "/api/v1/namespaces/default/configmaps";
    let first = c.post(base, &cm("c0", "0")).await.unwrap().json();
    for i in 1..5 {
        c.post(base, &cm(&format!("c{i}"), "0")).await.unwrap();
    }
    let url = format!(
        "{base}?watch=1&resourceVersion={}&timeoutSeconds=1",
        rv(&first) - 1
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // The compactor runs every second: poll for its effect until the deadline.
    let mut poll = tokio::time::interval(Duration::from_millis(200));
    loop {
        poll.tick().await;
        let r = c.get(&url).await.unwrap();
        if r.status == 410 {
            assert_eq!(r.json()["reason"], "Expired");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no 410 after compaction"
        );
    }
    let r = c
        .get(&format!(
            "{base}?resourceVersion={}&resourceVersionMatch=Exact",
            rv(&first)
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 410);
}

#[tokio::test]
async fn status_and_main_resource_writes_change_only_their_part() {
    let s = server();
    let mut c = client(s).await;
    namespace(&mut c, "status").await;
    // A HorizontalPodAutoscaler: spec, status and generation, and (unlike
    // a ReplicationController) no controller writing its status meanwhile.
    let base = "/apis/autoscaling/v2/namespaces/status/horizontalpodautoscalers";
    let rc = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "r"},
        "spec": {"maxReplicas": 1, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}},
        "status": {"desiredReplicas": 7}});
    let created = c.post(base, &rc).await.unwrap().json();
    assert_eq!(
        created["status"]["desiredReplicas"], 0,
        "status cannot be set on create"
    );
    assert_eq!(created["metadata"]["generation"], 1);

    let status = json!({"status": {"desiredReplicas": 1, "currentReplicas": 1, "observedGeneration": 1}, "spec": {"maxReplicas": 9}});
    let r = c
        .send(
            "PATCH",
            &format!("{base}/r/status"),
            "application/merge-patch+json",
            status.to_string(),
        )
        .await
        .unwrap();
    let after = r.json();
    assert_eq!(after["status"]["currentReplicas"], 1);
    assert_eq!(
        after["spec"]["maxReplicas"], 1,
        "a status write keeps the spec"
    );
    assert_eq!(
        after["metadata"]["generation"], 1,
        "a status write keeps the generation"
    );

    let main = json!({"spec": {"maxReplicas": 2}, "status": {"desiredReplicas": 5}});
    let after = c
        .send(
            "PATCH",
            &format!("{base}/r"),
            "application/merge-patch+json",
            main.to_string(),
        )
        .await
        .unwrap()
        .json();
    assert_eq!(after["spec"]["maxReplicas"], 2);
    assert_eq!(
        after["status"]["desiredReplicas"], 1,
        "a main write keeps the status"
    );
    assert_eq!(
        after["metadata"]["generation"], 2,
        "a spec change moves the generation"
    );

    let labels = json!({"metadata": {"labels": {"x": "y"}}});
    let after = c
        .send(
            "PATCH",
            &format!("{base}/r"),
            "application/merge-patch+json",
            labels.to_string(),
        )
        .await
        .unwrap()
        .json();
    assert_eq!(
        after["metadata"]["generation"], 2,
        "a metadata change keeps the generation"
    );

    // The scale subresource of a ReplicationController.
    let rcs = "/api/v1/namespaces/status/replicationcontrollers";
    let rc = json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"},
        "spec": {"replicas": 2, "selector": {"app": "r"}, "template": {"metadata": {"labels": {"app": "r"}},
        "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}});
    c.post(rcs, &rc).await.unwrap();
    let scale = c.get(&format!("{rcs}/r/scale")).await.unwrap().json();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "app=r");
}

#[tokio::test]
async fn generate_name_yaml_bodies_and_deletecollection() {
    let s = server();
    let mut c = client(s).await;
    namespace(&mut c, "misc").await;
    let base = "/api/v1/namespaces/misc/configmaps";
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..3 {
        let r = c
            .post(base, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-", "labels": {"g": "1"}}}))
            .await
            .unwrap();
        assert_eq!(r.status, 201);
        let name = r.json()["metadata"]["name"].as_str().unwrap().to_string();
        assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
        names.insert(name);
    }
    assert_eq!(names.len(), 3);

    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n";
    let r = c
        .send("POST", base, "application/yaml", yaml)
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["data"]["k"], "v");

    let r = c
        .send(
            "DELETE",
            &format!("{base}?labelSelector=g%3D1"),
            "application/json",
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 3);
    let left = c.get(base).await.unwrap().json();
    let left: Vec<&str> = left["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["from-yaml"]);
}

#[tokio::test]
async fn writes_to_missing_or_terminating_namespaces_are_refused() {
    let s = server();
    let mut c = client(s).await;
    let r = c
        .post("/api/v1/namespaces/nowhere/configmaps", &cm("x", "1"))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "namespaces \"nowhere\" not found");

    // A namespace held in Terminating by an object's finalizer takes nothing new.
    namespace(&mut c, "term").await;
    let base = "/api/v1/namespaces/term/configmaps";
    let mut held = cm("held", "1");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    assert_eq!(c.post(base, &held).await.unwrap().status, 201);
    let r = c
        .send("DELETE", "/api/v1/namespaces/term", "application/json", "")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"]["phase"], "Terminating");
    let r = c.post(base, &cm("late", "1")).await.unwrap();
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("because it is being terminated"));

    // Releasing the finalizer lets the namespace finish.
    let release = json!({"metadata": {"finalizers": null}});
    c.send(
        "PATCH",
        &format!("{base}/held"),
        "application/merge-patch+json",
        release.to_string(),
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    loop {
        poll.tick().await;
        if c.get("/api/v1/namespaces/term").await.unwrap().status == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "namespace term never went"
        );
    }
}

#[tokio::test]
async fn finalizers_hold_a_deletion_until_removed() {
    let s = server();
    let mut c = client(s).await;
    namespace(&mut c, "fin").await;
    let base = "/api/v1/namespaces/fin/configmaps";
    let mut obj = cm("held", "1");
    obj["metadata"]["finalizers"] = json!(["example.com/hold"]);
    assert_eq!(c.post(base, &obj).await.unwrap().status, 201);
    let r = c
        .send("DELETE", &format!("{base}/held"), "application/json", "")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let marked = c.get(&format!("{base}/held")).await.unwrap();
    assert_eq!(marked.status, 200, "held by its finalizer");
    assert!(marked.json()["metadata"]["deletionTimestamp"].is_string());
    let release = json!({"metadata": {"finalizers": null}});
    let r = c
        .send(
            "PATCH",
            &format!("{base}/held"),
            "application/merge-patch+json",
            release.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        c.get(&format!("{base}/held")).await.unwrap().status,
        404,
        "gone once its last finalizer is"
    );
}

#[tokio::test]
async fn malformed_yaml_and_protobuf_preferring_accept() {
    let s = server();
    let mut c = client(s).await;
    namespace(&mut c, "yaml").await;
    let base = "/api/v1/namespaces/yaml/configmaps";
    let r = c
        .send(
            "POST",
            base,
            "application/yaml",
            "kind: ConfigMap\nmetadata: [unclosed\n",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("not valid YAML"));
    let list = c.get(base).await.unwrap().json();
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "nothing stored");

    // describe, top and events prefer protobuf: they must get JSON.
    let r = c
        .send_with_accept(
            "GET",
            base,
            "application/vnd.kubernetes.protobuf,application/json",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["kind"], "ConfigMapList");
}

#[tokio::test]
async fn watches_that_allow_bookmarks_get_them() {
    let s = server();
    let mut c = client(s).await;
    let rv = c
        .get("/api/v1/namespaces/default/configmaps")
        .await
        .unwrap()
        .json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Bookmarks come every 30 s and once more just before the timeout.
    let w = c
        .get(&format!("/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=1"))
        .await
        .unwrap();
    let evs = events(&w.body);
    let bookmark = evs
        .iter()
        .find(|e| e["type"] == "BOOKMARK")
        .expect("a bookmark");
    assert_eq!(bookmark["object"]["kind"], "ConfigMap");
    assert!(
        bookmark["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            >= rv.parse::<i64>().unwrap()
    );
}

#[test]
fn livez_and_readyz_need_no_token() {
    let s = server();
    for path in ["/livez", "/readyz"] {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(s.dir.join("ca.crt"))
            .arg(format!("{}{path}", s.api))
            .output()
            .expect("curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{path}");
    }
}
