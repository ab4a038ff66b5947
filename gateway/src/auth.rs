//! API keys: `Authorization: Bearer <key>`. Keys are kept as SHA-256 digests and compared in constant time, so
//! neither the comparison's timing nor a memory dump gives a key away; they are never logged.
//!
//! With a tenants file a key names its tenant, and the tenant's request rate is enforced here, before any
//! handler runs; without one, `--api-key` keys are one tenant, and no keys at all is the open mode.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::AppState;

#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

/// Who a request comes from: the key it presented (by the key's digest, the same on every instance whatever
/// order the keys are configured in), or `Open` when no keys are configured.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    Open,
    Key([u8; 32]),
    /// A tenant of the tenants file, by id.
    Tenant(String),
    /// A quote session without tenants, by its id.
    Session(String),
}

/// Whose a request is and what it may ask for: its tenant when the gateway has a tenants file (the jobs it may
/// see, its segments and limits), and the quote session it came with, if any (one segment, a number of quotes).
#[derive(Clone, Debug, Default)]
pub struct TenantOf {
    pub tenant: Option<Arc<tenants::Tenant>>,
    pub session: Option<crate::session::Claims>,
}

impl TenantOf {
    /// The tenant whose jobs these are (none without tenants: one tenant, every job).
    pub fn id(&self) -> Option<&str> {
        self.tenant.as_deref().map(|t| t.id.as_str())
    }

    /// The segments this request may ask for, its default first; `None`: any the rules have.
    pub fn allowed_segments(&self) -> Option<Vec<&str>> {
        match (&self.session, &self.tenant) {
            (Some(s), _) => Some(vec![s.segment.as_str()]),
            (None, Some(t)) => Some(t.segments.iter().map(String::as_str).collect()),
            (None, None) => None,
        }
    }

    pub fn default_segment(&self) -> Option<&str> {
        self.allowed_segments().and_then(|s| s.first().copied())
    }
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id())
    }
}

impl Caller {
    /// A stable name for the caller that gives no key away: `open`, or `key:` and 16 hex digits of its digest.
    pub fn id(&self) -> String {
        match self {
            Caller::Open => "open".into(),
            Caller::Key(d) => format!("key:{}", d[..8].iter().map(|b| format!("{b:02x}")).collect::<String>()),
            Caller::Tenant(id) => format!("tenant:{id}"),
            Caller::Session(sid) => format!("session:{sid}"),
        }
    }
}

impl ApiKeys {
    pub fn new<S: AsRef<str>>(keys: &[S]) -> ApiKeys {
        ApiKeys { digests: keys.iter().map(|k| Sha256::digest(k.as_ref().as_bytes()).into()).collect() }
    }

    pub fn is_open(&self) -> bool {
        self.digests.is_empty()
    }

    /// The caller a presented key belongs to. Every configured key is compared, all bytes of each, whatever
    /// matches: the time taken does not depend on the key presented.
    pub fn identify(&self, presented: Option<&str>) -> Option<Caller> {
        if self.is_open() {
            return Some(Caller::Open);
        }
        let digest: [u8; 32] = Sha256::digest(presented?.as_bytes()).into();
        let mut found = None;
        for d in &self.digests {
            if tenants::digest_eq(d, &digest) && found.is_none() {
                found = Some(Caller::Key(*d));
            }
        }
        found
    }
}

/// 429 when the tenant is over its requests per minute.
fn rate_limited(state: &AppState, tenant: Option<&tenants::Tenant>) -> Option<Response> {
    let t = tenant?;
    let rate = t.rate_per_minute?;
    let wait = state.rate.take(&t.id, rate, std::time::Instant::now()).err()?;
    let message = format!(
        "tenant \"{}\" is over its {rate} requests per minute: retry after the seconds Retry-After gives",
        t.id
    );
    Some(ApiError::too_many(wait, "rate_limited", message).into_response())
}

