//! The OpenAPI 3.1 document (`GET /openapi.json`) and its offline docs page
//! (`GET /docs`), generated with utoipa from the handlers' `#[utoipa::path]`
//! attributes, the request body types the handlers deserialize, and the
//! response shapes below. Every response shape forbids properties it does not
//! list, and a test validates real responses against this document, so the
//! two cannot drift apart.

use axum::{
    Json,
    http::header,
    response::{Html, IntoResponse},
};
use serde::Serialize;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

/// Declares a success envelope whose `data` is `$data`.
macro_rules! envelope {
    ($(#[$doc:meta])* $name:ident, $data:ty) => {
        $(#[$doc])*
        #[derive(Serialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Always `true`.
            success: bool,
            data: $data,
            pagination: Option<Pagination>,
        }
    };
}

/// Paging of a list.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pagination {
    /// Items asked for (1-100).
    limit: i64,
    /// Items skipped (offset paging).
    offset: Option<i64>,
    /// Items in the whole list, where cheap (`null` past the end).
    total: Option<i64>,
    /// Cursor of the next page (cursor paging; `null` on the last page).
    next_cursor: Option<String>,
    /// Notifications only: every unread notification of the user.
    unread: Option<i64>,
}

/// The error envelope (every 4xx and 5xx).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorReply {
    /// Always `false`.
    success: bool,
    error: ErrorBody,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// `BAD_REQUEST`, `UNAUTHORIZED`, `FORBIDDEN`, `NOT_FOUND`, `CONFLICT`,
    /// `CHAIN_PROOF_FAILED`, `RATE_LIMITED`, `PAYLOAD_TOO_LARGE`, `METHOD_NOT_ALLOWED`,
    /// `SERVICE_UNAVAILABLE`, `INTERNAL_ERROR`.
    code: String,
    /// A sentence for humans.
    message: String,
    /// 400: `{"field": name}`; `/ready`: the checks.
    details: Option<Value>,
}

/// A market of either type (list item or detail). Amounts are exact decimal
/// strings: USDC with 6 decimals, tokens and prices with 18.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Market {
    /// Credential markets: the bytes32 id.
    credential_id: Option<String>,
    /// Persona markets: the bytes32 id.
    persona_id: Option<String>,
    /// `credential` or `persona`.
    market_type: String,
    token_address: String,
    token_name: String,
    token_symbol: String,
    /// Credential markets: who created it.
    issuer_address: Option<String>,
    /// Persona markets: who created it.
    owner_address: Option<String>,
    /// `pending`, `verified` or `rejected`.
    verification_status: String,
    /// 0-1000, from the job workers' reputation formula (`null` until computed).
    reputation_score: Option<i64>,
    created_at: String,
    /// Spot price, USDC per token.
    price: String,
    /// Percent change over 24 h (a number).
    price_change_24h: f64,
    volume_24h: String,
    trades_24h: i64,
    traders_24h: i64,
    holders: i64,
    market_cap: String,
    /// Current stake, USDC.
    total_staked: String,
    display_name: Option<String>,
    category: Option<String>,
    description: Option<String>,
    image_url: Option<String>,
    website_url: Option<String>,
    /// Detail only: the pool (`null` before the pool exists).
    pool: Option<Pool>,
    /// Persona detail only.
    linked_credentials: Option<Vec<LinkedCredential>>,
    /// Persona detail only.
    social_links: Option<Vec<SocialLinkOut>>,
    /// Writes only: answered from the indexed tables.
    indexed: Option<bool>,
}

/// A market's AMM pool.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    token_address: String,
    token_reserves: String,
    usdc_reserves: String,
    price: String,
    fee_bps: i64,
}

/// A credential linked to a persona.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkedCredential {
    credential_id: String,
    token_symbol: Option<String>,
    token_name: Option<String>,
}

/// Points per component of the reputation formula (`docs/jobs.md`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReputationComponents {
    ethos: i64,
    world_id: i64,
    stake: i64,
    slashes: i64,
    activity: i64,
    governance: i64,
    total: i64,
}

