//! A model store that is briefly unreachable is retried with backoff; one that stays unreachable fails the job
//! with `store_unavailable`; a model whose bytes do not match its hash fails with `model_corrupt`.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

mod common;

use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures::stream::BoxStream;
use jobs::Status;
use model_store::ModelStore;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions,
    PutPayload, PutResult, Result,
};
use worker::Context;

/// Fails the first `failures` reads as an unreachable backend would, then reads from memory.
#[derive(Debug)]
struct Flaky {
    inner: object_store::memory::InMemory,
    failures: AtomicU32,
}

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("flaky")
    }
}

#[async_trait::async_trait]
impl ObjectStore for Flaky {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(object_store::Error::Generic { store: "flaky", source: "connection refused".into() });
        }
        self.inner.get_opts(location, options).await
    }
    async fn get_range(&self, location: &Path, range: Range<u64>) -> Result<Bytes> {
        self.inner.get_range(location, range).await
    }
    async fn delete(&self, location: &Path) -> Result<()> {
        self.inner.delete(location).await
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.copy(from, to).await
    }
    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

fn context(failures: u32) -> (Arc<Flaky>, Context) {
    let flaky = Arc::new(Flaky { inner: object_store::memory::InMemory::new(), failures: AtomicU32::new(0) });
    let store = ModelStore::from_object_store(flaky.clone(), "flaky://");
    let mut ctx = Context::new("w", store, rules());
    ctx.config.fetch.first_wait = Duration::from_millis(10);
    flaky.failures.store(failures, Ordering::SeqCst);
    (flaky, ctx)
}

#[tokio::test]
async fn a_briefly_unreachable_store_is_retried() {
    let (flaky, ctx) = context(0);
    let model = ctx.store.put(sample().into()).await.unwrap();
    flaky.failures.store(3, Ordering::SeqCst);
    let r = worker::process(&ctx, &job("retry", &model), None).await;
    assert_eq!(r.status(), Status::Done, "{:?}", r.outcome);
    assert_eq!(flaky.failures.load(Ordering::SeqCst), 0, "three failed reads, then one good one");
}

#[tokio::test]
async fn a_store_that_stays_unreachable_fails_the_job_with_a_clear_code() {
    let (flaky, ctx) = context(0);
    let model = ctx.store.put(sample().into()).await.unwrap();
    flaky.failures.store(100, Ordering::SeqCst);
    let r = worker::process(&ctx, &job("down", &model), None).await;
    let e = r.outcome.error().unwrap().clone();
    assert_eq!(e.code, "store_unavailable");
    assert!(e.message.contains("connection refused"), "{}", e.message);
    assert_eq!(100 - flaky.failures.load(Ordering::SeqCst), ctx.config.fetch.attempts, "tried every attempt");
}

#[tokio::test]
async fn bytes_that_do_not_match_their_hash_are_refused() {
    let (_, ctx) = context(0);
    let model = ctx.store.put(sample().into()).await.unwrap();
    let mut lying = job("corrupt", &model);
    lying.model.sha256 = "f".repeat(64);
    let e = worker::process(&ctx, &lying, None).await.outcome.error().unwrap().clone();
    assert_eq!(e.code, "model_corrupt");
}

#[tokio::test]
async fn an_upload_the_store_cannot_place_fails_and_leaves_nothing_behind() {
    use futures::TryStreamExt as _;
    let (flaky, ctx) = context(0);
    let mut upload = ctx.store.begin_upload().await.unwrap();
    upload.write(&sample()).await.unwrap();
    // The store stops answering between the last byte and placing the model under its hash.
    flaky.failures.store(1, Ordering::SeqCst);
    let e = upload.finish().await.unwrap_err();
    assert!(matches!(e, model_store::StoreError::Unavailable(_)), "{e}");
    let left: Vec<ObjectMeta> = flaky.inner.list(None).try_collect().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}
