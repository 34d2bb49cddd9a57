//! The check driver: runs a [`Session`] over a socket within one deadline ([`gather`]), and the
//! [`Checker`] that turns requests into verdicts: operator files first, then one shared database
//! round trip per profile kind (single-flight, optionally cached), judged per request.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_io::Async;
use async_io::Timer;
use futures_lite::FutureExt;

use crate::config::{CheckConfig, Password, Target};
use crate::deadline::Deadline;
use crate::flag::Flag;
use crate::link::{load_tls, Link, TlsClient, TlsError};
use crate::metrics::Metrics;
use crate::mysql::{self, printable, Action, Options, ResultSet, ServerError, Session};
use crate::net::{self, Conn};
use crate::profile::{self, Flavor, Kind, Profile, ER_PARSE_ERROR, ER_UNKNOWN_COM_ERROR, PROBE};

/// Where a check was when it failed or ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the round trip another request started.
    Wait,
    Connect,
    /// The TLS handshake after the SSLRequest.
    Tls,
    Login,
    Query,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Wait => "waiting for the check in flight",
            Phase::Connect => "connect",
            Phase::Tls => "tls handshake",
            Phase::Login => "login",
            Phase::Query => "query",
        })
    }
}

/// Why a check failed.
#[derive(Debug)]
pub enum Failure {
    /// The deadline passed during this phase.
    Timeout(Phase, Duration),
    /// The socket failed during this phase.
    Io(Phase, io::Error),
    /// The server refused the login with an ERR (access denied, too many connections...).
    Login(ServerError),
    /// The server answered the query with an ERR.
    Query(ServerError),
    /// The server broke the protocol.
    Protocol(Phase, mysql::ProtocolError),
    /// The TLS handshake or a TLS record failed.
    Tls(TlsError),
}

impl Failure {
    /// The short reason given to anonymous HTTP clients: a class, never the server's text.
    pub fn class(&self) -> String {
        match self {
            Failure::Timeout(..) => "timeout".into(),
            Failure::Io(_, e) => match e.kind() {
                io::ErrorKind::ConnectionRefused => "connection refused".into(),
                io::ErrorKind::NotFound => "socket not found".into(),
                io::ErrorKind::PermissionDenied => "permission denied".into(),
                _ => "network error".into(),
            },
            Failure::Login(e) if e.code == 1045 || e.code == 1698 => format!("access denied ({})", e.code),
            Failure::Login(e) if e.code == ER_SECURE_TRANSPORT_REQUIRED => {
                "TLS required by server (use --ssl-mode)".into()
            }
            Failure::Login(e) => format!("login refused ({})", e.code),
            Failure::Query(e) if e.code == ER_UNKNOWN_COM_ERROR => format!("node refuses queries ({})", e.code),
            Failure::Query(e) => format!("query failed ({})", e.code),
            Failure::Protocol(_, mysql::ProtocolError::TlsNotOffered) => "server does not offer TLS".into(),
            Failure::Protocol(..) => "protocol error".into(),
            Failure::Tls(e) => e.class().into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout(phase, d) => write!(f, "timeout after {} ms during {phase}", d.as_millis()),
            Failure::Io(phase, e) => write!(f, "{phase} failed: {e}"),
            Failure::Login(e) => write!(f, "login failed: {e}"),
            Failure::Query(e) => write!(f, "query failed: {e}"),
            Failure::Protocol(phase, e) => write!(f, "{phase} failed: protocol error: {e}"),
            Failure::Tls(e) => write!(f, "tls handshake failed: {e}"),
        }
    }
}

impl std::error::Error for Failure {}

/// What the server said to a kind's queries: the first value of `--query`, then one result
/// set per step of [`Kind::plan`].
#[derive(Debug)]
pub struct Gathered {
    pub value: String,
    pub results: Vec<ResultSet>,
}

/// MySQL 8's ER_SECURE_TRANSPORT_REQUIRED: a plaintext login under require_secure_transport.
/// (MariaDB answers a bare 1045 instead.)
const ER_SECURE_TRANSPORT_REQUIRED: u16 = 3159;

/// The most bytes of a reported value or reason; longer ones are cut (they end up in HTTP bodies
/// and log lines).
pub const MAX_VALUE_LEN: usize = 256;

/// How long a connection attempt to one address of a name has the stage to itself before the
/// next address is tried alongside it (RFC 8305's Connection Attempt Delay).
const NEXT_ADDRESS_AFTER: Duration = Duration::from_millis(250);

