//! The check driver: runs a [`Session`] over a socket within one deadline ([`gather`]), and the
//! [`Checker`] that turns requests into verdicts: operator files first, then one shared database
//! round trip per profile kind (single-flight, optionally cached), judged per request.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_io::Timer;
use async_net::unix::UnixStream;
use async_net::TcpStream;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, FutureExt};
use smol::lock::Mutex;

use crate::config::{CheckConfig, Password, Target};
use crate::metrics::Metrics;
use crate::mysql::{self, Action, Options, ResultSet, ServerError, Session};
use crate::profile::{Kind, Profile, ER_PARSE_ERROR};

/// Where a check was when it failed or ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Login,
    Query,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
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
            Failure::Login(e) => format!("login refused ({})", e.code),
            Failure::Query(e) => format!("query failed ({})", e.code),
            Failure::Protocol(..) => "protocol error".into(),
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

/// The most bytes of a reported value; longer ones are cut (they end up in HTTP bodies).
const MAX_VALUE_LEN: usize = 256;

/// Logs in and runs `--query` and `kind`'s plan, then QUIT, all within `cfg.timeout`.
pub async fn gather(cfg: &CheckConfig, password: &Password, kind: Kind) -> Result<Gathered, Failure> {
    let phase = Cell::new(Phase::Connect);
    let deadline = async {
        Timer::after(cfg.timeout).await;
        Err(Failure::Timeout(phase.get(), cfg.timeout))
    };
    exchange(cfg, password, kind, &phase).or(deadline).await
}

async fn exchange(
    cfg: &CheckConfig,
    password: &Password,
    kind: Kind,
    phase: &Cell<Phase>,
) -> Result<Gathered, Failure> {
    match &cfg.target {
        Target::Tcp { host, port } => {
            // No TCP_NODELAY: every write of ours follows the server's answer, which acknowledged
            // the previous one, so Nagle never holds a packet back; it would cost a system call.
            let stream =
                TcpStream::connect((host.as_str(), *port)).await.map_err(|e| Failure::Io(Phase::Connect, e))?;
            converse(stream, cfg, password, kind, phase).await
        }
        Target::Unix(path) => {
            let stream = UnixStream::connect(path).await.map_err(|e| Failure::Io(Phase::Connect, e))?;
            converse(stream, cfg, password, kind, phase).await
        }
    }
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    cfg: &CheckConfig,
    password: &Password,
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
    let plan = kind.plan();
    // Query 0 is --query, query i > 0 is plan[i - 1]; `next` is the one to send next.
    let mut next = 0;
    let mut fell_back = false;
    let mut value = None;
    let mut results = Vec::with_capacity(plan.len());
    // The first ERR ends the check; QUIT still goes out.
    let mut failed = None;
    let mut buf = [0u8; 4096];
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
            Action::Ready if failed.is_none() && next <= plan.len() => {
                phase.set(Phase::Query);
                let sql = if next == 0 { cfg.query.as_str() } else { plan[next - 1].sql };
                // Ready means the session takes a query.
                let _ = session.query(sql);
                next += 1;
                fell_back = false;
            }
            Action::Ready => session.quit(),
            Action::Reply(reply) => match (next.saturating_sub(1), reply) {
                (0, Ok(rs)) => value = Some(first_value(&rs)),
                (_, Ok(rs)) => results.push(rs),
                (done, Err(e)) => match plan.get(done.wrapping_sub(1)).and_then(|s| s.fallback) {
                    Some(sql) if done > 0 && !fell_back && e.code == ER_PARSE_ERROR => {
                        let _ = session.query(sql);
                        fell_back = true;
                    }
                    _ => failed = Some(Failure::Query(e)),
                },
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
        Some(Some(v)) => printable(v),
        Some(None) => "NULL".to_string(),
        None => String::new(),
    }
}

/// A value fit for a log line and an HTTP body: lossy UTF-8, no control characters, bounded.
fn printable(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[..raw.len().min(MAX_VALUE_LEN)])
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Healthy: the first value of `--query`, and the profile's detail if it has one.
    Up { value: String, detail: Option<String> },
    /// Not healthy, with the short public reason (a class or a failed condition).
    Down(String),
    /// The force-fail file exists: the operator is draining this node.
    Drain,
    /// The maintenance file exists.
    Maint,
}

impl Verdict {
    pub fn is_up(&self) -> bool {
        matches!(self, Verdict::Up { .. })
    }

    /// The metrics label: up, down, drain or maint.
    pub fn result(&self) -> &'static str {
        match self {
            Verdict::Up { .. } => "up",
            Verdict::Down(_) => "down",
            Verdict::Drain => "drain",
            Verdict::Maint => "maint",
        }
    }

    /// The short reason for anything but Up.
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Up { .. } => "",
            Verdict::Down(reason) => reason,
            Verdict::Drain => "force-fail file present",
            Verdict::Maint => "maintenance file present",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Up { value, detail: Some(d) } => write!(f, "up: {value}, {d}"),
            Verdict::Up { value, detail: None } => write!(f, "up: {value}"),
            other => write!(f, "{}: {}", other.result(), other.reason()),
        }
    }
}

