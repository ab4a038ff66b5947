//! One attempt at one delivery: the body POSTed with its three Standard Webhooks headers, within the timeout,
//! through the guarded resolver, never following a redirect (a 3xx is not a delivery), never through a proxy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::guard::{self, GuardedResolver};

/// What an attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// The receiver answered 2xx.
    Delivered,
    /// Anything else: a non-2xx status, a timeout, a refused connection, an address not allowed.
    Failed,
    /// 410 Gone: the receiver asks for no more deliveries.
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub kind: AttemptKind,
    pub status_code: Option<u16>,
    /// Why it did not deliver, for people (never the secret).
    pub error: Option<String>,
    /// The receiver's `Retry-After`, in seconds or as an HTTP date.
    pub retry_after: Option<Duration>,
}

/// Makes attempts. One client for every tenant; connections are not pooled, so every attempt resolves (and
/// checks) its receiver's address afresh.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_private: Arc<AtomicBool>,
}

impl Sender {
    pub fn new() -> Result<Sender, String> {
        let allow_private = Arc::new(AtomicBool::new(false));
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { allow_private: allow_private.clone() }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(0)
            .user_agent(concat!("assay-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Sender { client, allow_private })
    }

    /// POSTs `body` to the webhook, signed, within `timeout`.
    pub async fn attempt(
        &self,
        webhook: &tenants::Webhook,
        allow_private: bool,
        msg_id: &str,
        body: &str,
        timeout: Duration,
    ) -> Attempt {
        let failed = |error: String| Attempt {
            kind: AttemptKind::Failed,
            status_code: None,
            error: Some(error),
            retry_after: None,
        };
        self.allow_private.store(allow_private, Ordering::Release);
        if webhook.url.scheme() != "https" && !allow_private {
            return failed(format!("{} is not https: plain http only with allow_private_network = true", webhook.url));
        }
        if let Some(ip) = guard::literal(&webhook.url) {
            if let Err(e) = guard::check(ip, allow_private) {
                return failed(e);
            }
        }
        let timestamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let signature = match standardwebhooks::Webhook::from_bytes(webhook.secret.bytes().to_vec())
            .and_then(|w| w.sign(msg_id, timestamp, body.as_bytes()))
        {
            Ok(s) => s,
            Err(e) => return failed(format!("cannot sign the message: {e}")),
        };
        let response = self
            .client
            .post(webhook.url.clone())
            .timeout(timeout)
            .header("content-type", "application/json")
            .header(standardwebhooks::HEADER_WEBHOOK_ID, msg_id)
            .header(standardwebhooks::HEADER_WEBHOOK_TIMESTAMP, timestamp.to_string())
            .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
            .body(body.to_owned())
            .send()
            .await;
        match response {
            Err(e) => failed(describe(&e, timeout)),
            Ok(r) => {
                let status = r.status();
                let retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(retry_after);
                let (kind, error) = if status.is_success() {
                    (AttemptKind::Delivered, None)
                } else if status == reqwest::StatusCode::GONE {
                    (
                        AttemptKind::Gone,
                        Some("410 Gone: the endpoint is disabled until the tenants file changes".into()),
                    )
                } else {
                    (AttemptKind::Failed, Some(format!("the receiver answered {status}")))
                };
                Attempt { kind, status_code: Some(status.as_u16()), error, retry_after }
            }
        }
    }
}

/// A transport error as a sentence: what happened, with its cause chain.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs_f64());
    }
    let mut text = if e.is_connect() { "cannot connect".to_owned() } else { "the request failed".to_owned() };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `Retry-After` as seconds, or as an HTTP date (RFC 9110) from now.
fn retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate(v.trim())?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as Unix seconds.
fn httpdate(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| *m == parts[2])? as u64
        + 1;
    let year: u64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4].split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    if hms.len() != 3 || !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(httpdate("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO), "a date in the past: now");
        assert_eq!(retry_after("soon"), None);
    }
}
