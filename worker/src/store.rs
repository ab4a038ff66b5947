//! The model store: content-addressed by SHA-256, a local directory by default, S3-compatible storage in
//! production (the `object_store` crate). Every read is checked against the hash the job names.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload};
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

#[derive(Debug, Clone)]
pub struct ModelStore {
    inner: Arc<dyn ObjectStore>,
    url: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
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
        self.inner
            .put(&Self::path(&key), PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(StoredModel { key, sha256, size })
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

    /// Whether the store answers (for readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self.inner.head(&Self::path("models/.ping")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        }
    }
}
