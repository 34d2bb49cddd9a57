//! A sans-IO MySQL client: just enough of the client/server protocol to log in with any current
//! auth plugin, run text queries and say goodbye.
//!
//! Nothing in this module does I/O or reads the clock. [`Session`] takes bytes the server sent
//! and returns bytes to send; the check driver owns the socket and the deadline. Every byte can
//! be fed one at a time.

pub mod auth;
pub mod handshake;
pub mod packet;
pub mod resultset;
pub mod session;

use std::fmt;

pub use resultset::ResultSet;
pub use session::{Action, Options, Password, Session, TlsRequest, Transport};

/// An ERR packet: what the server said went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The error code, e.g. 1045 for access denied.
    pub code: u16,
    /// The five-character SQLSTATE, absent in errors sent before the handshake.
    pub state: Option<String>,
    /// The server's message, verbatim (lossily decoded as UTF-8).
    pub message: String,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            Some(state) => write!(f, "{} ({}, {})", self.message, self.code, state),
            None => write!(f, "{} ({})", self.message, self.code),
        }
    }
}

/// The server broke the protocol, or asked for something this client will not do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A frame announced a payload larger than [`packet::MAX_PAYLOAD`].
    PacketTooLarge(usize),
    /// A frame carried the wrong sequence id.
    BadSequence { expected: u8, got: u8 },
    /// The greeting was not HandshakeV10.
    UnsupportedProtocolVersion(u8),
    /// The server lacks a capability this client needs (named).
    MissingCapability(&'static str),
    /// A packet ended early or held an impossible value (the field is named).
    Malformed(&'static str),
    /// A packet that has no place in this phase (named), by its first byte.
    Unexpected { phase: &'static str, header: u8 },
    /// The server asked for an auth plugin this client does not implement.
    UnsupportedPlugin(String),
    /// The server asked for a second auth switch.
    TooManyAuthSwitches,
    /// The pre-4.1 "old password" switch: insecure and unsupported.
    OldPasswordAuth,
    /// The RSA public key sent for caching_sha2/sha256 full auth could not be used.
    BadPublicKey,
    /// The password does not fit one RSA-OAEP block of the server's key.
    PasswordTooLongForKey,
    /// The result set grew past [`resultset::MAX_RESULT_BYTES`].
    ResultTooLarge,
    /// The server asked to read a local file, which this client never requests.
    LocalInfileRequested,
    /// The server closed the connection in the middle of an exchange.
    UnexpectedEof,
    /// TLS was required and the greeting lacks CLIENT_SSL.
    TlsNotOffered,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::PacketTooLarge(n) => {
                write!(f, "packet of {n} bytes exceeds the {} byte limit", packet::MAX_PAYLOAD)
            }
            ProtocolError::BadSequence { expected, got } => {
                write!(f, "packet sequence id {got}, expected {expected}")
            }
            ProtocolError::UnsupportedProtocolVersion(v) => {
                write!(f, "unsupported protocol version {v} (only 10 is spoken)")
            }
            ProtocolError::MissingCapability(c) => write!(f, "server lacks capability {c}"),
            ProtocolError::Malformed(field) => write!(f, "malformed packet: {field}"),
            ProtocolError::Unexpected { phase, header } => {
                write!(f, "unexpected packet 0x{header:02x} during {phase}")
            }
            ProtocolError::UnsupportedPlugin(name) => {
                write!(f, "unsupported auth plugin \"{}\"", name.escape_debug())
            }
            ProtocolError::TooManyAuthSwitches => f.write_str("server switched auth plugin twice"),
            ProtocolError::OldPasswordAuth => f.write_str("server asked for pre-4.1 old password auth"),
            ProtocolError::BadPublicKey => f.write_str("server sent an unusable RSA public key"),
            ProtocolError::PasswordTooLongForKey => {
                f.write_str("password too long for the server's RSA key (use TLS or a unix socket)")
            }
            ProtocolError::ResultTooLarge => write!(f, "result set larger than {} bytes", resultset::MAX_RESULT_BYTES),
            ProtocolError::LocalInfileRequested => f.write_str("server requested LOCAL INFILE"),
            ProtocolError::UnexpectedEof => f.write_str("server closed the connection"),
            ProtocolError::TlsNotOffered => f.write_str("server does not offer TLS"),
        }
    }
}

