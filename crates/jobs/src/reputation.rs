//! Reputation: a deterministic score of every user and market, recomputed on a
//! cron (`JOBS_REPUTATION_CRON`) and on demand (`animoca-trade jobs
//! reputation`), with a history row whenever a score changes (for charts).
//!
//! Every input is either chain state as of `T` (the newest indexed block's
//! time, as the API's 24h figures) or the newest stored check, so the same
//! database gives the same scores. Points (integers; the total is clamped to
//! 0..=1000):
//!
//! | component | user | market |
//! |---|---|---|
//! | `ethos` | ⌊score × 300 / 2800⌋ of the newest Ethos check (0-300; none: 0) | the owner's |
//! | `world_id` | 150 when the address verified a persona with World ID | the owner's |
//! | `stake` | 40 × ⌊log10(USDC at stake)⌋, 0-200 (< 10 USDC: 0), over the markets it created | the market's stake |
//! | `slashes` | −100 per executed slash of its markets | of this market |
//! | `activity` | trades in the 30 days before `T`, at most 100 | trades in the market in those 30 days, at most 100 |
//! | `governance` | 10 per vote cast, at most 100 | 10 per distinct voter on its proposals, at most 100 |

use alloy_primitives::U256;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::JobError;

/// Job kind: recompute every score.
pub const KIND: &str = "reputation";

/// Highest score.
pub const MAX_SCORE: i64 = 1000;

/// The raw inputs of one subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    /// Newest Ethos score (0-2800).
    pub ethos_score: Option<i32>,
    /// Verified with World ID.
    pub world_id: bool,
    /// USDC base units at stake.
    pub stake: U256,
    /// Executed slashes suffered.
    pub slashes: i64,
    /// Trades (user) or trades in the market, in the 30 days before T.
    pub trades: i64,
    /// Votes cast (user) or distinct voters on its proposals (market).
    pub votes: i64,
}

/// Points per component and their clamped total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Score {
    /// 0-300.
    pub ethos: i64,
    /// 0 or 150.
    pub world_id: i64,
    /// 0-200.
    pub stake: i64,
    /// ≤ 0.
    pub slashes: i64,
    /// 0-100.
    pub activity: i64,
    /// 0-100.
    pub governance: i64,
    /// The sum, clamped to 0..=1000.
    pub total: i64,
}

/// The formula of the module docs.
pub fn score(inputs: &Inputs) -> Score {
    let ethos = inputs.ethos_score.map_or(0, |s| i64::from(s.clamp(0, 2800)) * 300 / 2800);
    let world_id = if inputs.world_id { 150 } else { 0 };
    // ⌊log10(usdc)⌋ of whole USDC: the number of decimal digits minus one.
    let whole_usdc = inputs.stake / U256::from(1_000_000u64);
    let digits = if whole_usdc.is_zero() { 0 } else { whole_usdc.to_string().len() as i64 };
    let stake = ((digits - 1).max(0) * 40).min(200);
    let slashes = -100 * inputs.slashes.max(0);
    let activity = inputs.trades.clamp(0, 100);
    let governance = (inputs.votes.max(0) * 10).min(100);
    let total = (ethos + world_id + stake + slashes + activity + governance).clamp(0, MAX_SCORE);
    Score { ethos, world_id, stake, slashes, activity, governance, total }
}

#[derive(sqlx::FromRow)]
struct Row {
    subject: Vec<u8>,
    market_type: Option<i16>,
    ethos_score: Option<i32>,
    world_id: bool,
    stake: String,
    slashes: i64,
    trades: i64,
    votes: i64,
}

impl Row {
    fn inputs(&self) -> Inputs {
        Inputs {
            ethos_score: self.ethos_score,
            world_id: self.world_id,
            stake: U256::from_str_radix(&self.stake, 10).unwrap_or(U256::ZERO),
            slashes: self.slashes,
            trades: self.trades,
            votes: self.votes,
        }
    }
}

