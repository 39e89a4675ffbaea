//! Bulk appends with `COPY … FROM STDIN (FORMAT binary)`: the cheapest way to
//! add many rows to the event tables (PostgreSQL parses no text: measured on
//! 42,000 raw logs, 133 ms binary against 375 ms as text). Rows are encoded in
//! memory, then streamed in one `COPY` inside the caller's transaction.

use sqlx::PgConnection;

use crate::StoreError;

/// Unix time of PostgreSQL's timestamp epoch, 2000-01-01 00:00:00 UTC.
pub(crate) const PG_EPOCH_UNIX: i64 = 946_684_800;

/// Rows in PostgreSQL's binary `COPY` format: a header, then per row the field
/// count and each field as a length and its bytes (`-1` for NULL), then a trailer.
#[derive(Debug)]
pub(crate) struct CopyRows {
    buf: Vec<u8>,
    columns: i16,
    rows: usize,
}

impl CopyRows {
    /// Rows of `columns` fields, with room for about `bytes`.
    pub(crate) fn new(columns: i16, bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes + 32);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Self { buf, columns, rows: 0 }
    }

    /// Starts a row; the caller then writes exactly `columns` fields.
    pub(crate) fn row(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&self.columns.to_be_bytes());
        self.rows += 1;
        self
    }

    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
        self
    }

    /// A `bigint` (values past `i64::MAX` are clamped; block numbers never get there).
    pub(crate) fn int8(&mut self, value: u64) -> &mut Self {
        self.field(&i64::try_from(value).unwrap_or(i64::MAX).to_be_bytes())
    }

    /// An `integer`.
    pub(crate) fn int4(&mut self, value: u64) -> &mut Self {
        self.field(&i32::try_from(value).unwrap_or(i32::MAX).to_be_bytes())
    }

    /// A `smallint`.
    pub(crate) fn int2(&mut self, value: i16) -> &mut Self {
        self.field(&value.to_be_bytes())
    }

    /// A `boolean`.
    pub(crate) fn bool(&mut self, value: bool) -> &mut Self {
        self.field(&[u8::from(value)])
    }

    /// A `bytea`.
    pub(crate) fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.field(value)
    }

    /// A nullable `bytea`.
    pub(crate) fn opt_bytes(&mut self, value: Option<&[u8]>) -> &mut Self {
        match value {
            Some(bytes) => self.field(bytes),
            None => {
                self.buf.extend_from_slice(&(-1i32).to_be_bytes());
                self
            }
        }
    }

    /// A `timestamptz` from Unix seconds.
    pub(crate) fn timestamp(&mut self, unix_seconds: u64) -> &mut Self {
        let seconds = i64::try_from(unix_seconds).unwrap_or(i64::MAX / 1_000_000);
        let micros = seconds.saturating_sub(PG_EPOCH_UNIX).saturating_mul(1_000_000);
        self.field(&micros.to_be_bytes())
    }

    /// A `numeric` from its decimal text (`"123"`, `"0.000123000000000000"`):
    /// the exact value, with the text's number of fraction digits as its scale.
    pub(crate) fn numeric(&mut self, decimal: &str) -> &mut Self {
        let encoded = numeric_binary(decimal);
        self.field(&encoded)
    }

    /// The encoded stream with its trailer (tests feed it to the reader).
    #[cfg(test)]
    pub(crate) fn into_bytes(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }

    /// Streams the rows with `statement` (a `COPY table (columns) FROM STDIN
    /// (FORMAT binary)`). Nothing is sent when there are no rows.
    pub(crate) async fn send(mut self, conn: &mut PgConnection, statement: &str) -> Result<u64, StoreError> {
        if self.rows == 0 {
            return Ok(0);
        }
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        let mut copy = conn.copy_in_raw(statement).await?;
        if let Err(error) = copy.send(self.buf).await {
            let _ = copy.abort(error.to_string()).await;
            return Err(error.into());
        }
        Ok(copy.finish().await?)
    }
}