/// The size of the buffer a round trip reads the server's bytes into.
pub const READ_BUF: usize = 4096;

/// Logs in and runs `--query` and `kind`'s plan, all within `cfg.timeout`, and leaves the
/// session in `parting` for its QUIT once the answer is out ([`Checker::part`]).
/// With `tls`, over TLS after the SSLRequest (the handshake is inside the same deadline).
/// With `keep` (`--keep-session`), the queries run on the kept session while it is young enough
/// and the session is kept rather than QUIT; `metrics` counts the logins. The server's bytes
/// are read into `buf` ([`READ_BUF`] bytes serve well).
#[allow(clippy::too_many_arguments)]
async fn gather(
    cfg: &CheckConfig,
    password: &Password,
    tls: Option<&TlsClient>,
    kind: Kind,
    keep: Option<Keep<'_>>,
    parting: &KeptCell,
    metrics: &Metrics,
    buf: &mut [u8],
) -> Result<Gathered, Failure> {
    let phase = Cell::new(Phase::Connect);
    // The socket of a fresh login, kept out here so that a timeout before any byte came can
    // still tell a connection that never completed from a server that never greeted.
    let connecting = RefCell::new(None);
    let deadline = async {
        Deadline::after(cfg.timeout).await;
        Err(Failure::Timeout(phase.get(), cfg.timeout))
    };
    let opened = Opener { cfg, phase: &phase, metrics, connecting: &connecting };
    let result = round(opened, cfg, password, tls, kind, &phase, keep, parting, buf).or(deadline).await;
    match result {
        Err(Failure::Timeout(Phase::Connect, d))
            if connecting.borrow().as_ref().is_some_and(|s: &Rc<Async<TcpStream>>| s.get_ref().peer_addr().is_ok()) =>
        {
            Err(Failure::Timeout(Phase::Login, d))
        }
        result => result,
    }
}

/// Opens the connections of fresh logins.
struct Opener<'a> {
    cfg: &'a CheckConfig,
    phase: &'a Cell<Phase>,
    metrics: &'a Metrics,
    connecting: &'a RefCell<Option<Rc<Async<TcpStream>>>>,
}

impl Opener<'_> {
    /// A connection to the target. To an IP address it returns at once, still connecting: the
    /// connection completes while we wait for the greeting ([`net::connect_tcp`]), and the
    /// phase stays [`Phase::Connect`] until the first byte comes.
    async fn open(&self) -> Result<Conn, Failure> {
        self.metrics.login();
        self.phase.set(Phase::Connect);
        let conn = match &self.cfg.target {
            Target::Tcp { host, port } => match host.parse::<IpAddr>() {
                Ok(ip) => net::connect_tcp(SocketAddr::new(ip, *port)),
                Err(_) => {
                    let addrs = async_net::resolve((host.as_str(), *port)).await.map_err(|e| {
                        Failure::Io(Phase::Connect, io::Error::new(e.kind(), format!("resolving {host}: {e}")))
                    })?;
                    let conn = connect_any(&addrs).await;
                    self.phase.set(Phase::Login);
                    conn
                }
            },
            Target::Unix(path) => {
                let conn = net::connect_unix(path);
                self.phase.set(Phase::Login);
                conn
            }
        };
        // No TCP_NODELAY: every write of ours follows the server's answer, which acknowledged
        // the previous one, so Nagle never holds a packet back; it would cost a system call.
        let conn = conn.map_err(|e| Failure::Io(Phase::Connect, e))?;
        *self.connecting.borrow_mut() = Some(conn.handle());
        Ok(conn)
    }
}

type Attempt = Pin<Box<dyn Future<Output = io::Result<Conn>>>>;

/// One connection attempt that completes (or fails) before it returns, for [`connect_any`].
async fn attempt(addr: SocketAddr) -> io::Result<Conn> {
    let conn = net::connect_tcp(addr)?;
    conn.writable().await?;
    match conn.get_ref().take_error()? {
        None => Ok(conn),
        Some(e) => Err(e),
    }
}

