//! Market registration (`POST /api/credentials`, `POST /api/personas`) and
//! persona credential links (`POST /api/personas/{id}/credentials`).
//!
//! A market is created on chain by its factory; registering attaches off-chain
//! metadata to it. The body names the creating transaction; the market id,
//! token, creator, name, symbol and stake are read from its event (claims in the
//! body about them must match, or the request is a 422).

use alloy::primitives::{Address, B256, U256};
use animoca_chain::bindings::{CredentialTokenFactory, PersonaTokenFactory};
use animoca_domain::{MarketType, format_units};
use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::{
    Shared,
    auth::SignedIn,
    error::ApiError,
    format, markets,
    params::{self, MarketPath, Segments, market_kind},
    proof, reply,
};

/// The body of a registration (snake_case; the seed's camelCase names are accepted too).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterMarket {
    /// The transaction that created the market.
    #[serde(alias = "txHash", alias = "stakeTxHash", alias = "stake_tx_hash")]
    tx_hash: String,
    /// The market id the caller expects (must be the created one).
    #[serde(
        alias = "credentialId",
        alias = "credential_id",
        alias = "personaId",
        alias = "persona_id",
        alias = "marketId"
    )]
    market_id: Option<String>,
    /// Claims checked against the creation event.
    #[serde(alias = "name", alias = "tokenName")]
    token_name: Option<String>,
    #[serde(alias = "symbol", alias = "tokenSymbol")]
    token_symbol: Option<String>,
    #[serde(alias = "issuerAddress", alias = "issuer_address", alias = "ownerAddress", alias = "owner_address")]
    creator_address: Option<String>,
    /// USDC, as a decimal string.
    #[serde(alias = "stakeAmount")]
    stake_amount: Option<String>,
    /// Off-chain metadata.
    #[serde(alias = "displayName", alias = "issuerName", alias = "issuer_name")]
    display_name: Option<String>,
    #[serde(alias = "credentialType", alias = "credential_type")]
    category: Option<String>,
    #[serde(alias = "bio")]
    description: Option<String>,
    #[serde(alias = "imageUrl")]
    image_url: Option<String>,
    #[serde(alias = "websiteUrl")]
    website_url: Option<String>,
    /// Personas only: social accounts (replace the stored ones when given).
    #[serde(alias = "socialLinks")]
    social_links: Option<Vec<SocialLink>>,
    /// Personas only: credentials to link (each must exist).
    #[serde(alias = "credentialIds")]
    credential_ids: Option<Vec<String>>,
}

/// A persona's social account.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SocialLink {
    platform: String,
    handle: String,
    url: Option<String>,
}

/// What a factory's creation event says.
#[derive(Debug)]
struct Created {
    id: B256,
    token: Address,
    creator: Address,
    name: String,
    symbol: String,
    stake: U256,
}

fn created_markets(market_type: MarketType, tx: &proof::ProvenTx) -> Vec<Created> {
    match market_type {
        MarketType::Credential => tx
            .events::<CredentialTokenFactory::CredentialTokenCreated>()
            .into_iter()
            .map(|e| Created {
                id: e.credentialId,
                token: e.token,
                creator: e.issuer,
                name: e.name,
                symbol: e.symbol,
                stake: e.stakeAmount,
            })
            .collect(),
        MarketType::Persona => tx
            .events::<PersonaTokenFactory::PersonaTokenCreated>()
            .into_iter()
            .map(|e| Created {
                id: e.personaId,
                token: e.token,
                creator: e.owner,
                name: e.name,
                symbol: e.symbol,
                stake: e.stakeAmount,
            })
            .collect(),
    }
}

fn event_name(market_type: MarketType) -> &'static str {
    match market_type {
        MarketType::Credential => "CredentialTokenCreated",
        MarketType::Persona => "PersonaTokenCreated",
    }
}

