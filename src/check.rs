//! The check driver: runs a [`Session`] over a socket within one deadline ([`gather`]), and the
//! [`Checker`] that turns requests into verdicts: operator files first, then one shared database
//! round trip per profile kind (single-flight, optionally cached), judged per request.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_io::Timer;
use async_net::unix::UnixStream;
use async_net::TcpStream;
use futures_lite::{AsyncRead, AsyncWrite, FutureExt};
use smol::channel::{Receiver, Sender};

use crate::config::{CheckConfig, Password, Target};
use crate::link::{load_tls, Link, TlsClient, TlsError};
use crate::metrics::Metrics;
use crate::mysql::{self, printable, Action, Options, ResultSet, ServerError, Session};
use crate::profile::{self, Flavor, Kind, Profile, Step, ER_PARSE_ERROR, ER_UNKNOWN_COM_ERROR, PROBE};

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

/// Logs in and runs `--query` and `kind`'s plan, then QUIT, all within `cfg.timeout`.
/// With `tls`, over TLS after the SSLRequest (the handshake is inside the same deadline).
pub async fn gather(
    cfg: &CheckConfig,
    password: &Password,
    tls: Option<&TlsClient>,
    kind: Kind,
) -> Result<Gathered, Failure> {
    let phase = Cell::new(Phase::Connect);
    let deadline = async {
        Timer::after(cfg.timeout).await;
        Err(Failure::Timeout(phase.get(), cfg.timeout))
    };
    exchange(cfg, password, tls, kind, &phase).or(deadline).await
}

async fn exchange(
    cfg: &CheckConfig,
    password: &Password,
    tls: Option<&TlsClient>,
    kind: Kind,
    phase: &Cell<Phase>,
) -> Result<Gathered, Failure> {
    match &cfg.target {
        Target::Tcp { host, port } => {
            let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, *port)],
                Err(_) => async_net::resolve((host.as_str(), *port)).await.map_err(|e| {
                    Failure::Io(Phase::Connect, io::Error::new(e.kind(), format!("resolving {host}: {e}")))
                })?,
            };
            // No TCP_NODELAY: every write of ours follows the server's answer, which acknowledged
            // the previous one, so Nagle never holds a packet back; it would cost a system call.
            let stream = connect_any(&addrs).await.map_err(|e| Failure::Io(Phase::Connect, e))?;
            converse(stream, cfg, password, tls, kind, phase).await
        }
        Target::Unix(path) => {
            let stream = UnixStream::connect(path).await.map_err(|e| Failure::Io(Phase::Connect, e))?;
            // A unix socket is already a secure transport: --ssl-mode does not apply.
            converse(stream, cfg, password, None, kind, phase).await
        }
    }
}

type Attempt = Pin<Box<dyn Future<Output = io::Result<TcpStream>>>>;

/// Connects to the first of `addrs` that answers. Attempts are staggered, happy-eyeballs style:
/// the next address starts after [`NEXT_ADDRESS_AFTER`] or as soon as every earlier attempt has
/// failed, so a dead first address (a black hole, not a refusal) costs a quarter second, not the
/// whole deadline. The caller's deadline bounds it all.
pub async fn connect_any(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    if let [one] = addrs {
        return TcpStream::connect(*one).await;
    }
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut next = 0;
    let mut stagger = Timer::never();
    let mut last_error = None;
    futures_lite::future::poll_fn(|cx| loop {
        let idle = attempts.is_empty();
        if next < addrs.len() && (idle || Pin::new(&mut stagger).poll(cx).is_ready()) {
            attempts.push(Box::pin(TcpStream::connect(addrs[next])));
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

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    cfg: &CheckConfig,
    password: &Password,
    tls: Option<&TlsClient>,
    kind: Kind,
    phase: &Cell<Phase>,
) -> Result<Gathered, Failure> {
    phase.set(Phase::Login);
    let mut session = Session::new(Options {
        user: cfg.user.clone(),
        password: password.bytes().to_vec(),
        database: cfg.database.clone(),
        transport: cfg.target.transport(),
    });
    let mut stream = Link::Plain(stream);
    if let Some(tls) = tls {
        session.request_tls(tls.request());
    }
    // The plan depends on the server's flavour, known from the greeting.
    let mut plan: &[Step] = &[];
    // Query 0 is --query, query i > 0 is plan[i - 1]; `next` is the one to send next, and
    // `spelling` which of its statements is in flight.
    let mut next = 0;
    let mut spelling = 0;
    let mut value = None;
    let mut results = Vec::new();
    // The first ERR ends the check; QUIT still goes out.
    let mut failed = None;
    let mut buf = [0u8; 4096];
    // --query with the probe riding along (profile::with_probe); known once logged in.
    let mut folded = None;
    loop {
        let action = session.poll().map_err(|e| match e {
            mysql::Error::Server(e) => Failure::Login(e),
            mysql::Error::Protocol(e) => Failure::Protocol(phase.get(), e),
        })?;
        match action {
            Action::Write(bytes) => stream.write_all(&bytes).await.map_err(|e| Failure::Io(phase.get(), e))?,
            Action::NeedMore => match stream.read(&mut buf).await {
                Ok(0) => return Err(Failure::Protocol(phase.get(), mysql::ProtocolError::UnexpectedEof)),
                Ok(n) => session.feed(&buf[..n]),
                Err(e) => return Err(Failure::Io(phase.get(), e)),
            },
            Action::Ready if failed.is_none() && next == 0 => {
                phase.set(Phase::Query);
                let version = session.greeting().map_or("", |g| g.server_version.as_str());
                plan = kind.plan(Flavor::from_version(version));
                if plan.first() == Some(&PROBE) && session.multi_statements() {
                    folded = profile::with_probe(&cfg.query);
                }
                // Ready means the session takes a query.
                let _ = session.query(folded.as_deref().unwrap_or(&cfg.query));
                next = 1;
            }
            Action::Ready if failed.is_none() && next <= plan.len() => {
                let step = plan[next - 1];
                let _ = session.query_keeping(step.sql[0], step.keep);
                next += 1;
                spelling = 0;
            }
            // The session asks for TLS only after request_tls, so `tls` is there (and the plain
            // build never gets here: it has no TLS settings).
            #[cfg(feature = "tls")]
            Action::StartTls => {
                phase.set(Phase::Tls);
                let tls = tls.ok_or(Failure::Protocol(Phase::Tls, mysql::ProtocolError::UnexpectedEof))?;
                stream = stream.start_tls(tls).await.map_err(Failure::Tls)?;
                session.tls_started();
                phase.set(Phase::Login);
            }
            #[cfg(not(feature = "tls"))]
            Action::StartTls => return Err(Failure::Protocol(Phase::Tls, mysql::ProtocolError::UnexpectedEof)),
            Action::Ready => session.quit(),
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
                        _ => failed = Some(Failure::Query(e)),
                    }
                }
            },
            Action::Closed => break,
        }
    }
    let _ = stream.close().await;
    if let Some(f) = failed {
        return Err(f);
    }
    // Closed comes only after quit(), which follows the reply to --query.
    let value = value.ok_or(Failure::Protocol(Phase::Query, mysql::ProtocolError::UnexpectedEof))?;
    Ok(Gathered { value, results })
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
    /// Nothing is ever sent: the leader drops the sender when it is done (or dropped), which
    /// wakes every waiter at once.
    done: Receiver<()>,
}

