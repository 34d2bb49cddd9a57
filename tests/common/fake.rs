//! A scriptable fake MySQL server: the server side of the client/server protocol, written from
//! the MySQL documentation (Protocol::HandshakeV10, Protocol::HandshakeResponse41,
//! caching_sha2_password, AuthSwitchRequest, Text Resultset, OK/EOF/ERR_Packet) and sharing no
//! code with `src/`, so the client is tested against an independent peer.
//!
//! Plain std threads and sockets. One thread accepts, one thread per connection. Everything the
//! fake dislikes about the client is recorded in [`FakeServer::violations`]; tests assert it is
//! empty. Hostile modes ([`Hostile`]) are real misbehaving servers; wherever a hostile server
//! could still "succeed" (a client that tolerates the fault) it does, so a lenient client shows
//! up as a passing check rather than a silent timeout.
#![allow(dead_code)]

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rsa::pkcs8::DecodePrivateKey;
use sha1::{Digest, Sha1};
use sha2::Sha256;

// Capability flags (Protocol::CapabilityFlags).
pub const CLIENT_LONG_PASSWORD: u32 = 1;
pub const CLIENT_FOUND_ROWS: u32 = 1 << 1;
pub const CLIENT_LONG_FLAG: u32 = 1 << 2;
pub const CLIENT_CONNECT_WITH_DB: u32 = 1 << 3;
pub const CLIENT_NO_SCHEMA: u32 = 1 << 4;
pub const CLIENT_COMPRESS: u32 = 1 << 5;
pub const CLIENT_LOCAL_FILES: u32 = 1 << 7;
pub const CLIENT_PROTOCOL_41: u32 = 1 << 9;
pub const CLIENT_INTERACTIVE: u32 = 1 << 10;
pub const CLIENT_SSL: u32 = 1 << 11;
pub const CLIENT_TRANSACTIONS: u32 = 1 << 13;
pub const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
pub const CLIENT_MULTI_STATEMENTS: u32 = 1 << 16;
pub const CLIENT_MULTI_RESULTS: u32 = 1 << 17;
pub const CLIENT_PS_MULTI_RESULTS: u32 = 1 << 18;
pub const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;
pub const CLIENT_CONNECT_ATTRS: u32 = 1 << 20;
pub const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 1 << 21;
pub const CLIENT_SESSION_TRACK: u32 = 1 << 23;
pub const CLIENT_DEPRECATE_EOF: u32 = 1 << 24;
pub const CLIENT_OPTIONAL_RESULTSET_METADATA: u32 = 1 << 25;
pub const CLIENT_ZSTD_COMPRESSION: u32 = 1 << 26;
pub const CLIENT_QUERY_ATTRIBUTES: u32 = 1 << 27;

/// What the fake offers in its greeting (plus CLIENT_DEPRECATE_EOF when the scenario says so).
pub const SERVER_CAPS: u32 = CLIENT_LONG_PASSWORD
    | CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;

pub const NATIVE: &str = "mysql_native_password";
pub const CACHING_SHA2: &str = "caching_sha2_password";

const SERVER_STATUS_AUTOCOMMIT: u16 = 0x0002;
/// Another result follows this one (a multi-statement query).
const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;
const CHARSET_UTF8MB4_GENERAL_CI: u8 = 45;
const MYSQL_TYPE_VAR_STRING: u8 = 0xfd;

/// The fake's fixed RSA key pair (made once with `openssl genrsa 2048` / `openssl rsa -pubout`).
pub const PRIVATE_KEY_PEM: &str = include_str!("../data/fake_rsa_private.pem");
pub const PUBLIC_KEY_PEM: &str = include_str!("../data/fake_rsa_public.pem");

/// How the login goes. Names say greeting plugin -> what follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Greets with mysql_native_password and checks the native scramble.
    Native,
    /// Greets with caching_sha2_password; scramble ok -> AuthMoreData 0x03 (fast auth) -> OK.
    CachingSha2Fast,
    /// Greets with caching_sha2_password; AuthMoreData 0x04 (full auth) -> RSA on TCP, the
    /// password in clear on a unix socket.
    CachingSha2Full,
    /// Greets with caching_sha2_password, then switches to mysql_native_password.
    SwitchToNative,
    /// Greets with mysql_native_password, switches to caching_sha2_password, then full auth.
    SwitchToCachingSha2Full,
    /// Hostile: switches to mysql_native_password, then asks for a second switch. Logs the client
    /// in if it plays along.
    SwitchTwice,
    /// Hostile: greets with mysql_native_password, switches to the `dialog` plugin. Logs the
    /// client in whatever it answers.
    SwitchToDialog,
}

impl Auth {
    fn greeting_plugin(self) -> &'static str {
        match self {
            Auth::Native | Auth::SwitchToCachingSha2Full | Auth::SwitchToDialog => NATIVE,
            Auth::CachingSha2Fast | Auth::CachingSha2Full | Auth::SwitchToNative | Auth::SwitchTwice => CACHING_SHA2,
        }
    }
}

/// The answer to every COM_QUERY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A text result set; `None` is SQL NULL.
    Rows { columns: Vec<String>, rows: Vec<Vec<Option<String>>> },
    /// An ERR_Packet.
    Error { code: u16, state: String, message: String },
}

impl Reply {
    /// One column, one row.
    pub fn value(v: &str) -> Reply {
        Reply::Rows { columns: vec!["value".into()], rows: vec![vec![Some(v.into())]] }
    }
}

/// Misbehaving servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// Pseudo-random bytes instead of a greeting, then silence.
    Garbage,
    /// Accepts and never speaks.
    Silent,
    /// Sends a valid greeting one byte per second (its first 64 bytes, then silence).
    SlowGreeting,
    /// Announces a 16 MiB - 1 packet, sends 100 bytes of it and stops.
    HugePacket,
    /// Reads the HandshakeResponse41 and closes.
    CloseAfterLogin,
    /// First packet is `ERR 1040 Too many connections` (seq 0, no SQLSTATE marker), then close.
    TooManyConnections,
    /// Answers the login with an OK whose sequence id is 9 instead of 2 (then serves normally).
    WrongSequenceIds,
    /// A protocol version 9 greeting (then serves normally if the client carries on).
    ProtocolVersion9,
    /// Reads the login and never answers it.
    LoginSilent,
    /// Answers the query with a result set cut in the middle of a row, then closes.
    TruncatedResultSet,
    /// Never answers the query.
    QuerySilent,
    /// Answers the query with a 200 MB result set made on the fly; stops when the client leaves.
    Stream200MB,
    /// Offers CLIENT_SSL and answers the SSLRequest with pseudo-random bytes, then silence.
    TlsGarbage,
    /// Offers CLIENT_SSL, reads the ClientHello, sends half of its first flight and stalls.
    TlsStall,
    /// Answers a login outside TLS with MySQL 8's ERR 3159 (require_secure_transport).
    RequireSecureTransport,
}

