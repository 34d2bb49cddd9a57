//! The client state machine: greeting, login, queries, QUIT.
//!
//! The driver loop is:
//!
//! ```text
//! loop match session.poll()? {
//!     Write(bytes) => send them,
//!     NeedMore     => read from the socket and feed() what came,
//!     Ready        => call query(sql) or quit(),
//!     Reply(r)     => the last query's result; the session is Ready again,
//!     Closed       => QUIT was sent; close the socket,
//!     StartTls     => run a TLS handshake over the socket, call tls_started(), and from then
//!                     on pipe every byte through TLS (only after request_tls),
//! }
//! ```

use super::auth::{Auth, Plugin};
use super::handshake::{Greeting, Response, SslRequest};
use super::packet::{self, Packet};
use super::resultset::{self, Keep, Parser, Progress, QueryResult};
use super::{caps, parse_err, Error, ProtocolError};

pub use super::auth::{Password, Transport};

const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;
/// The largest written buffer [`Session::recycle`] keeps: what a login or a check writes fits
/// (an RSA-encrypted password is 512 bytes); a long `--query` is not held for the session's life.
const RECYCLED_MAX: usize = 4096;

/// Who logs in, and how the bytes travel. Prints its password as `<redacted>` ([`Password`]).
#[derive(Debug, Clone)]
pub struct Options {
    pub user: String,
    pub password: Password,
    pub database: Option<String>,
    pub transport: Transport,
}

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes, then poll again.
    Write(Vec<u8>),
    /// Read from the server and [`Session::feed`] the bytes, then poll again.
    NeedMore,
    /// Logged in and idle: call [`Session::query`] or [`Session::quit`].
    Ready,
    /// The result of the last query. The session is idle again.
    Reply(QueryResult),
    /// COM_QUIT has been handed out; close the connection.
    Closed,
    /// The SSLRequest went out: run the TLS handshake, then call [`Session::tls_started`].
    /// Only after [`Session::request_tls`], and only once.
    StartTls,
}

/// Whether to switch to TLS after the greeting (the SSLRequest step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRequest {
    /// Never: HandshakeResponse41 goes out in plaintext.
    Off,
    /// When the greeting offers CLIENT_SSL; otherwise plaintext.
    IfOffered,
    /// Always; a greeting without CLIENT_SSL ends the session with
    /// [`ProtocolError::TlsNotOffered`].
    Required,
}

#[derive(Debug, Clone)]
enum State {
    /// Waiting for HandshakeV10 (or an ERR such as 1040 Too many connections).
    Greeting,
    /// Sent the SSLRequest (with these capabilities); waiting for the driver's TLS handshake.
    /// * goes to `Auth` on [`Session::tls_started`], sending HandshakeResponse41 inside TLS.
    StartTls { capabilities: u32 },
    /// Sent a response; waiting for OK, ERR, AuthSwitchRequest or AuthMoreData.
    Auth { auth: Auth, switched: bool },
    /// Logged in, nothing in flight.
    Idle,
    /// A COM_QUERY is in flight.
    Query(Parser),
    /// COM_QUIT sent, or a fatal error: nothing more happens.
    Closed,
}

/// One connection's worth of protocol state.
#[derive(Debug)]
pub struct Session {
    opts: Options,
    state: State,
    /// Bytes received and not yet decoded; at most one partial frame once `poll` says NeedMore.
    input: Vec<u8>,
    /// Bytes to hand to the driver on the next poll.
    output: Vec<u8>,
    /// A reply waiting to be handed to the driver.
    reply: Option<QueryResult>,
    /// The sequence id of the next packet, in either direction.
    seq: u8,
    deprecate_eof: bool,
    /// CLIENT_MULTI_STATEMENTS was agreed: one COM_QUERY may carry several statements.
    multi_statements: bool,
    greeting: Option<Greeting>,
    /// A row frame too large to buffer, being streamed through the parser.
    big: Option<BigFrame>,
    /// The last row frame was 16 MiB - 1 bytes long: the next frame continues the same row.
    continued: bool,
    tls: TlsRequest,
}

/// The part of a large row frame still to come.
#[derive(Debug, Clone, Copy)]
struct BigFrame {
    left: usize,
    /// The frame is 16 MiB - 1 bytes long, so another frame continues the row.
    continues: bool,
}

impl Session {
    pub fn new(opts: Options) -> Session {
        Session {
            opts,
            state: State::Greeting,
            input: Vec::new(),
            output: Vec::new(),
            reply: None,
            seq: 0,
            deprecate_eof: false,
            multi_statements: false,
            greeting: None,
            big: None,
            continued: false,
            tls: TlsRequest::Off,
        }
    }

    /// Asks for TLS after the greeting (call before the first poll).
    pub fn request_tls(&mut self, tls: TlsRequest) {
        self.tls = tls;
    }

