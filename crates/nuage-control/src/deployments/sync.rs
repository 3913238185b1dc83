//! One reconcile of one Deployment (`syncDeployment`): claim its
//! ReplicaSets, then either only report (being deleted), share a change of
//! `replicas` (paused, or scaled), or take one rollout step (RollingUpdate
//! or Recreate), and write the status.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;

use super::plan::{self, Limits};
use super::replica_sets::Sets;
use super::revision;
use super::status::{self, reason, PROGRESSING};
use super::{selector_of, Controller, SyncError};
use crate::events::{reference, EventType};

/// What a reconcile asks of the queue: look again after this long.
type Recheck = Option<Duration>;

impl Controller {
    /// Reconciles the Deployment `key` (`namespace/name`).
    pub(super) async fn sync(&self, key: &str) -> Result<Recheck, SyncError> {
        let Some(cached) = self.informers.deployments.get(key) else {
            // Deleted: its ReplicaSets go by the owner-reference cascade.
            return Ok(None);
        };
        let mut d = (*cached).clone();
        let selector = selector_of(&d)?;
        if selector.is_everything() {
            self.events.record(
                &reference(&d),
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            let mut st = d.status.clone().unwrap_or_default();
            if st.observed_generation < d.metadata.generation {
                st.observed_generation = d.metadata.generation;
                d.status = Some(st);
                self.write_deployment(&mut d, false, true).await?;
            }
            return Ok(None);
        }
        let limits = Limits::of(&d).map_err(SyncError::Invalid)?;
        let rss = self.claim_replica_sets(&d, &selector).await?;
        if d.metadata.deletion_timestamp.is_some() {
            let sets = self.new_and_old(&mut d, rss, &limits).await?;
            return self.write_status(&mut d, &sets, &limits).await;
        }
        self.check_paused_conditions(&mut d).await?;
        let mut sets = self.new_and_old(&mut d, rss, &limits).await?;
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let scaled = plan::is_scaling_event(&limits, sets.new_view().as_ref(), &sets.old_views());
        if paused || scaled {
            return self.sync_scaling(&mut d, &mut sets, &limits, paused).await;
        }
        if limits.rolling {
            self.rollout_rolling(&mut d, &mut sets, &limits).await
        } else {
            self.rollout_recreate(&mut d, &mut sets, &limits).await
        }
    }

    /// Writes `d`'s revision annotation (through the status subresource, as
    /// Kubernetes' controller does, so the generation stays) and then its
    /// status, as asked; `d` becomes what the API stored.
    pub(super) async fn write_deployment(
        &self,
        d: &mut Deployment,
        annotation: bool,
        status: bool,
    ) -> Result<(), SyncError> {
        let ns = d.metadata.namespace.clone();
        let name = d.metadata.name.clone().unwrap_or_default();
        if annotation {
            let rev = d
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(revision::REVISION))
                .cloned()
                .unwrap_or_default();
            // The resourceVersion makes the patch fail on a stale copy
            // rather than act on a spec we have not seen.
            let patch = serde_json::json!({"metadata": {
                "resourceVersion": d.metadata.resource_version,
                "annotations": BTreeMap::from([(revision::REVISION, rev)]),
            }});
            let written: Deployment = self
                .client
                .merge_patch(ns.as_deref(), &name, "/status", &patch)
                .await?;
            let kept = d.status.take();
            *d = written;
            d.status = kept;
            if !status {
                return Ok(());
            }
        }
        if status {
            *d = self.client.replace_status(ns.as_deref(), d).await?;
        }
        Ok(())
    }

    /// Records pausing and resuming in Progressing, so that the time spent
    /// paused does not count against the deadline.
    async fn check_paused_conditions(&self, d: &mut Deployment) -> Result<(), SyncError> {
        if status::progress_deadline(d).is_none() {
            return Ok(());
        }
        let mut st = d.status.clone().unwrap_or_default();
        let current = status::get_condition(&st, PROGRESSING).and_then(|c| c.reason.clone());
        if current.as_deref() == Some(reason::TIMED_OUT) {
            return Ok(());
        }
        let paused_recorded = current.as_deref() == Some(reason::PAUSED);
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let condition = match (paused, paused_recorded) {
            (true, false) => (reason::PAUSED, "Deployment is paused"),
            (false, true) => (reason::RESUMED, "Deployment is resumed"),
            _ => return Ok(()),
        };
        let c = status::new_condition(
            PROGRESSING,
            "Unknown",
            condition.0,
            condition.1.into(),
            status::now(),
        );
        status::set_condition(&mut st, c);
        d.status = Some(st);
        self.write_deployment(d, false, true).await
    }

