//! Retention: a sweep that deletes finished jobs older than the retention period or beyond the bound on stored
//! jobs, then the models no remaining job refers to, so the data directory stops growing.

use std::time::Duration;

use jobs::queue::QueueError;
use model_store::ModelStore;
use rusqlite::params;

use crate::SqliteQueue;

/// How long finished jobs are kept, and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Finished jobs (and dead letters) older than this are deleted (default 30 days).
    pub max_age: Duration,
    /// At most this many finished jobs are kept, the oldest deleted first (default 100,000).
    pub max_jobs: u64,
    /// A model younger than this is never deleted, whatever refers to it: its job may not be written yet (an
    /// upload lands in the store just before its job is queued; default 1 hour).
    pub model_grace: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(30 * 86_400),
            max_jobs: 100_000,
            model_grace: Duration::from_secs(3600),
        }
    }
}

/// What a sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub jobs: u64,
    pub models: u64,
}

/// Deletes what retention no longer keeps: finished jobs past `max_age` or beyond `max_jobs`, then every model
/// older than `model_grace` that no job in the database refers to (queued, running or finished). A model is
/// checked against the database again right before it is deleted.
pub async fn sweep(queue: &SqliteQueue, store: &ModelStore, retention: &Retention) -> Result<Swept, QueueError> {
    let now = jobs::now_ms() as i64;
    let cutoff = now - i64::try_from(retention.max_age.as_millis()).unwrap_or(i64::MAX);
    let max_jobs = i64::try_from(retention.max_jobs).unwrap_or(i64::MAX);
    let jobs = queue
        .write(move |c| {
            let tx = c.transaction()?;
            let mut n = tx.execute(
                "DELETE FROM jobs WHERE state IN ('final', 'dead') AND coalesce(finished_at_ms, enqueued_at_ms) < ?1",
                [cutoff],
            )?;
            n += tx.execute(
                "DELETE FROM jobs WHERE seq IN (
                     SELECT seq FROM jobs WHERE state = 'final' ORDER BY finished_at_ms DESC, seq DESC LIMIT -1 OFFSET ?1
                 )",
                [max_jobs],
            )?;
            tx.execute("DELETE FROM dead_letters WHERE at_ms < ?1", [cutoff])?;
            // Webhook deliveries go with their job, once they have ended; a pending one stays until it ends.
            tx.execute(
                "DELETE FROM webhook_outbox WHERE state != 'pending' AND job_id NOT IN (SELECT job_id FROM jobs WHERE job_id IS NOT NULL)",
                [],
            )?;
            tx.commit()?;
            Ok(n as u64)
        })
        .await?;
    let grace_ms = i64::try_from(retention.model_grace.as_millis()).unwrap_or(i64::MAX);
    let models =
        store.models().await.map_err(|e| QueueError::Unavailable { system: "store", message: e.to_string() })?;
    // One read for the models in use; each candidate is checked again right before it goes (a job may have
    // been written for it meanwhile).
    let in_use: std::collections::HashSet<String> = queue
        .with(|c| {
            let mut s = c.prepare("SELECT DISTINCT model_sha256 FROM jobs WHERE model_sha256 IS NOT NULL")?;
            let rows = s.query_map([], |r| r.get(0))?;
            rows.collect()
        })
        .await
        .map_err(|e| crate::storage_error(&e))?;
    let mut deleted = 0;
    let candidates = models.into_iter().filter(|m| m.modified_ms < now - grace_ms && !in_use.contains(&m.sha256));
    for m in candidates {
        let sha = m.sha256.clone();
        let referenced = queue
            .with(move |c| {
                c.query_row("SELECT EXISTS (SELECT 1 FROM jobs WHERE model_sha256 = ?1)", params![sha], |r| {
                    r.get::<_, bool>(0)
                })
            })
            .await
            .map_err(|e| crate::storage_error(&e))?;
        if !referenced {
            match store.delete(&m.sha256).await {
                Ok(()) => deleted += 1,
                Err(e) => tracing::warn!(model.sha256 = %m.sha256, error = %e, "cannot delete an unreferenced model"),
            }
        }
    }
    if jobs > 0 || deleted > 0 {
        tracing::info!(jobs, models = deleted, "retention: deleted expired jobs and unreferenced models");
    }
    Ok(Swept { jobs, models: deleted })
}

/// Sweeps every `every`, for as long as the process runs (the first sweep after one period).
pub async fn run_retention(
    queue: std::sync::Arc<SqliteQueue>,
    store: ModelStore,
    retention: Retention,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = sweep(&queue, &store, &retention).await {
            tracing::warn!(error = %e, "retention sweep failed; trying again at the next one");
        }
    }
}