/// Everything a connection does, fixed at start.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub auth: Auth,
    /// The account's password (what the client must prove it knows).
    pub password: String,
    /// The expected user name; `None` accepts any.
    pub user: Option<String>,
    /// Offer CLIENT_DEPRECATE_EOF in the greeting.
    pub deprecate_eof: bool,
    pub reply: Reply,
    /// Answers chosen by SQL text, tried in order before `reply`: the first rule whose text the
    /// query contains (ASCII case-insensitive) answers it.
    pub rules: Vec<(String, Reply)>,
    pub hostile: Option<Hostile>,
    pub server_version: String,
    /// How long every query waits before its answer (a slow server).
    pub query_delay: Duration,
    /// Offer CLIENT_SSL and speak TLS (rustls, server side) after the SSLRequest.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Each connection answers this many COM_QUERYs, then never answers another (a stalled
    /// kept session; a fresh connection is fine again).
    pub stall_after: Option<usize>,
    /// Each query's reply leaves in one write, as a real server's does, instead of a write per
    /// packet (which makes the client read replies in pieces).
    pub whole_replies: bool,
}

impl Scenario {
    /// A well-behaved server answering every query with one row, one value `fake-1`.
    pub fn new(auth: Auth, password: &str) -> Scenario {
        Scenario {
            auth,
            password: password.into(),
            user: None,
            deprecate_eof: true,
            reply: Reply::value("fake-1"),
            rules: Vec::new(),
            hostile: None,
            server_version: "8.4.0-fake".into(),
            query_delay: Duration::ZERO,
            tls: None,
            stall_after: None,
            whole_replies: false,
        }
    }

    /// Each query's reply in one write ([`Scenario::whole_replies`]).
    pub fn whole_replies(mut self) -> Scenario {
        self.whole_replies = true;
        self
    }

    /// Offers TLS with `config` (see [`Scenario::tls`]).
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Scenario {
        self.tls = Some(config);
        self
    }

    /// A hostile server (native auth, password `pw`).
    pub fn hostile(h: Hostile) -> Scenario {
        Scenario { hostile: Some(h), ..Scenario::new(Auth::Native, "pw") }
    }

    pub fn deprecate_eof(mut self, offer: bool) -> Scenario {
        self.deprecate_eof = offer;
        self
    }

    pub fn reply(mut self, reply: Reply) -> Scenario {
        self.reply = reply;
        self
    }

    /// Answers queries containing `sql` with `reply` (see [`Scenario::rules`]).
    pub fn on(mut self, sql: &str, reply: Reply) -> Scenario {
        self.rules.push((sql.into(), reply));
        self
    }

    /// Answers every query after `delay`.
    pub fn delay(mut self, delay: Duration) -> Scenario {
        self.query_delay = delay;
        self
    }

    /// The version string the greeting carries (e.g. a MariaDB one, which changes the
    /// statements mysqlchk sends).
    pub fn version(mut self, version: &str) -> Scenario {
        self.server_version = version.into();
        self
    }

    pub fn user(mut self, user: &str) -> Scenario {
        self.user = Some(user.into());
        self
    }

    /// Each connection answers `n` queries, then stalls (see [`Scenario::stall_after`]).
    pub fn stall_after(mut self, n: usize) -> Scenario {
        self.stall_after = Some(n);
        self
    }
}

/// A parsed HandshakeResponse41.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Login {
    pub caps: u32,
    pub max_packet: u32,
    pub charset: u8,
    pub user: String,
    pub auth_response: Vec<u8>,
    pub database: Option<String>,
    pub plugin: Option<String>,
    pub attrs: Option<Vec<u8>>,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    connections: AtomicUsize,
    logins: AtomicUsize,
    quits: AtomicUsize,
    /// Queries read with more bytes already waiting behind them, before they were answered.
    pipelined: AtomicUsize,
    /// For each QUIT over TCP (plain or TLS): the segments that came after the last query was
    /// read, up to and with the client's FIN.
    quit_segments: Mutex<Vec<u32>>,
    queries: Mutex<Vec<String>>,
    rsa_exchanges: AtomicUsize,
    clear_passwords: AtomicUsize,
    /// Clear passwords that arrived inside TLS.
    tls_clear_passwords: AtomicUsize,
    tls_handshakes: AtomicUsize,
    tls_resumptions: AtomicUsize,
    streamed: AtomicU64,
    last_login: Mutex<Option<Login>>,
    violations: Mutex<Vec<String>>,
    open: Mutex<Vec<Conn>>,
}

impl Shared {
    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }
}