/// `POST /api/{credentials|personas}` (signed in): registers the metadata of a
/// market the caller created on chain. 201 when registered, 200 when the same
/// caller registers again (the metadata is updated), 202 when the indexer has
/// not reached the transaction yet (the metadata is stored; the market appears
/// once indexed).
#[utoipa::path(post, operation_id = "registration_register", path = "/api/{kind}", tag = "markets", params(("kind" = crate::openapi::MarketKind, Path, description = "credentials or personas")), request_body = crate::registration::RegisterMarket, security(("bearer" = [])), responses((status = 201, description = "Registered (indexed)", body = crate::openapi::MarketReply), (status = 200, description = "Registered again by the same creator", body = crate::openapi::MarketReply), (status = 202, description = "Stored; the indexer has not reached the transaction yet", body = crate::openapi::PendingMarketReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn register(
    State(state): State<Shared>,
    Segments(kind): Segments<String>,
    SignedIn(me): SignedIn,
    crate::params::RawBody(body): crate::params::RawBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let market_type = market_kind(&kind)?;
    let body: RegisterMarket = params::json_body(&body)?;
    check_metadata(market_type, &body)?;
    let claimed_id = body.market_id.as_deref().map(|id| params::bytes32("market_id", id)).transpose()?;
    let linked = parse_ids("credential_ids", body.credential_ids.as_deref().unwrap_or_default())?;

    let deployment = proof::deployment(&state).await?;
    let factory_name = format!("{} factory", market_type.as_str());
    let tx = proof::prove(&state, &body.tx_hash, me, deployment.factory(market_type), &factory_name).await?;
    let mut created = created_markets(market_type, &tx);
    let event = event_name(market_type);
    let market = match claimed_id {
        Some(id) => created.into_iter().find(|c| c.id == id).ok_or_else(|| {
            ApiError::Unprovable(format!("transaction {:#x} emitted no {event} for market {id:#x}", tx.hash))
        })?,
        None if created.len() == 1 => created.remove(0),
        None if created.is_empty() => {
            return Err(ApiError::Unprovable(format!("transaction {:#x} emitted no {event}", tx.hash)));
        }
        None => return Err(ApiError::bad("market_id", "the transaction created several markets; name one")),
    };
    if market.creator != me {
        return Err(ApiError::Forbidden(format!(
            "market {:#x} was created by {:#x}, not by the signed-in {me:#x}",
            market.id, market.creator
        )));
    }
    check_claims(&body, &market)?;

    let mut db = state.pool.begin().await?;
    for (i, credential) in linked.iter().enumerate() {
        ensure_credential(&mut db, &format!("credential_ids[{i}]"), *credential).await?;
    }
    // A registration by another address stands, unless the indexed market says
    // the caller created it (that registration came from a creation the chain
    // has since reorganised away).
    let creator_on_chain = indexed_creator(&mut db, market_type, market.id).await? == Some(me);
    let inserted: Option<bool> = sqlx::query_scalar(
        "INSERT INTO app.market_metadata AS md
                (market_type, market_id, display_name, category, description, image_url, website_url,
                 registered_by, registered_tx_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (market_type, market_id) DO UPDATE SET
                display_name = coalesce(EXCLUDED.display_name, md.display_name),
                category = coalesce(EXCLUDED.category, md.category),
                description = coalesce(EXCLUDED.description, md.description),
                image_url = coalesce(EXCLUDED.image_url, md.image_url),
                website_url = coalesce(EXCLUDED.website_url, md.website_url),
                registered_by = EXCLUDED.registered_by,
                registered_tx_hash = EXCLUDED.registered_tx_hash,
                updated_at = now()
          WHERE md.registered_by = EXCLUDED.registered_by OR $10
         RETURNING (xmax = 0)",
    )
    .bind(i16::from(market_type.as_u8()))
    .bind(market.id.as_slice())
    .bind(&body.display_name)
    .bind(&body.category)
    .bind(&body.description)
    .bind(&body.image_url)
    .bind(&body.website_url)
    .bind(me.as_slice())
    .bind(tx.hash.as_slice())
    .bind(creator_on_chain)
    .fetch_optional(&mut *db)
    .await?;
    let Some(inserted) = inserted else {
        return Err(ApiError::Forbidden(format!("market {:#x} is registered by another address", market.id)));
    };
    if let Some(links) = &body.social_links {
        sqlx::query("DELETE FROM app.social_links WHERE persona_id = $1")
            .bind(market.id.as_slice())
            .execute(&mut *db)
            .await?;
        for link in links {
            sqlx::query("INSERT INTO app.social_links (persona_id, platform, handle, url) VALUES ($1, $2, $3, $4)")
                .bind(market.id.as_slice())
                .bind(&link.platform)
                .bind(&link.handle)
                .bind(&link.url)
                .execute(&mut *db)
                .await?;
        }
    }
    link_credentials(&mut db, market.id, &linked, me).await?;
    let change = crate::record_change(&mut db, "metadata", market_change(market_type, market.id, "registered")).await?;
    db.commit().await?;
    state.saw(change);

    let status = if inserted { StatusCode::CREATED } else { StatusCode::OK };
    if proof::indexed(&state, tx.block_number).await? {
        let mut read = crate::read_tx_on(&state.pool).await?;
        match markets::detail_json(&mut read, market_type, market.id).await {
            Ok(mut detail) => {
                read.commit().await?;
                detail["indexed"] = json!(true);
                return Ok((status, reply::data(detail)));
            }
            // Indexed past the block, yet no market: the block was reorganised away.
            Err(ApiError::NotFound(_)) => {}
            Err(other) => return Err(other),
        }
    }
    let (id_field, creator_field) = match market_type {
        MarketType::Credential => ("credential_id", "issuer_address"),
        MarketType::Persona => ("persona_id", "owner_address"),
    };
    let pending = json!({
        id_field: format!("{:#x}", market.id),
        "market_type": market_type.as_str(),
        "token_address": format!("{:#x}", market.token),
        "token_name": market.name,
        "token_symbol": market.symbol,
        creator_field: format!("{:#x}", market.creator),
        "stake_amount": format_units(market.stake, 6),
        "tx_hash": format!("{:#x}", tx.hash),
        "block_number": tx.block_number,
        "verification_status": "pending",
        "display_name": body.display_name,
        "category": body.category,
        "description": body.description,
        "image_url": body.image_url,
        "website_url": body.website_url,
        "indexed": false,
    });
    Ok((StatusCode::ACCEPTED, reply::data(pending)))
}

