//! The market explorer: a single page at `/` that lists both markets and shows
//! a market's live candlestick chart, trades, holders, linked credentials, stake
//! and proposals, kept live over Socket.IO.
//!
//! Everything it loads is embedded in the binary: the page, its script and style,
//! and two browser modules copied from the pinned npm packages by
//! `scripts/vendor-explorer-assets` (TradingView Lightweight Charts, the official
//! Socket.IO client). No CDN, no build step. The page reads the REST API and
//! Socket.IO of the same origin; see `docs/explorer.md`.

use axum::{
    Router,
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Path under `/explorer/`.
    pub name: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The bytes served.
    pub body: &'static [u8],
    /// Third-party files carry their version in the name and never change.
    pub immutable: bool,
}

/// The files under `/explorer/`.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/app.js"),
        immutable: false,
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/style.css"),
        immutable: false,
    },
    Asset {
        name: "vendor/lightweight-charts-5.3.0.mjs",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/vendor/lightweight-charts-5.3.0.mjs"),
        immutable: true,
    },
    Asset {
        name: "vendor/socket.io-client-4.8.3.esm.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/vendor/socket.io-client-4.8.3.esm.min.js"),
        immutable: true,
    },
];

/// The page itself.
pub const INDEX_HTML: &str = include_str!("../assets/index.html");

/// What the page may load: its own origin only (scripts, styles, the API and
/// Socket.IO). Inline styles are allowed for the chart library's canvases.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// `GET /` (the page) and `GET /explorer/{file}` (its assets), for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index)).route("/explorer/{*file}", get(asset))
}

async fn index() -> Response {
    let mut response = (StatusCode::OK, INDEX_HTML).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

async fn asset(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == file) else {
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "no such explorer file")
            .into_response();
    };
    let cache = if asset.immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.body,
    )
        .into_response()
}
