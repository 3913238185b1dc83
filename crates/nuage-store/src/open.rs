//! Opening a store from the `--store` URL.

use std::path::Path;
use std::sync::Arc;

use crate::{etcd::EtcdStore, sqlite::SqliteStore, Store, StoreError};

/// Opens the store named by `url`: `sqlite` (the file `DATA_DIR/store.db`),
/// `sqlite:PATH`, or `etcd://host:port[,host:port...]`.
pub async fn open(url: &str, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    if url == "sqlite" || url.is_empty() {
        return Ok(Arc::new(SqliteStore::open(&data_dir.join("store.db"))?));
    }
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        if path.is_empty() {
            return Err(StoreError::BadUrl(url.into(), "empty sqlite path".into()));
        }
        return Ok(Arc::new(SqliteStore::open(Path::new(path))?));
    }
    if let Some(rest) = url.strip_prefix("etcd://") {
        let endpoints: Vec<String> = rest
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| format!("http://{s}"))
            .collect();
        if endpoints.is_empty() {
            return Err(StoreError::BadUrl(url.into(), "no etcd endpoint".into()));
        }
        return Ok(Arc::new(EtcdStore::connect(&endpoints, "/nuage").await?));
    }
    Err(StoreError::BadUrl(
        url.into(),
        "expected sqlite, sqlite:PATH or etcd://host:port,...".into(),
    ))
}