/// One point of a reputation chart.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReputationPoint {
    computed_at: String,
    score: i64,
}

/// A user's reputation.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reputation {
    address: String,
    /// 0-1000.
    score: i64,
    computed_at: String,
    /// The newest computation's points (`null` if it predates history).
    components: Option<ReputationComponents>,
    /// Oldest first; a point per change.
    history: Vec<ReputationPoint>,
}

/// A market's reputation.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarketReputation {
    /// `credential` or `persona`.
    market_type: String,
    market_id: String,
    /// 0-1000.
    score: i64,
    computed_at: String,
    /// The newest computation's points (`null` if it predates history).
    components: Option<ReputationComponents>,
    /// Oldest first; a point per change.
    history: Vec<ReputationPoint>,
}

/// A webhook (its secret is shown only when registered).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    id: String,
    url: String,
    /// Notification kinds delivered (empty: all).
    events: Vec<String>,
    /// False once disabled after failed deliveries.
    active: bool,
    /// Failed deliveries in a row.
    failure_count: i64,
    disabled_at: Option<String>,
    created_at: String,
}

/// A webhook just registered, with its signing secret.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    id: String,
    url: String,
    events: Vec<String>,
    active: bool,
    failure_count: i64,
    disabled_at: Option<String>,
    created_at: String,
    /// HMAC-SHA256 key of `X-Animoca-Signature`; shown only here.
    secret: String,
}

/// `{deleted: true}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deleted {
    deleted: bool,
}

/// A World ID proof accepted for verification.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorldIdQueued {
    /// `pending` (queued) or `verified` (already, with this nullifier).
    status: String,
    /// The verification job (decimal string), `null` when already verified.
    job_id: Option<String>,
}

/// A persona's newest World ID outcome.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorldIdStatus {
    /// `none`, `pending`, `verified` or `rejected`.
    status: String,
    /// Why (e.g. the provider's error code and detail).
    reason: Option<String>,
    /// `orb`, `secure_document`, `document` or `device`.
    verification_level: Option<String>,
    /// When it was decided.
    checked_at: Option<String>,
}

/// A persona's social account.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SocialLinkOut {
    platform: String,
    handle: String,
    url: Option<String>,
    verified: bool,
}

/// A registration accepted before the indexer reached its transaction (202).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingMarket {
    credential_id: Option<String>,
    persona_id: Option<String>,
    market_type: String,
    token_address: String,
    token_name: String,
    token_symbol: String,
    issuer_address: Option<String>,
    owner_address: Option<String>,
    stake_amount: String,
    tx_hash: String,
    block_number: i64,
    verification_status: String,
    display_name: Option<String>,
    category: Option<String>,
    description: Option<String>,
    image_url: Option<String>,
    website_url: Option<String>,
    /// Always `false`.
    indexed: bool,
}

/// An OHLCV candle (`time` = bucket start).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Candle {
    time: String,
    open: String,
    high: String,
    low: String,
    close: String,
    volume_usdc: String,
    volume_token: String,
    trade_count: i64,
    unique_traders: i64,
}

/// A swap.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Trade {
    tx_hash: String,
    log_index: i64,
    block_number: i64,
    block_timestamp: String,
    trader_address: String,
    /// `buy` or `sell`.
    swap_type: String,
    token_amount: String,
    usdc_amount: String,
    fee_amount: String,
    price: String,
}

/// A token holder.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    address: String,
    balance: String,
}

/// What a trade would do at the current reserves (the contract's own math).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quote {
    side: String,
    amount_in: String,
    amount_out: String,
    fee: String,
    fee_bps: i64,
    price_before: String,
    price_after: String,
    execution_price: String,
    /// Percent (a number).
    price_impact: f64,
    token_reserves_after: String,
    usdc_reserves_after: String,
}