/// A running fake server; stops (and cuts every connection) on drop.
pub struct FakeServer {
    /// Set for a TCP server (always 127.0.0.1).
    pub addr: Option<SocketAddr>,
    /// Set for a unix-socket server.
    pub path: Option<PathBuf>,
    scenario: Arc<Mutex<Scenario>>,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Listens on 127.0.0.1 on a free port.
    pub fn start(scenario: Scenario) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fake = FakeServer::new(scenario, Some(addr), None);
        fake.accept(listener, |l| l.accept().map(|(s, _)| Conn::Tcp(s)));
        fake
    }

    /// Listens on a fresh unix socket under the temp dir.
    pub fn unix(scenario: Scenario) -> FakeServer {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "mysqlchk-fake-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let mut fake = FakeServer::new(scenario, None, Some(path));
        fake.accept(listener, |l| l.accept().map(|(s, _)| Conn::Unix(s)));
        fake
    }

    fn new(scenario: Scenario, addr: Option<SocketAddr>, path: Option<PathBuf>) -> FakeServer {
        FakeServer {
            addr,
            path,
            scenario: Arc::new(Mutex::new(scenario)),
            shared: Arc::new(Shared::default()),
            acceptor: None,
        }
    }

    /// Accepts on a thread until drop; one thread per connection.
    fn accept<L: Send + 'static>(&mut self, listener: L, accept: fn(&L) -> io::Result<Conn>) {
        let (scenario, shared) = (self.scenario.clone(), self.shared.clone());
        self.acceptor = Some(thread::spawn(move || loop {
            let conn = accept(&listener);
            if shared.stop.load(Ordering::SeqCst) {
                break;
            }
            if let Ok(c) = conn {
                spawn_conn(c, &scenario, &shared);
            }
        }));
    }

    /// The `--mysql` argument: `127.0.0.1:PORT` or the socket's absolute path.
    pub fn target(&self) -> String {
        match (&self.addr, &self.path) {
            (Some(a), _) => a.to_string(),
            (None, Some(p)) => p.to_str().unwrap().to_string(),
            _ => unreachable!(),
        }
    }

    /// Replaces the scenario for connections accepted from now on.
    pub fn set_scenario(&self, scenario: Scenario) {
        *self.scenario.lock().unwrap() = scenario;
    }

    /// Connections accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Logins answered with OK.
    pub fn logins(&self) -> usize {
        self.shared.logins.load(Ordering::SeqCst)
    }

    /// COM_QUIT packets received.
    pub fn quits(&self) -> usize {
        self.shared.quits.load(Ordering::SeqCst)
    }

    /// Queries that had the client's next bytes (a pipelined command, a QUIT sent without
    /// waiting for the reply) already behind them when they were read, over TCP or a unix socket.
    pub fn pipelined(&self) -> usize {
        self.shared.pipelined.load(Ordering::SeqCst)
    }

    /// For each QUIT that followed a query over TCP (plain or TLS), where TCP_INFO counts
    /// segments: how many segments came after the query was read (the client sends nothing
    /// until its reply has left), up to and with the client's FIN. One means the QUIT (with a
    /// TLS close_notify) and the FIN shared a segment, which also acknowledged the reply.
    pub fn quit_segments(&self) -> Vec<u32> {
        self.shared.quit_segments.lock().unwrap().clone()
    }

    /// Asserts what [`FakeServer::quit_segments`] counted for the QUITs so far (all over TCP,
    /// each after a query answered with [`Scenario::whole_replies`]). The client sends QUIT
    /// with MSG_MORE and closes at once, so QUIT and FIN share a segment: 1 right after the
    /// reply (the segment also acknowledges it: Linux holds an ACK back on a connection in
    /// interactive, ping-pong mode, as this one is by then), 2 after an idle spell of half a
    /// second or more (the reply's delayed ACK, 200 ms at most, then QUIT with FIN).
    /// Without MSG_MORE the FIN would add one. Where TCP_INFO counts no segments (qemu-user) it
    /// says so on stderr instead.
    pub fn assert_quit_segments(&self, want: &[u32]) {
        if !super::segments_counted() {
            eprintln!("TCP_INFO is refused or short here (qemu-user?): segments not counted");
            return;
        }
        let counted = || self.quit_segments().len() >= want.len();
        super::eventually("the FIN after each QUIT", Duration::from_secs(10), counted);
        assert_eq!(self.quit_segments(), want, "segments from the last query's reply to the FIN");
    }

    /// Every COM_QUERY text received, in order.
    pub fn queries(&self) -> Vec<String> {
        self.shared.queries.lock().unwrap().clone()
    }

    /// caching_sha2 full auths done with the RSA public key exchange.
    pub fn rsa_exchanges(&self) -> usize {
        self.shared.rsa_exchanges.load(Ordering::SeqCst)
    }

    /// caching_sha2 full auths where the client sent its password in clear.
    pub fn clear_passwords(&self) -> usize {
        self.shared.clear_passwords.load(Ordering::SeqCst)
    }

    /// Result-set bytes written by [`Hostile::Stream200MB`], over all connections.
    /// Clear passwords (caching_sha2 full auth) that arrived inside TLS.
    pub fn tls_clear_passwords(&self) -> usize {
        self.shared.tls_clear_passwords.load(Ordering::SeqCst)
    }

    /// Completed TLS handshakes.
    pub fn tls_handshakes(&self) -> usize {
        self.shared.tls_handshakes.load(Ordering::SeqCst)
    }

    /// TLS handshakes that resumed an earlier session.
    pub fn tls_resumptions(&self) -> usize {
        self.shared.tls_resumptions.load(Ordering::SeqCst)
    }

    pub fn streamed_bytes(&self) -> u64 {
        self.shared.streamed.load(Ordering::SeqCst)
    }

    /// The last HandshakeResponse41 received.
    pub fn last_login(&self) -> Option<Login> {
        self.shared.last_login.lock().unwrap().clone()
    }

    /// Client protocol faults the fake noticed (wrong sequence id, bad response, ...).
    pub fn violations(&self) -> Vec<String> {
        self.shared.violations.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for c in self.shared.open.lock().unwrap().drain(..) {
            c.shutdown();
        }
        // Wake the acceptor so it sees `stop`.
        if let Some(a) = self.addr {
            let _ = TcpStream::connect(a);
        }
        if let Some(p) = &self.path {
            let _ = UnixStream::connect(p);
        }
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        if let Some(p) = &self.path {
            let _ = fs::remove_file(p);
        }
    }
}

fn spawn_conn(conn: Conn, scenario: &Arc<Mutex<Scenario>>, shared: &Arc<Shared>) {
    shared.connections.fetch_add(1, Ordering::SeqCst);
    if let Ok(c) = conn.try_clone() {
        shared.open.lock().unwrap().push(c);
    }
    conn.set_timeouts();
    let scenario = scenario.lock().unwrap().clone();
    let shared = shared.clone();
    thread::spawn(move || {
        let mut session = Session::new(conn, scenario, shared);
        let _ = session.run();
        session.conn.shutdown();
    });
}

/// A TCP or unix stream, or TLS over TCP after the SSLRequest.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
    /// Only while switching to TLS.
    Gone,
}

impl Conn {
    fn try_clone(&self) -> io::Result<Conn> {
        Ok(match self {
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
            Conn::Tls(t) => Conn::Tcp(t.sock.try_clone()?),
            Conn::Gone => return Err(fail("gone")),
        })
    }

