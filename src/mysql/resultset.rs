//! The reply to COM_QUERY: OK, ERR, or a text result set ("Text Resultset" in the protocol docs),
//! with or without the EOF packets that CLIENT_DEPRECATE_EOF removes.

use super::packet::Reader;
use super::{parse_err, ProtocolError, ServerError};

/// The most bytes of column names and values kept from one reply. Past it the reply is refused,
/// so a server streaming a huge result cannot grow our memory.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// The most bytes of rows read for one reply, kept or not. A status row can be a megabyte of
/// replication filters or GTID sets and must still be judged; past this the reply is refused, so
/// a hostile server cannot keep us reading until the deadline.
pub const MAX_STREAMED_BYTES: u64 = 64 * 1024 * 1024;

/// SERVER_MORE_RESULTS_EXISTS in the status flags: another result follows (e.g. after CALL).
const MORE_RESULTS_EXISTS: u16 = 0x0008;

/// A text result set. Values are raw bytes; `None` is SQL NULL. With [`Keep::Columns`] it holds
/// only the columns asked for, in the server's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<Vec<u8>>>>,
}

impl ResultSet {
    /// The first column of the first row, if there is one and it is not NULL.
    pub fn first_value(&self) -> Option<&[u8]> {
        self.rows.first()?.first()?.as_deref()
    }

    /// The index of the column named `name`, compared ASCII case-insensitively as MySQL does.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.eq_ignore_ascii_case(name))
    }
}

/// Which columns of a reply to keep. The others are read and dropped as they stream past, so a
/// row of any size can be judged in bounded memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Every column, up to [`MAX_RESULT_BYTES`].
    All,
    /// Only the columns with these names (ASCII case-insensitive).
    Columns(&'static [&'static str]),
}

impl Keep {
    fn wants(self, name: &[u8]) -> bool {
        match self {
            Keep::All => true,
            Keep::Columns(names) => names.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(name)),
        }
    }
}

/// The outcome of one query: rows, or the server's ERR.
pub type QueryResult = Result<ResultSet, ServerError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for OK, ERR, LOCAL INFILE or the column count.
    Start,
    /// Reading this many more column definitions.
    Columns(u64),
    /// Waiting for the EOF that ends the column definitions (no DEPRECATE_EOF only).
    ColumnsEof,
    /// Reading rows until EOF, OK or ERR.
    Rows,
}

/// Assembles one reply from its packets.
#[derive(Debug, Clone)]
pub struct Parser {
    deprecate_eof: bool,
    state: State,
    keep: Keep,
    /// Whether this is the first result; later ones (after CALL) are read and dropped.
    first: bool,
    /// Per column of the current result: whether its values are kept.
    kept: Vec<bool>,
    result: ResultSet,
    /// Bytes kept (names, values and per-item overhead), against [`MAX_RESULT_BYTES`].
    bytes: usize,
    /// Row bytes read, against [`MAX_STREAMED_BYTES`].
    streamed: u64,
    row: RowScan,
}

/// A text row read incrementally: bytes may come in pieces of any size ("Text Resultset Row":
/// one length-encoded string, or 0xFB for NULL, per column).
#[derive(Debug, Clone, Default)]
struct RowScan {
    /// Index of the column whose value is being read.
    col: usize,
    /// The length-encoded integer read so far, its first byte included.
    len: [u8; 9],
    len_have: usize,
    /// Bytes of the current value still to come, once its length is known.
    left: Option<u64>,
    /// The current value, when its column is kept.
    value: Option<Vec<u8>>,
    /// The kept values of this row so far.
    values: Vec<Option<Vec<u8>>>,
}

/// What one packet did to the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    More,
    Done(QueryResult),
}

impl Parser {
    pub fn new(deprecate_eof: bool) -> Parser {
        Parser::keeping(deprecate_eof, Keep::All)
    }

    /// A parser that keeps only what `keep` names.
    pub fn keeping(deprecate_eof: bool, keep: Keep) -> Parser {
        Parser {
            deprecate_eof,
            state: State::Start,
            keep,
            first: true,
            kept: Vec::new(),
            result: ResultSet::default(),
            bytes: 0,
            streamed: 0,
            row: RowScan::default(),
        }
    }

    /// Whether the next packet is a row (or the end of the rows): only rows may be larger than
    /// a packet the session buffers whole, and they can be streamed through [`Parser::row_bytes`].
    pub fn in_rows(&self) -> bool {
        self.state == State::Rows
    }

