//! The writes a Deployment makes to its ReplicaSets: claiming them (adopt
//! orphans it selects, release those it no longer selects), finding or
//! creating the one of its current template, scaling them with a
//! `ScalingReplicaSet` Event, and deleting old empty ones past
//! `revisionHistoryLimit`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use nuage_model::selector::LabelSelector as Selector;

use super::plan::{Limits, RsState};
use super::revision::{self, HASH_LABEL};
use super::status::{self, reason, PROGRESSING};
use super::{controller_of, Controller, SyncError};
use crate::events::{reference, EventType};

/// A Deployment's ReplicaSets: the one of its current template (if it
/// exists yet) and the others.
#[derive(Debug, Default)]
pub(super) struct Sets {
    /// The ReplicaSet of the current template.
    pub new: Option<ReplicaSet>,
    /// Every other ReplicaSet it owns.
    pub old: Vec<ReplicaSet>,
}

impl Sets {
    /// Old ones first, then the new one.
    pub fn all(&self) -> Vec<&ReplicaSet> {
        self.old.iter().chain(self.new.as_ref()).collect()
    }

    fn get(&self, name: &str) -> Option<&ReplicaSet> {
        self.all()
            .into_iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
    }

    /// Puts a written ReplicaSet in place of its older copy.
    fn put(&mut self, rs: ReplicaSet) {
        let name = rs.metadata.name.clone();
        if let Some(n) = self.new.as_mut().filter(|n| n.metadata.name == name) {
            *n = rs;
        } else if let Some(o) = self.old.iter_mut().find(|o| o.metadata.name == name) {
            *o = rs;
        }
    }

    /// The new ReplicaSet as the plans see it.
    pub fn new_view(&self) -> Option<RsState> {
        self.new.as_ref().map(view)
    }

    /// The old ReplicaSets as the plans see them.
    pub fn old_views(&self) -> Vec<RsState> {
        self.old.iter().map(view).collect()
    }
}

/// What the plans need of a ReplicaSet.
pub(super) fn view(rs: &ReplicaSet) -> RsState {
    RsState::new(
        rs.metadata.name.as_deref().unwrap_or_default(),
        created(rs),
        replicas(rs),
        rs.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
        revision::int_annotation(rs, revision::DESIRED_REPLICAS),
        revision::int_annotation(rs, revision::MAX_REPLICAS),
    )
}

fn created(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(0)
}

pub(super) fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

fn namespace(meta: &ObjectMeta) -> Option<&str> {
    meta.namespace.as_deref()
}

fn controller_ref(d: &Deployment) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: name(&d.metadata).to_string(),
        uid: d.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

impl Controller {
    /// The ReplicaSets `d` controls, after adopting the orphans it selects
    /// and releasing the ones it no longer selects (client-go's
    /// `ClaimReplicaSets`).
    pub(super) async fn claim_replica_sets(
        &self,
        d: &Deployment,
        selector: &Selector,
    ) -> Result<Vec<ReplicaSet>, SyncError> {
        let ns = namespace(&d.metadata).unwrap_or_default().to_string();
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let deleting = d.metadata.deletion_timestamp.is_some();
        let candidates = self
            .informers
            .replica_sets
            .filter(|rs| rs.metadata.namespace.as_deref() == Some(ns.as_str()));
        let mut owned = Vec::new();
        let mut may_adopt: Option<bool> = None;
        for rs in candidates {
            let labels = rs.metadata.labels.clone().unwrap_or_default();
            let matches = selector.matches(&labels);
            match controller_of(&rs.metadata) {
                Some(o) if o.uid == uid => {
                    if matches {
                        owned.push((*rs).clone());
                    } else if !deleting {
                        self.release(&rs, &uid).await?;
                    }
                }
                Some(_) => {}
                None => {
                    if !matches || deleting || rs.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    // Adopt only for a Deployment that still exists as
                    // cached (not a deleted one recreated under its name).
                    if may_adopt.is_none() {
                        let fresh: Option<Deployment> =
                            self.client.get(Some(&ns), name(&d.metadata)).await?;
                        may_adopt = Some(fresh.is_some_and(|f| {
                            f.metadata.uid.as_deref() == Some(uid.as_str())
                                && f.metadata.deletion_timestamp.is_none()
                        }));
                    }
                    if may_adopt == Some(true) {
                        let mut copy = (*rs).clone();
                        copy.metadata
                            .owner_references
                            .get_or_insert_with(Vec::new)
                            .push(controller_ref(d));
                        owned.push(self.client.replace(Some(&ns), &copy).await?);
                    }
                }
            }
        }
        Ok(owned)
    }