/// Connects to the first of `addrs` that answers. Attempts are staggered, happy-eyeballs style:
/// the next address starts after [`NEXT_ADDRESS_AFTER`] or as soon as every earlier attempt has
/// failed, so a dead first address (a black hole, not a refusal) costs a quarter second, not the
/// whole deadline. The caller's deadline bounds it all.
pub async fn connect_any(addrs: &[SocketAddr]) -> io::Result<Conn> {
    if let [one] = addrs {
        return attempt(*one).await;
    }
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut next = 0;
    let mut stagger = Timer::never();
    let mut last_error = None;
    futures_lite::future::poll_fn(|cx| loop {
        let idle = attempts.is_empty();
        if next < addrs.len() && (idle || Pin::new(&mut stagger).poll(cx).is_ready()) {
            attempts.push(Box::pin(attempt(addrs[next])));
            next += 1;
            stagger.set_after(NEXT_ADDRESS_AFTER);
        }
        let mut i = 0;
        while i < attempts.len() {
            match attempts[i].as_mut().poll(cx) {
                Poll::Ready(Ok(stream)) => return Poll::Ready(Ok(stream)),
                Poll::Ready(Err(e)) => {
                    last_error = Some(e);
                    drop(attempts.swap_remove(i));
                }
                Poll::Pending => i += 1,
            }
        }
        if attempts.is_empty() {
            if next >= addrs.len() {
                let e = last_error.take().unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"));
                return Poll::Ready(Err(e));
            }
            // Every attempt so far failed: start the next one now.
            continue;
        }
        // Pending attempts and the stagger timer are registered with the waker.
        if next < addrs.len() && Pin::new(&mut stagger).poll(cx).is_ready() {
            continue;
        }
        return Poll::Pending;
    })
    .await
}

/// Where `--keep-session` keeps a kind's logged-in session between round trips, and where a
/// fresh login's session waits for its QUIT.
type KeptCell = RefCell<Option<Held>>;

/// A kind's kept session, and how long a session may serve before a fresh login replaces it.
#[derive(Clone, Copy)]
pub struct Keep<'a> {
    cell: &'a KeptCell,
    max_age: Duration,
}

/// A logged-in, idle session and the link it talks over, kept between round trips.
struct Held {
    session: Session,
    link: Link<Conn>,
    /// When it logged in.
    since: Instant,
}

impl Held {
    /// Whether the server closed the idle session or said something unasked (the ERR that comes
    /// with KILL, wait_timeout or a shutdown): one look at the socket, which must have nothing.
    fn gone(&self) -> bool {
        self.link.get_ref().has_news()
    }

    /// QUIT and close.
    async fn retire(&mut self) {
        self.link.get_ref().last_words();
        self.session.quit();
        if let Ok(Action::Write(bytes)) = self.session.poll() {
            let _ = self.link.write_all(&bytes).await;
        }
        let _ = self.link.close().await;
    }
}

/// A kept session dropped without [`Held::retire`] (a failure, SIGHUP) still says
/// goodbye, so the server counts no aborted client. Drop cannot wait: the QUIT goes out if the
/// socket takes it at once, as an idle one does.
impl Drop for Held {
    fn drop(&mut self) {
        self.link.get_ref().last_words();
        self.session.quit();
        if let Ok(Action::Write(bytes)) = self.session.poll() {
            let _ = poll_now(self.link.write_all(&bytes));
        }
    }
}

