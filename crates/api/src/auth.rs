//! Sign-In with Ethereum (EIP-4361) → JWT (HS256), and the extractor that
//! guards writes. `POST /api/auth/nonce` issues a single-use nonce (10 minutes);
//! `POST /api/auth/verify` takes the signed message and its signature, checks
//! domain, URI, chain id, nonce (unused, unexpired: consumed atomically),
//! validity times and the signer, and returns a JWT for the address.

use std::time::Duration;

use alloy_primitives::{Address, Signature};
use axum::{
    Json,
    extract::{FromRequestParts, State},
    http::{header, request::Parts},
};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Shared, error::ApiError, reply};

/// How sign-in is checked and tokens are made.
#[derive(Clone)]
pub struct AuthConfig {
    /// HS256 secret (`JWT_SECRET`).
    pub jwt_secret: Vec<u8>,
    /// How long a token lasts.
    pub token_ttl: Duration,
    /// The domain the message must name (`SIWE_DOMAIN`, e.g. `app.example.com`).
    pub domain: String,
    /// The message's URI must start with this (`SIWE_URI`, e.g. `https://app.example.com`).
    pub uri_prefix: String,
    /// The chain the message must name.
    pub chain_id: u64,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("jwt_secret", &"<redacted>")
            .field("token_ttl", &self.token_ttl)
            .field("domain", &self.domain)
            .field("uri_prefix", &self.uri_prefix)
            .field("chain_id", &self.chain_id)
            .finish()
    }
}

/// How long a nonce may be used.
const NONCE_TTL_SECS: i64 = 600;

/// `POST /api/auth/nonce`: a fresh single-use nonce.
#[utoipa::path(post, operation_id = "auth_nonce", path = "/api/auth/nonce", tag = "auth", responses((status = 200, description = "A single-use nonce, valid 10 minutes", body = crate::openapi::NonceReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn nonce(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    // Spent and expired nonces are kept a day (to answer "used" rather than "unknown"), then dropped.
    sqlx::query("DELETE FROM app.auth_nonces WHERE expires_at < now() - interval '1 day'").execute(&state.pool).await?;
    let expires: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO app.auth_nonces (nonce, expires_at) VALUES ($1, now() + make_interval(secs => $2))
         RETURNING expires_at",
    )
    .bind(&nonce)
    .bind(NONCE_TTL_SECS as f64)
    .fetch_one(&state.pool)
    .await?;
    Ok(reply::data(json!({ "nonce": nonce, "expires_at": crate::format::time(expires) })))
}

/// The body of `POST /api/auth/verify`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct VerifyBody {
    /// The EIP-4361 message, exactly as signed.
    pub message: String,
    /// The `personal_sign` signature, `0x` + 65 bytes hex.
    pub signature: String,
}

/// JWT claims.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The signed-in address (lowercase hex).
    sub: String,
    iat: i64,
    exp: i64,
}

/// `POST /api/auth/verify`: a JWT for the address that signed the message.
#[utoipa::path(post, operation_id = "auth_verify", path = "/api/auth/verify", tag = "auth", request_body = crate::auth::VerifyBody, responses((status = 200, description = "Signed in", body = crate::openapi::SessionReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn verify(
    State(state): State<Shared>,
    crate::params::RawBody(body): crate::params::RawBody,
) -> Result<Json<Value>, ApiError> {
    let body: VerifyBody = crate::params::json_body(&body)?;
    let auth = &state.auth;
    let message = SiweMessage::parse(&body.message)?;
    if message.domain != auth.domain {
        return Err(ApiError::Unauthorized(format!(
            "the message is for domain {:?}, not {:?}",
            message.domain, auth.domain
        )));
    }
    if !uri_under(&message.uri, &auth.uri_prefix) {
        return Err(ApiError::Unauthorized(format!(
            "the message's URI {:?} is not under {:?}",
            message.uri, auth.uri_prefix
        )));
    }
    if message.chain_id != auth.chain_id {
        return Err(ApiError::Unauthorized(format!(
            "the message is for chain {}, not {}",
            message.chain_id, auth.chain_id
        )));
    }
    let now = Utc::now();
    if message.expiration_time.is_some_and(|t| t <= now) {
        return Err(ApiError::Unauthorized("the message has expired".to_owned()));
    }
    if message.not_before.is_some_and(|t| t > now) {
        return Err(ApiError::Unauthorized("the message is not valid yet".to_owned()));
    }
    let signature: Signature =
        body.signature.parse().map_err(|_| ApiError::bad("signature", "not a 65-byte hex signature"))?;
    let signer = signature
        .recover_address_from_msg(body.message.as_bytes())
        .map_err(|_| ApiError::Unauthorized("the signature does not recover to an address".to_owned()))?;
    if signer != message.address {
        return Err(ApiError::Unauthorized(format!("signed by {signer:#x}, not by {:#x}", message.address)));
    }
    // Consumed atomically: a nonce signs in once, before it expires.
    let consumed: Option<String> = sqlx::query_scalar(
        "UPDATE app.auth_nonces SET used_at = now()
          WHERE nonce = $1 AND used_at IS NULL AND expires_at > now() RETURNING nonce",
    )
    .bind(&message.nonce)
    .fetch_optional(&state.pool)
    .await?;
    if consumed.is_none() {
        return Err(ApiError::Unauthorized("unknown, used or expired nonce".to_owned()));
    }
    let (token, exp) = issue_token(auth, message.address)?;
    Ok(reply::data(json!({
        "token": token,
        "address": format!("{:#x}", message.address),
        "expires_at": crate::format::unix_time(exp),
    })))
}