/// The body of `POST /api/personas/{id}/credentials`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkCredentials {
    #[serde(alias = "credentialIds")]
    credential_ids: Vec<String>,
}

/// 404 unless persona `id` is indexed; 403 unless `me` created it (`what`:
/// the action refused, for the message).
pub(crate) async fn ensure_persona_owner(
    db: &mut PgConnection,
    id: B256,
    me: Address,
    what: &str,
) -> Result<(), ApiError> {
    let owner: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT creator_address FROM derived.markets WHERE market_type = 1 AND market_id = $1")
            .bind(id.as_slice())
            .fetch_optional(&mut *db)
            .await?;
    let owner = owner.ok_or_else(|| ApiError::NotFound("persona".to_owned()))?;
    if owner != me.as_slice() {
        return Err(ApiError::Forbidden(format!("only the persona's owner {} can {what}", format::hex(&owner))));
    }
    Ok(())
}

/// `POST /api/personas/{id}/credentials` (the persona's owner only): links
/// existing credential markets to the persona; answers the linked list.
#[utoipa::path(post, operation_id = "registration_link", path = "/api/{kind}/{id}/credentials", tag = "markets", params(("kind" = crate::openapi::MarketKind, Path, description = "credentials or personas"), ("id" = String, Path, description = "The market id, 0x + 64 hex digits")), request_body = crate::registration::LinkCredentials, security(("bearer" = [])), responses((status = 200, description = "The persona's linked credentials", body = crate::openapi::LinkedCredentialList), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn link(
    State(state): State<Shared>,
    MarketPath { market_type, id }: MarketPath,
    SignedIn(me): SignedIn,
    crate::params::RawBody(body): crate::params::RawBody,
) -> Result<Json<Value>, ApiError> {
    if market_type != MarketType::Persona {
        return Err(ApiError::NotFound("route".to_owned()));
    }
    let body: LinkCredentials = params::json_body(&body)?;
    if body.credential_ids.is_empty() || body.credential_ids.len() > 50 {
        return Err(ApiError::bad("credential_ids", "give 1 to 50 credential ids"));
    }
    let linked = parse_ids("credential_ids", &body.credential_ids)?;
    let mut db = state.pool.begin().await?;
    ensure_persona_owner(&mut db, id, me, "link credentials").await?;
    for (i, credential) in linked.iter().enumerate() {
        ensure_credential(&mut db, &format!("credential_ids[{i}]"), *credential).await?;
    }
    link_credentials(&mut db, id, &linked, me).await?;
    let list = markets::linked_credentials(&mut db, id).await?;
    let change =
        crate::record_change(&mut db, "metadata", market_change(market_type, id, "credentials_linked")).await?;
    db.commit().await?;
    state.saw(change);
    Ok(reply::data(list))
}

/// The change-feed payload of an off-chain market change.
fn market_change(market_type: MarketType, id: B256, event: &str) -> Value {
    json!({ "market": { "market_type": market_type.as_str(), "market_id": format!("{id:#x}") }, "event": event })
}