/// Polls `fut` once: its output if that is ready now, else `None` (and `fut` is dropped).
fn poll_now<F: Future>(fut: F) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(fut).poll(&mut cx) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// One round trip: on the kept session when `keep` holds a young one, else (or when it fails or
/// stalls) on a fresh login over a connection from `opener`, which is then kept or left in
/// `parting`.
#[allow(clippy::too_many_arguments)]
async fn round(
    opener: Opener<'_>,
    cfg: &CheckConfig,
    password: &Password,
    tls: Option<&TlsClient>,
    kind: Kind,
    phase: &Cell<Phase>,
    keep: Option<Keep<'_>>,
    parting: &KeptCell,
    buf: &mut [u8],
) -> Result<Gathered, Failure> {
    // An expired session stays in its cell, keeping its place on the server, until its
    // successor has logged in (make before break): a full max_connections or a refused login
    // shows within --keep-session, and a login that fails or runs out of time leaves it there.
    let young = keep.and_then(|k| {
        let expired = k.cell.borrow().as_ref().is_some_and(|h| h.since.elapsed() >= k.max_age);
        if expired {
            None
        } else {
            k.cell.take()
        }
    });
    if let Some(mut held) = young {
        if held.gone() {
            log::debug!("the kept session was closed by the server: logging in afresh");
        } else {
            // A stalled session gets half the deadline, a fresh login the rest.
            let share = cfg.timeout / 2;
            let stalled = async {
                Deadline::after(share).await;
                Err(Failure::Timeout(Phase::Query, share))
            };
            match ask(&mut held.session, &mut held.link, buf, cfg, kind, phase).or(stalled).await {
                Ok(gathered) => {
                    if let Some(k) = keep {
                        *k.cell.borrow_mut() = Some(held);
                    }
                    return Ok(gathered);
                }
                // The server's word on the database (no quorum, a missing privilege): a fresh
                // login would hear the same, so the session answers and stays. A lasting error
                // then costs no login per check; SECONDS still renews the session.
                Err(Failure::Query(e)) if !ends_session(e.code) => {
                    if let Some(k) = keep {
                        *k.cell.borrow_mut() = Some(held);
                    }
                    return Err(Failure::Query(e));
                }
                Err(e) => log::debug!("the kept session failed ({e}): logging in afresh"),
            }
        }
    }
    let fresh = async {
        let conn = opener.open().await?;
        login(conn, buf, cfg, password, tls, phase).await
    };
    // On failure an expired session is still in its cell: a server full of other clients stays
    // down rather than flapping up whenever ours has just left.
    let (mut session, mut link) = fresh.await?;
    let expired = keep.and_then(|k| k.cell.take());
    let since = Instant::now();
    let result = ask(&mut session, &mut link, buf, cfg, kind, phase).await;
    // After an ERR answer the session is still logged in and idle.
    if matches!(result, Ok(_) | Err(Failure::Query(_))) {
        // Not kept: its QUIT waits until the answer is out ([`Checker::part`]). One still
        // waiting there is dropped, which says QUIT.
        *keep.map_or(parting, |k| k.cell).borrow_mut() = Some(Held { session, link, since });
    }
    if let Some(mut old) = expired {
        old.retire().await;
    }
    result
}

/// Whether an ERR answer is about the connection rather than the database: it was killed
/// (1927 MariaDB, 3169 MySQL), its query interrupted (1317), the server is shutting down (1053),
/// the network failed (1152-1161), or it idled out (4031). A fresh login then tells the truth.
fn ends_session(code: u16) -> bool {
    matches!(code, 1053 | 1152..=1161 | 1317 | 1927 | 3169 | 4031)
}

/// Logs in over `conn` (over TLS after the SSLRequest, with `tls`): the session is then idle.
// Only the TLS handshake goes round the loop again, and the plain build has none.
#[cfg_attr(not(feature = "tls"), allow(clippy::never_loop))]
async fn login(
    conn: Conn,
    buf: &mut [u8],
    cfg: &CheckConfig,
    password: &Password,
    tls: Option<&TlsClient>,
    phase: &Cell<Phase>,
) -> Result<(Session, Link<Conn>), Failure> {
    let mut session = Session::new(Options {
        user: cfg.user.clone(),
        password: password.clone(),
        database: cfg.database.clone(),
        transport: cfg.target.transport(),
    });
    let mut link = Link::Plain(conn);
    if let Some(tls) = tls {
        session.request_tls(tls.request());
    }
    loop {
        match drive(&mut session, &mut link, buf, phase).await? {
            Action::Ready => return Ok((session, link)),
            // The session asks for TLS only after request_tls, so `tls` is there (and the plain
            // build never gets here: it has no TLS settings).
            #[cfg(feature = "tls")]
            Action::StartTls => {
                phase.set(Phase::Tls);
                let tls = tls.ok_or(Failure::Protocol(Phase::Tls, mysql::ProtocolError::UnexpectedEof))?;
                link = link.start_tls(tls).await.map_err(Failure::Tls)?;
                session.tls_started();
                phase.set(Phase::Login);
            }
            #[cfg(not(feature = "tls"))]
            Action::StartTls => return Err(Failure::Protocol(Phase::Tls, mysql::ProtocolError::UnexpectedEof)),
            // Replies and Closed come only after a query or QUIT.
            _ => return Err(Failure::Protocol(phase.get(), mysql::ProtocolError::UnexpectedEof)),
        }
    }
}