    /// Takes the next packet's payload.
    pub fn packet(&mut self, payload: &[u8]) -> Result<Progress, ProtocolError> {
        let header = payload.first().copied().ok_or(ProtocolError::Malformed("empty packet"))?;
        match self.state {
            State::Start => match header {
                0x00 => self.finish(ok_status(payload)?),
                0xFF => Ok(Progress::Done(Err(parse_err(payload)?))),
                0xFB => Err(ProtocolError::LocalInfileRequested),
                _ => {
                    let mut r = Reader::new(payload);
                    let n = r.lenenc_int("column count")?.ok_or(ProtocolError::Malformed("column count"))?;
                    if n == 0 || !r.is_empty() {
                        return Err(ProtocolError::Malformed("column count"));
                    }
                    self.kept.clear();
                    self.state = State::Columns(n);
                    Ok(Progress::More)
                }
            },
            State::Columns(left) => {
                if header == 0xFF {
                    return Ok(Progress::Done(Err(parse_err(payload)?)));
                }
                let name = column_name(payload)?;
                let keep = self.first && self.keep.wants(name);
                // One byte of bookkeeping per column, so a flood of columns is bounded too.
                self.account(1)?;
                if keep {
                    self.account(name.len() + 24)?;
                    self.result.columns.push(String::from_utf8_lossy(name).into_owned());
                }
                self.kept.push(keep);
                self.state = match left - 1 {
                    0 if self.deprecate_eof => State::Rows,
                    0 => State::ColumnsEof,
                    n => State::Columns(n),
                };
                Ok(Progress::More)
            }
            State::ColumnsEof => {
                if !is_terminator(payload) {
                    return Err(ProtocolError::Unexpected { phase: "column definitions eof", header });
                }
                self.state = State::Rows;
                Ok(Progress::More)
            }
            State::Rows => {
                if header == 0xFF {
                    return Ok(Progress::Done(Err(parse_err(payload)?)));
                }
                if is_terminator(payload) {
                    let status = if self.deprecate_eof { ok_status(payload)? } else { eof_status(payload)? };
                    return self.finish(status);
                }
                self.row_bytes(payload)?;
                self.row_end()?;
                Ok(Progress::More)
            }
        }
    }

    /// Takes the next piece of a row, whose bytes may arrive in pieces of any size.
    pub fn row_bytes(&mut self, mut bytes: &[u8]) -> Result<(), ProtocolError> {
        self.streamed += bytes.len() as u64;
        if self.streamed > MAX_STREAMED_BYTES {
            return Err(ProtocolError::ResultTooLarge);
        }
        while !bytes.is_empty() {
            let Some(left) = self.row.left else {
                self.row_length_byte(bytes[0])?;
                bytes = &bytes[1..];
                continue;
            };
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
            if let Some(value) = &mut self.row.value {
                value.extend_from_slice(&bytes[..n]);
            }
            bytes = &bytes[n..];
            self.row.left = Some(left - n as u64);
            if left == n as u64 {
                self.end_value();
            }
        }
        Ok(())
    }

    /// One byte of a value's length-encoded length: once complete, the value starts (or is NULL
    /// or empty and already over).
    fn row_length_byte(&mut self, b: u8) -> Result<(), ProtocolError> {
        if self.row.len_have == 0 && self.row.col >= self.kept.len() {
            return Err(ProtocolError::Malformed("row value count"));
        }
        self.row.len[self.row.len_have] = b;
        self.row.len_have += 1;
        let need = match self.row.len[0] {
            0..=0xFB => 1,
            0xFC => 3,
            0xFD => 4,
            0xFE => 9,
            0xFF => return Err(ProtocolError::Malformed("row value")),
        };
        if self.row.len_have < need {
            return Ok(());
        }
        let keep = self.kept[self.row.col];
        self.row.len_have = 0;
        if self.row.len[0] == 0xFB {
            if keep {
                self.account(24)?;
                self.row.values.push(None);
            }
            self.row.col += 1;
            return Ok(());
        }
        let len = match need {
            1 => u64::from(self.row.len[0]),
            n => {
                let mut v = [0u8; 8];
                v[..n - 1].copy_from_slice(&self.row.len[1..n]);
                u64::from_le_bytes(v)
            }
        };
        if keep {
            // Accounted before anything is allocated: a kept value cannot outgrow the budget.
            self.account(usize::try_from(len).unwrap_or(usize::MAX).saturating_add(24))?;
            self.row.value = Some(Vec::with_capacity(len as usize));
        }
        self.row.left = Some(len);
        if len == 0 {
            self.end_value();
        }
        Ok(())
    }