/// Held by the request that runs a round trip: whether it finishes or is dropped, the slot is
/// freed and the waiters are woken.
struct Leader<'a> {
    slot: &'a Slot,
    _done: Sender<()>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.slot.inflight.borrow_mut().take();
    }
}

/// Per profile kind: the round trip in flight, and the last result.
#[derive(Default)]
struct Slot {
    inflight: RefCell<Option<Rc<InFlight>>>,
    /// When the last round trip finished, and what it found.
    last: RefCell<Option<(Instant, Shared)>>,
}

/// Answers check requests for every profile, sharing database work between them.
pub struct Checker {
    pub cfg: CheckConfig,
    /// The one copy of the password the daemon keeps; SIGHUP may replace it.
    password: RefCell<Password>,
    /// The TLS settings (`--ssl-*`); SIGHUP may replace them.
    tls: RefCell<Option<TlsClient>>,
    slots: [Slot; 4],
    pub metrics: Metrics,
}

impl Checker {
    pub fn new(cfg: CheckConfig, password: Password) -> Checker {
        let tls = RefCell::new(cfg.tls.clone());
        Checker { cfg, password: RefCell::new(password), tls, slots: Default::default(), metrics: Metrics::default() }
    }

    /// Rereads the `--ssl-*` files for the checks that start from now on (SIGHUP). Bad files
    /// keep the old settings.
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

    /// Replaces the password for the checks that start from now on.
    pub fn set_password(&self, password: Password) {
        *self.password.borrow_mut() = password;
    }

    /// [`Checker::check`] to the end, on this thread (`--once`). Not async: the binary crate
    /// then instantiates none of the library's futures, each of which would be a second copy.
    pub fn check_blocking(&self, profile: &Profile) -> (Verdict, Duration) {
        smol::block_on(self.check(profile))
    }

    /// Judges `profile` now. The operator's files are read on every call, so a drain is never
    /// delayed by the cache or by a check in flight.
    pub async fn check(&self, profile: &Profile) -> (Verdict, Duration) {
        let start = Instant::now();
        let kind = profile.kind();
        // The detailed failure, for the log only: the public reason is its class.
        let mut failure = None;
        let verdict = if self.cfg.maint_file.as_deref().is_some_and(|f| f.exists()) {
            Verdict::Maint
        } else if self.cfg.force_fail_file.exists() {
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
                    Ok(detail) if self.cfg.drain_file.exists() => Verdict::Draining { value: g.value.clone(), detail },
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
            if self.metrics.set_up(kind, &profile.to_string(), up) != Some(up) {
                self.log_change(profile, &verdict, failure);
            }
        }
        (verdict, elapsed)
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
                let _ = inflight.done.recv().await;
                true
            };
            let expired = async {
                Timer::at(limit).await;
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
        let (tx, rx) = smol::channel::bounded(1);
        let inflight = Rc::new(InFlight { result: RefCell::new(None), done: rx });
        *slot.inflight.borrow_mut() = Some(inflight.clone());
        let leader = Leader { slot, _done: tx };
        self.metrics.login();
        let started = Instant::now();
        // A clone, so that SIGHUP during the check cannot pull the password from under it.
        let password = self.password.borrow().clone();
        let tls = self.tls.borrow().clone();
        // Boxed: the round trip's buffers exist only while it runs, not in every connection's
        // future.
        let result = Rc::new(Box::pin(gather(&self.cfg, &password, tls.as_ref(), kind)).await);
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
