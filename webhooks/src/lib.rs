//! Signed webhooks when a quote is ready.
//!
//! A tenant with a webhook (the tenants file) hears of its jobs' events: the job as `GET /v1/quotes/{id}` shows
//! it, POSTed to its URL and signed per the Standard Webhooks specification (`webhook-id`, stable per job and
//! event so receivers deduplicate; `webhook-timestamp`; `webhook-signature`, HMAC-SHA256 by the
//! `standardwebhooks` crate). Delivery is at least once: a [`Notifier`] takes due deliveries from an
//! [`Outbox`](jobs::Outbox), makes one attempt each ([`Sender`]), and records a 2xx as delivered, anything else as
//! a retry on the file's schedule (jittered, `Retry-After` honoured) until the last, then failed; 410 Gone
//! disables the tenant's endpoint until the tenants file changes.
//!
//! Receivers are only reached over https at public addresses, checked after DNS resolution on every attempt
//! ([`guard`]), unless the file says `allow_private_network = true`.

pub mod guard;
mod memory;
mod notifier;
mod sender;

pub use memory::MemoryOutbox;
pub use notifier::{Notifier, NotifierConfig};
pub use sender::{Attempt, AttemptKind, Sender};

use jobs::Status;

/// The `webhook-id` of a job's event: the same on every attempt and from every process, so a receiver that
/// sees it twice knows it is one message.
pub fn message_id(job_id: &str, event: Status) -> String {
    format!("msg_{job_id}_{}", event.as_str())
}

/// The webhook `tenant` has for a job's `status`, when it has one that wants that event.
pub fn webhook_for(tenants: &tenants::Tenants, tenant: &str, status: Status) -> Option<tenants::Webhook> {
    let event = event_of(status)?;
    tenants.get(tenant)?.webhook.clone().filter(|w| w.wants(event))
}

/// The tenants file's event for a job status (none for `queued`, which no worker sends).
pub fn event_of(s: Status) -> Option<tenants::Event> {
    match s {
        Status::Queued => None,
        Status::Running => Some(tenants::Event::Running),
        Status::Done => Some(tenants::Event::Done),
        Status::Failed => Some(tenants::Event::Failed),
    }
}
