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
}

/// The tenant a request comes from, when the gateway has a tenants file: what it may ask for and its limits.
#[derive(Clone, Debug)]
pub struct TenantOf(pub Option<Arc<tenants::Tenant>>);

impl TenantOf {
    pub fn id(&self) -> Option<&str> {
        self.0.as_deref().map(|t| t.id.as_str())
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
    let identified = match &state.config.tenants {
        Some(source) => {
            let tenants = source.current();
            presented(&req).and_then(|k| tenants.identify(&k)).map(|t| (Caller::Tenant(t.id.clone()), Some(t)))
        }
        None => state.keys.identify(presented(&req).as_deref()).map(|c| (c, None)),
    };
    match identified {
        Some((caller, tenant)) => {
            if let Some(t) = &tenant {
                if let Some(rate) = t.rate_per_minute {
                    if let Err(wait) = state.rate.take(&t.id, rate, std::time::Instant::now()) {
                        let message = format!(
                            "tenant \"{}\" is over its {rate} requests per minute: retry after the seconds Retry-After gives",
                            t.id
                        );
                        return ApiError::too_many(wait, "rate_limited", message).into_response();
                    }
                }
            }
            req.extensions_mut().insert(caller);
            req.extensions_mut().insert(TenantOf(tenant));
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