const USERS: &str = "
WITH t AS (SELECT as_of FROM window_state),
     subjects AS (
        SELECT creator_address AS a FROM markets
        UNION SELECT trader FROM swaps, t WHERE block_timestamp > t.as_of - interval '30 days'
        UNION SELECT voter FROM votes
        UNION SELECT proposer FROM proposals
        UNION SELECT address FROM app.users
        UNION SELECT address FROM app.worldid_nullifiers),
     ethos AS (SELECT DISTINCT ON (subject) subject, score FROM app.verifications
                WHERE provider = 'ethos' AND score IS NOT NULL ORDER BY subject, created_at DESC, id DESC),
     staked AS (SELECT m.creator_address AS a, sum(s.current_stake) AS stake
                  FROM markets m JOIN stakes s USING (market_type, market_id) GROUP BY 1),
     slashed AS (SELECT m.creator_address AS a, count(*) AS n
                   FROM proposals p JOIN markets m USING (market_type, market_id) WHERE p.executed GROUP BY 1),
     traded AS (SELECT trader AS a, count(*) AS n FROM swaps, t
                 WHERE block_timestamp > t.as_of - interval '30 days' AND block_timestamp <= t.as_of GROUP BY 1),
     voted AS (SELECT voter AS a, count(*) AS n FROM votes GROUP BY 1)
SELECT s.a AS subject, NULL::smallint AS market_type, e.score AS ethos_score,
       EXISTS (SELECT 1 FROM app.worldid_nullifiers w WHERE w.address = s.a) AS world_id,
       coalesce(st.stake, 0)::text AS stake, coalesce(sl.n, 0) AS slashes,
       coalesce(tr.n, 0) AS trades, coalesce(v.n, 0) AS votes
  FROM subjects s
  LEFT JOIN ethos e ON e.subject = s.a
  LEFT JOIN staked st ON st.a = s.a
  LEFT JOIN slashed sl ON sl.a = s.a
  LEFT JOIN traded tr ON tr.a = s.a
  LEFT JOIN voted v ON v.a = s.a
 WHERE s.a IS NOT NULL AND octet_length(s.a) = 20";

const MARKETS: &str = "
WITH t AS (SELECT as_of FROM window_state),
     ethos AS (SELECT DISTINCT ON (subject) subject, score FROM app.verifications
                WHERE provider = 'ethos' AND score IS NOT NULL ORDER BY subject, created_at DESC, id DESC)
SELECT m.market_id AS subject, m.market_type, e.score AS ethos_score,
       EXISTS (SELECT 1 FROM app.worldid_nullifiers w WHERE w.address = m.creator_address) AS world_id,
       coalesce(s.current_stake, 0)::text AS stake,
       (SELECT count(*) FROM proposals p WHERE p.market_type = m.market_type AND p.market_id = m.market_id
                                           AND p.executed) AS slashes,
       (SELECT count(*) FROM swaps x, t WHERE x.market_type = m.market_type AND x.market_id = m.market_id
           AND x.block_timestamp > t.as_of - interval '30 days' AND x.block_timestamp <= t.as_of) AS trades,
       (SELECT count(DISTINCT v.voter) FROM votes v JOIN proposals p USING (proposal_id)
         WHERE p.market_type = m.market_type AND p.market_id = m.market_id) AS votes
  FROM markets m
  LEFT JOIN stakes s USING (market_type, market_id)
  LEFT JOIN ethos e ON e.subject = m.creator_address";

/// Scores written per statement.
const CHUNK: usize = 5_000;

/// Recomputes every user's and market's score; stores the new scores and a
/// history row for each that changed, a few statements per 5,000 subjects.
/// Returns how many users and markets were scored and how many changed.
pub async fn recompute(pool: &PgPool) -> Result<Value, JobError> {
    let mut tx = pool.begin().await?;
    // One run at a time across nodes: the second waits and recomputes after.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('animoca_reputation'))").execute(&mut *tx).await?;
    let users: Vec<Row> = sqlx::query_as(USERS).fetch_all(&mut *tx).await?;
    let markets: Vec<Row> = sqlx::query_as(MARKETS).fetch_all(&mut *tx).await?;
    let mut changed = 0;
    for (kind, market_type) in [("user", None), ("credential", Some(0)), ("persona", Some(1))] {
        let rows: Vec<&Row> = if market_type.is_none() {
            users.iter().collect()
        } else {
            markets.iter().filter(|m| m.market_type == market_type).collect()
        };
        for chunk in rows.chunks(CHUNK) {
            let subjects: Vec<&[u8]> = chunk.iter().map(|r| r.subject.as_slice()).collect();
            let scored: Vec<Score> = chunk.iter().map(|r| score(&r.inputs())).collect();
            let totals: Vec<i32> = scored.iter().map(|s| s.total as i32).collect();
            let components: Vec<Value> = scored.iter().map(|s| json!(s)).collect();
            changed += write_scores(&mut tx, kind, market_type, &subjects, &totals, &components).await?;
        }
    }
    if changed > 0 {
        // A new change version: the API's caches drop the old scores.
        let change =
            animoca_store::batch::ChangeRow { kind: "reputation".to_owned(), payload: json!({ "changed": changed }) };
        animoca_store::indexing::write_changes(&mut tx, &[change]).await?;
    }
    tx.commit().await?;
    Ok(json!({ "users": users.len(), "markets": markets.len(), "changed": changed }))
}