    fn shutdown(&self) {
        let _ = match self {
            Conn::Tcp(s) => s.shutdown(Shutdown::Both),
            Conn::Unix(s) => s.shutdown(Shutdown::Both),
            Conn::Tls(t) => t.sock.shutdown(Shutdown::Both),
            Conn::Gone => Ok(()),
        };
    }

    fn set_timeouts(&self) {
        // Only a backstop against leaked threads; tests cut connections on drop.
        let t = Some(Duration::from_secs(120));
        let _ = match self {
            Conn::Tcp(s) => s.set_read_timeout(t).and(s.set_nodelay(true)),
            Conn::Unix(s) => s.set_read_timeout(t),
            Conn::Tls(_) | Conn::Gone => Ok(()),
        };
    }

    fn is_unix(&self) -> bool {
        matches!(self, Conn::Unix(_))
    }

    /// The TCP socket under a plain or TLS connection.
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Conn::Tcp(s) => Some(s),
            Conn::Tls(t) => Some(&t.sock),
            Conn::Unix(_) | Conn::Gone => None,
        }
    }

    /// Reads the raw socket to the client's FIN (what is left is at most a TLS close_notify)
    /// and counts the segments since `since` (a TCP_INFO count); `None` where nothing counts or
    /// no FIN comes within 10 s.
    fn segments_to_end(&self, since: Option<u32>) -> Option<u32> {
        let mut s = self.tcp()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut sink = [0u8; 256];
        while s.read(&mut sink).ok()? > 0 {}
        Some(super::segments_in(s)? - since?)
    }

    /// A transport where a clear password is safe.
    fn is_secure(&self) -> bool {
        matches!(self, Conn::Unix(_) | Conn::Tls(_))
    }

    /// Whether the client has sent more bytes than were read, without reading or waiting (always
    /// false over TLS, whose records are decrypted as they are read).
    fn has_pending(&self) -> bool {
        use rustix::net::{recv, RecvFlags};
        use std::os::fd::AsFd;
        let fd = match self {
            Conn::Tcp(s) => s.as_fd(),
            Conn::Unix(s) => s.as_fd(),
            _ => return false,
        };
        recv(fd, &mut [0u8], RecvFlags::PEEK | RecvFlags::DONTWAIT).is_ok_and(|(n, _)| n > 0)
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
            Conn::Tls(t) => t.read(buf),
            Conn::Gone => Err(fail("gone")),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
            Conn::Gone => Err(fail("gone")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Tls(t) => t.flush(),
            _ => Ok(()),
        }
    }
}

fn fail(what: impl Into<String>) -> io::Error {
    io::Error::other(what.into())
}

fn fail_tls(e: rustls::Error) -> io::Error {
    io::Error::other(e)
}

/// One connection, server side.
struct Session {
    conn: Conn,
    scenario: Scenario,
    shared: Arc<Shared>,
    /// Next sequence id, read or written.
    seq: u8,
    /// Effective CLIENT_DEPRECATE_EOF: offered by us and asked for by the client.
    deprecate_eof: bool,
    /// CLIENT_MULTI_STATEMENTS asked for: a query may hold several statements, split at `;`.
    multi_statements: bool,
    user: String,
    /// While a whole reply is being made: its packets, written at its end.
    reply: Option<Vec<u8>>,
}

impl Session {
    fn new(conn: Conn, scenario: Scenario, shared: Arc<Shared>) -> Session {
        Session {
            conn,
            scenario,
            shared,
            seq: 0,
            deprecate_eof: false,
            multi_statements: false,
            user: String::new(),
            reply: None,
        }
    }

    fn hostile(&self, h: Hostile) -> bool {
        self.scenario.hostile == Some(h)
    }

    fn run(&mut self) -> io::Result<()> {
        match self.scenario.hostile {
            Some(Hostile::Garbage) => {
                let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
                let bytes: Vec<u8> = (0..512)
                    .map(|_| {
                        // xorshift64: fixed seed, so a failure replays the same bytes.
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x >> 24) as u8
                    })
                    .collect();
                self.conn.write_all(&bytes)?;
                return self.drain();
            }
            Some(Hostile::Silent) => return self.drain(),
            Some(Hostile::TooManyConnections) => {
                // Sent before the handshake, so without the '#' SQLSTATE marker.
                let mut p = vec![0xff];
                p.extend_from_slice(&1040u16.to_le_bytes());
                p.extend_from_slice(b"Too many connections");
                return self.write(&p);
            }
            Some(Hostile::HugePacket) => {
                let mut b = vec![0xff, 0xff, 0xff, 0x00];
                b.extend_from_slice(&[0x0a; 100]);
                self.conn.write_all(&b)?;
                return self.drain();
            }
            _ => {}
        }
        let scramble = scramble();
        let greeting = if self.hostile(Hostile::ProtocolVersion9) {
            greeting_v9(&self.scenario.server_version, &scramble)
        } else {
            let mut caps = SERVER_CAPS;
            if self.scenario.deprecate_eof {
                caps |= CLIENT_DEPRECATE_EOF;
            }
            if self.offers_tls() {
                caps |= CLIENT_SSL;
            }
            greeting_v10(&self.scenario.server_version, caps, &scramble, self.scenario.auth.greeting_plugin())
        };
        if self.hostile(Hostile::SlowGreeting) {
            let mut framed = frame(0, &greeting);
            framed.truncate(framed.len().min(64));
            for b in framed {
                if self.shared.stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                self.conn.write_all(&[b])?;
                thread::sleep(Duration::from_secs(1));
            }
            return self.drain();
        }
        self.write(&greeting)?;

