//! Periodic compaction: history is kept for a while, then discarded.
//!
//! The Kubernetes API server compacts etcd every five minutes; nuage does the
//! same for whichever backend it runs on. A revision is compacted only once
//! it is both older than `keep_for` and more than `keep_revisions` behind the
//! head, so a watcher that reconnects within that window resumes without a
//! re-list.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::{Revision, Store, StoreError};

/// How much history to keep.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// How often to look.
    pub every: Duration,
    /// Keep every revision younger than this.
    pub keep_for: Duration,
    /// Keep at least this many of the newest revisions.
    pub keep_revisions: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(60),
            keep_for: Duration::from_secs(5 * 60),
            keep_revisions: 1000,
        }
    }
}

/// The revision to compact to, given samples of (when, revision) oldest
/// first, the current revision, and now. `None`: nothing old enough.
fn target(
    samples: &VecDeque<(Instant, Revision)>,
    current: Revision,
    now: Instant,
    r: &Retention,
) -> Option<Revision> {
    let old_enough = samples
        .iter()
        .rev()
        .find(|(at, _)| now.duration_since(*at) >= r.keep_for)
        .map(|(_, rev)| *rev)?;
    let t = old_enough.min(current - r.keep_revisions);
    (t > 1).then_some(t)
}

/// Compacts `store` by `retention` until `shutdown` flips.
pub async fn run(store: Arc<dyn Store>, retention: Retention, mut shutdown: watch::Receiver<bool>) {
    let mut samples: VecDeque<(Instant, Revision)> = VecDeque::new();
    let mut tick = tokio::time::interval(retention.every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let Ok(current) = store.current_revision().await else {
            continue;
        };
        let now = Instant::now();
        samples.push_back((now, current));
        let Some(t) = target(&samples, current, now, &retention) else {
            continue;
        };
        // Samples older than the one used are no longer needed.
        while samples.len() > 1 && now.duration_since(samples[1].0) >= retention.keep_for {
            samples.pop_front();
        }
        match store.compact(t).await {
            Ok(()) => tracing::debug!(revision = t, "compacted"),
            Err(StoreError::Compacted { .. }) => {}
            Err(e) => tracing::warn!(revision = t, error = %e, "compaction failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_window_and_the_newest_revisions() {
        let r = Retention::default();
        let t0 = Instant::now();
        let samples: VecDeque<_> = [(t0, 5000), (t0 + Duration::from_secs(400), 9000)].into();
        // 5000 is old enough; 9000 is not.
        assert_eq!(
            target(&samples, 9500, t0 + Duration::from_secs(500), &r),
            Some(5000)
        );
        // Never within the newest 1000 revisions.
        assert_eq!(
            target(&samples, 5500, t0 + Duration::from_secs(500), &r),
            Some(4500)
        );
        // Nothing old enough yet.
        assert_eq!(
            target(&samples, 9500, t0 + Duration::from_secs(10), &r),
            None
        );
    }
}