/// A slashing proposal (detail adds `votes` and `vote_breakdown`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    /// A decimal uint256.
    proposal_id: String,
    /// `credential` or `persona`.
    entity_type: String,
    credential_id: Option<String>,
    persona_id: Option<String>,
    proposer_address: String,
    title: Option<String>,
    description: Option<String>,
    evidence_links: Vec<String>,
    slash_amount: String,
    votes_for: String,
    votes_against: String,
    votes_abstain: String,
    voter_count: i64,
    /// Token units.
    quorum_required: String,
    snapshot_block: i64,
    voting_ends_at: String,
    /// `active`, `succeeded`, `defeated`, `executed` or `canceled` (at the newest block).
    status: String,
    slashed_amount: Option<String>,
    created_at: String,
    tx_hash: String,
    resolved_at: Option<String>,
    votes: Option<Vec<Vote>>,
    vote_breakdown: Option<VoteBreakdown>,
    /// Writes only.
    indexed: Option<bool>,
}

/// The seed's vote summary of a proposal.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteBreakdown {
    for_percentage: f64,
    against_percentage: f64,
    total_votes: String,
    quorum_percentage: f64,
    quorum_reached: bool,
    can_execute: bool,
    /// Milliseconds until voting ends (0 after).
    time_remaining: i64,
}

/// A vote.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Vote {
    voter_address: String,
    /// `for`, `against` or `abstain`.
    vote_type: String,
    voting_power: String,
    tx_hash: String,
    block_number: i64,
    block_timestamp: String,
    /// `POST …/vote` only.
    proposal_id: Option<String>,
    /// `POST …/vote` only.
    indexed: Option<bool>,
}

/// A governance write accepted before the indexer reached its transaction (202).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingGovernance {
    proposal_id: String,
    proposer_address: Option<String>,
    market_id: Option<String>,
    slash_amount: Option<String>,
    title: Option<String>,
    description: Option<String>,
    evidence_links: Option<Vec<String>>,
    voter_address: Option<String>,
    vote_type: Option<String>,
    voting_power: Option<String>,
    status: Option<String>,
    slashed_amount: Option<String>,
    tx_hash: String,
    block_number: i64,
    /// Always `false`.
    indexed: bool,
}

/// Platform totals.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Overview {
    total_markets: i64,
    credential_markets: i64,
    persona_markets: i64,
    /// Σ pool USDC reserves.
    tvl: String,
    volume_24h: String,
    trades_24h: i64,
    traders_24h: i64,
    total_staked: String,
}

/// A leaderboard row (`realized_pnl` and `markets`, or `reputation_score` and `username`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaderboardEntry {
    rank: i64,
    address: String,
    realized_pnl: Option<String>,
    markets: Option<i64>,
    reputation_score: Option<i64>,
    username: Option<String>,
}

/// A user's profile.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    address: String,
    username: Option<String>,
    display_name: Option<String>,
    bio: Option<String>,
    avatar_url: Option<String>,
    reputation_score: i64,
    /// The newest check per provider (`ethos`, `worldid`).
    verification: std::collections::BTreeMap<String, VerificationCheck>,
    stats: ProfileStats,
}

/// A third-party check.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationCheck {
    status: String,
    score: Option<i64>,
    level: Option<String>,
    checked_at: String,
}

/// Counts of a user's activity.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileStats {
    markets_created: i64,
    trades: i64,
    markets_held: i64,
    proposals: i64,
    votes: i64,
}

/// `PATCH /api/users/me`'s answer.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    address: String,
    username: Option<String>,
    display_name: Option<String>,
    bio: Option<String>,
    avatar_url: Option<String>,
}

/// Holdings with value, cost basis and PnL (SPEC §5).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Portfolio {
    address: String,
    holdings: Vec<Holding>,
    total_value: String,
    total_cost_basis: String,
    total_realized_pnl: String,
    total_unrealized_pnl: String,
}