    /// The driver finished the TLS handshake that [`Action::StartTls`] asked for: the login goes
    /// on inside TLS, where full auth may send the password in clear. Does nothing otherwise.
    pub fn tls_started(&mut self) {
        if let State::StartTls { capabilities } = self.state {
            self.opts.transport = Transport::Tls;
            self.respond(capabilities);
        }
    }

    /// The server's greeting, once it arrived (version, connection id).
    pub fn greeting(&self) -> Option<&Greeting> {
        self.greeting.as_ref()
    }

    /// Whether one query may carry several statements (CLIENT_MULTI_STATEMENTS, agreed at
    /// login). The reply is then the first statement's result, or the first ERR.
    pub fn multi_statements(&self) -> bool {
        self.multi_statements
    }

    /// Whether login succeeded and QUIT has not been sent yet.
    pub fn is_logged_in(&self) -> bool {
        matches!(self.state, State::Idle | State::Query(_))
    }

    /// Takes bytes the server sent.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// Sends `sql` as COM_QUERY, keeping every column of its reply. Returns false, sending
    /// nothing, unless the session is idle (the last poll said `Ready`).
    #[must_use]
    pub fn query(&mut self, sql: &str) -> bool {
        self.query_keeping(sql, Keep::All)
    }

    /// Sends `sql` as COM_QUERY, keeping only the columns `keep` names: the rest stream past,
    /// so rows of any size cost bounded memory.
    #[must_use]
    pub fn query_keeping(&mut self, sql: &str, keep: Keep) -> bool {
        if !matches!(self.state, State::Idle) {
            return false;
        }
        let mut payload = Vec::with_capacity(1 + sql.len());
        payload.push(COM_QUERY);
        payload.extend_from_slice(sql.as_bytes());
        self.seq = 0;
        self.send(&payload);
        self.state = State::Query(Parser::keeping(self.deprecate_eof, keep));
        true
    }

    /// Ends the session politely with COM_QUIT, so the server counts no aborted client.
    /// Does nothing before login: there is nobody to say goodbye to.
    pub fn quit(&mut self) {
        if self.is_logged_in() {
            self.seq = 0;
            self.send(&[COM_QUIT]);
        }
        self.state = State::Closed;
    }

    /// Gives back the buffer of an [`Action::Write`] once its bytes are written: the next
    /// packet is built in it rather than in a new one.
    pub fn recycle(&mut self, mut written: Vec<u8>) {
        if self.output.is_empty() && written.capacity() <= RECYCLED_MAX {
            written.clear();
            self.output = written;
        }
    }

    /// Advances the session as far as the bytes fed so far allow.
    pub fn poll(&mut self) -> Result<Action, Error> {
        loop {
            if !self.output.is_empty() {
                return Ok(Action::Write(std::mem::take(&mut self.output)));
            }
            if let Some(reply) = self.reply.take() {
                return Ok(Action::Reply(reply));
            }
            match self.state {
                State::Idle => return Ok(Action::Ready),
                State::Closed => return Ok(Action::Closed),
                // Bytes before the handshake would be plaintext injected ahead of TLS.
                State::StartTls { .. } if !self.input.is_empty() => {
                    let header = self.input.get(packet::HEADER_LEN).copied().unwrap_or(0);
                    return self.fail(ProtocolError::Unexpected { phase: "ssl request", header }.into());
                }
                State::StartTls { .. } => return Ok(Action::StartTls),
                _ => {}
            }
            if let Some(done) = self.stream_row() {
                match done {
                    Ok(true) => continue,
                    Ok(false) => return Ok(Action::NeedMore),
                    Err(e) => return self.fail(e.into()),
                }
            }
            // The packet is handled where it lies: `input` is lent out meanwhile (handling never
            // reads it), so that no packet is copied.
            let input = std::mem::take(&mut self.input);
            let taken = self.take_packet(&input);
            self.input = input;
            match taken {
                Ok(Some(used)) => drop(self.input.drain(..used)),
                Ok(None) => return Ok(Action::NeedMore),
                Err(e) => return self.fail(e),
            }
        }
    }

    /// Decodes and handles the first whole packet of `input`: how many bytes it took, or `None`
    /// when the packet is not all there yet.
    fn take_packet(&mut self, input: &[u8]) -> Result<Option<usize>, Error> {
        let Some((Packet { seq, payload }, used)) = packet::decode(input)? else {
            return Ok(None);
        };
        if seq != self.seq {
            return Err(ProtocolError::BadSequence { expected: self.seq, got: seq }.into());
        }
        self.seq = self.seq.wrapping_add(1);
        self.handle(payload)?;
        Ok(Some(used))
    }