        let login = match self.read_login() {
            Ok(l) => l,
            // A client may well hang up on a greeting it does not like.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => {
                self.shared.violation(format!("handshake response: {e}"));
                self.seq = 2;
                self.error(1043, "08S01", "Bad handshake")?;
                return Ok(());
            }
        };
        if self.hostile(Hostile::CloseAfterLogin) {
            return Ok(());
        }
        if self.hostile(Hostile::RequireSecureTransport) && !matches!(self.conn, Conn::Tls(_)) {
            let m = "Connections using insecure transport are prohibited while --require_secure_transport=ON.";
            return self.error(3159, "HY000", m);
        }
        if self.hostile(Hostile::LoginSilent) {
            return self.drain();
        }
        if !self.authenticate(&login, &scramble)? {
            return self.access_denied(!login.auth_response.is_empty());
        }
        if self.hostile(Hostile::WrongSequenceIds) {
            self.seq = self.seq.wrapping_add(7);
        }
        self.ok()?;
        self.shared.logins.fetch_add(1, Ordering::SeqCst);
        self.commands()
    }

    fn offers_tls(&self) -> bool {
        self.scenario.tls.is_some() || self.hostile(Hostile::TlsGarbage) || self.hostile(Hostile::TlsStall)
    }

    /// After the SSLRequest: the TLS handshake (or its hostile stand-in).
    fn start_tls(&mut self) -> io::Result<()> {
        let Conn::Tcp(sock) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            return Err(fail("SSLRequest over a unix socket"));
        };
        if self.hostile(Hostile::TlsGarbage) {
            self.conn = Conn::Tcp(sock);
            self.conn.write_all(&[0x16, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28, 0x9e, 0x37, 0x79, 0xb9, 0x7f, 0x4a])?;
            self.drain()?;
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "garbage sent"));
        }
        let config = match &self.scenario.tls {
            Some(c) => c.clone(),
            None => Arc::new(
                rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                    .with_safe_default_protocol_versions()
                    .map_err(fail_tls)?
                    .with_no_client_auth()
                    .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new())),
            ),
        };
        let mut tls = rustls::ServerConnection::new(config).map_err(fail_tls)?;
        let mut sock = sock;
        if self.hostile(Hostile::TlsStall) {
            // Read the ClientHello, answer half of the first flight (or a few bytes), go silent.
            let _ = tls.read_tls(&mut sock)?;
            let _ = tls.process_new_packets();
            let mut flight = Vec::new();
            while tls.wants_write() {
                tls.write_tls(&mut flight)?;
            }
            let half = (flight.len() / 2).max(1).min(flight.len());
            sock.write_all(&flight[..half])?;
            self.conn = Conn::Tcp(sock);
            self.drain()?;
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stalled"));
        }
        while tls.is_handshaking() {
            tls.complete_io(&mut sock)?;
        }
        self.shared.tls_handshakes.fetch_add(1, Ordering::SeqCst);
        if tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            self.shared.tls_resumptions.fetch_add(1, Ordering::SeqCst);
        }
        self.conn = Conn::Tls(Box::new(rustls::StreamOwned::new(tls, sock)));
        Ok(())
    }

    /// Reads until the client closes.
    fn drain(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            if self.conn.read(&mut buf)? == 0 {
                return Ok(());
            }
        }
    }

    /// Writes one packet with the next sequence id.
    fn write(&mut self, payload: &[u8]) -> io::Result<()> {
        let framed = frame(self.seq, payload);
        self.seq = self.seq.wrapping_add(1);
        match &mut self.reply {
            Some(reply) => {
                reply.extend_from_slice(&framed);
                Ok(())
            }
            None => self.conn.write_all(&framed),
        }
    }

    /// Reads one packet, insisting on the next sequence id.
    fn read(&mut self) -> io::Result<Vec<u8>> {
        let mut head = [0u8; 4];
        self.conn.read_exact(&mut head)?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
        if head[3] != self.seq {
            let v = format!("sequence id {} where {} was due", head[3], self.seq);
            self.shared.violation(v.clone());
            return Err(fail(v));
        }
        if len > 1 << 20 {
            let v = format!("client packet of {len} bytes");
            self.shared.violation(v.clone());
            return Err(fail(v));
        }
        self.seq = self.seq.wrapping_add(1);
        let mut payload = vec![0; len];
        self.conn.read_exact(&mut payload)?;
        Ok(payload)
    }

    fn ok(&mut self) -> io::Result<()> {
        let mut p = vec![0x00, 0x00, 0x00];
        p.extend_from_slice(&SERVER_STATUS_AUTOCOMMIT.to_le_bytes());
        p.extend_from_slice(&0u16.to_le_bytes());
        self.write(&p)
    }

    /// ERR_Packet with the '#' SQLSTATE marker (after the greeting, CLIENT_PROTOCOL_41).
    fn error(&mut self, code: u16, state: &str, message: &str) -> io::Result<()> {
        let mut p = vec![0xff];
        p.extend_from_slice(&code.to_le_bytes());
        p.push(b'#');
        p.extend_from_slice(state.as_bytes());
        p.extend_from_slice(message.as_bytes());
        self.write(&p)
    }

    fn access_denied(&mut self, using_password: bool) -> io::Result<()> {
        let message = format!(
            "Access denied for user '{}'@'localhost' (using password: {})",
            self.user,
            if using_password { "YES" } else { "NO" }
        );
        self.error(1045, "28000", &message)
    }

    /// Reads and strictly parses the HandshakeResponse41 (seq 1).
    fn read_login(&mut self) -> io::Result<Login> {
        let mut p = self.read()?;
        let mut offered = SERVER_CAPS;
        if self.scenario.deprecate_eof {
            offered |= CLIENT_DEPRECATE_EOF;
        }
        if self.offers_tls() {
            offered |= CLIENT_SSL;
            // The SSLRequest: the first 32 bytes of a response, with CLIENT_SSL.
            if p.len() == 32 && u32::from_le_bytes([p[0], p[1], p[2], p[3]]) & CLIENT_SSL != 0 {
                self.start_tls()?;
                p = self.read()?;
            }
        }
        let login = parse_login(&p).map_err(fail)?;
        *self.shared.last_login.lock().unwrap() = Some(login.clone());
        self.multi_statements = login.caps & CLIENT_MULTI_STATEMENTS != 0;
        let extra = login.caps & !offered;
        if extra != 0 {
            self.shared.violation(format!("client capabilities {extra:#x} were not offered"));
        }
        for (flag, name) in [
            (CLIENT_PROTOCOL_41, "CLIENT_PROTOCOL_41"),
            (CLIENT_SECURE_CONNECTION, "CLIENT_SECURE_CONNECTION"),
            (CLIENT_PLUGIN_AUTH, "CLIENT_PLUGIN_AUTH"),
        ] {
            if login.caps & flag == 0 {
                self.shared.violation(format!("client did not set {name}"));
            }
        }
        let greeted = self.scenario.auth.greeting_plugin();
        if login.plugin.as_deref() != Some(greeted) {
            self.shared.violation(format!("client answered with plugin {:?}, greeted with {greeted}", login.plugin));
        }
        self.deprecate_eof = self.scenario.deprecate_eof && login.caps & CLIENT_DEPRECATE_EOF != 0;
        self.user = login.user.clone();
        Ok(login)
    }

    /// Runs the login exchange after the HandshakeResponse41; true once the client proved the
    /// password (the caller then sends OK).
    fn authenticate(&mut self, login: &Login, scramble: &[u8; 20]) -> io::Result<bool> {
        if let Some(u) = &self.scenario.user {
            if *u != login.user {
                return Ok(false);
            }
        }
        let pw = self.scenario.password.clone();
        let first = &login.auth_response;
        match self.scenario.auth {
            Auth::Native => Ok(*first == native_response(scramble, &pw)),
            Auth::CachingSha2Fast => {
                if pw.is_empty() {
                    return Ok(first.is_empty() || *first == [0]);
                }
                if *first != caching_sha2_response(scramble, &pw) {
                    return Ok(false);
                }
                self.write(&[0x01, 0x03])?;
                Ok(true)
            }
            Auth::CachingSha2Full => {
                if pw.is_empty() {
                    return Ok(first.is_empty() || *first == [0]);
                }
                if *first != caching_sha2_response(scramble, &pw) {
                    return Ok(false);
                }
                self.full_auth(scramble, &pw)
            }
            Auth::SwitchToNative | Auth::SwitchTwice => {
                self.check_first(first, caching_sha2_response(scramble, &pw));
                let nonce = self::scramble();
                let reply = self.switch(NATIVE, &nonce_data(&nonce))?;
                if reply != native_response(&nonce, &pw) {
                    return Ok(false);
                }
                if self.scenario.auth == Auth::SwitchTwice {
                    let again = self::scramble();
                    let reply = self.switch(NATIVE, &nonce_data(&again))?;
                    self.shared.violation("client answered a second auth switch".into());
                    return Ok(reply == native_response(&again, &pw));
                }
                Ok(true)
            }
            Auth::SwitchToCachingSha2Full => {
                self.check_first(first, native_response(scramble, &pw));
                let nonce = self::scramble();
                let reply = self.switch(CACHING_SHA2, &nonce_data(&nonce))?;
                if pw.is_empty() {
                    return Ok(reply.is_empty() || reply == [0]);
                }
                if reply != caching_sha2_response(&nonce, &pw) {
                    return Ok(false);
                }
                self.full_auth(&nonce, &pw)
            }
            Auth::SwitchToDialog => {
                self.check_first(first, native_response(scramble, &pw));
                // dialog's data: a message type byte (4 = password, last question) + prompt.
                let _ = self.switch("dialog", b"\x04Password: ")?;
                self.shared.violation("client answered a switch to dialog".into());
                Ok(true)
            }
        }
    }

    fn check_first(&self, got: &[u8], want: Vec<u8>) {
        if got != want.as_slice() {
            self.shared.violation("auth response to the greeting's scramble is wrong".into());
        }
    }

    /// AuthSwitchRequest: 0xFE, plugin name NUL, plugin data; returns the client's reply.
    fn switch(&mut self, plugin: &str, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut p = vec![0xfe];
        p.extend_from_slice(plugin.as_bytes());
        p.push(0);
        p.extend_from_slice(data);
        self.write(&p)?;
        self.read()
    }

    /// caching_sha2_password full authentication, after a good scramble.
    fn full_auth(&mut self, nonce: &[u8; 20], pw: &str) -> io::Result<bool> {
        self.write(&[0x01, 0x04])?;
        let p = self.read()?;
        let mut clear = pw.as_bytes().to_vec();
        clear.push(0);
        if p == [0x02] {
            if self.conn.is_secure() {
                self.shared.violation("client asked for the RSA key on a secure transport".into());
            }
            let mut key = vec![0x01];
            key.extend_from_slice(PUBLIC_KEY_PEM.as_bytes());
            self.write(&key)?;
            let ct = self.read()?;
            let plain = match private_key().oaep_decrypt::<Sha1>(&ct) {
                Ok(p) => p,
                Err(e) => {
                    self.shared.violation(format!("RSA-OAEP(SHA-1) decrypt failed: {e}"));
                    return Ok(false);
                }
            };
            self.shared.rsa_exchanges.fetch_add(1, Ordering::SeqCst);
            let want: Vec<u8> = clear.iter().zip(nonce.iter().cycle()).map(|(a, b)| a ^ b).collect();
            return Ok(plain == want);
        }
        if !self.conn.is_secure() {
            // A real server would try to RSA-decrypt this and deny access.
            self.shared.violation("client sent a clear password over TCP".into());
            return Ok(false);
        }
        self.shared.clear_passwords.fetch_add(1, Ordering::SeqCst);
        if matches!(self.conn, Conn::Tls(_)) {
            self.shared.tls_clear_passwords.fetch_add(1, Ordering::SeqCst);
        }
        Ok(p == clear)
    }

    /// The command phase: each command restarts the sequence at 0.
    fn commands(&mut self) -> io::Result<()> {
        let mut answered = 0;
        // TCP_INFO's count of received segments when the last query was read.
        let mut before_reply = None;
        loop {
            self.seq = 0;
            let p = match self.read() {
                Ok(p) => p,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            };
            match p.first() {
                Some(0x01) => {
                    self.shared.quits.fetch_add(1, Ordering::SeqCst);
                    if p.len() != 1 {
                        self.shared.violation(format!("COM_QUIT of {} bytes", p.len()));
                    }
                    if let Some(n) = self.conn.segments_to_end(before_reply) {
                        self.shared.quit_segments.lock().unwrap().push(n);
                    }
                    return Ok(());
                }
                Some(0x03) if self.scenario.stall_after.is_some_and(|n| answered >= n) => return self.drain(),
                Some(0x03) => {
                    // Nothing comes from here until the reply has gone: the client waits for it.
                    before_reply = self.conn.tcp().and_then(super::segments_in);
                    if self.conn.has_pending() {
                        self.shared.pipelined.fetch_add(1, Ordering::SeqCst);
                    }
                    answered += 1;
                    let sql = String::from_utf8_lossy(&p[1..]).into_owned();
                    // Each statement is recorded and answered in turn, as a real server does:
                    // all but the last result say more follow, and an error ends the query.
                    // (No lexer: a `;` inside a string splits too; no test sends one.)
                    let statements: Vec<String> = if self.multi_statements {
                        sql.split(';').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
                    } else {
                        vec![sql]
                    };
                    thread::sleep(self.scenario.query_delay);
                    if self.scenario.whole_replies && self.scenario.hostile.is_none() {
                        self.reply = Some(Vec::new());
                    }
                    for (i, statement) in statements.iter().enumerate() {
                        self.shared.queries.lock().unwrap().push(statement.clone());
                        let more = i + 1 < statements.len();
                        if !self.query(statement, more)? {
                            break;
                        }
                    }
                    if let Some(reply) = self.reply.take() {
                        self.conn.write_all(&reply)?;
                    }
                }
                Some(0x0e) => self.ok()?,
                other => {
                    self.shared.violation(format!("unexpected command {other:?}"));
                    self.error(1047, "08S01", "Unknown command")?;
                }
            }
        }
    }

    /// Answers one statement; `more` says another result follows. False after an error.
    fn query(&mut self, sql: &str, more: bool) -> io::Result<bool> {
        match self.scenario.hostile {
            Some(Hostile::QuerySilent) => return self.drain().map(|()| false),
            Some(Hostile::TruncatedResultSet) => {
                self.metadata(&["value".to_string()])?;
                // A row announcing 40 bytes, of which 12 arrive.
                let mut framed = frame(self.seq, &lenenc_str(&[b'x'; 39]));
                framed.truncate(4 + 12);
                self.conn.write_all(&framed)?;
                self.conn.shutdown();
                return Err(fail("hung up mid-row"));
            }
            Some(Hostile::Stream200MB) => return self.stream(200_000_000).map(|()| false),
            _ => {}
        }
        let sql = sql.to_ascii_lowercase();
        let rule = self.scenario.rules.iter().find(|(text, _)| sql.contains(&text.to_ascii_lowercase()));
        match rule.map_or(&self.scenario.reply, |(_, reply)| reply).clone() {
            Reply::Error { code, state, message } => self.error(code, &state, &message).map(|()| false),
            Reply::Rows { columns, rows } => {
                self.metadata(&columns)?;
                for row in rows {
                    let mut p = Vec::new();
                    for v in row {
                        match v {
                            None => p.push(0xfb),
                            Some(s) => p.extend_from_slice(&lenenc_str(s.as_bytes())),
                        }
                    }
                    self.write(&p)?;
                }
                let more = if more { SERVER_MORE_RESULTS_EXISTS } else { 0 };
                self.end_of_rows(SERVER_STATUS_AUTOCOMMIT | more)?;
                Ok(true)
            }
        }
    }

    /// Column count, Column Definitions, and the EOF_Packet unless CLIENT_DEPRECATE_EOF.
    fn metadata(&mut self, columns: &[String]) -> io::Result<()> {
        self.write(&lenenc_int(columns.len() as u64))?;
        for c in columns {
            self.write(&column_definition(c))?;
        }
        if !self.deprecate_eof {
            self.write(&eof_packet())?;
        }
        Ok(())
    }

    /// EOF_Packet, or an OK_Packet with a 0xFE header under CLIENT_DEPRECATE_EOF, with these
    /// status flags.
    fn end_of_rows(&mut self, status: u16) -> io::Result<()> {
        let mut p = vec![0xfe, 0x00, 0x00];
        p.extend_from_slice(&status.to_le_bytes());
        if self.deprecate_eof {
            p.extend_from_slice(&0u16.to_le_bytes());
        }
        self.write(&p)
    }

    /// A one-column result set of `total` bytes of rows, made as it goes.
    fn stream(&mut self, total: u64) -> io::Result<()> {
        self.metadata(&["value".to_string()])?;
        let row = lenenc_str(&[b'z'; 4000]);
        let mut batch = Vec::with_capacity(64 * (row.len() + 4));
        let mut sent = 0u64;
        while sent < total {
            batch.clear();
            for _ in 0..64 {
                batch.extend_from_slice(&frame(self.seq, &row));
                self.seq = self.seq.wrapping_add(1);
            }
            self.conn.write_all(&batch)?;
            sent += batch.len() as u64;
            self.shared.streamed.fetch_add(batch.len() as u64, Ordering::SeqCst);
        }
        self.end_of_rows(SERVER_STATUS_AUTOCOMMIT)?;
        self.drain()
    }
}

