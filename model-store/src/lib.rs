//! The model store: content-addressed by SHA-256, a local directory by default, S3-compatible storage in
//! production (the `object_store` crate). Every read is checked against the hash the job names.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

/// Why a model could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("model {key} is not in the store")]
    NotFound { key: String },
    #[error("model {key} does not match its SHA-256: the store holds {actual}, the job names {expected}")]
    HashMismatch { key: String, expected: String, actual: String },
    #[error("the model store is unreachable: {0}")]
    Unavailable(String),
    #[error("invalid store URL \"{url}\": {message}")]
    BadUrl { url: String, message: String },
}

impl StoreError {
    /// Whether trying again may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// A model as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredModel {
    pub key: String,
    pub sha256: String,
    pub size: u64,
}

/// A model in the store's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    pub sha256: String,
    pub size: u64,
    /// When it was last written, in ms since the Unix epoch.
    pub modified_ms: i64,
}

#[derive(Debug, Clone)]
pub struct ModelStore {
    inner: Arc<dyn ObjectStore>,
    url: String,
}

/// SHA-256 of `bytes`, lowercase hex: a model's name in the store.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

impl ModelStore {
    /// `file:///abs/dir` or a plain directory path (created if missing), `s3://bucket/prefix` (credentials,
    /// region and endpoint from the standard AWS_* variables, e.g. AWS_ENDPOINT for MinIO), or `memory://`.
    pub fn from_url(url: &str) -> Result<ModelStore, StoreError> {
        let bad = |message: String| StoreError::BadUrl { url: url.to_owned(), message };
        let inner: Arc<dyn ObjectStore> = if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, _) = rest.split_once('/').unwrap_or((rest, ""));
            Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            )
        } else if url == "memory://" {
            Arc::new(object_store::memory::InMemory::new())
        } else {
            let dir = url.strip_prefix("file://").unwrap_or(url);
            std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot create the directory: {e}")))?;
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|e| bad(e.to_string()))?)
        };
        Ok(ModelStore { inner, url: url.to_owned() })
    }

    /// A store over any `object_store` backend (`label` names it in logs).
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, label: &str) -> ModelStore {
        ModelStore { inner, url: label.to_owned() }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(key: &str) -> StorePath {
        StorePath::from(key)
    }

    /// Stores a model under `models/<sha256>`; storing the same bytes twice is one object.
    pub async fn put(&self, bytes: Bytes) -> Result<StoredModel, StoreError> {
        let sha256 = sha256_hex(&bytes);
        let key = format!("models/{sha256}");
        let size = bytes.len() as u64;
        if !holds(self.inner.as_ref(), &key, size).await? {
            self.inner
                .put(&Self::path(&key), PutPayload::from_bytes(bytes))
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        }
        Ok(StoredModel { key, sha256, size })
    }

    /// Starts a streamed upload: bytes go to a temporary object while their SHA-256 is computed, and
    /// [`Upload::finish`] moves them to `models/<sha256>`. The model is never held whole in memory.
    pub async fn begin_upload(&self) -> Result<Upload, StoreError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let tmp = Self::path(&format!(
            "uploads/{}-{}-{}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis()),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let upload = self.inner.put_multipart(&tmp).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Upload {
            store: self.inner.clone(),
            tmp,
            writer: Some(WriteMultipart::new_with_chunk_size(upload, 5 << 20)),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Reads a model and checks its hash.
    pub async fn get(&self, key: &str, sha256: &str) -> Result<Bytes, StoreError> {
        let result = self.inner.get(&Self::path(key)).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound { key: key.to_owned() },
            other => StoreError::Unavailable(other.to_string()),
        })?;
        let bytes = result.bytes().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(sha256) {
            return Err(StoreError::HashMismatch { key: key.to_owned(), expected: sha256.to_owned(), actual });
        }
        Ok(bytes)
    }

    /// Every stored model, with when it was last written.
    pub async fn models(&self) -> Result<Vec<ModelEntry>, StoreError> {
        use futures::TryStreamExt as _;
        let prefix = Self::path("models");
        let metas: Vec<object_store::ObjectMeta> =
            self.inner.list(Some(&prefix)).try_collect().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let sha256 = m.location.filename()?.to_owned();
                (sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit())).then(|| ModelEntry {
                    sha256,
                    size: m.size,
                    modified_ms: m.last_modified.timestamp_millis(),
                })
            })
            .collect())
    }

    /// Deletes a model (retention); a model already gone is not an error.
    pub async fn delete(&self, sha256: &str) -> Result<(), StoreError> {
        match self.inner.delete(&Self::path(&format!("models/{sha256}"))).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        }
    }

    /// Whether the store answers (for readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self.inner.head(&Self::path("models/.ping")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        }
    }
}