    /// Streams a row frame that is too large to buffer (or continues a 16 MiB row) through the
    /// parser as its bytes arrive. `None`: no such frame here, decode normally. `Some(Ok(true))`:
    /// progress was made; `Some(Ok(false))`: more bytes are needed.
    fn stream_row(&mut self) -> Option<Result<bool, ProtocolError>> {
        let State::Query(parser) = &mut self.state else {
            return None;
        };
        let Some(big) = &mut self.big else {
            if !parser.in_rows() {
                return None;
            }
            let (len, seq) = packet::header(&self.input)?;
            if len <= packet::MAX_PAYLOAD && !self.continued {
                return None;
            }
            // A new frame's first byte says what it is: 0xFE/0xFF would be an oversized EOF, OK
            // or ERR packet, which no server sends.
            if !self.continued {
                let Some(&first) = self.input.get(packet::HEADER_LEN) else {
                    return Some(Ok(false));
                };
                if first == 0xFE && len < 0xFF_FFFF || first == 0xFF {
                    return Some(Err(ProtocolError::PacketTooLarge(len)));
                }
            }
            if seq != self.seq {
                return Some(Err(ProtocolError::BadSequence { expected: self.seq, got: seq }));
            }
            self.seq = self.seq.wrapping_add(1);
            self.input.drain(..packet::HEADER_LEN);
            self.continued = false;
            self.big = Some(BigFrame { left: len, continues: len == 0xFF_FFFF });
            return Some(Ok(true));
        };
        if big.left > 0 && self.input.is_empty() {
            return Some(Ok(false));
        }
        let n = big.left.min(self.input.len());
        if let Err(e) = parser.row_bytes(&self.input[..n]) {
            return Some(Err(e));
        }
        self.input.drain(..n);
        big.left -= n;
        if big.left == 0 {
            self.continued = big.continues;
            self.big = None;
            if !self.continued {
                if let Err(e) = parser.row_end() {
                    return Some(Err(e));
                }
            }
        }
        Some(Ok(true))
    }

    fn fail(&mut self, e: Error) -> Result<Action, Error> {
        self.state = State::Closed;
        self.output.clear();
        Err(e)
    }

    fn send(&mut self, payload: &[u8]) {
        packet::encode(&mut self.output, self.seq, payload);
        self.seq = self.seq.wrapping_add(1);
    }