    fn end_value(&mut self) {
        if self.kept[self.row.col] {
            self.row.values.push(Some(self.row.value.take().unwrap_or_default()));
        }
        self.row.left = None;
        self.row.col += 1;
    }

    /// The row's bytes are all in: it must have held exactly one value per column.
    pub fn row_end(&mut self) -> Result<(), ProtocolError> {
        let row = std::mem::take(&mut self.row);
        if row.left.is_some() || row.len_have != 0 {
            return Err(ProtocolError::Malformed("row value"));
        }
        if row.col != self.kept.len() {
            return Err(ProtocolError::Malformed("row value count"));
        }
        if self.first {
            // Charged even when it keeps no column: a flood of rows is bounded like one of bytes.
            self.account(24)?;
            self.result.rows.push(row.values);
        }
        Ok(())
    }

    /// Ends one result; another follows while the server says MORE_RESULTS_EXISTS.
    fn finish(&mut self, status: u16) -> Result<Progress, ProtocolError> {
        if status & MORE_RESULTS_EXISTS == 0 {
            return Ok(Progress::Done(Ok(std::mem::take(&mut self.result))));
        }
        // Each further result is charged too, so endless MORE_RESULTS_EXISTS packets end early.
        self.account(24)?;
        self.first = false;
        self.state = State::Start;
        Ok(Progress::More)
    }

    fn account(&mut self, n: usize) -> Result<(), ProtocolError> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > MAX_RESULT_BYTES {
            return Err(ProtocolError::ResultTooLarge);
        }
        Ok(())
    }
}

/// An EOF packet, or an OK packet standing in for one (header 0xFE, under 16 MiB). A row cannot
/// start with 0xFE unless its first value is 16 MiB or more, which framing already refuses.
fn is_terminator(payload: &[u8]) -> bool {
    payload.first() == Some(&0xFE) && payload.len() < 0xFF_FFFF
}

/// Status flags of an OK packet (header 0x00 or 0xFE).
pub fn ok_status(payload: &[u8]) -> Result<u16, ProtocolError> {
    let mut r = Reader::new(payload);
    r.u8("ok header")?;
    r.lenenc_int("affected rows")?;
    r.lenenc_int("last insert id")?;
    r.u16("ok status flags")
}

/// Status flags of an EOF packet: header 0xFE, warnings, status.
fn eof_status(payload: &[u8]) -> Result<u16, ProtocolError> {
    let mut r = Reader::new(payload);
    r.u8("eof header")?;
    r.u16("eof warnings")?;
    r.u16("eof status flags")
}