/// Prepends the 3-byte little-endian length and the sequence id.
pub fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 0xff_ffff);
    let mut out = (payload.len() as u32).to_le_bytes().to_vec();
    out[3] = seq;
    out.extend_from_slice(payload);
    out
}

/// Protocol::LengthEncodedInteger.
pub fn lenenc_int(n: u64) -> Vec<u8> {
    match n {
        0..=250 => vec![n as u8],
        251..=0xffff => [&[0xfc][..], &(n as u16).to_le_bytes()].concat(),
        0x1_0000..=0xff_ffff => [&[0xfd][..], &(n as u32).to_le_bytes()[..3]].concat(),
        _ => [&[0xfe][..], &n.to_le_bytes()].concat(),
    }
}

/// Protocol::LengthEncodedString.
pub fn lenenc_str(s: &[u8]) -> Vec<u8> {
    [lenenc_int(s.len() as u64), s.to_vec()].concat()
}

/// ColumnDefinition41 for a VAR_STRING column `name`.
fn column_definition(name: &str) -> Vec<u8> {
    let mut p = Vec::new();
    for s in ["def", "", "", "", name, name] {
        p.extend_from_slice(&lenenc_str(s.as_bytes()));
    }
    p.push(0x0c); // length of the fixed-length fields
    p.extend_from_slice(&(CHARSET_UTF8MB4_GENERAL_CI as u16).to_le_bytes());
    p.extend_from_slice(&1024u32.to_le_bytes()); // column length
    p.push(MYSQL_TYPE_VAR_STRING);
    p.extend_from_slice(&0u16.to_le_bytes()); // flags
    p.push(0); // decimals
    p.extend_from_slice(&[0, 0]);
    p
}

