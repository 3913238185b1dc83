//! Loading the 10,000-pod data set through the API, C requests at a time.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::https::{self, Api};
use crate::stats::figure;

/// The whole load gives up after this long.
const LIMIT: Duration = Duration::from_secs(300);

/// A valid pod named `name` (what the brief specifies).
pub fn pod(name: &str) -> Vec<u8> {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
    })
    .to_string()
    .into_bytes()
}

/// `load-pods`: creates pods `p-0` … `p-(N-1)` in `--ns`, then prints the
/// rate and the size of one pod as the server returns it.
pub async fn pods(args: &Args) -> Result<(), String> {
    let api = Api::from_dir(args.str("api")?, Path::new(args.str("dir")?))?;
    let n: usize = args.num("n", 10_000)?;
    let conc: usize = args.num("conc", 32)?;
    let ns = args.opt("ns").unwrap_or("default").to_string();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc.max(1) {
        let (api, next, ns) = (api.clone(), Arc::clone(&next), ns.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = api.connect().await?;
            let path = format!("/api/v1/namespaces/{ns}/pods");
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || start.elapsed() > LIMIT {
                    return Ok::<(), String>(());
                }
                let req = api.request("POST", &path, pod(&format!("p-{i}")));
                let (status, body) = https::send(&mut conn, req).await?;
                if status != 201 {
                    return Err(format!(
                        "create p-{i}: {status} {}",
                        String::from_utf8_lossy(&body)
                    ));
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let secs = start.elapsed().as_secs_f64();
    if start.elapsed() > LIMIT {
        return Err(format!("load did not finish in {LIMIT:?}"));
    }
    figure("load_pods_rate", n as f64 / secs, "ops/s");
    let mut conn = api.connect().await?;
    let (status, body) = https::send(
        &mut conn,
        api.request(
            "GET",
            &format!("/api/v1/namespaces/{ns}/pods/p-0"),
            Vec::new(),
        ),
    )
    .await?;
    if status != 200 {
        return Err(format!("get p-0: {status}"));
    }
    figure("pod_bytes", body.len() as f64, "B");
    Ok(())
}