/// One market held.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Holding {
    market_id: String,
    market_type: String,
    token_symbol: String,
    balance: String,
    price: String,
    value: String,
    cost_basis: String,
    realized_pnl: String,
    unrealized_pnl: String,
}

/// One entry of a user's timeline.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Activity {
    /// `trade`, `vote`, `stake` or `proposal`.
    #[serde(rename = "type")]
    kind: String,
    action: String,
    market_type: Option<String>,
    market_id: Option<String>,
    usdc_amount: Option<String>,
    token_amount: Option<String>,
    tx_hash: String,
    block_number: i64,
    block_timestamp: String,
}

/// A notification.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    id: String,
    kind: String,
    title: String,
    body: String,
    data: Value,
    read: bool,
    read_at: Option<String>,
    created_at: String,
}

/// How many notifications were marked read.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Updated {
    updated: i64,
}

/// A sign-in nonce.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Nonce {
    nonce: String,
    expires_at: String,
}

/// A session.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// HS256 JWT: send as `Authorization: Bearer <token>`.
    token: String,
    address: String,
    expires_at: String,
}

/// `/health` and `/ready` checks.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    status: Option<String>,
    database: Option<String>,
    indexer: Option<String>,
    indexer_lag_seconds: Option<f64>,
    /// Blocks behind the chain head (with `RPC_URL`).
    indexer_lag_blocks: Option<i64>,
    /// `chain head` (with `RPC_URL`) or `last commit` (time since the indexer last committed).
    lag_measured_against: Option<String>,
    redis: Option<String>,
    cache_version: Option<i64>,
}