/// Whether the store already holds `key` at `size` bytes. Content-addressed, such an object is these bytes (a
/// damaged copy of the same size is still caught by the hash check on read).
async fn holds(store: &dyn ObjectStore, key: &str, size: u64) -> Result<bool, StoreError> {
    match store.head(&ModelStore::path(key)).await {
        Ok(meta) => Ok(meta.size == size),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(StoreError::Unavailable(e.to_string())),
    }
}

/// A model being written to the store; see [`ModelStore::begin_upload`]. Dropped unfinished, it is aborted.
pub struct Upload {
    store: Arc<dyn ObjectStore>,
    tmp: StorePath,
    writer: Option<WriteMultipart>,
    hasher: Sha256,
    size: u64,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload").field("tmp", &self.tmp).field("size", &self.size).finish_non_exhaustive()
    }
}

impl Upload {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a chunk, waiting while too many parts are in flight (so memory stays bounded).
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        let writer = self.writer.as_mut().ok_or_else(|| StoreError::Unavailable("upload already ended".into()))?;
        writer.wait_for_capacity(2).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        writer.write(chunk);
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        Ok(())
    }

    /// Completes the upload and stores the model under its hash; the same bytes twice are one object.
    pub async fn finish(mut self) -> Result<StoredModel, StoreError> {
        let writer = self.writer.take().ok_or_else(|| StoreError::Unavailable("upload already ended".into()))?;
        let unavailable = |e: object_store::Error| StoreError::Unavailable(e.to_string());
        writer.finish().await.map_err(unavailable)?;
        let sha256 = format!("{:x}", std::mem::take(&mut self.hasher).finalize());
        let key = format!("models/{sha256}");
        // A repeated model: keep the stored copy rather than replace it (on S3 a rename is a copy of the whole
        // object; on a local disk, replacing a file by rename starts a writeback of it).
        let placed = match holds(self.store.as_ref(), &key, self.size).await {
            Ok(true) => self.store.delete(&self.tmp).await.map_err(unavailable),
            Ok(false) => self.store.rename(&self.tmp, &ModelStore::path(&key)).await.map_err(unavailable),
            Err(e) => Err(e),
        };
        if let Err(e) = placed {
            // Best effort: leave no temporary object behind a failed upload.
            let _ = self.store.delete(&self.tmp).await;
            return Err(e);
        }
        Ok(StoredModel { key, sha256, size: self.size })
    }

    /// Gives the upload up, removing what was written.
    pub async fn abort(mut self) {
        if let Some(writer) = self.writer.take() {
            if let Err(e) = writer.abort().await {
                tracing::debug!(error = %e, "aborting an upload");
            }
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // A client that disconnects mid-upload drops the request future: clean up off the request.
        if let Some(writer) = self.writer.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = writer.abort().await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_streamed_upload_lands_under_its_hash_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ModelStore::from_url(&dir.path().display().to_string()).expect("store");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut up = store.begin_upload().await.expect("begin");
        for chunk in bytes.chunks(64 * 1024 + 3) {
            up.write(chunk).await.expect("write");
        }
        let stored = up.finish().await.expect("finish");
        assert_eq!(stored.sha256, sha256_hex(&bytes));
        assert_eq!(stored.size, bytes.len() as u64);
        assert_eq!(store.get(&stored.key, &stored.sha256).await.expect("get"), bytes);
        assert_eq!(std::fs::read_dir(dir.path().join("uploads")).map(|d| d.count()).unwrap_or(0), 0);

        // The same bytes again: one object, the stored one kept, the temporary one gone.
        let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified()).expect("mtime");
        let stored_path = dir.path().join(&stored.key);
        let before = modified(&stored_path);
        let mut up = store.begin_upload().await.expect("begin");
        up.write(&bytes).await.expect("write");
        assert_eq!(up.finish().await.expect("finish again"), stored);
        assert_eq!(modified(&stored_path), before, "the stored copy was not replaced");
        assert_eq!(std::fs::read_dir(dir.path().join("uploads")).map(|d| d.count()).unwrap_or(0), 0);
        assert_eq!(std::fs::read_dir(dir.path().join("models")).map(|d| d.count()).unwrap_or(0), 1);

        let mut up = store.begin_upload().await.expect("begin");
        up.write(b"half a model").await.expect("write");
        up.abort().await;
        assert_eq!(std::fs::read_dir(dir.path().join("uploads")).map(|d| d.count()).unwrap_or(0), 0);
    }
}
