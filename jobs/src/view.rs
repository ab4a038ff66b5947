//! A job as its tenant sees it: the answer to `GET /v1/quotes/{id}`, every message on the events socket, and the
//! body of every webhook, one type so the three never differ.

use serde::{Deserialize, Serialize};

use crate::protocol::{JobResult, Outcome};

/// A job as a client sees it: its status and exactly what that status has. `queued` and `running` carry no
/// price; `done` carries the geometry, the quotes and the stage timings; `failed` always carries an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuoteView {
    pub job_id: String,
    /// When the gateway accepted it, in ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at_ms: Option<u64>,
    /// The worker instance that took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The trace of the quote, from the request to the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The webhook delivery of the job's final result, when its tenant has a webhook for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookStatus>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl From<&JobResult> for QuoteView {
    fn from(r: &JobResult) -> QuoteView {
        QuoteView {
            job_id: r.job_id.clone(),
            submitted_at_ms: r.submitted_at_ms,
            worker: Some(r.worker.clone()).filter(|w| !w.is_empty()),
            trace_id: r.trace_id.clone(),
            webhook: None,
            outcome: r.outcome.clone(),
        }
    }
}

/// A message as its tenant sees it, as JSON: the body of a webhook.
pub fn body(result: &JobResult) -> String {
    serde_json::to_string(&QuoteView::from(result)).unwrap_or_default()
}

/// Where a webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet: the next attempt is scheduled.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Given up: every attempt failed, the endpoint answered 410 Gone, or the tenant's webhook was removed.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// A job's webhook delivery, as `GET /v1/quotes/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookStatus {
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the last attempt was made, in ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<u64>,
    /// The HTTP status the receiver last answered (none after a timeout or a refused connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status_code: Option<u16>,
    /// Why the last attempt did not deliver, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A job's webhook delivery as the scaled notifier publishes it for the gateways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryUpdate {
    pub job_id: String,
    pub webhook: WebhookStatus,
}
