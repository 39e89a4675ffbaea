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
        // Fields as raw slices first (`None`: the row is not complete yet).
        let row = (|| {
            let mut fields: [Option<&[u8]>; COLUMNS as usize] = [None; COLUMNS as usize];
            for field in &mut fields {
                *field = cursor.nullable_field()?;
            }
            Some(fields)
        })();
        let Some([block_number, log_index, block_hash, micros, tx_hash, tx_index, address, t0, t1, t2, t3, data]) = row
        else {
            return Ok(None);
        };
        let (block_number, micros) =
            (int8(required(block_number, "block_number")?)?, int8(required(micros, "block_timestamp")?)?);
        let (log_index, tx_index) = (int4(required(log_index, "log_index")?)?, int4(required(tx_index, "tx_index")?)?);
        let (block_hash, tx_hash) = (required(block_hash, "block_hash")?, required(tx_hash, "tx_hash")?);
        let (address, data) = (required(address, "address")?, required(data, "data")?);
        // Topics are a prefix: a NULL topic is never followed by a present one.
        let present: Vec<&[u8]> = [t0, t1, t2, t3].into_iter().map_while(|t| t).collect();
        if [t0, t1, t2, t3].iter().filter(|t| t.is_some()).count() != present.len() {
            return Err(corrupt("a NULL topic before a present one"));
        }
        let topics = present;
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
}

fn required<'a>(field: Option<&'a [u8]>, name: &str) -> Result<&'a [u8], StoreError> {
    field.ok_or_else(|| corrupt(&format!("{name} is NULL")))
}

fn int8(bytes: &[u8]) -> Result<i64, StoreError> {
    Ok(i64::from_be_bytes(bytes.try_into().map_err(|_| corrupt("a bigint is not 8 bytes"))?))
}

fn int4(bytes: &[u8]) -> Result<i64, StoreError> {
    Ok(i64::from(i32::from_be_bytes(bytes.try_into().map_err(|_| corrupt("an integer is not 4 bytes"))?)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::CopyRows;

    fn log(block: u64, index: u64, topics: usize, data: &[u8]) -> RawLog {
        RawLog {
            position: EventPosition {
                block_number: block,
                block_hash: B256::repeat_byte(u8::try_from(block % 256).unwrap_or(0)),
                block_timestamp: 1_700_000_000 + block * 12,
                tx_hash: B256::repeat_byte(0xaa),
                log_index: index,
            },
            tx_index: index / 3,
            address: Address::repeat_byte(0x11),
            topics: (0..topics).map(|i| B256::repeat_byte(u8::try_from(i).unwrap_or(0) + 1)).collect(),
            data: data.to_vec(),
        }
    }

    /// Encodes the reader's columns the way the server sends them; a topic given
    /// as `None` after a present one makes a gap.
    fn encode(logs: &[RawLog], gap: bool) -> Vec<u8> {
        let mut rows = CopyRows::new(COLUMNS, 1024);
        for l in logs {
            let p = l.position;
            rows.row()
                .int8(p.block_number)
                .int4(p.log_index)
                .bytes(p.block_hash.as_slice())
                .timestamp(p.block_timestamp);
            rows.bytes(p.tx_hash.as_slice()).int4(l.tx_index).bytes(l.address.as_slice());
            for i in 0..4 {
                let topic = if gap && i == 0 { None } else { l.topics.get(i).map(|t| t.as_slice()) };
                rows.opt_bytes(topic);
            }
            rows.bytes(&l.data);
        }
        rows.into_bytes()
    }

    fn parse_all(stream: &[u8], piece: usize) -> Result<Vec<RawLog>, StoreError> {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        for chunk in stream.chunks(piece) {
            parser.buf.extend_from_slice(chunk);
            while let Some(log) = parser.next_row()? {
                out.push(log);
            }
            parser.compact();
        }
        if !parser.finished {
            return Err(corrupt("no trailer"));
        }
        Ok(out)
    }

    #[test]
    fn rows_split_anywhere_across_network_chunks_parse_the_same() {
        let logs = vec![log(7, 0, 3, &[1, 2, 3]), log(7, 1, 0, &[]), log(9, 0, 4, &[0xff; 300])];
        let stream = encode(&logs, false);
        for piece in [1, 2, 3, 7, 64, stream.len()] {
            assert_eq!(parse_all(&stream, piece).unwrap(), logs, "pieces of {piece} bytes");
        }
        // A stream cut short is reported, not taken as complete.
        assert!(parse_all(&stream[..stream.len() - 2], 5).is_err());
    }

    #[test]
    fn a_gap_in_the_topics_is_corruption() {
        let stream = encode(&[log(1, 0, 3, &[])], true);
        assert!(parse_all(&stream, 16).is_err());
    }

    #[test]
    fn a_mis_sized_integer_is_corruption() {
        let mut rows = CopyRows::new(COLUMNS, 64);
        rows.row().int4(5); // block_number must be 8 bytes
        for _ in 1..COLUMNS {
            rows.int4(1);
        }
        assert!(parse_all(&rows.into_bytes(), 8).is_err());
    }
}
