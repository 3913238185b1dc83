//! The endpoints controller end to end (issue 5): a server with its real
//! agent running pods (bound by `spec.nodeName`, no scheduler needed), a
//! Service selecting them, and the Endpoints and EndpointSlices the
//! controller keeps: readiness moves an address between ready and not
//! ready, named target ports resolve per pod, `kubectl describe svc` shows
//! the endpoints, Services without a selector are left alone.

use std::path::Path;
use std::time::Duration;

use nuage_testkit::server::{isolated_node_flags, wait_for, wait_until, NuageServer};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_nuage");

/// Imports a seed image into the node whose data dir is `dir` (while its
/// server runs, too: the agent reads the store at each pod start).
fn import(dir: &Path, archive: &str) {
    nuage_testkit::seed::import(BIN, dir, archive);
}

fn create(s: &NuageServer, yaml: &str) {
    let out = s.kubectl_stdin(&["create", "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "create: {}\n{yaml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn get_json(s: &NuageServer, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend(["-o", "json"]);
    let out = s.kubectl(&all);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// `(ip, ports)` of the addresses in `field` (`addresses` or
/// `notReadyAddresses`) of every subset, ports sorted.
fn addresses(ep: &Value, field: &str) -> Vec<(String, Vec<i64>)> {
    let mut out = Vec::new();
    for subset in ep["subsets"].as_array().into_iter().flatten() {
        let mut ports: Vec<i64> = subset["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["port"].as_i64())
            .collect();
        ports.sort();
        for a in subset[field].as_array().into_iter().flatten() {
            out.push((
                a["ip"].as_str().unwrap_or_default().to_string(),
                ports.clone(),
            ));
        }
    }
    out.sort();
    out
}

fn pod_ip(s: &NuageServer, name: &str) -> String {
    wait_for(
        &format!("{name} to get an IP"),
        Duration::from_secs(90),
        || {
            let p = get_json(s, &["pod", name]);
            p["status"]["podIP"]
                .as_str()
                .filter(|ip| !ip.is_empty())
                .map(str::to_string)
        },
    )
}

/// Waits until the Endpoints `web` has exactly these ready and not-ready
/// addresses.
fn wait_endpoints(
    s: &NuageServer,
    what: &str,
    ready: &[(String, Vec<i64>)],
    not_ready: &[(String, Vec<i64>)],
) -> Value {
    wait_until(what, Duration::from_secs(60), || {
        let ep = get_json(s, &["endpoints", "web"]);
        if addresses(&ep, "addresses") == ready && addresses(&ep, "notReadyAddresses") == not_ready
        {
            Ok(ep)
        } else {
            Err(format!("{ep}\nserver log:\n{}", tail(&s.log(), 20)))
        }
    })
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The slices of `web`: `(ip, ready, ports)` per endpoint, sorted.
fn slice_endpoints(s: &NuageServer) -> Vec<(String, bool, Vec<i64>)> {
    let list = get_json(
        s,
        &["endpointslices", "-l", "kubernetes.io/service-name=web"],
    );
    let mut out = Vec::new();
    for slice in list["items"].as_array().into_iter().flatten() {
        let mut ports: Vec<i64> = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["port"].as_i64())
            .collect();
        ports.sort();
        for e in slice["endpoints"].as_array().into_iter().flatten() {
            out.push((
                e["addresses"][0].as_str().unwrap_or_default().to_string(),
                e["conditions"]["ready"].as_bool().unwrap_or(false),
                ports.clone(),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn endpoints_follow_pods_readiness_and_named_ports() {
    let dir = tempfile::Builder::new()
        .prefix("nuage-endpoints-test-")
        .tempdir()
        .expect("temp dir");
    import(dir.path(), "busybox.tar");
    let mut flags = isolated_node_flags();
    flags.extend(["--runtime".to_string(), "runc".to_string()]);
    let node = flags[5].clone();
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = NuageServer::start_in(BIN, dir.path(), &args);
    wait_for("the node to register", Duration::from_secs(30), || {
        s.kubectl(&["get", "node", &node])
            .status
            .success()
            .then_some(())
    });

    create(
        &s,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels:\n    tier: front\nspec:\n  selector:\n    app: web\n  ports:\n  - name: http\n    port: 80\n    targetPort: http\n  - name: metrics\n    port: 9000\n    targetPort: 9000\n",
    );
    // `a` names its port http and is ready once /tmp/ready exists; `b`
    // has no port named http: it serves only metrics.
    let pod = |name: &str, port_name: &str, port: u16, probe: bool| {
        let probe = if probe {
            "    readinessProbe:\n      exec:\n        command: [\"cat\", \"/tmp/ready\"]\n      periodSeconds: 1\n"
        } else {
            ""
        };
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: web\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"sleep\", \"3600\"]\n    ports:\n    - name: {port_name}\n      containerPort: {port}\n{probe}"
        )
    };
    create(&s, &pod("web-a", "http", 8080, true));
    create(&s, &pod("web-b", "admin", 8081, false));
    // Selected by nothing.
    create(
        &s,
        &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: other\n  labels:\n    app: other\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:latest\n    command: [\"sleep\", \"3600\"]\n"),
    );
    let a = pod_ip(&s, "web-a");
    let b = pod_ip(&s, "web-b");

    // a: not ready, on both ports; b: ready, metrics only.
    let ep = wait_endpoints(
        &s,
        "a not ready, b ready on metrics",
        &[(b.clone(), vec![9000])],
        &[(a.clone(), vec![8080, 9000])],
    );
    assert_eq!(ep["metadata"]["labels"]["tier"], "front", "{ep}");
    let subset = ep["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ss| ss["notReadyAddresses"].is_array())
        .unwrap();
    let addr = &subset["notReadyAddresses"][0];
    assert_eq!(addr["targetRef"]["kind"], "Pod");
    assert_eq!(addr["targetRef"]["name"], "web-a");
    assert_eq!(addr["nodeName"], node.as_str());
    let mut names: Vec<&str> = subset["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["http", "metrics"],
        "ports are named as the service's"
    );

    // The slices say the same, with conditions, labels and an owner.
    wait_until("the slices", Duration::from_secs(30), || {
        let got = slice_endpoints(&s);
        let want = vec![
            (a.clone(), false, vec![8080, 9000]),
            (b.clone(), true, vec![9000]),
        ];
        (got == want)
            .then_some(())
            .ok_or_else(|| format!("{got:?}"))
    });
    let slices = get_json(
        &s,
        &["endpointslices", "-l", "kubernetes.io/service-name=web"],
    );
    for slice in slices["items"].as_array().unwrap() {
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(
            slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
        assert_eq!(slice["metadata"]["ownerReferences"][0]["name"], "web");
        let e = &slice["endpoints"][0];
        assert_eq!(e["targetRef"]["kind"], "Pod");
        assert_eq!(e["nodeName"], node.as_str());
        assert!(e["conditions"]["serving"].is_boolean() && e["conditions"]["terminating"] == false);
    }

    // a becomes ready: its address moves to the ready ones.
    s.kubectl_ok(&["exec", "web-a", "--", "touch", "/tmp/ready"]);
    wait_endpoints(
        &s,
        "a ready",
        &[(a.clone(), vec![8080, 9000]), (b.clone(), vec![9000])],
        &[],
    );
    let describe = s.kubectl_ok(&["describe", "svc", "web"]);
    let line = describe
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_default();
    assert!(
        line.contains(&format!("{a}:8080")) || line.contains(&format!("{a}:9000")),
        "{describe}"
    );
    // And back.
    s.kubectl_ok(&["exec", "web-a", "--", "rm", "/tmp/ready"]);
    wait_endpoints(
        &s,
        "a not ready again",
        &[(b.clone(), vec![9000])],
        &[(a.clone(), vec![8080, 9000])],
    );

    // A pod relabelled out of the selector leaves the endpoints.
    s.kubectl_ok(&["label", "pod", "web-b", "app=gone", "--overwrite"]);
    wait_endpoints(
        &s,
        "b relabelled away",
        &[],
        &[(a.clone(), vec![8080, 9000])],
    );

    // A Service without a selector keeps the Endpoints its user wrote.
    create(
        &s,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: manual\nspec:\n  ports:\n  - port: 80\n",
    );
    create(
        &s,
        "apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: manual\nsubsets:\n- addresses:\n  - ip: 10.1.2.3\n  ports:\n  - port: 80\n",
    );
    // The controller has had its chance by the time web's next change is
    // reflected: the queue is processed in order of arrival.
    s.kubectl_ok(&["label", "pod", "web-b", "app=web", "--overwrite"]);
    wait_endpoints(
        &s,
        "b back",
        &[(b.clone(), vec![9000])],
        &[(a.clone(), vec![8080, 9000])],
    );
    let manual = get_json(&s, &["endpoints", "manual"]);
    assert_eq!(
        addresses(&manual, "addresses"),
        vec![("10.1.2.3".to_string(), vec![80])],
        "{manual}"
    );
    let manual_slices = get_json(
        &s,
        &["endpointslices", "-l", "kubernetes.io/service-name=manual"],
    );
    assert_eq!(manual_slices["items"].as_array().map(Vec::len), Some(0));

    // Deleting the Service removes what the controller made for it.
    s.kubectl_ok(&["delete", "svc", "web"]);
    wait_until("web's endpoints to go", Duration::from_secs(30), || {
        let ep = get_json(&s, &["endpoints", "web"]);
        let slices = slice_endpoints(&s);
        (ep.is_null() && slices.is_empty())
            .then_some(())
            .ok_or_else(|| format!("{ep} {slices:?}"))
    });
    for p in ["web-a", "web-b", "other"] {
        s.kubectl_ok(&["delete", "pod", p, "--wait=true"]);
    }
}