envelope!(
    /// One market.
    MarketReply,
    Market
);
envelope!(
    /// A list of markets.
    MarketList,
    Vec<Market>
);
envelope!(
    /// A registration not indexed yet.
    PendingMarketReply,
    PendingMarket
);
envelope!(
    /// A pool.
    PoolReply,
    Pool
);
envelope!(
    /// Candles, oldest first.
    CandleList,
    Vec<Candle>
);
envelope!(
    /// Trades, newest first.
    TradeList,
    Vec<Trade>
);
envelope!(
    /// Holders, largest first.
    HolderList,
    Vec<Holder>
);
envelope!(
    /// A quote.
    QuoteReply,
    Quote
);
envelope!(
    /// A user's reputation.
    ReputationReply,
    Reputation
);
envelope!(
    /// A market's reputation.
    MarketReputationReply,
    MarketReputation
);
envelope!(
    /// A registered webhook.
    NewWebhookReply,
    NewWebhook
);
envelope!(
    /// A user's webhooks.
    WebhookList,
    Vec<Webhook>
);
envelope!(
    /// A deletion.
    DeletedReply,
    Deleted
);
envelope!(
    /// A World ID proof accepted for verification.
    WorldIdQueuedReply,
    WorldIdQueued
);
envelope!(
    /// A persona's newest World ID outcome.
    WorldIdStatusReply,
    WorldIdStatus
);
envelope!(
    /// A persona's linked credentials.
    LinkedCredentialList,
    Vec<LinkedCredential>
);
envelope!(
    /// One proposal.
    ProposalReply,
    Proposal
);
envelope!(
    /// Proposals, newest first.
    ProposalList,
    Vec<Proposal>
);
envelope!(
    /// A governance write not indexed yet.
    PendingGovernanceReply,
    PendingGovernance
);
envelope!(
    /// One vote.
    VoteReply,
    Vote
);
envelope!(
    /// Votes, newest first.
    VoteList,
    Vec<Vote>
);
envelope!(
    /// Platform totals.
    OverviewReply,
    Overview
);
envelope!(
    /// The leaderboard.
    LeaderboardList,
    Vec<LeaderboardEntry>
);
envelope!(
    /// A profile.
    ProfileReply,
    Profile
);
envelope!(
    /// An updated profile.
    ProfileUpdateReply,
    ProfileUpdate
);
envelope!(
    /// A portfolio.
    PortfolioReply,
    Portfolio
);
envelope!(
    /// A timeline, newest first.
    ActivityList,
    Vec<Activity>
);
envelope!(
    /// Notifications, newest first.
    NotificationList,
    Vec<Notification>
);
envelope!(
    /// Marked read.
    UpdatedReply,
    Updated
);
envelope!(
    /// A nonce.
    NonceReply,
    Nonce
);
envelope!(
    /// A session.
    SessionReply,
    Session
);
envelope!(
    /// Health checks.
    ChecksReply,
    Checks
);

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Animoca Trade API",
        description = "Credential and persona markets: reads indexed from the chain, writes proven on chain. \
                       Amounts are exact decimal strings (USDC 6 decimals, tokens and prices 18); ids are 0x hex; \
                       times ISO-8601 UTC. Writes need `Authorization: Bearer <JWT>` from Sign-In with Ethereum."
    ),
    paths(
        crate::ops::health,
        crate::ops::ready,
        crate::telemetry::render,
        openapi_json,
        docs_page,
        crate::auth::nonce,
        crate::auth::verify,
        crate::markets::list,
        crate::registration::register,
        crate::markets::detail,
        crate::markets::pool,
        crate::markets::chart,
        crate::markets::trades,
        crate::markets::holders,
        crate::markets::quote,
        crate::registration::link,
        crate::worldid::verify,
        crate::reputation::user,
        crate::reputation::market,
        crate::webhooks::register,
        crate::webhooks::list,
        crate::webhooks::delete,
        crate::worldid::status,
        crate::proposals::list,
        crate::proposal_writes::create,
        crate::proposals::detail,
        crate::proposals::votes,
        crate::proposal_writes::vote,
        crate::proposal_writes::execute,
        crate::analytics::overview,
        crate::analytics::trending,
        crate::analytics::leaderboard,
        crate::users::update_me,
        crate::users::profile,
        crate::users::portfolio,
        crate::users::activity,
        crate::notifications::list,
        crate::notifications::mark_read,
    ),
    components(schemas(ErrorReply)),
    modifiers(&BearerAuth),
    tags(
        (name = "markets", description = "Credential and persona markets (the same routes for both)"),
        (name = "governance", description = "Slashing proposals and votes"),
        (name = "users", description = "Profiles, portfolios, activity, notifications"),
        (name = "analytics", description = "Platform totals and rankings"),
        (name = "auth", description = "Sign-In with Ethereum"),
        (name = "ops", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// The document as JSON (built once).
pub fn document() -> &'static Value {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null))
}

/// `GET /openapi.json`: the OpenAPI 3.1 document.
#[utoipa::path(get, operation_id = "openapi_openapi_json", path = "/openapi.json", tag = "ops", responses((status = 200, description = "This document")))]
pub async fn openapi_json() -> Json<Value> {
    Json(document().clone())
}

/// `GET /docs`: the document as one self-contained HTML page (no scripts, no CDN).
#[utoipa::path(get, operation_id = "openapi_docs_page", path = "/docs", tag = "ops", responses((status = 200, description = "HTML", content_type = "text/html")))]
pub async fn docs_page() -> impl IntoResponse {
    static PAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let page = PAGE.get_or_init(|| render(document()));
    ([(header::CACHE_CONTROL, "public, max-age=300")], Html(page.as_str()))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn schema_name(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("<a href=\"#schema-{name}\">{name}</a>");
    }
    if let Some(items) = schema.get("items") {
        return format!("array of {}", schema_name(items));
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = schema[combinator].as_array() {
            let names: Vec<String> = list.iter().map(schema_name).filter(|n| n != "null").collect();
            return names.join(" or ");
        }
    }
    match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(types) => types.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" | "),
        _ if schema.get("enum").is_some() => "enum".to_owned(),
        _ => "any".to_owned(),
    }
}