type Shared = Rc<Result<Gathered, Failure>>;

/// Per profile kind: the lock that makes checks single-flight, and the last result.
#[derive(Default)]
struct Slot {
    lock: Mutex<()>,
    /// When the last gather finished, and what it found.
    last: RefCell<Option<(Instant, Shared)>>,
    /// Whether the last verdict for this kind was up, to log changes only.
    was_up: Cell<Option<bool>>,
}

/// Answers check requests for every profile, sharing database work between them.
pub struct Checker {
    pub cfg: CheckConfig,
    /// The one copy of the password the daemon keeps; SIGHUP may replace it.
    password: RefCell<Password>,
    slots: [Slot; 4],
    pub metrics: Metrics,
}

impl Checker {
    pub fn new(cfg: CheckConfig, password: Password) -> Checker {
        Checker { cfg, password: RefCell::new(password), slots: Default::default(), metrics: Metrics::default() }
    }

    /// Replaces the password for the checks that start from now on.
    pub fn set_password(&self, password: Password) {
        *self.password.borrow_mut() = password;
    }

    /// Judges `profile` now. The operator's files are read on every call, so a drain is never
    /// delayed by the cache or by a check in flight.
    pub async fn check(&self, profile: Profile) -> (Verdict, Duration) {
        let start = Instant::now();
        let slot = &self.slots[profile.kind().index()];
        let verdict = if self.cfg.maint_file.as_deref().is_some_and(|f| f.exists()) {
            Verdict::Maint
        } else if self.cfg.force_fail_file.exists() {
            Verdict::Drain
        } else {
            let shared = self.gather(profile.kind(), start).await;
            match &*shared {
                Err(f) => {
                    log::debug!("{} check failed: {f}", profile.kind().name());
                    self.log_change(slot, profile.kind(), false, &|| f.to_string());
                    self.metrics.check(profile.kind(), "down");
                    return (Verdict::Down(f.class()), start.elapsed());
                }
                Ok(g) => match profile.judge(&g.results) {
                    Ok(detail) => Verdict::Up { value: g.value.clone(), detail },
                    Err(condition) => Verdict::Down(condition),
                },
            }
        };
        let elapsed = start.elapsed();
        self.metrics.check(profile.kind(), verdict.result());
        log::debug!("{} check: {verdict} ({:.1} ms)", profile.kind().name(), elapsed.as_secs_f64() * 1000.0);
        self.log_change(slot, profile.kind(), verdict.is_up(), &|| match &verdict {
            Verdict::Up { value, detail } => {
                format!("{value}{}", detail.as_ref().map(|d| format!(", {d}")).unwrap_or_default())
            }
            other => other.reason().to_string(),
        });
        (verdict, elapsed)
    }

    /// One database round trip for `kind`, shared: a caller that arrives while one is in flight
    /// waits for it instead of logging in again, and with `--cache-ms` a recent result is reused.
    async fn gather(&self, kind: Kind, arrived: Instant) -> Shared {
        let slot = &self.slots[kind.index()];
        let reusable = |arrived: Option<Instant>| {
            let last = slot.last.borrow();
            let (finished, result) = last.as_ref()?;
            let fresh = finished.elapsed() < self.cfg.cache || arrived.is_some_and(|a| *finished >= a);
            fresh.then(|| result.clone())
        };
        if let Some(hit) = reusable(None) {
            return hit;
        }
        let _turn = slot.lock.lock().await;
        // Whoever held the lock finished after we arrived: its answer is as new as ours would be.
        if let Some(hit) = reusable(Some(arrived)) {
            return hit;
        }
        self.metrics.login();
        let started = Instant::now();
        // A clone, so that SIGHUP during the check cannot pull the password from under it.
        let password = self.password.borrow().clone();
        // Boxed: the round trip's buffers exist only while it runs, not in every connection's
        // future.
        let result = Rc::new(Box::pin(gather(&self.cfg, &password, kind)).await);
        let finished = Instant::now();
        let unix_now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        self.metrics.round_trip(finished - started, unix_now);
        *slot.last.borrow_mut() = Some((finished, result.clone()));
        result
    }

    fn log_change(&self, slot: &Slot, kind: Kind, up: bool, what: &dyn Fn() -> String) {
        if slot.was_up.replace(Some(up)) == Some(up) {
            return;
        }
        let target = &self.cfg.target;
        match (up, kind) {
            (true, Kind::Default) => log::info!("{target} is up: {}", what()),
            (false, Kind::Default) => log::warn!("{target} is down: {}", what()),
            (true, kind) => log::info!("{target} is up as {}: {}", kind.name(), what()),
            (false, kind) => log::warn!("{target} is down as {}: {}", kind.name(), what()),
        }
    }
}
