//! etcd over its native gRPC API: loading keys and timing ranges.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions};

use crate::args::Args;
use crate::stats::{figure, latency_figures};

/// The whole load gives up after this long.
const LIMIT: Duration = Duration::from_secs(300);

/// A client (one connection) for `endpoint`.
pub async fn client(endpoint: &str) -> Result<Client, String> {
    Client::connect([endpoint], None)
        .await
        .map_err(|e| format!("etcd {endpoint}: {e}"))
}

/// `etcd-load`: puts `PREFIX0` … `PREFIX(N-1)`, each with a value of
/// `--value-size` bytes, `--conc` at a time.
pub async fn load(args: &Args) -> Result<(), String> {
    let endpoint = args.str("endpoint")?;
    let prefix = args.str("prefix")?.to_string();
    let n: usize = args.num("n", 10_000)?;
    let conc: usize = args.num("conc", 32)?;
    let size: usize = args.num("value-size", 600)?;
    let value = Arc::new(vec![b'x'; size]);
    let kv = client(endpoint).await?.kv_client();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc.max(1) {
        let (mut kv, next, prefix, value) = (
            kv.clone(),
            Arc::clone(&next),
            prefix.clone(),
            Arc::clone(&value),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || start.elapsed() > LIMIT {
                    return Ok::<(), String>(());
                }
                kv.put(format!("{prefix}{i}"), value.as_slice(), None)
                    .await
                    .map_err(|e| format!("put {prefix}{i}: {e}"))?;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    if start.elapsed() > LIMIT {
        return Err(format!("load did not finish in {LIMIT:?}"));
    }
    figure(
        "load_keys_rate",
        n as f64 / start.elapsed().as_secs_f64(),
        "ops/s",
    );
    Ok(())
}

/// `etcd-range`: times `--n` sequential ranges of `--key` (a whole prefix
/// with `--prefix`), linearizable as etcd's default, bounded by `--max-secs`.
pub async fn range(args: &Args) -> Result<(), String> {
    let key = args.str("key")?.to_string();
    let n: usize = args.num("n", 50)?;
    let limit = Duration::from_secs(args.num("max-secs", 30)?);
    let name = args.opt("name").unwrap_or("grpc_range").to_string();
    let mut kv = client(args.str("endpoint")?)
        .await?
        .kv_client()
        .max_decoding_message_size(256 << 20);
    let opts = || args.flag("prefix").then(|| GetOptions::new().with_prefix());
    // One untimed range: connection set-up and warm caches.
    let first = kv
        .get(key.clone(), opts())
        .await
        .map_err(|e| e.to_string())?;
    let count = first.kvs().len();
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t0 = Instant::now();
        let r = kv
            .get(key.clone(), opts())
            .await
            .map_err(|e| e.to_string())?;
        samples.push(t0.elapsed());
        if r.kvs().len() != count {
            return Err(format!(
                "range returned {count} keys, then {}",
                r.kvs().len()
            ));
        }
        if start.elapsed() > limit {
            break;
        }
    }
    figure(&format!("{name}_keys"), count as f64, "n");
    latency_figures(&name, &samples);
    Ok(())
}