/// Stores one chunk of scores of `kind` and the history rows of those that changed.
async fn write_scores(
    tx: &mut sqlx::PgConnection,
    kind: &str,
    market_type: Option<i16>,
    subjects: &[&[u8]],
    totals: &[i32],
    components: &[Value],
) -> Result<i64, sqlx::Error> {
    match market_type {
        None => {
            sqlx::query(
                "INSERT INTO app.users (address, reputation_score, reputation_at)
                 SELECT subject, score, now() FROM unnest($1::bytea[], $2::int[]) AS n(subject, score)
                 ON CONFLICT (address) DO UPDATE SET reputation_score = EXCLUDED.reputation_score, reputation_at = now()",
            )
            .bind(subjects)
            .bind(totals)
            .execute(&mut *tx)
            .await?;
        }
        Some(market_type) => {
            sqlx::query(
                "UPDATE app.market_metadata md SET reputation_score = n.score, reputation_at = now()
                   FROM unnest($1::bytea[], $2::int[]) AS n(subject, score)
                  WHERE md.market_type = $3 AND md.market_id = n.subject",
            )
            .bind(subjects)
            .bind(totals)
            .bind(market_type)
            .execute(&mut *tx)
            .await?;
        }
    }
    sqlx::query_scalar(
        "WITH n AS (SELECT * FROM unnest($1::bytea[], $2::int[], $3::jsonb[]) AS n(subject, score, components)),
              last AS (SELECT DISTINCT ON (h.subject) h.subject, h.score
                         FROM app.reputation_history h JOIN n USING (subject)
                        WHERE h.kind = $4 ORDER BY h.subject, h.computed_at DESC),
              written AS (INSERT INTO app.reputation_history (kind, subject, computed_at, score, components)
                          SELECT $4, n.subject, now(), n.score, n.components
                            FROM n LEFT JOIN last l USING (subject)
                           WHERE l.score IS DISTINCT FROM n.score
                          RETURNING 1)
         SELECT count(*) FROM written",
    )
    .bind(subjects)
    .bind(totals)
    .bind(components)
    .bind(kind)
    .fetch_one(&mut *tx)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usdc(n: u64) -> U256 {
        U256::from(n) * U256::from(1_000_000u64)
    }

    #[test]
    fn each_component_follows_the_documented_formula() {
        assert_eq!(score(&Inputs::default()).total, 0);
        let full = Inputs {
            ethos_score: Some(2800),
            world_id: true,
            stake: usdc(1_000_000),
            slashes: 0,
            trades: 500,
            votes: 50,
        };
        let s = score(&full);
        assert_eq!((s.ethos, s.world_id, s.stake, s.slashes, s.activity, s.governance), (300, 150, 200, 0, 100, 100));
        assert_eq!(s.total, 850);
        assert_eq!(score(&Inputs { ethos_score: Some(1400), ..Inputs::default() }).ethos, 150);
        assert_eq!(score(&Inputs { ethos_score: Some(1399), ..Inputs::default() }).ethos, 149);
        for (stake, points) in [
            (0, 0),
            (9, 0),
            (10, 40),
            (99, 40),
            (100, 80),
            (1_000, 120),
            (10_000, 160),
            (100_000, 200),
            (10_000_000, 200),
        ] {
            assert_eq!(score(&Inputs { stake: usdc(stake), ..Inputs::default() }).stake, points, "{stake} USDC");
        }
        // 9.999999 USDC is below 10.
        assert_eq!(score(&Inputs { stake: U256::from(9_999_999u64), ..Inputs::default() }).stake, 0);
        assert_eq!(score(&Inputs { votes: 3, trades: 7, ..Inputs::default() }).total, 37);
        // Slashes subtract; the total never drops below 0.
        let slashed = score(&Inputs { ethos_score: Some(2800), slashes: 2, ..Inputs::default() });
        assert_eq!((slashed.slashes, slashed.total), (-200, 100));
        assert_eq!(score(&Inputs { slashes: 5, ..Inputs::default() }).total, 0);
    }
}