fn parse_ids(field: &str, ids: &[String]) -> Result<Vec<B256>, ApiError> {
    if ids.len() > 50 {
        return Err(ApiError::bad(field, "at most 50 ids"));
    }
    ids.iter().enumerate().map(|(i, id)| params::bytes32(&format!("{field}[{i}]"), id)).collect()
}

/// The creator of an indexed market (`None` while not indexed).
async fn indexed_creator(
    conn: &mut PgConnection,
    market_type: MarketType,
    id: B256,
) -> Result<Option<Address>, ApiError> {
    let creator: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT creator_address FROM derived.markets WHERE market_type = $1 AND market_id = $2")
            .bind(i16::from(market_type.as_u8()))
            .bind(id.as_slice())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(creator.and_then(|bytes| Address::try_from(bytes.as_slice()).ok()))
}

async fn ensure_credential(conn: &mut PgConnection, field: &str, id: B256) -> Result<(), ApiError> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM derived.markets WHERE market_type = 0 AND market_id = $1)")
            .bind(id.as_slice())
            .fetch_one(&mut *conn)
            .await?;
    if exists { Ok(()) } else { Err(ApiError::NotFound(format!("{field}: credential {id:#x}"))) }
}

async fn link_credentials(conn: &mut PgConnection, persona: B256, ids: &[B256], by: Address) -> Result<(), ApiError> {
    for id in ids {
        sqlx::query(
            "INSERT INTO app.persona_credentials (persona_id, credential_id, linked_by) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(persona.as_slice())
        .bind(id.as_slice())
        .bind(by.as_slice())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn check_metadata(market_type: MarketType, body: &RegisterMarket) -> Result<(), ApiError> {
    for (field, value, max) in [
        ("display_name", &body.display_name, 100),
        ("category", &body.category, 64),
        ("description", &body.description, 2_000),
    ] {
        if let Some(value) = value {
            params::body_text(field, value, max)?;
        }
    }
    for (field, value) in [("image_url", &body.image_url), ("website_url", &body.website_url)] {
        if let Some(url) = value {
            params::http_url(field, url)?;
        }
    }
    if market_type == MarketType::Credential {
        if body.social_links.is_some() {
            return Err(ApiError::bad("social_links", "only personas have social links"));
        }
        if body.credential_ids.is_some() {
            return Err(ApiError::bad("credential_ids", "only personas link credentials"));
        }
    }
    let links = body.social_links.as_deref().unwrap_or_default();
    if links.len() > 20 {
        return Err(ApiError::bad("social_links", "at most 20 links"));
    }
    for (i, link) in links.iter().enumerate() {
        let field = |name: &str| format!("social_links[{i}].{name}");
        if link.platform.is_empty()
            || link.platform.len() > 32
            || !link.platform.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ApiError::bad(&field("platform"), "1-32 letters, digits, - or _"));
        }
        if link.handle.is_empty() {
            return Err(ApiError::bad(&field("handle"), "must not be empty"));
        }
        params::body_text(&field("handle"), &link.handle, 100)?;
        if let Some(url) = &link.url {
            params::http_url(&field("url"), url)?;
        }
        if links[..i].iter().any(|other| other.platform == link.platform) {
            return Err(ApiError::bad(&field("platform"), "one link per platform"));
        }
    }
    Ok(())
}

/// Claims in the body about what the chain knows must match it.
fn check_claims(body: &RegisterMarket, market: &Created) -> Result<(), ApiError> {
    let mismatch = |field: &str, claimed: &str, actual: String| {
        ApiError::Unprovable(format!("{field}: the body says {claimed:?}, the chain says {actual:?}"))
    };
    if let Some(name) = &body.token_name
        && *name != market.name
    {
        return Err(mismatch("token_name", name, market.name.clone()));
    }
    if let Some(symbol) = &body.token_symbol
        && *symbol != market.symbol
    {
        return Err(mismatch("token_symbol", symbol, market.symbol.clone()));
    }
    if let Some(creator) = &body.creator_address
        && params::address("creator_address", creator)? != market.creator
    {
        return Err(mismatch("creator_address", creator, format!("{:#x}", market.creator)));
    }
    if let Some(stake) = &body.stake_amount
        && format::parse_units("stake_amount", stake, 6)? != market.stake
    {
        return Err(mismatch("stake_amount", stake, format_units(market.stake, 6)));
    }
    Ok(())
}