/// The `name` of a ColumnDefinition41: after catalog, schema, table and org_table.
fn column_name(payload: &[u8]) -> Result<&[u8], ProtocolError> {
    let mut r = Reader::new(payload);
    for field in ["column catalog", "column schema", "column table", "column org_table"] {
        r.lenenc_str(field)?;
    }
    r.lenenc_str("column name")?.ok_or(ProtocolError::Malformed("column name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coldef(name: &str) -> Vec<u8> {
        let mut p = Vec::new();
        for s in ["def", "", "", "", name, ""] {
            p.push(s.len() as u8);
            p.extend_from_slice(s.as_bytes());
        }
        p.extend_from_slice(&[0x0c, 0x21, 0, 0, 1, 0, 0, 0xfd, 0, 0, 0x27, 0, 0]);
        p
    }

    const EOF: &[u8] = &[0xFE, 0, 0, 0x02, 0];
    const OK_AS_EOF: &[u8] = &[0xFE, 0, 0, 0x02, 0, 0, 0];

    fn feed(p: &mut Parser, packets: &[Vec<u8>]) -> Result<Option<QueryResult>, ProtocolError> {
        for (i, pkt) in packets.iter().enumerate() {
            if let Progress::Done(r) = p.packet(pkt)? {
                assert_eq!(i, packets.len() - 1, "done early");
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    #[test]
    fn result_with_eof_packets_keeps_names_rows_and_nulls() {
        let packets = vec![
            vec![2],
            coldef("Variable_name"),
            coldef("Value"),
            EOF.to_vec(),
            b"\x0bwsrep_ready\x02ON".to_vec(),
            b"\x09read_only\xfb".to_vec(),
            EOF.to_vec(),
        ];
        let rs = feed(&mut Parser::new(false), &packets).unwrap().unwrap().unwrap();
        assert_eq!(rs.columns, ["Variable_name", "Value"]);
        assert_eq!(rs.column("value"), Some(1));
        assert_eq!(rs.first_value(), Some(&b"wsrep_ready"[..]));
        assert_eq!(rs.rows[1], vec![Some(b"read_only".to_vec()), None]);
    }

    #[test]
    fn result_without_eof_packets_ends_at_the_ok() {
        let packets = vec![vec![1], coldef("@@hostname"), b"\x02vm".to_vec(), OK_AS_EOF.to_vec()];
        let rs = feed(&mut Parser::new(true), &packets).unwrap().unwrap().unwrap();
        assert_eq!(rs.first_value(), Some(&b"vm"[..]));
        // The same packets read as the EOF dialect stall waiting for the column EOF's successor.
        assert!(feed(&mut Parser::new(false), &packets).is_err());
    }

    #[test]
    fn ok_without_rows_err_and_local_infile() {
        let rs = feed(&mut Parser::new(true), &[vec![0, 0, 0, 2, 0, 0, 0]]).unwrap().unwrap().unwrap();
        assert!(rs.rows.is_empty() && rs.columns.is_empty());
        let err = feed(&mut Parser::new(true), &[b"\xff\x28\x04#42000syntax".to_vec()]).unwrap().unwrap().unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (1064, "syntax"));
        assert_eq!(feed(&mut Parser::new(true), &[b"\xfbfile".to_vec()]), Err(ProtocolError::LocalInfileRequested));
    }

    #[test]
    fn later_results_after_call_are_read_and_dropped() {
        let more = [0xFE, 0, 0, 0x0A, 0, 0, 0].to_vec(); // status: autocommit | more results
        let packets = vec![
            vec![1],
            coldef("a"),
            b"\x011".to_vec(),
            more,
            vec![1],
            coldef("b"),
            b"\x012".to_vec(),
            OK_AS_EOF.to_vec(),
        ];
        let rs = feed(&mut Parser::new(true), &packets).unwrap().unwrap().unwrap();
        assert_eq!((rs.columns.len(), rs.rows.len(), rs.first_value()), (1, 1, Some(&b"1"[..])));
    }

    #[test]
    fn a_huge_result_is_refused_not_buffered() {
        let mut p = Parser::new(true);
        feed(&mut p, &[vec![1], coldef("x")]).unwrap();
        let row = [vec![0xFC, 0x00, 0x10], vec![b'x'; 4096]].concat();
        let (err, rows) = flood(&mut p, &row);
        assert_eq!(err, ProtocolError::ResultTooLarge);
        assert!(rows * 4096 <= MAX_RESULT_BYTES);
    }

    /// Feeds `packet` until the parser refuses it: the error, and how many it took first.
    fn flood(p: &mut Parser, packet: &[u8]) -> (ProtocolError, usize) {
        let mut taken = 0;
        loop {
            match p.packet(packet) {
                Ok(_) => taken += 1,
                Err(e) => return (e, taken),
            }
        }
    }

    #[test]
    fn a_flood_of_rows_without_kept_columns_is_refused() {
        let mut p = Parser::keeping(true, Keep::Columns(&["Value"]));
        feed(&mut p, &[vec![1], coldef("x")]).unwrap();
        let (err, rows) = flood(&mut p, &[0xFB]);
        assert_eq!(err, ProtocolError::ResultTooLarge);
        assert!(rows * 24 <= MAX_RESULT_BYTES, "{rows} rows kept");
    }

    #[test]
    fn endless_further_results_are_refused() {
        // OK: autocommit | more results.
        let (err, results) = flood(&mut Parser::new(true), &[0x00, 0, 0, 0x0A, 0, 0, 0]);
        assert_eq!(err, ProtocolError::ResultTooLarge);
        assert!(results * 24 <= MAX_RESULT_BYTES, "{results} results read");
    }

    #[test]
    fn malformed_rows_are_errors_not_panics() {
        let mut p = Parser::new(true);
        feed(&mut p, &[vec![2], coldef("a"), coldef("b")]).unwrap();
        assert!(p.clone().packet(b"\x011").is_err(), "too few values");
        assert!(p.clone().packet(b"\x05ab").is_err(), "value past the end");
        assert!(Parser::new(true).packet(&[]).is_err());
        assert!(Parser::new(true).packet(&[0xFC, 0]).is_err());
        assert!(Parser::new(true).packet(&[0]).is_err(), "truncated OK");
    }
}
