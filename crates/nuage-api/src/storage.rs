//! Objects in the store: JSON values keyed by resource, namespace and name.
//!
//! The stored bytes never carry `metadata.resourceVersion`: it is the key's
//! mod revision, set on every read. Objects are stored in their resource's
//! storage version and converted on the way in and out (only HPA has two).

use std::sync::Arc;

use nuage_model::registry::ResourceType;
use nuage_model::{hpa, meta};
use nuage_store::{KeyValue, LeaseId, ListOptions, Revision, Store, StoreError};
use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::event_ttl::EventLeases;
use crate::status::{ApiError, ApiResult};

/// The object layer over a [`Store`].
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn Store>,
    /// The leases Events are written under, so that they expire.
    event_leases: Arc<EventLeases>,
}

/// An object as served, in JSON bytes, with its parsed metadata.
pub struct ServedBytes {
    /// The object, resourceVersion included.
    pub json: Vec<u8>,
    /// Its `metadata`.
    pub metadata: Map<String, Value>,
}

/// One page of a list.
pub struct Page {
    /// The objects, in key order, each with its resourceVersion.
    pub items: Vec<Value>,
    /// The revision the list was read at.
    pub revision: Revision,
    /// The last key returned, when more remain.
    pub next_key: Option<String>,
}

impl Objects {
    /// Wraps a store; Events expire after the default TTL (1 h).
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_event_ttl(store, crate::event_ttl::DEFAULT_EVENT_TTL)
    }

    /// Wraps a store; Events expire `event_ttl` after their last write.
    pub fn with_event_ttl(store: Arc<dyn Store>, event_ttl: std::time::Duration) -> Self {
        Self {
            store,
            event_leases: Arc::new(EventLeases::new(event_ttl)),
        }
    }

    /// The lease a write of an object of `rt` attaches it to: Events get
    /// one (they expire), nothing else does.
    async fn lease_for(&self, rt: &ResourceType) -> ApiResult<Option<LeaseId>> {
        if rt.kind != "Event" {
            return Ok(None);
        }
        let lease = self.event_leases.lease(self.store.as_ref()).await;
        lease.map(Some).map_err(|e| ApiError::from_store(e, rt, ""))
    }

    /// Runs a store write with the lease for `rt`; if the store lost that
    /// lease (expired early, revoked), once more with a fresh one.
    async fn with_lease<F, Fut>(
        &self,
        rt: &ResourceType,
        name: &str,
        write: F,
    ) -> ApiResult<KeyValue>
    where
        F: Fn(Option<LeaseId>) -> Fut,
        Fut: std::future::Future<Output = Result<KeyValue, StoreError>>,
    {
        let lease = self.lease_for(rt).await?;
        match write(lease).await {
            Err(StoreError::LeaseNotFound(id)) => {
                self.event_leases.forget(id).await;
                let lease = self.lease_for(rt).await?;
                write(lease).await
            }
            other => other,
        }
        .map_err(|e| ApiError::from_store(e, rt, name))
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Decodes a stored value into the object `rt` serves.
    pub fn decode(&self, rt: &ResourceType, kv: &KeyValue) -> ApiResult<Value> {
        let mut obj: Value = serde_json::from_slice(&kv.value).map_err(|e| {
            tracing::error!(key = %kv.key, error = %e, "undecodable stored object");
            ApiError::internal(format!("stored object {} is corrupt", kv.key))
        })?;
        meta::set_resource_version(&mut obj, kv.mod_revision);
        Ok(to_served_version(rt, obj))
    }

    /// A stored object as served JSON bytes with its resourceVersion, and
    /// its metadata, without building the whole object: lists of thousands
    /// of objects spend their time in allocation otherwise. `None` when the
    /// served version differs from the stored one (then use [`Self::decode`]).
    pub fn served_bytes(&self, rt: &ResourceType, kv: &KeyValue) -> ApiResult<Option<ServedBytes>> {
        if !rt.is_storage_version() {
            return Ok(None);
        }
        let corrupt = |e: serde_json::Error| {
            tracing::error!(key = %kv.key, error = %e, "undecodable stored object");
            ApiError::internal(format!("stored object {} is corrupt", kv.key))
        };
        let top: BTreeMap<String, &RawValue> =
            serde_json::from_slice(&kv.value).map_err(corrupt)?;
        let mut metadata: Map<String, Value> = match top.get("metadata") {
            Some(raw) => serde_json::from_str(raw.get()).map_err(corrupt)?,
            None => Map::new(),
        };
        metadata.insert(
            "resourceVersion".into(),
            Value::String(kv.mod_revision.to_string()),
        );
        let mut out = Vec::with_capacity(kv.value.len() + 32);
        out.push(b'{');
        let mut first = true;
        let mut put = |out: &mut Vec<u8>, key: &str| -> ApiResult<()> {
            if !first {
                out.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut *out, key).map_err(corrupt)?;
            out.push(b':');
            Ok(())
        };
        if !top.contains_key("metadata") {
            put(&mut out, "metadata")?;
            serde_json::to_writer(&mut out, &metadata).map_err(corrupt)?;
        }
        for (key, raw) in &top {
            put(&mut out, key)?;
            if key == "metadata" {
                serde_json::to_writer(&mut out, &metadata).map_err(corrupt)?;
            } else {
                out.extend_from_slice(raw.get().as_bytes());
            }
        }
        out.push(b'}');
        Ok(Some(ServedBytes {
            json: out,
            metadata,
        }))
    }

    /// The object `name` (in `ns`), if present.
    pub async fn get(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Option<Value>> {
        let kv = self
            .store
            .get(&rt.key(ns, name))
            .await
            .map_err(|e| ApiError::from_store(e, rt, name))?;
        kv.map(|kv| self.decode(rt, &kv)).transpose()
    }

    /// Like [`Objects::get`], but absent is 404.
    pub async fn get_existing(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Value> {
        self.get(rt, ns, name)
            .await?
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// One page of objects (all namespaces when `ns` is `None`).
    pub async fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        opts: ListOptions,
    ) -> ApiResult<Page> {
        let limit = opts.limit;
        let res = self
            .store
            .list(&rt.key_prefix(ns), opts)
            .await
            .map_err(|e| ApiError::from_store(e, rt, ""))?;
        let next_key = if res.more && limit.is_some() {
            res.kvs.last().map(|kv| kv.key.clone())
        } else {
            None
        };
        let items = res
            .kvs
            .iter()
            .map(|kv| self.decode(rt, kv))
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(Page {
            items,
            revision: res.revision,
            next_key,
        })
    }

    /// Stores a new object; `obj` must have its name (and namespace) set.
    pub async fn create(&self, rt: &ResourceType, obj: Value) -> ApiResult<Value> {
        let (ns, name) = names(rt, &obj);
        let bytes = encode(rt, obj)?;
        let key = rt.key(ns.as_deref(), &name);
        let kv = self
            .with_lease(rt, &name, |lease| {
                self.store.create(&key, bytes.clone(), lease)
            })
            .await?;
        self.decode(rt, &kv)
    }

    /// Replaces an object if it is still at revision `expected`.
    pub async fn update(
        &self,
        rt: &ResourceType,
        obj: Value,
        expected: Revision,
    ) -> ApiResult<Value> {
        let (ns, name) = names(rt, &obj);
        let bytes = encode(rt, obj)?;
        let key = rt.key(ns.as_deref(), &name);
        // An Event's update renews its TTL, as in kube-apiserver.
        let kv = self
            .with_lease(rt, &name, |lease| {
                self.store.update(&key, bytes.clone(), expected, lease)
            })
            .await?;
        self.decode(rt, &kv)
    }

    /// Removes an object (if at `expected`, when given); returns its last state.
    pub async fn delete(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        expected: Option<Revision>,
    ) -> ApiResult<Value> {
        let kv = self
            .store
            .delete(&rt.key(ns, name), expected)
            .await
            .map_err(|e| ApiError::from_store(e, rt, name))?;
        self.decode(rt, &kv)
    }

    /// The store's current revision.
    pub async fn revision(&self) -> Result<Revision, StoreError> {
        self.store.current_revision().await
    }
}

fn names(rt: &ResourceType, obj: &Value) -> (Option<String>, String) {
    let ns = if rt.namespaced {
        meta::namespace(obj).map(str::to_string)
    } else {
        None
    };
    (ns, meta::name(obj).unwrap_or_default().to_string())
}

/// Serializes an object in its storage version, without resourceVersion.
fn encode(rt: &ResourceType, mut obj: Value) -> ApiResult<Vec<u8>> {
    meta::remove_meta(&mut obj, "resourceVersion");
    let obj = to_storage_version(rt, obj);
    serde_json::to_vec(&obj).map_err(|e| ApiError::internal(format!("encode object: {e}")))
}

/// Converts an object as `rt` serves it to its storage version.
pub fn to_storage_version(rt: &ResourceType, obj: Value) -> Value {
    if !rt.is_storage_version() && rt.kind == "HorizontalPodAutoscaler" {
        hpa::v1_to_v2(obj)
    } else {
        obj
    }
}

/// Converts a stored object to the version `rt` serves.
pub fn to_served_version(rt: &ResourceType, obj: Value) -> Value {
    if !rt.is_storage_version() && rt.kind == "HorizontalPodAutoscaler" {
        hpa::v2_to_v1(obj)
    } else {
        obj
    }
}