/// Why a session could not log in or continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The server refused us with an ERR packet (at the greeting or during auth).
    Server(ServerError),
    /// The server did not follow the protocol.
    Protocol(ProtocolError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Server(e) => write!(f, "server error: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

impl std::error::Error for Error {}
impl std::error::Error for ServerError {}
impl std::error::Error for ProtocolError {}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<ServerError> for Error {
    fn from(e: ServerError) -> Self {
        Error::Server(e)
    }
}

/// The longest server message kept from an ERR packet.
pub const MAX_MESSAGE_LEN: usize = 512;

/// Text from a server made fit for a log line or an HTTP body: lossy UTF-8, control characters
/// replaced by `?`, at most `max` bytes (cut at a character boundary).
pub fn printable(raw: &[u8], max: usize) -> String {
    // The common case, text that needs no change, in one copy: a check makes three (the
    // server's version, its auth plugin's name, the value), and char by char they cost 5% of its
    // instructions.
    if let Ok(text) = std::str::from_utf8(raw) {
        if text.len() <= max && !text.chars().any(char::is_control) {
            return text.to_owned();
        }
    }
    let mut out = String::with_capacity(raw.len().min(max));
    for c in String::from_utf8_lossy(raw).chars() {
        let c = if c.is_control() { '?' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// Parses an ERR packet (first byte 0xFF). The SQLSTATE marker `#` is optional: servers omit it
/// in errors sent before they know the client speaks 4.1 (e.g. 1040 Too many connections).
pub fn parse_err(payload: &[u8]) -> Result<ServerError, ProtocolError> {
    let mut r = packet::Reader::new(payload);
    if r.u8("err header")? != 0xFF {
        return Err(ProtocolError::Malformed("err header"));
    }
    let code = r.u16("err code")?;
    let mut state = None;
    if r.remaining().first() == Some(&b'#') {
        r.bytes(1, "sqlstate marker")?;
        state = Some(String::from_utf8_lossy(r.bytes(5, "sqlstate")?).into_owned());
    }
    let message = printable(r.remaining(), MAX_MESSAGE_LEN);
    Ok(ServerError { code, state: state.map(|s| printable(s.as_bytes(), 5)), message })
}

/// Capability flags (see the "Capabilities Flags" page of the protocol docs).
pub mod caps {
    pub const LONG_PASSWORD: u32 = 0x0000_0001;
    pub const CONNECT_WITH_DB: u32 = 0x0000_0008;
    pub const PROTOCOL_41: u32 = 0x0000_0200;
    pub const SSL: u32 = 0x0000_0800;
    pub const TRANSACTIONS: u32 = 0x0000_2000;
    pub const SECURE_CONNECTION: u32 = 0x0000_8000;
    pub const MULTI_STATEMENTS: u32 = 0x0001_0000;
    pub const MULTI_RESULTS: u32 = 0x0002_0000;
    pub const PLUGIN_AUTH: u32 = 0x0008_0000;
    pub const PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x0020_0000;
    pub const DEPRECATE_EOF: u32 = 0x0100_0000;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn err_with_and_without_sqlstate() {
        let e = parse_err(b"\xff\x15\x04#28000Access denied").unwrap();
        assert_eq!(e.code, 1045);
        assert_eq!(e.state.as_deref(), Some("28000"));
        assert_eq!(e.message, "Access denied");
        assert_eq!(e.to_string(), "Access denied (1045, 28000)");
        let e = parse_err(b"\xff\x10\x04Too many connections").unwrap();
        assert_eq!((e.code, e.state, e.message.as_str()), (1040, None, "Too many connections"));
        assert!(parse_err(b"\xff\x10").is_err());
    }

    #[test]
    fn server_messages_are_cut_and_cleaned() {
        let mut p = b"\xff\x15\x04#28000evil\r\nX-Injected: 1\x1b[31m".to_vec();
        p.extend_from_slice(&[b'a'; 2000]);
        let e = parse_err(&p).unwrap();
        assert!(e.message.starts_with("evil??X-Injected: 1?[31maaa"), "{}", e.message);
        assert_eq!(e.message.len(), MAX_MESSAGE_LEN);
        assert_eq!(printable("h\u{e9}llo".as_bytes(), 2), "h", "never splits a character");
    }

    #[test]
    fn clean_text_is_copied_whole_and_the_rest_as_before() {
        // The char-by-char way, which the one-copy shortcut for clean text must agree with.
        let slow = |raw: &[u8], max: usize| {
            let mut out = String::new();
            for c in String::from_utf8_lossy(raw).chars().map(|c| if c.is_control() { '?' } else { c }) {
                if out.len() + c.len_utf8() > max {
                    break;
                }
                out.push(c);
            }
            out
        };
        let texts: [&[u8]; 7] = [
            b"10.11.19-MariaDB-0+deb12u1",
            b"",
            "h\u{e9}llo".as_bytes(),
            b"a\tb",
            b"\xff\xfeok",
            b"abc\x7f",
            b"x\x85y",
        ];
        for raw in texts {
            for max in 0..=raw.len() + 1 {
                assert_eq!(printable(raw, max), slow(raw, max), "{raw:?} cut at {max}");
            }
        }
    }
}