/// EOF_Packet: 0xFE, warnings, status flags.
fn eof_packet() -> Vec<u8> {
    let mut p = vec![0xfe, 0x00, 0x00];
    p.extend_from_slice(&SERVER_STATUS_AUTOCOMMIT.to_le_bytes());
    p
}

/// Protocol::HandshakeV10 with a 20-byte scramble split 8 + 12 (+ NUL).
pub fn greeting_v10(version: &str, caps: u32, scramble: &[u8; 20], plugin: &str) -> Vec<u8> {
    let mut p = vec![10];
    p.extend_from_slice(version.as_bytes());
    p.push(0);
    p.extend_from_slice(&7u32.to_le_bytes()); // connection id
    p.extend_from_slice(&scramble[..8]);
    p.push(0);
    p.extend_from_slice(&(caps as u16).to_le_bytes());
    p.push(CHARSET_UTF8MB4_GENERAL_CI);
    p.extend_from_slice(&SERVER_STATUS_AUTOCOMMIT.to_le_bytes());
    p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    p.push(21); // auth_plugin_data_len: 8 + 12 + NUL
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(&scramble[8..]);
    p.push(0);
    p.extend_from_slice(plugin.as_bytes());
    p.push(0);
    p
}

/// Protocol::HandshakeV9: version 9, server version, connection id, 8-byte scramble NUL.
fn greeting_v9(version: &str, scramble: &[u8; 20]) -> Vec<u8> {
    let mut p = vec![9];
    p.extend_from_slice(version.as_bytes());
    p.push(0);
    p.extend_from_slice(&7u32.to_le_bytes());
    p.extend_from_slice(&scramble[..8]);
    p.push(0);
    p
}