/// The key a request presents: the `Authorization: Bearer` header, or for WebSockets (which browsers open
/// without custom headers) an `access_token` query parameter.
fn presented(req: &Request) -> Option<String> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned());
    }
    if req.uri().path().ends_with("/events") {
        let query = req.uri().query()?;
        return query.split('&').find_map(|pair| pair.strip_prefix("access_token=")).map(str::to_owned);
    }
    None
}

/// Lets a request through with its [`Caller`] and [`TenantOf`] in the extensions, or answers 401 (no key, or
/// a key no tenant has) or 429 (the tenant's requests per minute are used up).
pub async fn require_key(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    // A quote session's token: signed by this service, so its claims are what the shop asked for.
    if let Some(token) = presented(&req).filter(|p| crate::session::is_token(p)) {
        let verified = match state.config.session_secret.as_deref() {
            Some(key) => crate::session::verify(key, &token, crate::session::now_secs()),
            None => Err(crate::session::Refused::Invalid),
        };
        let claims = match verified {
            Ok(c) => c,
            Err(why) => {
                let (code, message) = match why {
                    crate::session::Refused::Expired => {
                        ("session_expired", "this quote session has expired: ask the shop for a new link")
                    }
                    crate::session::Refused::Invalid => {
                        ("session_invalid", "this quote session is not valid: ask the shop for a new link")
                    }
                };
                return ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response();
            }
        };
        // Its tenant must still be in the file (a tenant removed takes its sessions with it).
        let tenant = match (&claims.tenant, &state.config.tenants) {
            (Some(id), Some(source)) => match source.current().get(id) {
                Some(t) => Some(t.clone()),
                None => {
                    let message = "this quote session's shop is no longer served here: ask the shop for a new link";
                    return ApiError::new(StatusCode::UNAUTHORIZED, "session_invalid", message).into_response();
                }
            },
            _ => None,
        };
        let caller = match &tenant {
            Some(t) => Caller::Tenant(t.id.clone()),
            None => Caller::Session(claims.sid.clone()),
        };
        if let Some(limited) = rate_limited(&state, tenant.as_deref()) {
            return limited;
        }
        req.extensions_mut().insert(caller);
        req.extensions_mut().insert(TenantOf { tenant, session: Some(claims) });
        return next.run(req).await;
    }
    let identified = match &state.config.tenants {
        Some(source) => {
            let tenants = source.current();
            presented(&req).and_then(|k| tenants.identify(&k)).map(|t| (Caller::Tenant(t.id.clone()), Some(t)))
        }
        None => state.keys.identify(presented(&req).as_deref()).map(|c| (c, None)),
    };
    match identified {
        Some((caller, tenant)) => {
            if let Some(limited) = rate_limited(&state, tenant.as_deref()) {
                return limited;
            }
            req.extensions_mut().insert(caller);
            req.extensions_mut().insert(TenantOf { tenant, session: None });
            next.run(req).await
        }
        None => {
            let message = if req.headers().contains_key(header::AUTHORIZATION) {
                "the API key is not valid"
            } else {
                "an API key is required: send \"Authorization: Bearer <key>\""
            };
            let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_told_apart() {
        let keys = ApiKeys::new(&["alpha", "beta"]);
        let beta = keys.identify(Some("beta")).expect("beta");
        let alpha = keys.identify(Some("alpha")).expect("alpha");
        assert_ne!(alpha, beta);
        // The same key in another order (another instance's configuration) is the same caller.
        assert_eq!(ApiKeys::new(&["beta", "alpha"]).identify(Some("alpha")), Some(alpha.clone()));
        assert!(alpha.id().starts_with("key:") && alpha.id().len() == 20 && !alpha.id().contains("alpha"));
        assert_eq!(keys.identify(Some("alph")), None);
        assert_eq!(keys.identify(None), None);
        assert_eq!(ApiKeys::new::<&str>(&[]).identify(None), Some(Caller::Open));
        assert!(!format!("{keys:?}").contains("alpha"));
    }
}