/// Runs `--query` and `kind`'s plan on a logged-in, idle session, and leaves it idle: an ERR
/// answer ends the round trip as [`Failure::Query`] with the session still usable.
async fn ask(
    session: &mut Session,
    link: &mut Link<Conn>,
    buf: &mut [u8],
    cfg: &CheckConfig,
    kind: Kind,
    phase: &Cell<Phase>,
) -> Result<Gathered, Failure> {
    phase.set(Phase::Query);
    // The plan depends on the server's flavour, known from the greeting.
    let version = session.greeting().map_or("", |g| g.server_version.as_str());
    let plan = kind.plan(Flavor::from_version(version));
    // --query with the probe riding along (profile::with_probe).
    let folded =
        if plan.first() == Some(&PROBE) { profile::with_probe(&cfg.query, session.multi_statements()) } else { None };
    // The session is idle, so it takes the query.
    let _ = session.query(folded.as_deref().unwrap_or(&cfg.query));
    // Query 0 is --query, query i > 0 is plan[i - 1]; `next` is the one to send next, and
    // `spelling` which of its statements is in flight.
    let mut next = 1;
    let mut spelling = 0;
    let mut value = None;
    let mut results = Vec::new();
    loop {
        match drive(session, link, buf, phase).await? {
            Action::Ready if next <= plan.len() => {
                // A step whose condition the results so far do not meet is skipped (empty).
                while plan.get(next - 1).is_some_and(|s| !s.when.holds(&results)) {
                    results.push(ResultSet::default());
                    next += 1;
                }
                let Some(step) = plan.get(next - 1) else { break };
                let _ = session.query_keeping(step.sql[0], step.keep);
                next += 1;
                spelling = 0;
            }
            Action::Ready => break,
            Action::Reply(reply) => match (next - 1, reply) {
                (0, Ok(rs)) => {
                    value = Some(first_value(&rs));
                    if folded.is_some() {
                        // The probe ran with --query; its row is not needed, only its success.
                        results.push(ResultSet::default());
                        next += 1;
                    }
                }
                (_, Ok(rs)) => results.push(rs),
                (done, Err(e)) => {
                    let step = done.checked_sub(1).and_then(|i| plan.get(i));
                    match step.and_then(|s| Some((s.sql.get(spelling + 1)?, s.keep))) {
                        Some((sql, keep)) if e.code == ER_PARSE_ERROR => {
                            let _ = session.query_keeping(sql, keep);
                            spelling += 1;
                        }
                        _ => return Err(Failure::Query(e)),
                    }
                }
            },
            // Only login asks for TLS, and only quit() closes.
            _ => return Err(Failure::Protocol(Phase::Query, mysql::ProtocolError::UnexpectedEof)),
        }
    }
    // Ready comes back only after the reply to --query.
    let value = value.ok_or(Failure::Protocol(Phase::Query, mysql::ProtocolError::UnexpectedEof))?;
    Ok(Gathered { value, results })
}

/// Polls `session` until it has something for the driver (Ready, a reply, StartTls, Closed),
/// sending what it writes and feeding it what the server sends.
async fn drive(
    session: &mut Session,
    link: &mut Link<Conn>,
    buf: &mut [u8],
    phase: &Cell<Phase>,
) -> Result<Action, Failure> {
    loop {
        let action = session.poll().map_err(|e| match e {
            mysql::Error::Server(e) => Failure::Login(e),
            mysql::Error::Protocol(e) => Failure::Protocol(phase.get(), e),
        })?;
        match action {
            Action::Write(bytes) => {
                link.write_all(&bytes).await.map_err(|e| Failure::Io(phase.get(), e))?;
                session.recycle(bytes);
            }
            Action::NeedMore => match link.read(buf).await {
                // Connecting (and its failures) ends with the first read: bytes or the server's
                // close.
                Ok(n) if phase.get() == Phase::Connect => {
                    phase.set(Phase::Login);
                    if n == 0 {
                        return Err(Failure::Protocol(Phase::Login, mysql::ProtocolError::UnexpectedEof));
                    }
                    session.feed(&buf[..n]);
                }
                Ok(0) => return Err(Failure::Protocol(phase.get(), mysql::ProtocolError::UnexpectedEof)),
                Ok(n) => session.feed(&buf[..n]),
                Err(e) => return Err(Failure::Io(phase.get(), e)),
            },
            other => return Ok(other),
        }
    }
}

