//! One retry with exponential backoff, for every call that may fail for a moment (a store read, a publish).

use std::future::Future;
use std::time::Duration;

/// How often to try and how long to wait between tries: `first_wait`, then doubling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
    pub first_wait: Duration,
}

impl Backoff {
    pub const fn new(attempts: u32, first_wait: Duration) -> Backoff {
        Backoff { attempts, first_wait }
    }

    /// Calls `f` until it succeeds, fails in a way `transient` says will not pass, or the attempts are used up;
    /// `on_retry(attempt, &error)` is told of every failure that is tried again. Returns the last outcome.
    pub async fn retry<T, E, F, Fut>(
        &self,
        mut f: F,
        transient: impl Fn(&E) -> bool,
        mut on_retry: impl FnMut(u32, &E),
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut wait = self.first_wait;
        let mut attempt = 1;
        loop {
            match f().await {
                Err(e) if transient(&e) && attempt < self.attempts.max(1) => {
                    on_retry(attempt, &e);
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tries_until_success_or_a_lasting_error_or_the_last_attempt() {
        let b = Backoff::new(4, Duration::from_millis(1));
        let mut calls = 0;
        let r: Result<u32, &str> = b
            .retry(
                || {
                    calls += 1;
                    let n = calls;
                    async move {
                        if n < 3 {
                            Err("down")
                        } else {
                            Ok(n)
                        }
                    }
                },
                |_| true,
                |_, _| {},
            )
            .await;
        assert_eq!(r, Ok(3));
        let mut calls = 0;
        let r: Result<(), &str> = b
            .retry(
                || {
                    calls += 1;
                    async { Err("gone") }
                },
                |e| *e != "gone",
                |_, _| {},
            )
            .await;
        assert_eq!((r, calls), (Err("gone"), 1));
        let mut retried = Vec::new();
        let r: Result<(), &str> = b.retry(|| async { Err("down") }, |_| true, |a, _| retried.push(a)).await;
        assert_eq!((r, retried), (Err("down"), vec![1, 2, 3]));
    }
}
