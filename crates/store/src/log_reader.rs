//! Reads the raw log store back in chain order, fast: one `COPY … TO STDOUT
//! (FORMAT binary)` parsed as it streams, handed out in chunks of whole blocks
//! (a block's logs are never split: a market token's first transfers come
//! before the factory event that announces it, in the same transaction).

use alloy_primitives::{Address, B256};
use futures_util::StreamExt;
use sqlx::PgConnection;
use tokio::sync::mpsc;

use crate::{
    StoreError,
    batch::{EventPosition, RawLog},
    copy::PG_EPOCH_UNIX,
};

/// Streams the logs of `chain_id` up to block `through` (inclusive) into `out`,
/// in (block, log index) order, in chunks of at least `chunk_logs` logs cut at
/// block boundaries. Runs in the caller's transaction (whose snapshot it reads).
/// Stops early, without error, when the receiver is gone. Returns the number of
/// logs read.
pub async fn stream_logs(
    conn: &mut PgConnection,
    chain_id: u64,
    through: u64,
    chunk_logs: usize,
    out: mpsc::Sender<Vec<RawLog>>,
) -> Result<u64, StoreError> {
    let chain = i64::try_from(chain_id).unwrap_or(i64::MAX);
    let through = i64::try_from(through).unwrap_or(i64::MAX);
    // The primary key's order is the order wanted: never a sort of the whole store.
    sqlx::query("SET LOCAL enable_sort = off").execute(&mut *conn).await?;
    let statement = format!(
        "COPY (SELECT block_number, log_index, block_hash, block_timestamp, tx_hash, tx_index, address,
                      topic0, topic1, topic2, topic3, data
                 FROM chain.logs WHERE chain_id = {chain} AND block_number <= {through}
                ORDER BY chain_id, block_number, log_index) TO STDOUT (FORMAT binary)"
    );
    let mut stream = conn.copy_out_raw(&statement).await?;
    let mut parser = Parser::default();
    let mut chunk: Vec<RawLog> = Vec::with_capacity(chunk_logs + 1024);
    let mut total = 0u64;
    let started = std::time::Instant::now();
    let mut blocked = std::time::Duration::ZERO;
    while let Some(bytes) = stream.next().await {
        parser.buf.extend_from_slice(&bytes?);
        while let Some(log) = parser.next_row()? {
            let new_block = chunk.last().is_some_and(|last| last.position.block_number != log.position.block_number);
            if new_block && chunk.len() >= chunk_logs {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(chunk_logs + 1024));
                let waiting = std::time::Instant::now();
                if out.send(full).await.is_err() {
                    return Ok(total);
                }
                blocked += waiting.elapsed();
            }
            chunk.push(log);
            total += 1;
        }
        parser.compact();
    }
    if !parser.finished {
        return Err(StoreError::Corrupt("the log store's COPY stream ended early".to_owned()));
    }
    if !chunk.is_empty() {
        let _ = out.send(chunk).await;
    }
    tracing::debug!(
        logs = total,
        took_ms = started.elapsed().as_millis(),
        blocked_on_consumer_ms = blocked.as_millis(),
        "log store streamed"
    );
    Ok(total)
}

/// Incremental parser of PostgreSQL's binary `COPY` format for the columns above.
#[derive(Default)]
struct Parser {
    buf: Vec<u8>,
    at: usize,
    header_read: bool,
    finished: bool,
}

/// Signature, flags and header-extension length of a binary COPY stream.
const HEADER_LEN: usize = 11 + 4 + 4;
const COLUMNS: i16 = 12;

impl Parser {
    /// The next complete row, or `None` until more bytes arrive.
    fn next_row(&mut self) -> Result<Option<RawLog>, StoreError> {
        if !self.header_read {
            if self.buf.len() < HEADER_LEN {
                return Ok(None);
            }
            if &self.buf[..11] != b"PGCOPY\n\xff\r\n\0" {
                return Err(corrupt("bad COPY signature"));
            }
            let extension = u32::from_be_bytes(self.buf[15..19].try_into().unwrap_or_default()) as usize;
            if self.buf.len() < HEADER_LEN + extension {
                return Ok(None);
            }
            self.at = HEADER_LEN + extension;
            self.header_read = true;
        }
        let mut cursor = Cursor { buf: &self.buf, at: self.at };
        let Some(fields) = cursor.i16() else { return Ok(None) };
        if fields == -1 {
            self.finished = true;
            self.at = cursor.at;
            return Ok(None);
        }
        if fields != COLUMNS {
            return Err(corrupt("unexpected column count"));
        }
        let row = (|| {
            let block_number = cursor.int8_field()?;
            let log_index = cursor.int4_field()?;
            let block_hash = cursor.field()?;
            let micros = cursor.int8_field()?;
            let tx_hash = cursor.field()?;
            let tx_index = cursor.int4_field()?;
            let address = cursor.field()?;
            let mut topics = Vec::with_capacity(4);
            for _ in 0..4 {
                if let Some(topic) = cursor.nullable_field()? {
                    topics.push(topic);
                }
            }
            let data = cursor.field()?;
            Some((block_number, log_index, block_hash, micros, tx_hash, tx_index, address, topics, data))
        })();
        let Some((block_number, log_index, block_hash, micros, tx_hash, tx_index, address, topics, data)) = row else {
            return Ok(None);
        };
        let log = RawLog {
            position: EventPosition {
                block_number: uint(block_number),
                block_hash: b256(block_hash)?,
                block_timestamp: uint(micros.div_euclid(1_000_000) + PG_EPOCH_UNIX),
                tx_hash: b256(tx_hash)?,
                log_index: uint(log_index),
            },
            tx_index: uint(tx_index),
            address: Address::try_from(address).map_err(|_| corrupt("an address is not 20 bytes"))?,
            topics: topics.into_iter().map(b256).collect::<Result<_, _>>()?,
            data: data.to_vec(),
        };
        self.at = cursor.at;
        Ok(Some(log))
    }

    /// Drops the bytes already parsed.
    fn compact(&mut self) {
        if self.at > 0 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
    }
}

/// Reads fields from a buffer; `None` when the buffer ends first.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.buf.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(bytes)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    /// A field; a NULL reads as `Some(None)`.
    fn nullable_field(&mut self) -> Option<Option<&'a [u8]>> {
        let len = self.i32()?;
        if len < 0 {
            return Some(None);
        }
        Some(Some(self.take(usize::try_from(len).ok()?)?))
    }

    /// A non-NULL field (a NULL reads as empty, which the typed readers reject).
    fn field(&mut self) -> Option<&'a [u8]> {
        Some(self.nullable_field()?.unwrap_or_default())
    }

    fn int8_field(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.field()?.try_into().unwrap_or([0xff; 8])))
    }

    fn int4_field(&mut self) -> Option<i64> {
        Some(i64::from(i32::from_be_bytes(self.field()?.try_into().unwrap_or([0xff; 4]))))
    }
}

fn b256(bytes: &[u8]) -> Result<B256, StoreError> {
    B256::try_from(bytes).map_err(|_| corrupt("a hash or topic is not 32 bytes"))
}

fn uint(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("log store: {what}"))
}