/// The first column of the first row: `NULL` for SQL NULL, empty without rows.
fn first_value(rs: &ResultSet) -> String {
    match rs.rows.first().and_then(|r| r.first()) {
        Some(Some(v)) => printable(v, MAX_VALUE_LEN),
        Some(None) => "NULL".to_string(),
        None => String::new(),
    }
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Healthy: the first value of `--query`, the profile's detail if it has one, and the
    /// agent weight in percent if the profile gives one ([`Profile::weight`]).
    Up { value: String, detail: Option<String>, weight: Option<u64> },
    /// Healthy, but the drain file exists: HTTP stays 200 so HAProxy keeps the sessions, and the
    /// agent answers `drain` so it sends no new ones.
    Draining { value: String, detail: Option<String> },
    /// Not healthy, with the short public reason (a class or a failed condition): at most
    /// [`MAX_VALUE_LEN`] bytes, no control characters. Build it with [`Verdict::down`].
    Down(String),
    /// The force-fail file exists: a hard fail for HTTP and the agent alike.
    ForceFail,
    /// The maintenance file exists.
    Maint,
}

impl Verdict {
    /// A down verdict whose reason is cut and cleaned: it may hold server text.
    pub fn down(reason: &str) -> Verdict {
        Verdict::Down(printable(reason.as_bytes(), MAX_VALUE_LEN))
    }

    /// Whether the database is healthy (draining or not).
    pub fn is_up(&self) -> bool {
        matches!(self, Verdict::Up { .. } | Verdict::Draining { .. })
    }

    /// The metrics label: up, drain, down, off (force-fail file) or maint.
    pub fn result(&self) -> &'static str {
        match self {
            Verdict::Up { .. } => "up",
            Verdict::Draining { .. } => "drain",
            Verdict::Down(_) => "down",
            Verdict::ForceFail => "off",
            Verdict::Maint => "maint",
        }
    }

    /// The short reason for anything but Up.
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Up { .. } => "",
            Verdict::Draining { .. } => "draining (drain file present)",
            Verdict::Down(reason) => reason,
            Verdict::ForceFail => "force-fail file present",
            Verdict::Maint => "maintenance file present",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Up { value, detail: Some(d), .. } => write!(f, "up: {value}, {d}"),
            Verdict::Up { value, detail: None, .. } => write!(f, "up: {value}"),
            Verdict::Draining { value, detail: Some(d) } => write!(f, "draining: {value}, {d}"),
            Verdict::Draining { value, detail: None } => write!(f, "draining: {value}"),
            other => write!(f, "{}: {}", other.result(), other.reason()),
        }
    }
}

type Shared = Rc<Result<Gathered, Failure>>;

/// How much longer than `--timeout` a request may wait for a round trip another request
/// started; that round trip is itself bounded by `--timeout` from its own start, so this only
/// covers scheduling.
const WAIT_MARGIN: Duration = Duration::from_millis(250);

/// A database round trip in flight, shared by every request for its kind that arrives meanwhile.
struct InFlight {
    /// Set by the leader just before it finishes.
    result: RefCell<Option<Shared>>,
    /// Raised when the leader is done (or dropped), which wakes every waiter at once.
    done: Flag,
}

/// Held by the request that runs a round trip: whether it finishes or is dropped, the slot is
/// freed and the waiters are woken.
struct Leader<'a> {
    slot: &'a Slot,
    inflight: Rc<InFlight>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.slot.inflight.borrow_mut().take();
        self.inflight.done.raise();
    }
}

/// Per profile kind: the round trip in flight, the last result, and the kept session.
#[derive(Default)]
struct Slot {
    inflight: RefCell<Option<Rc<InFlight>>>,
    /// When the last round trip finished, and what it found.
    last: RefCell<Option<(Instant, Shared)>>,
    /// With `--keep-session`: the logged-in session between round trips. Only the leader of a
    /// round trip touches it.
    kept: KeptCell,
    /// Without it: the session of the last round trip, until [`Checker::part`] says QUIT.
    parting: KeptCell,
    /// The read buffer of this kind's round trips, kept between them rather than allocated and
    /// freed for each.
    buf: RefCell<Vec<u8>>,
}

/// Answers check requests for every profile, sharing database work between them.
pub struct Checker {
    pub cfg: CheckConfig,
    /// The one copy of the password the daemon keeps; SIGHUP may replace it.
    password: RefCell<Password>,
    /// The TLS settings (`--ssl-*`); SIGHUP may replace them.
    tls: RefCell<Option<TlsClient>>,
    slots: [Slot; 4],
    /// Bumped when SIGHUP drops the kept sessions, so that a round trip in flight does not keep
    /// one logged in with the old settings.
    generation: Cell<u64>,
    /// The operator files whose last look failed (by [`Checker::present`]'s index), so that a
    /// lasting failure is logged once, not on every request.
    unreadable: Cell<u8>,
    pub metrics: Metrics,
}