/// Whether `uri` is `prefix` or lies under it: the prefix must end at a path,
/// query or fragment boundary (`http://localhost:3000` does not cover
/// `http://localhost:30001` nor `http://localhost:3000.evil.com`).
fn uri_under(uri: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match uri.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with(['/', '?', '#']),
        None => false,
    }
}

/// A session token (HS256 JWT) for `address`, and its expiry (Unix seconds).
pub fn issue_token(auth: &AuthConfig, address: Address) -> Result<(String, i64), ApiError> {
    let iat = Utc::now().timestamp();
    let exp = iat + i64::try_from(auth.token_ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let claims = Claims { sub: format!("{address:#x}"), iat, exp };
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&auth.jwt_secret))
            .map_err(|e| ApiError::Internal(format!("JWT encoding: {e}")))?;
    Ok((token, exp))
}

/// The signed-in address of a request (`Authorization: Bearer <JWT>`); 401 otherwise.
pub struct SignedIn(pub Address);

impl FromRequestParts<Shared> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::Unauthorized("sign in first (Authorization: Bearer <token>)".to_owned()))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".to_owned()))?;
        Ok(SignedIn(address_of_token(&state.auth, token)?))
    }
}

/// The address a sign-in token (JWT, HS256, unexpired) was issued to; 401 otherwise.
/// The REST API and the Socket.IO handshake (`auth.token`) check tokens with it.
pub fn address_of_token(auth: &AuthConfig, token: &str) -> Result<Address, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&auth.jwt_secret), &validation)
        .map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))?;
    data.claims.sub.parse().map_err(|_| ApiError::Unauthorized("invalid token subject".to_owned()))
}

/// The fields of an EIP-4361 message this API checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiweMessage {
    /// `${domain} wants you to sign in…`.
    pub domain: String,
    /// The account.
    pub address: Address,
    /// `URI:`.
    pub uri: String,
    /// `Chain ID:`.
    pub chain_id: u64,
    /// `Nonce:`.
    pub nonce: String,
    /// `Issued At:`.
    pub issued_at: DateTime<Utc>,
    /// `Expiration Time:`, if any.
    pub expiration_time: Option<DateTime<Utc>>,
    /// `Not Before:`, if any.
    pub not_before: Option<DateTime<Utc>>,
}

const PREAMBLE: &str = " wants you to sign in with your Ethereum account:";

impl SiweMessage {
    /// Parses the message (400 naming `message` and what is wrong).
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let bad = |why: &str| ApiError::bad("message", format!("not an EIP-4361 message: {why}"));
        let mut lines = text.split('\n');
        let domain = lines
            .next()
            .and_then(|l| l.strip_suffix(PREAMBLE))
            .filter(|d| !d.is_empty() && !d.contains(char::is_whitespace))
            .ok_or_else(|| bad("the first line must be `<domain> wants you to sign in with your Ethereum account:`"))?;
        let address_line = lines.next().ok_or_else(|| bad("no address line"))?;
        let address = Address::parse_checksummed(address_line, None)
            .map_err(|_| bad("the second line must be an EIP-55 checksummed address"))?;
        let (mut uri, mut version, mut chain_id, mut nonce, mut issued_at) = (None, None, None, None, None);
        let (mut expiration_time, mut not_before) = (None, None);
        let time = |v: &str| {
            DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)).map_err(|_| bad("a time is not RFC 3339"))
        };
        for line in lines {
            let Some((key, value)) = line.split_once(": ") else { continue };
            match key {
                "URI" => uri = Some(value.to_owned()),
                "Version" => version = Some(value.to_owned()),
                "Chain ID" => chain_id = Some(value.parse::<u64>().map_err(|_| bad("Chain ID is not a number"))?),
                "Nonce" => nonce = Some(value.to_owned()),
                "Issued At" => issued_at = Some(time(value)?),
                "Expiration Time" => expiration_time = Some(time(value)?),
                "Not Before" => not_before = Some(time(value)?),
                _ => {}
            }
        }
        if version.as_deref() != Some("1") {
            return Err(bad("Version must be 1"));
        }
        let nonce = nonce.ok_or_else(|| bad("no Nonce"))?;
        if nonce.len() < 8 || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad("the Nonce must be at least 8 alphanumeric characters"));
        }
        Ok(SiweMessage {
            domain: domain.to_owned(),
            address,
            uri: uri.ok_or_else(|| bad("no URI"))?,
            chain_id: chain_id.ok_or_else(|| bad("no Chain ID"))?,
            nonce,
            issued_at: issued_at.ok_or_else(|| bad("no Issued At"))?,
            expiration_time,
            not_before,
        })
    }
}

/// Middleware: a request with a valid token counts against its address's
/// per-minute quota (429 with `Retry-After` once spent), whatever the route and
/// the IP. Requests without a valid token pass (routes that need one refuse them).
pub async fn limit_per_address(
    State(state): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = token
        && let Ok(address) = address_of_token(&state.auth, token)
        && let Err(limited) = crate::protection::check(&state.per_address, &address)
    {
        return limited.into_response();
    }
    next.run(request).await
}
