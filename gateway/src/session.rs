//! Quote sessions: a shop's back end asks for one per customer (`POST /v1/sessions`, with its API key) and opens
//! the quote page with it (`/?session=TOKEN`), so no key ever reaches a browser. A token is signed (HMAC-SHA256
//! with the gateway's session secret, the same on every instance), scoped to the tenant that made it (when there
//! are tenants) and one segment, and good for a number of quotes until it expires.
//!
//! `as1.<claims, base64url JSON>.<signature, base64url>`; the claims are readable by anyone holding the token
//! (they hold nothing secret) and cannot be changed without the secret.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::TenantOf;
use crate::error::{ApiError, ErrorResponse};
use crate::AppState;

const PREFIX: &str = "as1.";
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const MAX_QUOTES: u32 = 1000;

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The session's id, random.
    pub sid: String,
    /// The tenant it was made for (none without tenants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub segment: String,
    /// Quotes it may submit.
    pub quotes: u32,
    /// When it expires, in Unix seconds.
    pub exp: u64,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// Signs claims with `key`.
pub fn sign(key: &[u8], claims: &Claims) -> String {
    use base64::Engine as _;
    let body = format!("{PREFIX}{}", b64().encode(serde_json::to_vec(claims).unwrap_or_default()));
    let mac = hmac_sha256::HMAC::mac(body.as_bytes(), key);
    format!("{body}.{}", b64().encode(mac))
}

/// Whether a presented credential is a session token (rather than an API key).
pub fn is_token(presented: &str) -> bool {
    presented.starts_with(PREFIX)
}

/// Why a token was refused, in words for the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Invalid,
    Expired,
}

/// The claims of a token signed with `key` and not expired at `now` (Unix seconds).
pub fn verify(key: &[u8], token: &str, now: u64) -> Result<Claims, Refused> {
    use base64::Engine as _;
    let (body, sig) = token.rsplit_once('.').ok_or(Refused::Invalid)?;
    let sig = b64().decode(sig).map_err(|_| Refused::Invalid)?;
    let mac = hmac_sha256::HMAC::mac(body.as_bytes(), key);
    if sig.len() != mac.len() || sig.iter().zip(mac.iter()).fold(0u8, |a, (x, y)| a | (x ^ y)) != 0 {
        return Err(Refused::Invalid);
    }
    let claims = body.strip_prefix(PREFIX).ok_or(Refused::Invalid)?;
    let claims: Claims =
        serde_json::from_slice(&b64().decode(claims).map_err(|_| Refused::Invalid)?).map_err(|_| Refused::Invalid)?;
    if claims.exp <= now {
        return Err(Refused::Expired);
    }
    Ok(claims)
}

pub fn now_secs() -> u64 {
    jobs::now_ms() / 1000
}

/// What a shop's back end asks for.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// The segment the customer is priced in: one the tenant may use (default: its first; without tenants, b2c).
    #[serde(default)]
    pub segment: Option<String>,
    /// Quotes the session may submit (default 20, at most 1,000).
    #[serde(default)]
    pub quotes: Option<u32>,
    /// Seconds until it expires (default 3,600, at most a week).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// A session for one customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionCreated {
    /// The token: pass it to the page as `/?session=TOKEN`, or as `Authorization: Bearer TOKEN` to the API.
    pub token: String,
    /// The page opened with it, relative to this service.
    pub url: String,
    /// When it expires, in Unix seconds.
    pub expires_at: u64,
    pub segment: String,
    pub quotes: u32,
}

/// Makes a quote session for one customer, scoped to the caller's tenant and one of its segments.
#[utoipa::path(
    post,
    path = "/v1/sessions",
    tag = "sessions",
    request_body(content = SessionRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The session", body = SessionCreated),
        (status = 401, description = "Missing or wrong API key (a session cannot make sessions)", body = ErrorResponse),
        (status = 403, description = "A segment the tenant may not use", body = ErrorResponse),
        (status = 422, description = "Invalid request (unknown segment, quotes or ttl out of range)", body = ErrorResponse),
        (status = 503, description = "Sessions need a session secret shared by every gateway (ASSAY_SESSION_SECRET)", body = ErrorResponse),
    ),
    security(("api_key" = []), ())
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<TenantOf>,
    body: Option<Json<SessionRequest>>,
) -> Result<Response, ApiError> {
    let Some(key) = state.config.session_secret.as_deref() else {
        return Err(ApiError::unavailable(
            "sessions_unavailable",
            "this gateway has no session secret: set ASSAY_SESSION_SECRET (the same on every gateway) to make sessions",
        ));
    };
    if scope.session.is_some() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a session cannot make sessions: use the shop's API key",
        ));
    }
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let segment = match req.segment {
        Some(s) => s,
        None => scope.default_segment().unwrap_or("b2c").to_owned(),
    };
    if let Some(allowed) = scope.allowed_segments() {
        if !allowed.iter().any(|a| *a == segment) {
            return Err(crate::submit::segment_not_allowed(&segment, &allowed));
        }
    }
    if !state.rules.current().segments.contains_key(&segment) {
        return Err(ApiError::unprocessable(
            "unknown_segment",
            format!("unknown segment \"{segment}\": see GET /v1/rules for the segments"),
        ));
    }
    let quotes = req.quotes.unwrap_or(20);
    if !(1..=MAX_QUOTES).contains(&quotes) {
        return Err(ApiError::unprocessable("invalid_quotes", format!("quotes must be from 1 to {MAX_QUOTES}")));
    }
    let ttl = req.ttl_secs.unwrap_or(3600);
    if ttl == 0 || ttl > MAX_TTL.as_secs() {
        return Err(ApiError::unprocessable(
            "invalid_ttl",
            format!("ttl_secs must be from 1 to {} (a week)", MAX_TTL.as_secs()),
        ));
    }
    let claims = Claims {
        sid: jobs::protocol::new_job_id(),
        tenant: scope.id().map(str::to_owned),
        segment: segment.clone(),
        quotes,
        exp: now_secs() + ttl,
    };
    let token = sign(key, &claims);
    let created = SessionCreated { url: format!("/?session={token}"), token, expires_at: claims.exp, segment, quotes };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_they_expire_and_not_when_changed() {
        let key = b"0123456789abcdef0123456789abcdef";
        let claims =
            Claims { sid: "s".into(), tenant: Some("shop".into()), segment: "b2c".into(), quotes: 3, exp: 100 };
        let token = sign(key, &claims);
        assert!(is_token(&token));
        assert_eq!(verify(key, &token, 99), Ok(claims.clone()));
        assert_eq!(verify(key, &token, 100), Err(Refused::Expired));
        assert_eq!(verify(b"another key, another key, another", &token, 99), Err(Refused::Invalid));
        // Claims changed (b2b for b2c) with the old signature: refused.
        use base64::Engine as _;
        let forged = Claims { segment: "b2b".into(), ..claims };
        let body = format!("{PREFIX}{}", b64().encode(serde_json::to_vec(&forged).unwrap_or_default()));
        let sig = token.rsplit_once('.').map(|(_, s)| s).unwrap_or_default();
        assert_eq!(verify(key, &format!("{body}.{sig}"), 99), Err(Refused::Invalid));
        assert_eq!(verify(key, "as1.garbage", 99), Err(Refused::Invalid));
    }
}