impl Checker {
    pub fn new(cfg: CheckConfig, password: Password) -> Checker {
        let tls = RefCell::new(cfg.tls.clone());
        Checker {
            cfg,
            password: RefCell::new(password),
            tls,
            slots: Default::default(),
            generation: Cell::new(0),
            unreadable: Cell::new(0),
            metrics: Metrics::default(),
        }
    }

    /// Quits the kept sessions (`--keep-session`): the next round trips log in afresh. SIGHUP always
    /// does this, after rereading the password and the `--ssl-*` files; a daemon stopping may call
    /// it so that the server counts no aborted clients.
    pub fn forget_sessions(&self) {
        self.generation.set(self.generation.get() + 1);
        for slot in &self.slots {
            drop(slot.kept.take());
        }
        self.part();
    }

    /// Says QUIT to the sessions of the round trips that finished without `--keep-session`
    /// (and closes them). Called once the answer is out: the goodbye and its close, with the
    /// wake-up of the server they cost, then delay no check. Never waits: an idle socket takes
    /// the QUIT (and TLS's close_notify) at once, with the FIN; if it does not, Drop still
    /// says QUIT.
    pub fn part(&self) {
        for slot in &self.slots {
            // A look before the take: taking moves the whole cell, even an empty one.
            if slot.parting.borrow().is_some() {
                if let Some(mut done) = slot.parting.take() {
                    poll_now(done.retire());
                }
            }
        }
    }

    /// Rereads the `--ssl-*` files for the checks that start from now on (SIGHUP). Bad files
    /// keep the old settings. Kept sessions stay until [`Checker::forget_sessions`].
    pub fn reload_tls(&self) {
        if self.tls.borrow().is_none() {
            return;
        }
        match load_tls(&self.cfg.ssl, &self.cfg.target) {
            Ok(tls) => {
                *self.tls.borrow_mut() = tls;
                log::info!("SIGHUP: reread the --ssl-* files");
            }
            Err(e) => log::warn!("SIGHUP: keeping the old TLS settings: {e}"),
        }
    }

    /// Replaces the password for the logins that start from now on. Kept sessions stay until
    /// [`Checker::forget_sessions`].
    pub fn set_password(&self, password: Password) {
        *self.password.borrow_mut() = password;
    }

    /// [`Checker::check`] to the end, on this thread (`--once`). Not async: the binary crate
    /// then instantiates none of the library's futures, each of which would be a second copy.
    pub fn check_blocking(&self, profile: &Profile) -> (Verdict, Duration) {
        let judged = smol::block_on(self.check(profile));
        self.part();
        judged
    }

    /// Judges `profile` now. The operator's files are read on every call, so a drain is never
    /// delayed by the cache or by a check in flight.
    pub async fn check(&self, profile: &Profile) -> (Verdict, Duration) {
        let start = Instant::now();
        let kind = profile.kind();
        // The detailed failure, for the log only: the public reason is its class.
        let mut failure = None;
        let verdict = if self.cfg.maint_file.as_deref().is_some_and(|f| self.present(f, 0)) {
            Verdict::Maint
        } else if self.present(&self.cfg.force_fail_file, 1) {
            Verdict::ForceFail
        } else {
            let shared = self.gather(kind, start).await;
            match &*shared {
                Err(f) => {
                    let detail = printable(f.to_string().as_bytes(), 1024);
                    log::debug!("{profile} check failed: {detail}");
                    failure = Some(detail);
                    Verdict::down(&f.class())
                }
                Ok(g) => match profile.judge(&g.results) {
                    Ok(detail) if self.present(&self.cfg.drain_file, 2) => {
                        Verdict::Draining { value: g.value.clone(), detail }
                    }
                    Ok(detail) => Verdict::Up { value: g.value.clone(), detail, weight: profile.weight(&g.results) },
                    Err(condition) => Verdict::down(&condition),
                },
            }
        };
        let elapsed = start.elapsed();
        self.metrics.check(kind, verdict.result());
        log::debug!("{profile} check: {verdict} ({:.1} ms)", elapsed.as_secs_f64() * 1000.0);
        if matches!(verdict, Verdict::Up { .. } | Verdict::Draining { .. } | Verdict::Down(_)) {
            let up = verdict.is_up();
            if self.metrics.set_up(kind, &profile.canonical(), up) != Some(up) {
                self.log_change(profile, &verdict, failure);
            }
        }
        (verdict, elapsed)
    }

