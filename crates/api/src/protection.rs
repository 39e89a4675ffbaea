//! What stands between the internet and the handlers (SPEC §6, issue #9 item 7):
//! a rate limit per client IP (429 with `Retry-After`; signed-in requests are
//! also limited per address, in [`crate::auth::SignedIn`]), a request body size
//! limit (413), a per-request timeout (503), CORS from `CORS_ORIGINS`, and a
//! request id (`x-request-id`, generated unless the client sent one) in the
//! response and in every log line of the request. Errors keep the envelope.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    http::{HeaderName, HeaderValue, Method, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::error::ApiError;

/// Limits of the API.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests per minute per client IP (`RATE_LIMIT_PER_MINUTE`).
    pub per_ip_per_minute: NonZeroU32,
    /// Signed-in requests per minute per address, whatever the IP
    /// (`RATE_LIMIT_PER_ADDRESS_PER_MINUTE`).
    pub per_address_per_minute: NonZeroU32,
    /// Largest request body, bytes.
    pub body_bytes: u64,
    /// Longest a request may take before a 503.
    pub timeout: Duration,
    /// Origins allowed by CORS (`CORS_ORIGINS`; `*` allows any).
    pub cors_origins: Vec<String>,
    /// Behind a reverse proxy: the client IP is the first `X-Forwarded-For`
    /// address (`TRUST_PROXY`; off: the peer address).
    pub trust_forwarded_for: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_ip_per_minute: NonZeroU32::new(6_000).unwrap_or(NonZeroU32::MIN),
            per_address_per_minute: NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN),
            body_bytes: 64 * 1024,
            timeout: Duration::from_secs(10),
            cors_origins: vec!["*".to_owned()],
            trust_forwarded_for: false,
        }
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps `router` in the protections, outermost first: request id, trace, CORS,
/// rate limit, body limit, timeout.
pub fn protect(router: Router, limits: &Limits) -> Router {
    let per_ip: Arc<DefaultKeyedRateLimiter<IpAddr>> = keyed_limiter(limits.per_ip_per_minute);
    let per_ip = Arc::new(PerIp { limiter: per_ip, trust_forwarded_for: limits.trust_forwarded_for });
    let limits = Arc::new(limits.clone());
    router
        .layer(axum::extract::DefaultBodyLimit::max(usize::try_from(limits.body_bytes).unwrap_or(usize::MAX)))
        .layer(middleware::from_fn_with_state(limits.clone(), bounded))
        .layer(middleware::from_fn_with_state(per_ip, rate_limited))
        .layer(cors(&limits.cors_origins))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), SequentialIds::new()))
}

/// The CORS policy of `CORS_ORIGINS` (`*`: any origin); Socket.IO uses it too.
pub fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([REQUEST_ID.clone(), header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// 429 with `Retry-After` once a client IP exceeds its quota. Without a peer
/// address (in-process tests) every request counts against one key.
/// The per-IP limiter and how to find the client's IP.
struct PerIp {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    trust_forwarded_for: bool,
}

async fn rate_limited(State(per_ip): State<Arc<PerIp>>, request: Request, next: Next) -> Response {
    let forwarded = per_ip
        .trust_forwarded_for
        .then(|| request.headers().get("x-forwarded-for"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|first| first.trim().parse::<IpAddr>().ok());
    let ip = forwarded.unwrap_or_else(|| {
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| addr.ip())
    });
    match check(&per_ip.limiter, &ip) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// One request against `key`'s quota: a 429 naming when to retry once it is spent.
pub fn check<K: Clone + Eq + std::hash::Hash>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), ApiError> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        ApiError::RateLimited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    })
}

/// A limiter of `per_minute` requests per key. Keys whose quota is full again
/// are dropped every minute (a task that ends with the limiter), so memory
/// follows the active clients, not every client ever seen.
pub fn keyed_limiter<K: Clone + Eq + std::hash::Hash + Send + Sync + 'static>(
    per_minute: NonZeroU32,
) -> Arc<DefaultKeyedRateLimiter<K>> {
    let limiter = Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute)));
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let weak = Arc::downgrade(&limiter);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else { return };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
    }
    limiter
}

/// 413 for a body larger than the limit (by its `Content-Length`; bodies are
/// also read with this limit), 503 for a request slower than the timeout.
async fn bounded(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.body_bytes) {
        return ApiError::PayloadTooLarge.into_response();
    }
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable("the request timed out".to_owned()).into_response(),
    }
}

/// Runs the rest of the request in a task of its own, so that a client that
/// disconnects (or the timeout) drops only the wait, never a handler halfway
/// through a database transaction or a write. A panic is a 500 in the envelope.
pub async fn run_to_completion(request: Request, next: Next) -> Response {
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(error) => ApiError::Internal(format!("request task failed: {error}")).into_response(),
    }
}

/// Request ids: a random per-process prefix and a counter (`3f9c…-1a2b`), unique
/// without a random draw per request (a UUID v4 cost a `getrandom` syscall each).
#[derive(Clone)]
struct SequentialIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl SequentialIds {
    fn new() -> Self {
        let prefix = uuid::Uuid::new_v4().simple().to_string();
        Self { prefix: prefix.into(), next: Arc::new(std::sync::atomic::AtomicU64::new(1)) }
    }
}

impl MakeRequestId for SequentialIds {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix)).ok().map(RequestId::new)
    }
}