    /// Shares a change of `replicas` among the ReplicaSets (`sync`); a
    /// paused Deployment also drops old revisions past the limit.
    async fn sync_scaling(
        &self,
        d: &mut Deployment,
        sets: &mut Sets,
        limits: &Limits,
        paused: bool,
    ) -> Result<Recheck, SyncError> {
        let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let new = sets.new_view();
        let plan =
            plan::proportional_scale(limits, status_replicas, new.as_ref(), &sets.old_views());
        for s in plan {
            self.scale_rs(d, sets, &s.name, s.to, s.refresh_annotations, limits)
                .await?;
        }
        if paused {
            self.cleanup(d, &sets.old).await?;
        }
        self.write_status(d, sets, limits).await
    }

    /// One rolling-update step: grow the new ReplicaSet within max surge,
    /// else shrink old ones within max unavailable, else (done) clean up.
    async fn rollout_rolling(
        &self,
        d: &mut Deployment,
        sets: &mut Sets,
        limits: &Limits,
    ) -> Result<Recheck, SyncError> {
        if sets.new.is_none() {
            self.create_new_rs(d, sets, limits).await?;
        }
        let Some(new) = sets.new_view() else {
            return self.write_rollout_status(d, sets, limits).await;
        };
        let target = if new.replicas > limits.replicas {
            limits.replicas
        } else {
            let mut all = sets.old_views();
            all.push(new.clone());
            plan::new_rs_replicas(limits, &all, &new)
        };
        if self
            .scale_rs(d, sets, &new.name, target, false, limits)
            .await?
        {
            return self.write_rollout_status(d, sets, limits).await;
        }
        let new = sets.new_view().unwrap_or(new);
        let active_old: Vec<_> = sets
            .old_views()
            .into_iter()
            .filter(|r| r.replicas > 0)
            .collect();
        let mut scaled_down = false;
        for s in plan::scale_down_old(limits, &active_old, &new) {
            scaled_down |= self.scale_rs(d, sets, &s.name, s.to, false, limits).await?;
        }
        if scaled_down {
            return self.write_rollout_status(d, sets, limits).await;
        }
        if status::complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(d, &sets.old).await?;
        }
        self.write_rollout_status(d, sets, limits).await
    }

    /// One Recreate step: empty the old ReplicaSets, wait until their pods
    /// are gone, then create or fill the new one.
    async fn rollout_recreate(
        &self,
        d: &mut Deployment,
        sets: &mut Sets,
        limits: &Limits,
    ) -> Result<Recheck, SyncError> {
        let active_old: Vec<String> = sets
            .old_views()
            .into_iter()
            .filter(|r| r.replicas > 0)
            .map(|r| r.name)
            .collect();
        let mut scaled_down = false;
        for name in active_old {
            scaled_down |= self.scale_rs(d, sets, &name, 0, false, limits).await?;
        }
        if scaled_down || self.old_pods_running(d, sets) {
            return self.write_rollout_status(d, sets, limits).await;
        }
        if sets.new.is_none() {
            self.create_new_rs(d, sets, limits).await?;
        }
        if let Some(new) = sets.new_view() {
            self.scale_rs(d, sets, &new.name, limits.replicas, false, limits)
                .await?;
        }
        if status::complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(d, &sets.old).await?;
        }
        self.write_rollout_status(d, sets, limits).await
    }

    /// Writes the status with the rollout's conditions if it changed;
    /// otherwise, for a rollout that is not done, asks to look again when
    /// its deadline passes.
    async fn write_rollout_status(
        &self,
        d: &mut Deployment,
        sets: &Sets,
        limits: &Limits,
    ) -> Result<Recheck, SyncError> {
        let now = status::now();
        let new_status = status::rollout_status(
            d,
            &sets.all(),
            sets.new.as_ref(),
            limits.max_unavailable,
            now,
        );
        if d.status.clone().unwrap_or_default() == new_status {
            return Ok(status::recheck_after(d, &new_status, now));
        }
        d.status = Some(new_status);
        self.write_deployment(d, false, true).await?;
        Ok(None)
    }

    /// Writes the counts and Available if they changed (no rollout step
    /// was taken, so Progressing stays).
    async fn write_status(
        &self,
        d: &mut Deployment,
        sets: &Sets,
        limits: &Limits,
    ) -> Result<Recheck, SyncError> {
        let new_status = status::calculate_status(
            d,
            &sets.all(),
            sets.new.as_ref(),
            limits.max_unavailable,
            status::now(),
        );
        if d.status.clone().unwrap_or_default() != new_status {
            d.status = Some(new_status);
            self.write_deployment(d, false, true).await?;
        }
        Ok(None)
    }
}