/// PostgreSQL's binary `numeric`: digit count, weight (of the first base-10000
/// digit), sign, display scale, then the base-10000 digits. `decimal` is an
/// unsigned decimal with an optional fraction, as our writers produce.
fn numeric_binary(decimal: &str) -> Vec<u8> {
    debug_assert!(
        decimal.bytes().all(|b| b.is_ascii_digit() || b == b'.') && decimal.bytes().filter(|&b| b == b'.').count() <= 1,
        "not an unsigned decimal: {decimal:?}"
    );
    let (int_part, frac_part) = decimal.split_once('.').unwrap_or((decimal, ""));
    let int_part = int_part.trim_start_matches('0');
    // Base-10000 digits aligned on the decimal point: the integer part grouped
    // from the right, the fraction from the left (zero-padded).
    let lead = int_part.len() % 4;
    let mut groups: Vec<i16> = Vec::with_capacity(int_part.len() / 4 + frac_part.len() / 4 + 2);
    let digit = |text: &str| text.bytes().fold(0i16, |acc, b| acc * 10 + i16::from(b.wrapping_sub(b'0')));
    if lead > 0 {
        groups.push(digit(&int_part[..lead]));
    }
    for chunk in int_part.as_bytes()[lead..].chunks(4) {
        groups.push(digit(std::str::from_utf8(chunk).unwrap_or("0")));
    }
    let int_groups = i16::try_from(groups.len()).unwrap_or(i16::MAX);
    for chunk in frac_part.as_bytes().chunks(4) {
        let text = std::str::from_utf8(chunk).unwrap_or("0");
        groups.push(digit(text) * 10i16.pow(4 - u32::try_from(chunk.len()).unwrap_or(4)));
    }
    let mut weight = int_groups - 1;
    let leading_zeros = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..leading_zeros);
    weight -= i16::try_from(leading_zeros).unwrap_or(0);
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let scale = i16::try_from(frac_part.len()).unwrap_or(i16::MAX);
    let mut out = Vec::with_capacity(8 + groups.len() * 2);
    out.extend_from_slice(&i16::try_from(groups.len()).unwrap_or(i16::MAX).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&0i16.to_be_bytes()); // positive
    out.extend_from_slice(&scale.to_be_bytes());
    for group in groups {
        out.extend_from_slice(&group.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(bytes: &[u8]) -> Vec<i16> {
        bytes.chunks(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect()
    }

    #[test]
    fn numerics_are_base_10000_digits_around_the_point() {
        // ndigits, weight, sign, dscale, digits…
        assert_eq!(words(&numeric_binary("0")), [0, 0, 0, 0]);
        assert_eq!(words(&numeric_binary("12345")), [2, 1, 0, 0, 1, 2345]);
        assert_eq!(words(&numeric_binary("10000")), [1, 1, 0, 0, 1]);
        assert_eq!(words(&numeric_binary("0.000100000000000000")), [1, -1, 0, 18, 1]);
        assert_eq!(words(&numeric_binary("0.000000000000000000")), [0, 0, 0, 18]);
        assert_eq!(words(&numeric_binary("1.5")), [2, 0, 0, 1, 1, 5000]);
        assert_eq!(words(&numeric_binary("0.00000001")), [1, -2, 0, 8, 1]);
    }

    #[test]
    fn rows_have_a_header_field_lengths_and_a_trailer_on_send() {
        let mut rows = CopyRows::new(3, 0);
        rows.row().int8(7).opt_bytes(None).timestamp(946_684_801);
        let header = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
        assert_eq!(&rows.buf[..header.len()], header);
        let body = &rows.buf[header.len()..];
        let mut expected = vec![0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 8];
        expected.extend_from_slice(&1_000_000i64.to_be_bytes());
        assert_eq!(body, expected.as_slice());
    }
}