    async fn release(&self, rs: &ReplicaSet, uid: &str) -> Result<(), SyncError> {
        let mut copy = rs.clone();
        if let Some(refs) = copy.metadata.owner_references.as_mut() {
            refs.retain(|o| o.uid != uid);
        }
        match self.client.replace(namespace(&rs.metadata), &copy).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Splits `rss` into the ReplicaSet of `d`'s template and the others,
    /// bringing the new one's revision (max old + 1) and annotations up to
    /// date and copying its revision to `d` (`getNewReplicaSet` for an
    /// existing one).
    pub(super) async fn new_and_old(
        &self,
        d: &mut Deployment,
        mut rss: Vec<ReplicaSet>,
        limits: &Limits,
    ) -> Result<Sets, SyncError> {
        rss.sort_by(|a, b| {
            created(a)
                .cmp(&created(b))
                .then_with(|| a.metadata.name.cmp(&b.metadata.name))
        });
        let template = d.spec.clone().unwrap_or_default().template;
        let new_at = rss.iter().position(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| revision::equal_ignore_hash(t, &template))
        });
        let Some(new_at) = new_at else {
            return Ok(Sets {
                new: None,
                old: rss,
            });
        };
        let existing = rss.remove(new_at);
        let new_revision = revision::max_revision(&rss) + 1;
        let mut copy = existing.clone();
        let annotated = revision::set_new_rs_annotations(
            d,
            &mut copy,
            new_revision,
            true,
            limits.max_replicas(),
        );
        let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        let spec = copy.spec.get_or_insert_with(ReplicaSetSpec::default);
        if annotated || spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0) {
            spec.min_ready_seconds = min_ready;
            let ns = namespace(&copy.metadata).map(str::to_string);
            let written = self.client.replace(ns.as_deref(), &copy).await?;
            // The Deployment's revision follows at the next sync, which
            // this write triggers.
            return Ok(Sets {
                new: Some(written),
                old: rss,
            });
        }
        let rev = revision::revision(&copy).to_string();
        let annotation_changed = revision::set_deployment_revision(d, &rev);
        let mut status_changed = false;
        let mut st = d.status.clone().unwrap_or_default();
        if status::progress_deadline(d).is_some()
            && status::get_condition(&st, PROGRESSING).is_none()
        {
            let msg = format!("Found new replica set {:?}", name(&copy.metadata));
            let c = status::new_condition(
                PROGRESSING,
                "True",
                reason::FOUND_NEW_RS,
                msg,
                status::now(),
            );
            status::set_condition(&mut st, c);
            d.status = Some(st);
            status_changed = true;
        }
        self.write_deployment(d, annotation_changed, status_changed)
            .await?;
        Ok(Sets {
            new: Some(copy),
            old: rss,
        })
    }

    /// Creates the ReplicaSet of `d`'s current template, sized by the
    /// strategy (`getNewReplicaSet` when none exists).
    pub(super) async fn create_new_rs(
        &self,
        d: &mut Deployment,
        sets: &mut Sets,
        limits: &Limits,
    ) -> Result<(), SyncError> {
        let spec = d.spec.clone().unwrap_or_default();
        let collisions = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = revision::pod_template_hash(&spec.template, collisions);
        let mut template = spec.template.clone();
        let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.clone());
        let labels = meta.labels.clone();
        let mut selector: LabelSelector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.clone());
        let ns = namespace(&d.metadata).map(str::to_string);
        let rs_name = format!("{}-{hash}", name(&d.metadata));
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: ns.clone(),
                owner_references: Some(vec![controller_ref(d)]),
                labels,
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let mut all = sets.old_views();
        let zero = view(&rs);
        all.push(zero.clone());
        let size = super::plan::new_rs_replicas(limits, &all, &zero);
        if let Some(s) = rs.spec.as_mut() {
            s.replicas = Some(size);
        }
        let new_revision = revision::max_revision(&sets.old) + 1;
        revision::set_new_rs_annotations(d, &mut rs, new_revision, false, limits.max_replicas());
        let now = status::now();
        let (created, existed) = match self.client.create(ns.as_deref(), &rs).await {
            Ok(c) => (c, false),
            Err(e) if e.is_conflict() => {
                let found: Option<ReplicaSet> = self.client.get(ns.as_deref(), &rs_name).await?;
                let ours = found.filter(|f| {
                    controller_of(&f.metadata).map(|o| o.uid.as_str()) == d.metadata.uid.as_deref()
                        && f.spec
                            .as_ref()
                            .and_then(|s| s.template.as_ref())
                            .is_some_and(|t| revision::equal_ignore_hash(t, &spec.template))
                });
                match ours {
                    Some(f) => (f, true),
                    None => {
                        // Another template hashed to this name: count the
                        // collision, which changes the next hash.
                        let mut st = d.status.clone().unwrap_or_default();
                        st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
                        d.status = Some(st);
                        self.write_deployment(d, false, true).await?;
                        return Err(SyncError::HashCollision(rs_name));
                    }
                }
            }
            Err(e) => {
                let msg = format!("Failed to create new replica set {rs_name:?}: {e}");
                if status::progress_deadline(d).is_some() {
                    let mut st = d.status.clone().unwrap_or_default();
                    let c = status::new_condition(
                        PROGRESSING,
                        "False",
                        reason::FAILED_RS_CREATE,
                        msg.clone(),
                        now,
                    );
                    status::set_condition(&mut st, c);
                    d.status = Some(st);
                    let _ = self.write_deployment(d, false, true).await;
                }
                self.events.record(
                    &reference(d),
                    EventType::Warning,
                    reason::FAILED_RS_CREATE,
                    msg,
                );
                return Err(e.into());
            }
        };
        if !existed && size > 0 {
            self.events.record(
                &reference(d),
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled up replica set {rs_name} from 0 to {size}"),
            );
        }
        let annotation_changed = revision::set_deployment_revision(d, &new_revision.to_string());
        let mut status_changed = false;
        if !existed && status::progress_deadline(d).is_some() {
            let mut st = d.status.clone().unwrap_or_default();
            let msg = format!("Created new replica set {rs_name:?}");
            let c = status::new_condition(PROGRESSING, "True", reason::NEW_RS_CREATED, msg, now);
            status::set_condition(&mut st, c);
            d.status = Some(st);
            status_changed = true;
        }
        self.write_deployment(d, annotation_changed, status_changed)
            .await?;
        sets.new = Some(created);
        Ok(())
    }

    /// Sets a ReplicaSet's size (and, when it writes, its replicas
    /// annotations); `refresh_annotations` writes them even at the same
    /// size. Whether the size changed.
    pub(super) async fn scale_rs(
        &self,
        d: &Deployment,
        sets: &mut Sets,
        rs_name: &str,
        to: i32,
        refresh_annotations: bool,
        limits: &Limits,
    ) -> Result<bool, SyncError> {
        let Some(rs) = sets.get(rs_name) else {
            return Ok(false);
        };
        let from = replicas(rs);
        let resize = from != to;
        let annotate = refresh_annotations
            && revision::replicas_annotations_need_update(
                rs,
                limits.replicas,
                limits.max_replicas(),
            );
        if !resize && !annotate {
            return Ok(false);
        }
        let mut copy = rs.clone();
        copy.spec
            .get_or_insert_with(ReplicaSetSpec::default)
            .replicas = Some(to);
        revision::set_replicas_annotations(&mut copy, limits.replicas, limits.max_replicas());
        let written = self
            .client
            .replace(namespace(&copy.metadata), &copy)
            .await?;
        if resize {
            let direction = if from < to { "up" } else { "down" };
            self.events.record(
                &reference(d),
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled {direction} replica set {rs_name} from {from} to {to}"),
            );
        }
        sets.put(written);
        Ok(resize)
    }

    /// Deletes the oldest old ReplicaSets past `revisionHistoryLimit`,
    /// only those already empty and settled.
    pub(super) async fn cleanup(
        &self,
        d: &Deployment,
        old: &[ReplicaSet],
    ) -> Result<(), SyncError> {
        let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return Ok(());
        };
        let mut alive: Vec<&ReplicaSet> = old
            .iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = alive.len() as i64 - i64::from(limit);
        if excess <= 0 {
            return Ok(());
        }
        alive.sort_by(|a, b| {
            revision::revision(a)
                .cmp(&revision::revision(b))
                .then_with(|| created(a).cmp(&created(b)))
        });
        for rs in alive.into_iter().take(excess as usize) {
            let st = rs.status.clone().unwrap_or_default();
            let settled =
                rs.metadata.generation.unwrap_or(0) <= st.observed_generation.unwrap_or(0);
            if st.replicas != 0 || replicas(rs) != 0 || !settled {
                continue;
            }
            self.client
                .delete::<ReplicaSet>(
                    namespace(&rs.metadata),
                    name(&rs.metadata),
                    None,
                    rs.metadata.uid.as_deref(),
                )
                .await?;
        }
        Ok(())
    }

    /// Whether pods of old ReplicaSets still run (Recreate waits for none).
    pub(super) fn old_pods_running(&self, d: &Deployment, sets: &Sets) -> bool {
        let old_replicas: i32 = sets
            .old
            .iter()
            .map(|r| r.status.as_ref().map(|s| s.replicas).unwrap_or(0))
            .sum();
        if old_replicas > 0 {
            return true;
        }
        let old_uids: Vec<&str> = sets
            .old
            .iter()
            .filter_map(|r| r.metadata.uid.as_deref())
            .collect();
        let ns = namespace(&d.metadata);
        !self
            .informers
            .pods
            .filter(|p| {
                p.metadata.namespace.as_deref() == ns
                    && controller_of(&p.metadata)
                        .is_some_and(|o| old_uids.contains(&o.uid.as_str()))
                    && !matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    )
            })
            .is_empty()
    }
}
