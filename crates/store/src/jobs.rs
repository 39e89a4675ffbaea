//! Inserting background jobs (`app.jobs`, run by `animoca-trade work`). Any
//! process may enqueue one in its own transaction; `animoca-jobs` owns the rest
//! of the table's life (dispatch, claims, outcomes).

use serde_json::Value;
use sqlx::PgConnection;

/// The queue of third-party checks (Ethos, World ID).
pub const VERIFICATION_QUEUE: &str = "verification";
/// Attempts a verification job gets before it is a dead letter.
pub const VERIFICATION_MAX_ATTEMPTS: i32 = 8;
/// Job kind: verify a World ID proof for a persona.
pub const WORLDID_PERSONA: &str = "worldid_persona";

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// The queue that runs it.
    pub queue: &'a str,
    /// What it does.
    pub kind: &'a str,
    /// Its arguments.
    pub payload: Value,
    /// The same key twice is one job.
    pub idempotency_key: String,
    /// Attempts before it is a dead letter.
    pub max_attempts: i32,
    /// Not before (`None`: now).
    pub run_after: Option<chrono::DateTime<chrono::Utc>>,
}

/// Inserts `job` unless a job with its idempotency key exists; returns the new
/// id, `None` for a duplicate. Wakes the dispatchers on commit.
pub async fn enqueue(conn: &mut PgConnection, job: &NewJob<'_>) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO app.jobs (queue, kind, payload, idempotency_key, max_attempts, run_after)
         VALUES ($1, $2, $3, $4, $5, coalesce($6, now()))
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING id",
    )
    .bind(job.queue)
    .bind(job.kind)
    .bind(&job.payload)
    .bind(&job.idempotency_key)
    .bind(job.max_attempts)
    .bind(job.run_after)
    .fetch_optional(conn)
    .await
}

/// Every notification kind the job workers write (webhooks subscribe to some
/// of them, or to all).
pub const NOTIFICATION_KINDS: [&str; 6] =
    ["verification", "proposal_created", "proposal_outcome", "stake_slashed", "large_trade", "webhook_disabled"];

/// Whether a webhook may target `ip`: a public unicast address. Loopback,
/// private (RFC 1918, unique local), shared (100.64/10), link-local (cloud
/// metadata at 169.254.169.254), unspecified, multicast, reserved and
/// documentation ranges are refused, so a webhook cannot reach into our own
/// network. IPv6 must be global unicast (2000::/3); addresses embedding an
/// IPv4 one (mapped, compatible, NAT64, 6to4) are judged by it, and Teredo is
/// refused.
pub fn is_public_ip(ip: std::net::IpAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr};
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 192 && b == 0 && c == 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_ip(IpAddr::V4(v4));
            }
            // ::a.b.c.d (IPv4-compatible) and the NAT64 prefix 64:ff9b::/96.
            if s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return s[6] != 0 && is_public_ip(IpAddr::V4(embedded(s[6], s[7])));
            }
            // 6to4: 2002:a.b.c.d::/48.
            if s[0] == 0x2002 {
                return is_public_ip(IpAddr::V4(embedded(s[1], s[2])));
            }
            let global_unicast = (s[0] & 0xe000) == 0x2000;
            let teredo = s[0] == 0x2001 && s[1] == 0;
            let documentation = s[0] == 0x2001 && s[1] == 0x0db8;
            let local_nat64 = s[0] == 0x64 && s[1] == 0xff9b;
            global_unicast && !teredo && !documentation && !local_nat64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_public_ip;

    #[test]
    fn webhook_targets_must_be_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
            "192.0.2.1",
        ] {
            assert!(!is_public_ip(private.parse().unwrap_or_else(|_| unreachable!())), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public_ip(public.parse().unwrap_or_else(|_| unreachable!())), "{public}");
        }
    }
}