/// Renders the document as HTML: every operation with its parameters, body
/// and responses, then every schema with its properties.
fn render(doc: &Value) -> String {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Animoca Trade API</title><style>\
         body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
         code,td.n{font-family:ui-monospace,monospace}table{border-collapse:collapse;width:100%;margin:.5em 0}\
         td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}\
         .op{border:1px solid #ccc;border-radius:6px;padding:.5em 1em;margin:1em 0}\
         .m{font-weight:bold;text-transform:uppercase;margin-right:.5em}.get{color:#0a6}.post{color:#06c}\
         .patch{color:#c70}</style></head><body>",
    );
    html.push_str(&format!(
        "<h1>{}</h1><p>{}</p><p>OpenAPI {} document: <a href=\"/openapi.json\">/openapi.json</a></p>",
        escape(doc["info"]["title"].as_str().unwrap_or_default()),
        escape(doc["info"]["description"].as_str().unwrap_or_default()),
        escape(doc["openapi"].as_str().unwrap_or_default()),
    ));
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            let Some(operations) = item.as_object() else { continue };
            for (method, op) in operations {
                html.push_str(&format!(
                    "<div class=\"op\"><p><span class=\"m {method}\">{method}</span><code>{}</code></p>",
                    escape(path)
                ));
                if let Some(text) = op["description"].as_str().or(op["summary"].as_str()) {
                    html.push_str(&format!("<p>{}</p>", escape(text)));
                }
                if op.get("security").is_some() {
                    html.push_str("<p><em>Signed in: <code>Authorization: Bearer &lt;JWT&gt;</code></em></p>");
                }
                if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
                    html.push_str("<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>");
                    for p in params {
                        html.push_str(&format!(
                            "<tr><td class=\"n\">{}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            escape(p["name"].as_str().unwrap_or_default()),
                            if p["required"] == true { " *" } else { "" },
                            escape(p["in"].as_str().unwrap_or_default()),
                            schema_name(&p["schema"]),
                            escape(p["description"].as_str().unwrap_or_default()),
                        ));
                    }
                    html.push_str("</table>");
                }
                if let Some(body) = op["requestBody"]["content"]["application/json"]["schema"].as_object() {
                    html.push_str(&format!("<p>Body: {}</p>", schema_name(&Value::Object(body.clone()))));
                }
                if let Some(responses) = op["responses"].as_object() {
                    html.push_str("<table><tr><th>status</th><th>body</th><th>meaning</th></tr>");
                    for (status, response) in responses {
                        let body = response["content"]
                            .as_object()
                            .and_then(|c| c.values().next())
                            .map(|c| schema_name(&c["schema"]))
                            .unwrap_or_default();
                        html.push_str(&format!(
                            "<tr><td>{status}</td><td>{body}</td><td>{}</td></tr>",
                            escape(response["description"].as_str().unwrap_or_default())
                        ));
                    }
                    html.push_str("</table>");
                }
                html.push_str("</div>");
            }
        }
    }
    html.push_str("<h2>Schemas</h2>");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            html.push_str(&format!("<h3 id=\"schema-{name}\">{name}</h3>"));
            if let Some(text) = schema["description"].as_str() {
                html.push_str(&format!("<p>{}</p>", escape(text)));
            }
            let required: Vec<&str> =
                schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            if let Some(properties) = schema["properties"].as_object() {
                html.push_str("<table><tr><th>field</th><th>type</th><th>description</th></tr>");
                for (field, property) in properties {
                    html.push_str(&format!(
                        "<tr><td class=\"n\">{field}{}</td><td>{}</td><td>{}</td></tr>",
                        if required.contains(&field.as_str()) { " *" } else { "" },
                        schema_name(property),
                        escape(property["description"].as_str().unwrap_or_default()),
                    ));
                }
                html.push_str("</table>");
            }
        }
    }
    html.push_str("<p>* required</p></body></html>");
    html
}

/// The `{kind}` of the market routes.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MarketKind {
    /// Credential markets.
    Credentials,
    /// Persona markets.
    Personas,
}