/// Strict Protocol::HandshakeResponse41 parser.
pub fn parse_login(p: &[u8]) -> Result<Login, String> {
    let mut r = Reader { p, at: 0 };
    let caps = u32::from_le_bytes(r.take(4)?.try_into().unwrap());
    if caps & CLIENT_PROTOCOL_41 == 0 {
        return Err("not a HandshakeResponse41 (no CLIENT_PROTOCOL_41)".into());
    }
    let max_packet = u32::from_le_bytes(r.take(4)?.try_into().unwrap());
    let charset = r.take(1)?[0];
    if r.take(23)?.iter().any(|&b| b != 0) {
        return Err("filler is not 23 zero bytes".into());
    }
    let user = String::from_utf8(r.nul_str()?.to_vec()).map_err(|_| "user not UTF-8")?;
    let auth_response = if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        let n = r.lenenc()?;
        r.take(n as usize)?.to_vec()
    } else if caps & CLIENT_SECURE_CONNECTION != 0 {
        let n = r.take(1)?[0];
        r.take(n as usize)?.to_vec()
    } else {
        r.nul_str()?.to_vec()
    };
    let mut login = Login { caps, max_packet, charset, user, auth_response, ..Login::default() };
    if caps & CLIENT_CONNECT_WITH_DB != 0 {
        login.database = Some(String::from_utf8_lossy(r.nul_str()?).into_owned());
    }
    if caps & CLIENT_PLUGIN_AUTH != 0 {
        login.plugin = Some(String::from_utf8_lossy(r.nul_str()?).into_owned());
    }
    if caps & CLIENT_CONNECT_ATTRS != 0 {
        let n = r.lenenc()?;
        login.attrs = Some(r.take(n as usize)?.to_vec());
    }
    if caps & CLIENT_ZSTD_COMPRESSION != 0 {
        r.take(1)?;
    }
    if r.at != p.len() {
        return Err(format!("{} trailing bytes", p.len() - r.at));
    }
    Ok(login)
}

struct Reader<'a> {
    p: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self.p.get(self.at..self.at + n).ok_or(format!("truncated at {}", self.at))?;
        self.at += n;
        Ok(s)
    }

    fn nul_str(&mut self) -> Result<&'a [u8], String> {
        let rest = &self.p[self.at..];
        let n = rest.iter().position(|&b| b == 0).ok_or(format!("no NUL after {}", self.at))?;
        self.at += n + 1;
        Ok(&rest[..n])
    }

    fn lenenc(&mut self) -> Result<u64, String> {
        let first = self.take(1)?[0];
        let width = match first {
            0..=250 => return Ok(first as u64),
            0xfc => 2,
            0xfd => 3,
            0xfe => 8,
            _ => return Err(format!("bad length-encoded integer {first:#x}")),
        };
        let mut b = [0u8; 8];
        b[..width].copy_from_slice(self.take(width)?);
        Ok(u64::from_le_bytes(b))
    }
}

/// A fresh 20-byte scramble of printable ASCII (the NUL goes after it on the wire).
pub fn scramble() -> [u8; 20] {
    let mut raw = [0u8; 20];
    fs::File::open("/dev/urandom").unwrap().read_exact(&mut raw).unwrap();
    raw.map(|b| b'!' + b % 94)
}

/// Switch data for both plugins: the 20-byte scramble and a NUL.
fn nonce_data(nonce: &[u8; 20]) -> Vec<u8> {
    [&nonce[..], &[0]].concat()
}

/// mysql_native_password: SHA1(pw) XOR SHA1(nonce || SHA1(SHA1(pw))); empty pw -> empty.
pub fn native_response(nonce: &[u8], pw: &str) -> Vec<u8> {
    if pw.is_empty() {
        return Vec::new();
    }
    let h1 = Sha1::digest(pw.as_bytes());
    let h2 = Sha1::digest(h1);
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(h2);
    let h3 = h.finalize();
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

/// caching_sha2_password: XOR(SHA256(pw), SHA256(SHA256(SHA256(pw)) || nonce)); empty pw ->
/// empty.
pub fn caching_sha2_response(nonce: &[u8], pw: &str) -> Vec<u8> {
    if pw.is_empty() {
        return Vec::new();
    }
    let h1 = Sha256::digest(pw.as_bytes());
    let h2 = Sha256::digest(h1);
    let mut h = Sha256::new();
    h.update(h2);
    h.update(nonce);
    let h3 = h.finalize();
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

fn private_key() -> rsa::PrivateKey {
    rsa::PrivateKey::from_pkcs8_pem(PRIVATE_KEY_PEM).unwrap()
}
