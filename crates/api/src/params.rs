//! Query-string and path parsing that names the offending field (SPEC §6:
//! invalid ids, addresses, timeframes, numbers, enums → 400 naming the field).

use alloy_primitives::{Address, B256};
use animoca_domain::{MarketType, Timeframe};
use chrono::DateTime;

use crate::error::ApiError;

/// A request's query parameters (the first value of a repeated name wins).
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query string (`None`: no query).
    pub fn parse(raw: Option<&str>) -> Self {
        Params(url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect())
    }

    /// The value of `name`, if given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str()).filter(|v| !v.is_empty())
    }

    /// Free text of at most `max_chars` characters without control characters
    /// (PostgreSQL text cannot hold NUL), or `None` when absent.
    pub fn text(&self, name: &str, max_chars: usize) -> Result<Option<&str>, ApiError> {
        let Some(text) = self.get(name) else { return Ok(None) };
        if text.chars().count() > max_chars {
            return Err(ApiError::bad(name, format!("at most {max_chars} characters")));
        }
        if text.chars().any(char::is_control) {
            return Err(ApiError::bad(name, "control characters are not allowed"));
        }
        Ok(Some(text))
    }

    /// An integer in `range`, or `default` when absent.
    pub fn int(&self, name: &str, range: std::ops::RangeInclusive<i64>, default: i64) -> Result<i64, ApiError> {
        let Some(text) = self.get(name) else { return Ok(default) };
        let value: i64 = text.parse().map_err(|_| ApiError::bad(name, format!("{text:?} is not an integer")))?;
        if !range.contains(&value) {
            return Err(ApiError::bad(name, format!("must be between {} and {}", range.start(), range.end())));
        }
        Ok(value)
    }

    /// `limit` (1–`max`, default `default`).
    pub fn limit(&self, default: i64, max: i64) -> Result<i64, ApiError> {
        self.int("limit", 1..=max, default)
    }

    /// `offset` (≥ 0, default 0).
    pub fn offset(&self) -> Result<i64, ApiError> {
        self.int("offset", 0..=1_000_000_000, 0)
    }

    /// One of `allowed`, or `None` when absent.
    pub fn choice(&self, name: &str, allowed: &[&'static str]) -> Result<Option<&'static str>, ApiError> {
        let Some(text) = self.get(name) else { return Ok(None) };
        allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(text))
            .copied()
            .map(Some)
            .ok_or_else(|| ApiError::bad(name, format!("{text:?} is not one of {}", allowed.join(", "))))
    }

    /// A boolean (`true`/`false`/`1`/`0`), default `default`.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ApiError::bad(name, format!("{other:?} is not true or false"))),
        }
    }

    /// A time as ISO-8601 or Unix seconds, as Unix seconds.
    pub fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(text) = self.get(name) else { return Ok(None) };
        if let Ok(seconds) = text.parse::<i64>() {
            if !(0..=253_402_300_799).contains(&seconds) {
                return Err(ApiError::bad(name, "Unix seconds out of range"));
            }
            return Ok(Some(seconds));
        }
        DateTime::parse_from_rfc3339(text)
            .map(|t| Some(t.timestamp()))
            .map_err(|_| ApiError::bad(name, format!("{text:?} is neither ISO-8601 nor Unix seconds")))
    }

    /// A timeframe (`1m` … `1w`), default `default`.
    pub fn timeframe(&self, name: &str, default: Timeframe) -> Result<Timeframe, ApiError> {
        let Some(text) = self.get(name) else { return Ok(default) };
        text.parse().map_err(|_| ApiError::bad(name, format!("{text:?} is not one of 1m, 5m, 15m, 1h, 4h, 1d, 1w")))
    }
}

/// Path segments, like axum's `Path`, but a segment that does not decode (bad
/// percent-encoding, not UTF-8) is a 400 in the envelope.
pub struct Segments<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S> for Segments<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Segments(value))
            .map_err(|rejection| ApiError::bad("path", rejection.body_text()))
    }
}

/// The market a route names: `/api/{credentials|personas}/{id}/…` (an unknown
/// kind is a 404, a malformed id a 400 on `id`).
pub struct MarketPath {
    /// From the first segment.
    pub market_type: MarketType,
    /// The bytes32 market id.
    pub id: B256,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for MarketPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        let Segments((kind, id)) = Segments::<(String, String)>::from_request_parts(parts, state).await?;
        Ok(MarketPath { market_type: market_kind(&kind)?, id: bytes32("id", &id)? })
    }
}

/// The market type of a route's first segment (`credentials` or `personas`).
pub fn market_kind(segment: &str) -> Result<MarketType, ApiError> {
    match segment {
        "credentials" => Ok(MarketType::Credential),
        "personas" => Ok(MarketType::Persona),
        _ => Err(ApiError::NotFound("route".to_owned())),
    }
}

/// A bytes32 id: `0x` and 64 hex digits.
pub fn bytes32(field: &str, text: &str) -> Result<B256, ApiError> {
    let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"));
    match hex {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            text.parse().map_err(|_| ApiError::bad(field, "not a 0x-prefixed 32-byte hex id"))
        }
        _ => Err(ApiError::bad(field, format!("{text:?} is not a 0x-prefixed 32-byte hex id"))),
    }
}

/// A JSON request body, or a 400 naming the field that is missing or wrong
/// (`body` when it is not JSON at all).
pub fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() { "body".to_owned() } else { path };
        ApiError::BadRequest { field, message: e.into_inner().to_string() }
    })
}

/// A 20-byte address: `0x` and 40 hex digits.
pub fn address(field: &str, text: &str) -> Result<Address, ApiError> {
    let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"));
    match hex {
        Some(hex) if hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            text.parse().map_err(|_| ApiError::bad(field, "not a 0x-prefixed 20-byte address"))
        }
        _ => Err(ApiError::bad(field, format!("{text:?} is not a 0x-prefixed 20-byte address"))),
    }
}

/// Free text of a body field: at most `max` characters, no control characters
/// but newlines (PostgreSQL text cannot hold NUL).
pub fn body_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::bad(field, format!("at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::bad(field, "control characters are not allowed"));
    }
    Ok(())
}

/// An `http(s)://` URL of at most 500 characters.
pub fn http_url(field: &str, value: &str) -> Result<(), ApiError> {
    body_text(field, value, 500)?;
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(ApiError::bad(field, "must be an http(s) URL")),
    }
}

/// A request body as bytes, with the body-size limit's rejection in the error
/// envelope (413 `PAYLOAD_TOO_LARGE`, also for chunked bodies without a
/// `Content-Length`) and any other read failure as a 400 on `body`.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match axum::body::Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(RawBody(bytes)),
            Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge)
            }
            Err(rejection) => Err(ApiError::bad("body", rejection.body_text())),
        }
    }
}