    fn handle(&mut self, payload: &[u8]) -> Result<(), Error> {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Greeting => self.greet(Greeting::parse(payload)?),
            State::Auth { auth, switched } => self.auth(payload, auth, switched),
            State::Query(mut parser) => {
                match parser.packet(payload)? {
                    Progress::More => self.state = State::Query(parser),
                    Progress::Done(result) => {
                        self.reply = Some(result);
                        self.state = State::Idle;
                    }
                }
                Ok(())
            }
            State::Idle | State::Closed | State::StartTls { .. } => {
                Err(ProtocolError::Unexpected { phase: "idle", header: payload.first().copied().unwrap_or(0) }.into())
            }
        }
    }

    fn greet(&mut self, greeting: Greeting) -> Result<(), Error> {
        let server = greeting.capabilities;
        for (cap, name) in
            [(caps::PROTOCOL_41, "CLIENT_PROTOCOL_41"), (caps::SECURE_CONNECTION, "CLIENT_SECURE_CONNECTION")]
        {
            if server & cap == 0 {
                return Err(ProtocolError::MissingCapability(name).into());
            }
        }
        let mut wanted = caps::LONG_PASSWORD
            | caps::PROTOCOL_41
            | caps::SECURE_CONNECTION
            | caps::TRANSACTIONS
            | caps::MULTI_STATEMENTS
            | caps::MULTI_RESULTS
            | caps::PLUGIN_AUTH
            | caps::PLUGIN_AUTH_LENENC_CLIENT_DATA
            | caps::DEPRECATE_EOF;
        if self.opts.database.is_some() {
            if server & caps::CONNECT_WITH_DB == 0 {
                return Err(ProtocolError::MissingCapability("CLIENT_CONNECT_WITH_DB").into());
            }
            wanted |= caps::CONNECT_WITH_DB;
        }
        let capabilities = wanted & server;
        self.deprecate_eof = capabilities & caps::DEPRECATE_EOF != 0;
        self.multi_statements = capabilities & caps::MULTI_STATEMENTS != 0;
        self.greeting = Some(greeting);
        // Only the TLS build has TLS settings to ask with: the plain one keeps no SSLRequest code.
        let tls = if cfg!(feature = "tls") { self.tls } else { TlsRequest::Off };
        match (tls, server & caps::SSL != 0) {
            (TlsRequest::Off, _) | (TlsRequest::IfOffered, false) => self.respond(capabilities),
            (TlsRequest::Required, false) => return Err(ProtocolError::TlsNotOffered.into()),
            (_, true) => {
                let capabilities = capabilities | caps::SSL;
                self.send(&SslRequest { capabilities }.encode());
                self.state = State::StartTls { capabilities };
            }
        }
        Ok(())
    }

    /// Sends HandshakeResponse41 with the first auth response.
    fn respond(&mut self, capabilities: u32) {
        let (nonce, default_plugin) =
            self.greeting.as_ref().map(|g| (g.scramble.as_slice(), g.auth_plugin.as_str())).unwrap_or_default();
        // Start with the server's default plugin when it is one whose first response we can
        // compute from a 20-byte scramble; otherwise native, and let the server switch us.
        let plugin = match Plugin::from_name(default_plugin) {
            Some(p @ (Plugin::Native | Plugin::CachingSha2 | Plugin::Sha256)) => p,
            _ => Plugin::Native,
        };
        let (auth, first) = Auth::start(plugin, nonce, &self.opts.password, self.opts.transport);
        let response = Response {
            capabilities,
            user: &self.opts.user,
            auth_response: &first,
            database: self.opts.database.as_deref(),
            auth_plugin: plugin.name(),
        };
        self.send(&response.encode());
        self.state = State::Auth { auth, switched: false };
    }

    fn auth(&mut self, payload: &[u8], mut auth: Auth, switched: bool) -> Result<(), Error> {
        let header = payload.first().copied().ok_or(ProtocolError::Malformed("empty packet"))?;
        match header {
            0x00 => {
                resultset::ok_status(payload)?;
                self.state = State::Idle;
            }
            0xFF => return Err(Error::Server(parse_err(payload)?)),
            0xFE if payload.len() == 1 => return Err(ProtocolError::OldPasswordAuth.into()),
            0xFE if switched => return Err(ProtocolError::TooManyAuthSwitches.into()),
            0xFE => {
                let mut r = packet::Reader::new(&payload[1..]);
                let name = super::printable(r.nul_str(), 128);
                let plugin = Plugin::from_name(&name).ok_or(ProtocolError::UnsupportedPlugin(name))?;
                let (auth, response) = Auth::start(plugin, r.remaining(), &self.opts.password, self.opts.transport);
                self.send(&response);
                self.state = State::Auth { auth, switched: true };
            }
            0x01 => {
                if let Some(response) = auth.more_data(&payload[1..], &self.opts.password, self.opts.transport)? {
                    self.send(&response);
                }
                self.state = State::Auth { auth, switched };
            }
            _ => return Err(ProtocolError::Unexpected { phase: "auth", header }.into()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::ServerError;

    const ALL_CAPS: u32 = caps::LONG_PASSWORD
        | caps::CONNECT_WITH_DB
        | caps::PROTOCOL_41
        | caps::SECURE_CONNECTION
        | caps::PLUGIN_AUTH
        | caps::PLUGIN_AUTH_LENENC_CLIENT_DATA
        | caps::DEPRECATE_EOF;

    fn greeting(caps: u32, plugin: &str) -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(b"8.4.0\0");
        p.extend_from_slice(&7u32.to_le_bytes());
        p.extend_from_slice(b"abcdefgh\0");
        p.extend_from_slice(&(caps as u16).to_le_bytes());
        p.push(45);
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        p.push(21);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(b"ijklmnopqrst\0");
        p.extend_from_slice(plugin.as_bytes());
        p.push(0);
        p
    }

    fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        packet::encode(&mut out, seq, payload);
        out
    }

    fn session(password: &str, transport: Transport) -> Session {
        Session::new(Options { user: "u".into(), password: password.into(), database: None, transport })
    }

    /// Feeds `server` frames in order, answering Ready with one query then quit; returns every
    /// write and the final result.
    fn run(mut s: Session, server: &[Vec<u8>]) -> (Vec<Vec<u8>>, Result<Vec<QueryResult>, Error>) {
        let mut writes = Vec::new();
        let mut replies = Vec::new();
        let mut server = server.iter();
        loop {
            match s.poll() {
                Ok(Action::Write(b)) => writes.push(b),
                Ok(Action::NeedMore) => match server.next() {
                    Some(f) => s.feed(f),
                    None => return (writes, Err(ProtocolError::UnexpectedEof.into())),
                },
                Ok(Action::Ready) if replies.is_empty() => assert!(s.query("select 1")),
                Ok(Action::Ready) => s.quit(),
                Ok(Action::Reply(r)) => replies.push(r),
                Ok(Action::Closed) => return (writes, Ok(replies)),
                Ok(Action::StartTls) => s.tls_started(),
                Err(e) => return (writes, Err(e)),
            }
        }
    }

    #[test]
    fn greeting_err_1040_without_sqlstate_is_a_server_error() {
        let (_, r) = run(session("pw", Transport::Tcp), &[frame(0, b"\xff\x10\x04Too many connections")]);
        assert_eq!(
            r,
            Err(Error::Server(ServerError { code: 1040, state: None, message: "Too many connections".into() }))
        );
    }

    #[test]
    fn protocol_version_9_is_refused() {
        let mut g = greeting(ALL_CAPS, "mysql_native_password");
        g[0] = 9;
        let (_, r) = run(session("pw", Transport::Tcp), &[frame(0, &g)]);
        assert_eq!(r, Err(ProtocolError::UnsupportedProtocolVersion(9).into()));
    }

    #[test]
    fn wrong_sequence_id_is_refused() {
        let (_, r) = run(session("pw", Transport::Tcp), &[frame(3, &greeting(ALL_CAPS, "mysql_native_password"))]);
        assert_eq!(r, Err(ProtocolError::BadSequence { expected: 0, got: 3 }.into()));
    }

    #[test]
    fn sixteen_mib_packet_is_refused_from_its_header() {
        let (_, r) = run(session("pw", Transport::Tcp), &[vec![0xFF, 0xFF, 0xFF, 0]]);
        assert_eq!(r, Err(ProtocolError::PacketTooLarge(0xFF_FFFF).into()));
    }

    #[test]
    fn a_server_without_protocol_41_is_refused() {
        let (w, r) = run(session("pw", Transport::Tcp), &[frame(0, &greeting(ALL_CAPS & !caps::PROTOCOL_41, ""))]);
        assert_eq!(r, Err(ProtocolError::MissingCapability("CLIENT_PROTOCOL_41").into()));
        assert!(w.is_empty());
    }

    #[test]
    fn second_auth_switch_and_unknown_plugins_are_refused() {
        let g = frame(0, &greeting(ALL_CAPS, "mysql_native_password"));
        let switch = |seq| frame(seq, b"\xfemysql_native_password\0abcdefghijklmnopqrst\0");
        let (_, r) = run(session("pw", Transport::Tcp), &[g.clone(), switch(2), switch(4)]);
        assert_eq!(r, Err(ProtocolError::TooManyAuthSwitches.into()));
        let (_, r) = run(session("pw", Transport::Tcp), &[g.clone(), frame(2, b"\xfedialog\0\x04Password: ")]);
        assert_eq!(r, Err(ProtocolError::UnsupportedPlugin("dialog".into()).into()));
        let (_, r) = run(session("pw", Transport::Tcp), &[g, frame(2, b"\xfe")]);
        assert_eq!(r, Err(ProtocolError::OldPasswordAuth.into()));
    }

    #[test]
    fn caching_sha2_full_auth_on_a_unix_socket_sends_the_password_in_clear() {
        let server = [
            frame(0, &greeting(ALL_CAPS, "caching_sha2_password")),
            frame(2, &[0x01, 0x04]),
            frame(4, &[0, 0, 0, 2, 0, 0, 0]),
            frame(1, &[0, 0, 0, 2, 0, 0, 0]),
        ];
        let (w, r) = run(session("pw", Transport::Unix), &server);
        assert_eq!(r, Ok(vec![Ok(crate::mysql::ResultSet::default())]));
        assert_eq!(w[1], frame(3, b"pw\0"));
        assert_eq!(w[2], frame(0, b"\x03select 1"));
        assert_eq!(w[3], frame(0, &[COM_QUIT]));
    }

    #[test]
    fn response_asks_for_deprecate_eof_only_when_offered_and_db_only_when_given() {
        let mut s = Session::new(Options {
            user: "u".into(),
            password: Password::default(),
            database: Some("chk".into()),
            transport: Transport::Tcp,
        });
        s.feed(&frame(0, &greeting(ALL_CAPS & !caps::DEPRECATE_EOF, "mysql_native_password")));
        let Ok(Action::Write(w)) = s.poll() else { panic!() };
        let flags = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        assert_eq!(flags & caps::DEPRECATE_EOF, 0);
        assert_ne!(flags & caps::CONNECT_WITH_DB, 0);
        assert!(w.ends_with(b"u\0\0chk\0mysql_native_password\0"), "empty password: empty auth response");
    }

    #[test]
    fn multi_statements_are_asked_for_only_when_offered() {
        for offered in [false, true] {
            let mut s = session("", Transport::Tcp);
            let extra = if offered { caps::MULTI_STATEMENTS } else { 0 };
            s.feed(&frame(0, &greeting(ALL_CAPS | extra, "mysql_native_password")));
            let Ok(Action::Write(w)) = s.poll() else { panic!() };
            let flags = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
            assert_eq!(flags & caps::MULTI_STATEMENTS != 0, offered);
            assert_eq!(s.multi_statements(), offered);
        }
    }

    #[test]
    fn sha256_password_over_tcp_asks_for_the_key_and_sends_256_encrypted_bytes() {
        let pem = include_bytes!("../../tests/data/fake_rsa_public.pem");
        let server = [
            frame(0, &greeting(ALL_CAPS, "sha256_password")),
            frame(2, &[[0x01].as_slice(), pem].concat()),
            frame(4, &[0, 0, 0, 2, 0, 0, 0]),
            frame(1, &[0, 0, 0, 2, 0, 0, 0]),
        ];
        let (w, r) = run(session("pw", Transport::Tcp), &server);
        assert!(r.is_ok(), "{r:?}");
        assert!(w[0].ends_with(b"\x01\x01sha256_password\0"), "asks for the key in the response");
        assert_eq!(w[1].len(), 4 + 256);
        assert_eq!(w[1][3], 3, "sequence id");
        let (w, _) = run(session("", Transport::Tcp), &server[..1]);
        assert!(w[0].ends_with(b"\x01\x00sha256_password\0"), "empty password: one NUL byte");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn ssl_request_is_32_bytes_at_seq_1_then_the_response_goes_at_seq_2_inside_tls() {
        let mut s = session("pw", Transport::Tcp);
        s.request_tls(TlsRequest::Required);
        s.feed(&frame(0, &greeting(ALL_CAPS | caps::SSL, "mysql_native_password")));
        let Ok(Action::Write(w)) = s.poll() else { panic!() };
        assert_eq!(w.len(), 4 + 32);
        assert_eq!(w[3], 1, "sequence id");
        let flags = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        assert_ne!(flags & caps::SSL, 0);
        assert_eq!(s.poll(), Ok(Action::StartTls));
        assert_eq!(s.poll(), Ok(Action::StartTls), "waits for the driver");
        s.tls_started();
        let Ok(Action::Write(w)) = s.poll() else { panic!() };
        assert_eq!(w[3], 2, "sequence id");
        assert_eq!(&w[4..36], &frame(1, &SslRequest { capabilities: flags }.encode())[4..], "same first 32 bytes");
        assert!(w.ends_with(b"mysql_native_password\0"));
        s.feed(&frame(3, &[0, 0, 0, 2, 0, 0, 0]));
        assert_eq!(s.poll(), Ok(Action::Ready));
    }

    #[cfg(feature = "tls")]
    #[test]
    fn required_tls_without_client_ssl_fails_before_sending_anything_and_preferred_goes_plain() {
        let g = frame(0, &greeting(ALL_CAPS, "mysql_native_password"));
        let mut s = session("pw", Transport::Tcp);
        s.request_tls(TlsRequest::Required);
        s.feed(&g);
        assert_eq!(s.poll(), Err(ProtocolError::TlsNotOffered.into()));
        assert_eq!(s.poll(), Ok(Action::Closed));
        let mut s = session("pw", Transport::Tcp);
        s.request_tls(TlsRequest::IfOffered);
        s.feed(&g);
        let Ok(Action::Write(w)) = s.poll() else { panic!() };
        assert_eq!(w[3], 1, "HandshakeResponse41 at seq 1");
        assert_eq!(u32::from_le_bytes([w[4], w[5], w[6], w[7]]) & caps::SSL, 0);
        assert!(w.len() > 4 + 32);
    }

    #[cfg(feature = "tls")]
    #[test]
    fn bytes_after_the_greeting_before_tls_are_refused() {
        let mut s = session("pw", Transport::Tcp);
        s.request_tls(TlsRequest::IfOffered);
        let mut bytes = frame(0, &greeting(ALL_CAPS | caps::SSL, "mysql_native_password"));
        bytes.extend_from_slice(&frame(2, &[0, 0, 0, 2, 0, 0, 0]));
        s.feed(&bytes);
        assert!(matches!(s.poll(), Ok(Action::Write(_))));
        assert_eq!(s.poll(), Err(ProtocolError::Unexpected { phase: "ssl request", header: 0 }.into()));
    }

    #[cfg(feature = "tls")]
    /// A TCP session greeted with `plugin`, past the SSLRequest and the TLS handshake.
    fn inside_tls(plugin: &str) -> Session {
        let mut s = session("pw", Transport::Tcp);
        s.request_tls(TlsRequest::Required);
        s.feed(&frame(0, &greeting(ALL_CAPS | caps::SSL, plugin)));
        assert!(matches!(s.poll(), Ok(Action::Write(_))));
        assert_eq!(s.poll(), Ok(Action::StartTls));
        s.tls_started();
        s
    }

    #[cfg(feature = "tls")]
    #[test]
    fn caching_sha2_full_auth_inside_tls_sends_the_password_in_clear_without_a_key_request() {
        let mut s = inside_tls("caching_sha2_password");
        assert!(matches!(s.poll(), Ok(Action::Write(_))));
        s.feed(&frame(3, &[0x01, 0x04]));
        assert_eq!(s.poll(), Ok(Action::Write(frame(4, b"pw\0"))));
        s.feed(&frame(5, &[0, 0, 0, 2, 0, 0, 0]));
        assert_eq!(s.poll(), Ok(Action::Ready));
    }

    #[cfg(feature = "tls")]
    #[test]
    fn sha256_password_inside_tls_sends_the_password_in_clear_at_once() {
        let mut s = inside_tls("sha256_password");
        let Ok(Action::Write(w)) = s.poll() else { panic!() };
        assert!(w.ends_with(b"\x03pw\0sha256_password\0"), "clear password, no key request");
    }

    #[test]
    fn options_never_print_the_password() {
        let opts = Options { user: "u".into(), password: "hunter2".into(), database: None, transport: Transport::Tcp };
        let printed = format!("{opts:?}");
        assert!(printed.contains("password: <redacted>") && !printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn no_quit_before_login() {
        let mut s = session("pw", Transport::Tcp);
        s.quit();
        assert_eq!(s.poll(), Ok(Action::Closed));
        assert!(!s.query("select 1"));
    }

    /// A logged-in session (no DEPRECATE_EOF) that has sent one COM_QUERY keeping `keep`.
    fn querying(keep: Keep) -> Session {
        let mut s = session("", Transport::Tcp);
        s.feed(&frame(0, &greeting(ALL_CAPS & !caps::DEPRECATE_EOF, "mysql_native_password")));
        s.feed(&frame(2, &[0, 0, 0, 2, 0, 0, 0]));
        assert!(matches!(s.poll(), Ok(Action::Write(_))));
        assert_eq!(s.poll(), Ok(Action::Ready));
        assert!(s.query_keeping("SHOW ALL REPLICAS STATUS", keep));
        assert!(matches!(s.poll(), Ok(Action::Write(_))));
        s
    }

    fn coldef(name: &str) -> Vec<u8> {
        let mut p = Vec::new();
        for f in ["def", "", "", "", name, ""] {
            packet::put_lenenc_int(&mut p, f.len() as u64);
            p.extend_from_slice(f.as_bytes());
        }
        p.extend_from_slice(&[0x0c, 0x21, 0, 0, 1, 0, 0, 0xfd, 0, 0, 0x27, 0, 0]);
        p
    }

    /// A status reply: columns Slave_IO_Running, Replicate_Ignore_Table (`filter` bytes long),
    /// Seconds_Behind_Master, framed as a server would, splitting payloads of 16 MiB - 1 or more.
    fn status_reply(filter: usize) -> Vec<u8> {
        let mut row = Vec::new();
        for v in [b"Yes".to_vec(), vec![b'x'; filter], b"3".to_vec()] {
            packet::put_lenenc_int(&mut row, v.len() as u64);
            row.extend_from_slice(&v);
        }
        let eof = [0xFE, 0, 0, 0x02, 0];
        let mut out = Vec::new();
        let mut seq = 1;
        for p in
            [vec![3], coldef("Slave_IO_Running"), coldef("Replicate_Ignore_Table"), coldef("Seconds_Behind_Master")]
                .iter()
                .chain([eof.to_vec()].iter())
        {
            out.extend_from_slice(&frame(seq, p));
            seq += 1;
        }
        let mut rest = row.as_slice();
        loop {
            let n = rest.len().min(0xFF_FFFF);
            out.extend_from_slice(&[n as u8, (n >> 8) as u8, (n >> 16) as u8, seq]);
            out.extend_from_slice(&rest[..n]);
            seq = seq.wrapping_add(1);
            rest = &rest[n..];
            if n < 0xFF_FFFF {
                break;
            }
        }
        out.extend_from_slice(&frame(seq, &eof));
        out
    }

    const KEEP: Keep = Keep::Columns(&["slave_io_running", "Seconds_Behind_Master"]);

    fn expect_status(r: Result<Action, Error>) {
        let Ok(Action::Reply(Ok(rs))) = r else { panic!("{r:?}") };
        assert_eq!(rs.columns, ["Slave_IO_Running", "Seconds_Behind_Master"]);
        assert_eq!(rs.rows, vec![vec![Some(b"Yes".to_vec()), Some(b"3".to_vec())]]);
    }

    /// A kept session (`--keep-session`) answers query after query: each command starts again
    /// at sequence id 0, past the 256 where a carried-over id would wrap, and an ERR answer
    /// leaves it idle and usable.
    #[test]
    fn one_session_takes_many_queries_each_at_sequence_id_zero() {
        let mut s = session("", Transport::Tcp);
        s.feed(&frame(0, &greeting(ALL_CAPS & !caps::DEPRECATE_EOF, "mysql_native_password")));
        assert!(matches!(s.poll(), Ok(Action::Write(_))));
        s.feed(&frame(2, &[0, 0, 0, 2, 0, 0, 0]));
        let eof = [0xFE, 0, 0, 0x02, 0];
        for round in 0..300u32 {
            assert_eq!(s.poll(), Ok(Action::Ready), "round {round}");
            assert!(s.query("select @@hostname"));
            assert_eq!(s.poll(), Ok(Action::Write(frame(0, b"\x03select @@hostname"))), "round {round}");
            assert_eq!(s.poll(), Ok(Action::NeedMore));
            if round % 7 == 3 {
                s.feed(&frame(1, b"\xff\x7a\x04#HY000Unknown system variable"));
                let Ok(Action::Reply(Err(e))) = s.poll() else { panic!("round {round}") };
                assert_eq!(e.code, 1146);
                continue;
            }
            let value = round.to_string();
            let mut row = vec![value.len() as u8];
            row.extend_from_slice(value.as_bytes());
            for (seq, p) in [vec![1], coldef("@@hostname"), eof.to_vec(), row, eof.to_vec()].iter().enumerate() {
                s.feed(&frame(seq as u8 + 1, p));
            }
            let Ok(Action::Reply(Ok(rs))) = s.poll() else { panic!("round {round}") };
            assert_eq!(rs.rows, vec![vec![Some(value.into_bytes())]]);
        }
        assert_eq!(s.poll(), Ok(Action::Ready));
        s.quit();
        assert_eq!(s.poll(), Ok(Action::Write(frame(0, &[COM_QUIT]))));
        assert_eq!(s.poll(), Ok(Action::Closed));
    }

    #[test]
    fn a_recycled_write_buffer_carries_the_next_packets_and_is_never_swapped_under_one() {
        let mut s = session("", Transport::Tcp);
        s.feed(&frame(0, &greeting(ALL_CAPS & !caps::DEPRECATE_EOF, "mysql_native_password")));
        let Ok(Action::Write(login)) = s.poll() else { panic!() };
        let at = login.as_ptr();
        s.recycle(login);
        s.feed(&frame(2, &[0, 0, 0, 2, 0, 0, 0]));
        assert_eq!(s.poll(), Ok(Action::Ready));
        assert!(s.query("select 1"));
        let Ok(Action::Write(query)) = s.poll() else { panic!() };
        assert_eq!((query.as_slice(), query.as_ptr()), (frame(0, b"\x03select 1").as_slice(), at));
        s.recycle(query);
        s.feed(&frame(1, b"\xff\x7a\x04#HY000Unknown system variable"));
        assert!(matches!(s.poll(), Ok(Action::Reply(Err(_)))));
        assert_eq!(s.poll(), Ok(Action::Ready));
        // Too large to keep: the kept one stays.
        s.recycle(vec![0; RECYCLED_MAX + 1]);
        s.quit();
        // A packet is waiting: it stays as it is.
        s.recycle(vec![9; 3]);
        let Ok(Action::Write(quit)) = s.poll() else { panic!() };
        assert_eq!((quit.as_slice(), quit.as_ptr()), (frame(0, &[COM_QUIT]).as_slice(), at));
        assert_eq!(s.poll(), Ok(Action::Closed));
    }

    #[test]
    fn a_one_megabyte_status_row_streams_through_keeping_only_the_columns_asked_for() {
        let reply = status_reply(1 << 20);
        let mut s = querying(KEEP);
        for chunk in reply.chunks(4096) {
            assert_eq!(s.poll(), Ok(Action::NeedMore));
            s.feed(chunk);
            // Streamed, not buffered: what waits in the session never exceeds one chunk.
            assert!(s.input.len() <= 4096 + 64 * 1024, "{} bytes buffered", s.input.len());
        }
        expect_status(s.poll());
    }

    #[test]
    fn a_streamed_row_fed_one_byte_at_a_time_needs_more_bytes_until_complete() {
        let reply = status_reply(70_000);
        let mut s = querying(KEEP);
        for (i, b) in reply.iter().enumerate() {
            assert_eq!(s.poll(), Ok(Action::NeedMore), "byte {i}");
            s.feed(&[*b]);
        }
        expect_status(s.poll());
    }

    #[test]
    fn a_row_over_sixteen_mib_continues_across_frames() {
        let reply = status_reply(17 << 20);
        let mut s = querying(KEEP);
        for chunk in reply.chunks(1 << 16) {
            assert_eq!(s.poll(), Ok(Action::NeedMore));
            s.feed(chunk);
        }
        expect_status(s.poll());
    }

    #[test]
    fn a_huge_kept_value_is_refused_before_it_is_buffered() {
        let mut s = querying(Keep::All);
        s.feed(&status_reply(1 << 20));
        assert_eq!(s.poll(), Err(ProtocolError::ResultTooLarge.into()));
    }

    #[test]
    fn an_oversized_eof_or_err_frame_is_refused() {
        for first in [0xFE, 0xFF] {
            let mut s = querying(KEEP);
            let reply = status_reply(10);
            // Everything up to the rows, then a 100 KiB frame that starts like an EOF or ERR.
            let head = reply.len() - (4 + 1 + 3 + 1 + 10 + 1 + 1) - 9;
            s.feed(&reply[..head]);
            assert_eq!(s.poll(), Ok(Action::NeedMore));
            s.feed(&[0x00, 0x90, 0x01, 6, first]);
            assert_eq!(s.poll(), Err(ProtocolError::PacketTooLarge(0x19000).into()), "{first:#x}");
        }
    }
}