    /// Whether operator file `path` (number `which`) exists. A file that cannot be looked at
    /// (a directory we may not search, a path hidden by the service's sandbox) counts as there:
    /// the operator's intent wins over a healthy database, and the log says why, once.
    fn present(&self, path: &std::path::Path, which: u8) -> bool {
        let bit = 1 << which;
        let (present, failed) = match path.try_exists() {
            Ok(present) => (present, false),
            Err(e) => {
                if self.unreadable.get() & bit == 0 {
                    log::warn!("cannot look for {}: {e}; taken as present", path.display());
                }
                (true, true)
            }
        };
        self.unreadable.set(if failed { self.unreadable.get() | bit } else { self.unreadable.get() & !bit });
        present
    }

    /// One database round trip for `kind`, shared: a request that arrives while one is in flight
    /// waits for its result instead of logging in again (but never past its own arrival plus
    /// `--timeout`), and with `--cache-ms` a recent result is reused.
    async fn gather(&self, kind: Kind, arrived: Instant) -> Shared {
        let slot = &self.slots[kind.index()];
        loop {
            if let Some((finished, result)) = slot.last.borrow().as_ref() {
                if finished.elapsed() < self.cfg.cache {
                    return result.clone();
                }
            }
            let inflight = slot.inflight.borrow().clone();
            let Some(inflight) = inflight else {
                return self.lead(slot, kind).await;
            };
            let limit = arrived + self.cfg.timeout + WAIT_MARGIN;
            let woken = async {
                inflight.done.wait().await;
                true
            };
            let expired = async {
                Deadline::at(limit).await;
                false
            };
            if !woken.or(expired).await {
                return Rc::new(Err(Failure::Timeout(Phase::Wait, self.cfg.timeout)));
            }
            let result = inflight.result.borrow().clone();
            if let Some(result) = result {
                return result;
            }
            // The leader was dropped before it finished: the next one of us takes over.
        }
    }

    /// Runs the round trip for `kind` that every request arriving meanwhile shares.
    async fn lead(&self, slot: &Slot, kind: Kind) -> Shared {
        let inflight = Rc::new(InFlight { result: RefCell::new(None), done: Flag::default() });
        *slot.inflight.borrow_mut() = Some(inflight.clone());
        let leader = Leader { slot, inflight: inflight.clone() };
        let started = Instant::now();
        // A clone, so that SIGHUP during the check cannot pull the password from under it.
        let password = self.password.borrow().clone();
        let tls = self.tls.borrow().clone();
        // Boxed: the round trip's buffers exist only while it runs, not in every connection's
        // future.
        let keep = self.cfg.keep_session.map(|max_age| Keep { cell: &slot.kept, max_age });
        let generation = self.generation.get();
        let mut buf = std::mem::take(&mut *slot.buf.borrow_mut());
        buf.resize(READ_BUF, 0);
        let result = Rc::new(
            Box::pin(gather(&self.cfg, &password, tls.as_ref(), kind, keep, &slot.parting, &self.metrics, &mut buf))
                .await,
        );
        *slot.buf.borrow_mut() = buf;
        if self.generation.get() != generation {
            // SIGHUP came during the round trip: what it kept logged in with the old settings.
            drop(slot.kept.take());
        }
        let finished = Instant::now();
        let unix_now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        self.metrics.round_trip(finished - started, unix_now);
        *slot.last.borrow_mut() = Some((finished, result.clone()));
        *inflight.result.borrow_mut() = Some(result.clone());
        drop(leader);
        result
    }

    /// Logs a change of state for one request: up, or down with the detailed reason.
    fn log_change(&self, profile: &Profile, verdict: &Verdict, failure: Option<String>) {
        let target = &self.cfg.target;
        let what = match (verdict, failure) {
            (Verdict::Up { value, detail, .. } | Verdict::Draining { value, detail }, _) => {
                format!("{value}{}", detail.as_ref().map(|d| format!(", {d}")).unwrap_or_default())
            }
            (_, Some(failure)) => failure,
            (other, None) => other.reason().to_string(),
        };
        let on = match profile {
            Profile::Default => String::new(),
            other => format!(" for {other}"),
        };
        if verdict.is_up() {
            log::info!("{target} is up{on}: {what}");
        } else {
            log::warn!("{target} is down{on}: {what}");
        }
    }
}
