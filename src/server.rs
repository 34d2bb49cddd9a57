//! The network side: accept loops, one boring task per connection, limits, lingering close.
//! HTTP checks and HAProxy agent checks share one [`Checker`].

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use async_signal::{Signal, Signals};
use futures_lite::{FutureExt, StreamExt};
use smol::LocalExecutor;

use crate::check::{Checker, Verdict};
use crate::config::{read_password_file, Config};
use crate::deadline::Deadline;
use crate::flag::Flag;
use crate::http::{self, Status};
use crate::net::{self, Client};
use crate::profile::{PathError, Profile, PATHS};

/// Connections served at once. Past it, the oldest connection still waiting for its request is
/// closed to make room, and only when all are busy with checks is a new one refused.
pub const MAX_CONNECTIONS: usize = 512;
/// A client that sends nothing for this long is a silent client (telnet, a TCP check, an agent
/// check without `agent-send`) and gets the default check (HTTP) or `--agent-profile` (agent).
/// It outlasts the retransmission of a lost first segment (Linux's initial RTO is 1 s), so a
/// request that was merely late is never answered with another profile's verdict.
pub const SILENT_WAIT: Duration = Duration::from_millis(1500);
/// A request head or agent line must be complete this long after accept. Once any byte of it has
/// arrived we wait for the rest until then: never the default in its place.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(3);
/// The longest `agent-send` line read.
pub const AGENT_LINE_MAX: usize = 256;
/// Time to write the response and drain the client before closing.
pub const LINGER: Duration = Duration::from_secs(1);
/// Bytes drained from a client after the response, so the close is a FIN and not a RST.
pub const LINGER_BYTES: usize = 64 * 1024;
/// Pause after a failed accept (e.g. out of file descriptors), so a flood cannot spin the CPU.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

const TEXT: &str = "text/plain";
const METRICS: &str = "text/plain; version=0.0.4";

/// What every connection shares.
pub struct Server {
    pub config: Config,
    pub checker: Checker,
    /// Connections open now.
    active: Cell<usize>,
    /// Connections still waiting for their request, oldest first (ids only grow, so the queue
    /// stays sorted): the ones evicted when the limit is reached, so idle sockets cannot starve
    /// real checks. Raising its flag wakes the connection, which then closes. A queue rather
    /// than a map: at most [`MAX_CONNECTIONS`] entries, and a few KB less code.
    waiting: RefCell<VecDeque<(u64, Rc<Flag>)>>,
    next_id: Cell<u64>,
}

impl Server {
    pub fn new(config: Config) -> Rc<Server> {
        let checker = Checker::new(config.check.clone(), config.password.clone());
        Rc::new(Server {
            config,
            checker,
            active: Cell::new(0),
            waiting: RefCell::new(VecDeque::new()),
            next_id: Cell::new(0),
        })
    }

    /// Admits a new connection. At the limit, the oldest connection still waiting for its
    /// request is evicted to make room; if every connection is busy with a check, the new one is
    /// refused.
    fn admit(self: &Rc<Server>) -> Option<Admission> {
        if self.active.get() >= MAX_CONNECTIONS {
            let (_, oldest) = self.waiting.borrow_mut().pop_front()?;
            oldest.raise();
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let evicted = Rc::new(Flag::default());
        self.waiting.borrow_mut().push_back((id, evicted.clone()));
        self.active.set(self.active.get() + 1);
        Some(Admission { server: self.clone(), id, evicted })
    }

    /// Whether `--allow` lets `ip` in; without `--allow` everyone is.
    fn allowed(&self, ip: IpAddr) -> bool {
        self.config.allow.is_empty() || self.config.allow.iter().any(|net| net.contains(ip))
    }

    /// Rereads `--password-file` (SIGHUP). A bad file keeps the old password.
    fn reload_password(&self) {
        let Some(path) = &self.config.password_file else {
            log::info!("SIGHUP: no --password-file to reread");
            return;
        };
        match read_password_file(path) {
            Ok(p) => {
                self.checker.set_password(p);
                log::info!("SIGHUP: reread password from {}", path.display());
            }
            Err(e) => log::warn!("SIGHUP: keeping the old password: {e}"),
        }
    }
}

/// One admitted connection's place; dropping it frees the place.
struct Admission {
    server: Rc<Server>,
    id: u64,
    /// Raised when the server evicts this connection.
    evicted: Rc<Flag>,
}

impl Admission {
    /// The request has arrived (or the wait is over): no longer a candidate for eviction.
    fn settled(&self) {
        let mut waiting = self.server.waiting.borrow_mut();
        if let Ok(i) = waiting.binary_search_by_key(&self.id, |(id, _)| *id) {
            waiting.remove(i);
        }
    }

    /// The response is out and the close lingers: a candidate for eviction again, and the first
    /// one (its id is older than every connection admitted since), so that answered clients that
    /// keep their sockets open cannot hold the places real checks need.
    fn lingering(&self) {
        let mut waiting = self.server.waiting.borrow_mut();
        let i = waiting.partition_point(|(id, _)| *id < self.id);
        waiting.insert(i, (self.id, self.evicted.clone()));
    }

    /// Resolves when the server evicts this connection.
    async fn evicted(&self) {
        self.evicted.wait().await;
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.settled();
        self.server.active.set(self.server.active.get() - 1);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http,
    Agent,
}

/// The daemon ([`run`]) to the end, on a local executor on this thread. Not async, like
/// [`block_on_inetd`]: the binary crate then instantiates none of the library's futures, each of
/// which would be a second copy of its code.
pub fn block_on_daemon(server: Rc<Server>) -> io::Result<()> {
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(run(ex.clone(), server)))
}

/// One `--inetd` exchange ([`serve_inetd`]) to the end, on this thread.
pub fn block_on_inetd(server: &Server) -> io::Result<()> {
    smol::block_on(serve_inetd(server))
}

/// Binds every listen address (or takes the sockets systemd passed), serves until SIGTERM or
/// SIGINT, then lets checks in flight finish before returning.
pub async fn run(ex: Rc<LocalExecutor<'static>>, server: Rc<Server>) -> io::Result<()> {
    let mut signals = Signals::new([Signal::Term, Signal::Int, Signal::Hup])?;
    let mut listeners = inherited_listeners()?;
    let inherited = !listeners.is_empty();
    if !inherited {
        for addr in &server.config.listen {
            listeners.push((bind(addr).await?, Protocol::Http));
        }
    }
    for addr in &server.config.agent_listen {
        listeners.push((bind(addr).await?, Protocol::Agent));
    }
    log_start(&server, &listeners, inherited);
    let loops: Vec<_> =
        listeners.into_iter().map(|(l, p)| ex.spawn(accept_loop(ex.clone(), l, p, server.clone()))).collect();
    // Signals are a task of their own: this future is polled whenever any task wakes, and
    // polling the signal stream costs a read of its pipe each time.
    // The first SIGTERM or SIGINT stops gently; a second one (a second Ctrl-C) at once.
    let stop = Rc::new(Flag::default());
    let now = Rc::new(Flag::default());
    let signal_loop = ex.spawn({
        let server = server.clone();
        let (stop, now) = (stop.clone(), now.clone());
        async move {
            loop {
                match signals.next().await {
                    Some(Ok(Signal::Hup)) => {
                        server.reload_password();
                        server.checker.reload_tls();
                        // Whatever was reread, if anything: the next checks log in afresh.
                        server.checker.forget_sessions();
                    }
                    Some(Ok(_)) if stop.is_raised() => break,
                    Some(Ok(_)) => stop.raise(),
                    None => break,
                    Some(Err(e)) => log::warn!("signal handling: {e}"),
                }
            }
            stop.raise();
            now.raise();
        }
    });
    stop.wait().await;
    // Dropping the accept loops closes the listeners: no new connections from here on.
    drop(loops);
    let c = &server.config.check;
    let grace = c.timeout + HEAD_DEADLINE + LINGER;
    log::info!("stopping: {} connections in flight, waiting up to {} ms", server.active.get(), grace.as_millis());
    let deadline = Instant::now() + grace;
    while server.active.get() > 0 && Instant::now() < deadline && !now.is_raised() {
        Timer::after(Duration::from_millis(10)).await;
    }
    if now.is_raised() && server.active.get() > 0 {
        log::info!("stopping now: a second signal");
    }
    drop(signal_loop);
    // Kept sessions (--keep-session) say QUIT, so the server counts no aborted clients.
    server.checker.forget_sessions();
    log::info!("stopped");
    Ok(())
}

/// How many finished TCP handshakes the kernel queues for us to accept (Linux caps it at
/// `net.core.somaxconn`, 4096 by default). std listens with 128: a slowloris flood or a burst of
/// checks from many proxies fills that while the daemon accepts one connection per wake-up, and
/// a check whose SYN finds the queue full is dropped and retried a whole second later.
pub const LISTEN_BACKLOG: i32 = 1024;

async fn bind(addr: &SocketAddr) -> io::Result<Async<TcpListener>> {
    let bound = Async::<TcpListener>::bind(*addr).and_then(|l| {
        // Listening again only sets the backlog.
        rustix::net::listen(l.get_ref(), LISTEN_BACKLOG)?;
        Ok(l)
    });
    bound.map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Listening sockets passed by systemd socket activation (`LISTEN_FDS`, `LISTEN_PID`, as in
/// sd_listen_fds(3)); they all serve HTTP and replace `--listen`.
fn inherited_listeners() -> io::Result<Vec<(Async<TcpListener>, Protocol)>> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut out = Vec::new();
    for i in 0..fds.len() {
        if let Some(l) = fds.take_tcp_listener(i)? {
            out.push((Async::new(l)?, Protocol::Http));
        }
    }
    Ok(out)
}

fn log_start(server: &Server, listeners: &[(Async<TcpListener>, Protocol)], inherited: bool) {
    let show = |p: Protocol| -> String {
        let addrs: Vec<String> = listeners
            .iter()
            .filter(|(_, lp)| *lp == p)
            .filter_map(|(l, _)| l.get_ref().local_addr().ok())
            .map(|a| a.to_string())
            .collect();
        addrs.join(", ")
    };
    let c = &server.config.check;
    let agent = show(Protocol::Agent);
    log::info!(
        "mysqlchk {} serving HTTP on {}{}{}, checking {}@{} (timeout {} ms, force-fail file {})",
        env!("CARGO_PKG_VERSION"),
        show(Protocol::Http),
        if inherited { " (from systemd)" } else { "" },
        if agent.is_empty() { String::new() } else { format!(" and agent-check on {agent}") },
        c.user,
        c.target,
        c.timeout.as_millis(),
        c.force_fail_file.display()
    );
}

async fn accept_loop(
    ex: Rc<LocalExecutor<'static>>,
    listener: Async<TcpListener>,
    proto: Protocol,
    server: Rc<Server>,
) {
    let mut failing = false;
    loop {
        // Wait first, then take one connection: HAProxy's checks come one at a time, so the
        // next one is never queued yet, and an accept bound to fail is a wasted system call.
        let (stream, peer) = match listener.readable().await.and_then(|()| net::accept(listener.get_ref())) {
            Ok(Some(conn)) => conn,
            Ok(None) => continue,
            Err(e) => {
                // Out of file descriptors, typically: say so once per episode, then back off.
                if !failing {
                    log::warn!("accept failed: {e}; retrying every {} ms", ACCEPT_BACKOFF.as_millis());
                }
                failing = true;
                Timer::after(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if failing {
            log::info!("accepting connections again");
            failing = false;
        }
        if !server.allowed(peer.ip()) {
            log::debug!("{peer}: refused by --allow");
            continue;
        }
        let Some(admission) = server.admit() else {
            log::debug!("{peer}: refused, {MAX_CONNECTIONS} connections busy with checks");
            continue;
        };
        let server = server.clone();
        ex.spawn(async move {
            let peer = peer.to_string();
            match proto {
                Protocol::Http => serve_http(stream, &peer, &server, Some(&admission)).await,
                Protocol::Agent => serve_agent(stream, &peer, &server, &admission).await,
            }
        })
        .detach();
    }
}

/// Serves one HTTP connection: read the head, check, answer, close gently.
async fn serve_http(stream: TcpStream, peer: &str, server: &Server, admission: Option<&Admission>) {
    let accepted = Instant::now();
    let mut stream = Client::new(stream);
    let (head, received) = match admission {
        Some(a) => {
            read_head(&mut stream, accepted, true)
                .or(async {
                    a.evicted().await;
                    (Head::Evicted, 0)
                })
                .await
        }
        None => read_head(&mut stream, accepted, true).await,
    };
    if let Some(a) = admission {
        a.settled();
    }
    // Only a complete head without a body, with nothing after it, is sure to be all the client
    // sends: close right after the response. Anything else may still be sending (a body, a
    // pipelined request, a silent client's late request), and closing with unread bytes would
    // reset the connection and could destroy the response in flight: drain it first.
    let linger = !matches!(&head, Head::Request(r) if r.head_len == received && !r.has_body);
    let (status, content_type, body, head_only) = match head {
        Head::Silent => {
            let (status, body) = check_response(server, &Profile::Default).await;
            // A request whose first segment came late, while the default check ran, is
            // answered for what it asks.
            if stream.has_pending() {
                answer_head(read_head(&mut stream, accepted, false).await.0, peer, server).await
            } else {
                (status, TEXT, body, false)
            }
        }
        Head::Gone => return,
        Head::Evicted => {
            log::debug!("{peer}: evicted while waiting for its request");
            return;
        }
        head => answer_head(head, peer, server).await,
    };
    server.checker.metrics.http(status.code());
    let response = http::render(status, content_type, &body, head_only);
    respond(stream, peer, &response, linger, server, admission).await;
}

/// The status, content type, body and HEAD flag for a request head.
async fn answer_head(head: Head, peer: &str, server: &Server) -> (Status, &'static str, String, bool) {
    let defaults = server.config.check.defaults;
    match head {
        Head::Request(req) if req.path == "/metrics" => {
            (Status::Ok, METRICS, server.checker.metrics.render(), req.is_head())
        }
        Head::Request(req) => {
            log::trace!("{peer}: {} {}", req.method, req.path);
            match Profile::from_path(&req.path, req.query.as_deref(), defaults) {
                Ok(profile) => {
                    let (status, body) = check_response(server, &profile).await;
                    (status, TEXT, body, req.is_head())
                }
                Err(e @ PathError::Unknown(_)) => {
                    (Status::NotFound, TEXT, format!("{e}.\r\nKnown profiles: {PATHS}\r\n"), req.is_head())
                }
                Err(e @ PathError::BadParameter(_)) => (Status::BadRequest, TEXT, format!("{e}.\r\n"), req.is_head()),
            }
        }
        Head::Bad(e) => {
            log::debug!("{peer}: 400: {e}");
            (Status::BadRequest, TEXT, "Bad request.\r\n".to_string(), false)
        }
        // A silent client the second time round (after the default check) is a timeout too.
        Head::TimedOut | Head::Silent | Head::Gone | Head::Evicted => {
            (Status::RequestTimeout, TEXT, "Request timeout.\r\n".to_string(), false)
        }
    }
}

/// `--inetd`: one HTTP exchange, then return. The connection is the socket systemd passes
/// (`Accept=yes`: `LISTEN_FDS=1`, fd 3), else stdin: a socket (xinetd, `StandardInput=socket`)
/// or pipes (`printf 'GET / HTTP/1.0\r\n\r\n' | mysqlchk --inetd`, answered on stdout).
pub async fn serve_inetd(server: &Server) -> io::Result<()> {
    let socket = match inetd_connection()? {
        Ok(socket) => socket,
        Err(stdin) => return serve_inetd_pipes(server, stdin).await,
    };
    if let Err(e) = socket.take_error() {
        return Err(io::Error::new(e.kind(), format!("--inetd needs a connected socket: {e}")));
    }
    let peer = match socket.peer_addr() {
        Ok(peer) => Some(peer),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => {
            return Err(io::Error::new(
                e.kind(),
                "--inetd got a listening socket, not a connection: use Accept=yes \
                 (systemd-socket-activate --accept), or run without --inetd for socket activation",
            ));
        }
        // A unix-socket peer (systemd ListenStream=/path) has no IP address.
        Err(_) => None,
    };
    let label = match peer {
        Some(peer) if !server.allowed(peer.ip()) => {
            log::debug!("{peer}: refused by --allow");
            return Ok(());
        }
        Some(peer) => peer.to_string(),
        None if !server.config.allow.is_empty() => {
            log::warn!("{UNKNOWN_PEER}");
            return Ok(());
        }
        None => "inetd client".to_string(),
    };
    socket.set_nonblocking(true)?;
    serve_http(socket, &label, server, None).await;
    Ok(())
}

/// A pipe or a unix socket has no address that `--allow` could admit.
const UNKNOWN_PEER: &str = "--inetd client refused by --allow: its address is unknown (a pipe or a unix socket)";

/// The connection `--inetd` serves: the one socket systemd passed, or stdin when it is a
/// socket; `Err(stdin)` when stdin is a pipe, a file or a terminal.
fn inetd_connection() -> io::Result<Result<std::net::TcpStream, std::fs::File>> {
    use std::os::fd::OwnedFd;
    use std::os::unix::fs::FileTypeExt;
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() > 0 {
        // listenfd checks the family and type only, so a connected socket passes as a "listener".
        return match (fds.len(), fds.take_tcp_listener(0)) {
            (1, Ok(Some(tcp))) => Ok(Ok(OwnedFd::from(tcp).into())),
            _ => Err(io::Error::other("--inetd takes one TCP connection from systemd (Accept=yes, one ListenStream=)")),
        };
    }
    let stdin = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    if stdin.metadata()?.file_type().is_socket() {
        return Ok(Ok(OwnedFd::from(stdin).into()));
    }
    Ok(Err(stdin))
}

/// `--inetd` on pipes: the request from stdin, the response to stdout, as a connection's would be
/// (by hand: `printf 'GET / HTTP/1.0\r\n\r\n' | mysqlchk --inetd`). Reading blocks, as a pipe
/// read by hand should; the end of stdin before a complete head ends the exchange unanswered,
/// as a client that hangs up does. The peer is unknown, so `--allow` refuses it.
async fn serve_inetd_pipes(server: &Server, mut stdin: std::fs::File) -> io::Result<()> {
    use std::io::{Read, Write};
    if !server.config.allow.is_empty() {
        log::warn!("{UNKNOWN_PEER}");
        return Ok(());
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let head = loop {
        let n = stdin.read(&mut chunk)?;
        buf.extend_from_slice(&chunk[..n]);
        match http::parse_request(&buf) {
            _ if n == 0 => return Ok(()),
            Ok(Some(req)) => break Head::Request(req),
            Ok(None) => {}
            Err(e) => break Head::Bad(e),
        }
    };
    let (status, content_type, body, head_only) = answer_head(head, "stdin", server).await;
    server.checker.metrics.http(status.code());
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(&http::render(status, content_type, &body, head_only))
        .and_then(|()| stdout.flush())
        .map_err(|e| io::Error::new(e.kind(), format!("--inetd: writing the response to stdout: {e}")));
    server.checker.part();
    written
}

/// `--inetd` whose flags or files make no configuration: answers the client on a socket (xinetd,
/// systemd) `500 Internal Server Error` with `error` as the body, so that `curl -i` and HAProxy's
/// log say what is wrong. Under xinetd that is mysqlchk's only voice: its stderr is the client
/// socket, where the bare message would have been an invalid response. 500, not 503: the
/// database may well be up, the check itself is broken. The request is read first (until
/// [`HEAD_DEADLINE`]; a client that hangs up without a byte gets nothing), and the socket drained
/// after (for [`LINGER`] at most, as the daemon does), so the close is no reset. On pipes nothing
/// is answered: stderr says it to whoever typed it. Blocking: nothing else runs.
pub fn refuse_inetd(error: &str) -> io::Result<()> {
    use std::io::{Read, Write};
    let Ok(socket) = inetd_connection()? else { return Ok(()) };
    let mut s = &socket;
    socket.set_nonblocking(false)?;
    // Reads wait at most until `limit` after `since`, however the client trickles.
    let arm = |since: Instant, limit: Duration| {
        socket.set_read_timeout(Some(limit.saturating_sub(since.elapsed()).max(Duration::from_millis(1))))
    };
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let head_only = loop {
        arm(started, HEAD_DEADLINE)?;
        match s.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Ok(()),
            // The end of input, the deadline or an error: answer what has arrived.
            Ok(0) | Err(_) => break false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        match http::parse_request(&buf) {
            Ok(None) => {}
            Ok(Some(req)) => break req.is_head(),
            Err(_) => break false,
        }
    };
    let body = format!("{}\r\n", error.trim_end());
    s.write_all(&http::render(Status::InternalServerError, TEXT, &body, head_only))?;
    socket.shutdown(std::net::Shutdown::Write)?;
    let lingering = Instant::now();
    let mut drained = 0;
    while drained <= LINGER_BYTES && lingering.elapsed() < LINGER {
        arm(lingering, LINGER)?;
        match s.read(&mut chunk) {
            Ok(n @ 1..) => drained += n,
            _ => break,
        }
    }
    Ok(())
}

/// The status and body of a check, compatible with the xinetd script's.
async fn check_response(server: &Server, profile: &Profile) -> (Status, String) {
    match server.checker.check(profile).await.0 {
        Verdict::Up { value, detail, .. } => {
            let detail = detail.map(|d| format!("{d}\r\n")).unwrap_or_default();
            (Status::Ok, format!("MySQL is running.\r\n{value}\r\n{detail}"))
        }
        // Still 200: HAProxy must keep the sessions; the agent stops new ones.
        Verdict::Draining { value, detail } => {
            let detail = detail.map(|d| format!("{d}\r\n")).unwrap_or_default();
            (Status::Ok, format!("MySQL is running.\r\n{value}\r\n{detail}draining (drain file present)\r\n"))
        }
        other => (Status::ServiceUnavailable, format!("MySQL is *down*.\r\n{}\r\n", other.reason())),
    }
}

/// What an agent connection sent.
enum AgentLine {
    /// A complete line (newline, or end of input after some bytes).
    Line(Vec<u8>),
    /// Nothing within [`SILENT_WAIT`]: HAProxy without `agent-send`.
    Silent,
    /// Some bytes but no end of line by [`HEAD_DEADLINE`], or more than [`AGENT_LINE_MAX`] bytes.
    Incomplete,
    /// Closed before sending anything.
    Gone,
}

/// Reads the optional `agent-send` line; `silent_ok` lets a client that sends nothing be
/// [`AgentLine::Silent`].
async fn read_agent_line(stream: &mut Client, accepted: Instant, silent_ok: bool) -> (AgentLine, usize) {
    let (first, received) =
        read_first(stream, accepted, silent_ok, 64, |buf, eof| match buf.iter().position(|&b| b == b'\n') {
            Some(end) => Some(AgentLine::Line(buf[..end].to_vec())),
            None if eof && buf.is_empty() => Some(AgentLine::Gone),
            None if eof => Some(AgentLine::Line(buf.to_vec())),
            None if buf.len() > AGENT_LINE_MAX => Some(AgentLine::Incomplete),
            None => None,
        })
        .await;
    let line = match first {
        First::Done(line) => line,
        First::Silent => AgentLine::Silent,
        First::TimedOut => AgentLine::Incomplete,
    };
    (line, received)
}

/// Serves one agent-check connection: read the optional `agent-send` line, answer one line.
async fn serve_agent(stream: TcpStream, peer: &str, server: &Server, admission: &Admission) {
    let accepted = Instant::now();
    let mut stream = Client::new(stream);
    let evicted = async {
        admission.evicted().await;
        None
    };
    let Some((line, received)) = async { Some(read_agent_line(&mut stream, accepted, true).await) }.or(evicted).await
    else {
        log::debug!("{peer}: evicted while waiting for its agent line");
        return;
    };
    admission.settled();
    // As for HTTP: only a whole line with nothing after it is sure to be all the client sends.
    let linger = !matches!(&line, AgentLine::Line(l) if l.len() + 1 == received);
    let reply = match line {
        AgentLine::Line(line) => agent_reply(server, &line).await,
        AgentLine::Silent => {
            let reply = agent_verdict(server, &server.config.agent_profile).await;
            // An `agent-send` line that came late, while that check ran, is answered for what
            // it asks.
            if stream.has_pending() {
                match read_agent_line(&mut stream, accepted, false).await.0 {
                    AgentLine::Line(line) => agent_reply(server, &line).await,
                    _ => INCOMPLETE_AGENT_LINE.to_string(),
                }
            } else {
                reply
            }
        }
        AgentLine::Incomplete => INCOMPLETE_AGENT_LINE.to_string(),
        AgentLine::Gone => return,
    };
    log::trace!("{peer}: agent -> {}", reply.trim_end());
    respond(stream, peer, reply.as_bytes(), linger, server, Some(admission)).await;
}

/// The answer to a partial `agent-send` line: never another profile's verdict.
const INCOMPLETE_AGENT_LINE: &str = "down #incomplete agent-send line (it must end with \\n)\n";

/// The agent's one-line answer for a line naming a profile path (`/replica?max_lag=10` or
/// `replica`); an empty line means `--agent-profile`.
async fn agent_reply(server: &Server, line: &[u8]) -> String {
    let line = String::from_utf8_lossy(line);
    let line = line.trim();
    if line.is_empty() {
        return agent_verdict(server, &server.config.agent_profile).await;
    }
    let target = if line.starts_with('/') { line.to_string() } else { format!("/{line}") };
    match crate::config::parse_profile(&target, server.config.check.defaults) {
        Ok(profile) => agent_verdict(server, &profile).await,
        Err(e) => format!("down #{}\n", sanitize(&e.to_string())),
    }
}

/// The agent's answer for `profile` (HAProxy configuration manual, "agent-check"): `up ready`
/// when healthy, `up drain` when healthy and the drain file exists (no new sessions, existing
/// ones kept), `down #reason` when not healthy or the force-fail file exists, `maint` for the
/// maintenance file. With `--lag-weight` a healthy replica is `up ready <w>%`,
/// its weight shrinking with its lag.
async fn agent_verdict(server: &Server, profile: &Profile) -> String {
    match server.checker.check(profile).await.0 {
        Verdict::Up { weight: Some(w), .. } if server.config.lag_weight => format!("up ready {w}%\n"),
        Verdict::Up { .. } => "up ready\n".to_string(),
        Verdict::Draining { .. } => "up drain\n".to_string(),
        Verdict::Maint => "maint\n".to_string(),
        other => format!("down #{}\n", sanitize(other.reason())),
    }
}

/// Agent descriptions end at the line; keep them on one line.
fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Writes `response`; with `linger`, or when the client has sent more bytes since its request
/// was read (a pipelined request while the check ran), then half-closes and drains what the
/// client still sends until it closes, so that our close is never a reset, which would destroy
/// the response held back for the FIN ([`Client::write_all`]). Otherwise the close follows at
/// once: the client has nothing more to send. A lingering connection may be evicted, as one
/// still waiting for its request may.
async fn respond(
    mut stream: Client,
    peer: &str,
    response: &[u8],
    linger: bool,
    server: &Server,
    admission: Option<&Admission>,
) {
    let finish = async {
        stream.write_all(response).await?;
        if !linger && !stream.has_pending() {
            return Ok(());
        }
        stream.shutdown_write()?;
        // The client has its answer and our FIN.
        server.checker.part();
        if let Some(a) = admission {
            a.lingering();
        }
        // On the heap: a lingering close is the rare case, and the task stays small.
        let mut sink = vec![0u8; 1024];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, io::Error>(())
    };
    let linger = async {
        Timer::after(LINGER).await;
        Ok(())
    };
    let evicted = async {
        match admission {
            Some(a) => a.evicted().await,
            None => std::future::pending().await,
        }
        Ok(())
    };
    if let Err(e) = finish.or(linger).or(evicted).await {
        log::debug!("{peer}: writing response: {e}");
    }
    // Closed: the check's QUIT now costs it nothing.
    drop(stream);
    server.checker.part();
}

enum Head {
    Request(http::Request),
    /// Nothing arrived within [`SILENT_WAIT`].
    Silent,
    Bad(http::Error),
    TimedOut,
    /// The client closed or reset before sending a complete head.
    Gone,
    /// The server needed the place for a newer connection.
    Evicted,
}

/// Reads one request head; `silent_ok` lets a client that sends nothing be [`Head::Silent`].
async fn read_head(stream: &mut Client, accepted: Instant, silent_ok: bool) -> (Head, usize) {
    let (first, received) = read_first(stream, accepted, silent_ok, 1024, |buf, eof| match http::parse_request(buf) {
        _ if eof => Some(Head::Gone),
        Ok(Some(req)) => Some(Head::Request(req)),
        Ok(None) => None,
        Err(e) => Some(Head::Bad(e)),
    })
    .await;
    let head = match first {
        First::Done(head) => head,
        First::Silent => Head::Silent,
        First::TimedOut => Head::TimedOut,
    };
    (head, received)
}

/// How reading a connection's first message ended.
enum First<T> {
    /// `done` said so.
    Done(T),
    /// Nothing arrived within [`SILENT_WAIT`] (only when that is allowed).
    Silent,
    /// Some bytes, but no complete message by [`HEAD_DEADLINE`].
    TimedOut,
}

/// Reads until `done(bytes so far, at end of input)` returns a message; also returns how many
/// bytes were read. A client that sent
/// nothing by [`SILENT_WAIT`] is [`First::Silent`] when `silent_ok`; once any byte has arrived we
/// wait for the rest until [`HEAD_DEADLINE`] after `accepted`, never the default in its place.
async fn read_first<T>(
    stream: &mut Client,
    accepted: Instant,
    silent_ok: bool,
    chunk_len: usize,
    mut done: impl FnMut(&[u8], bool) -> Option<T>,
) -> (First<T>, usize) {
    let received = Cell::new(0usize);
    let reading = async {
        let mut buf = Vec::new();
        // Small: it is part of every connection's task, and a request head from HAProxy or curl
        // is 20 to 100 bytes.
        let mut chunk = [0u8; 256];
        let chunk = &mut chunk[..chunk_len.min(256)];
        loop {
            let eof = match stream.read(chunk).await {
                Ok(0) | Err(_) => true,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    false
                }
            };
            received.set(buf.len());
            if let Some(message) = done(&buf, eof) {
                return First::Done(message);
            }
            if eof {
                // `done` must end at the end of input; a closed client never completes.
                return First::TimedOut;
            }
        }
    };
    let deadline = async {
        if silent_ok {
            Deadline::at(accepted + SILENT_WAIT).await;
            if received.get() == 0 {
                return First::Silent;
            }
        }
        // A slow client gets the rest of the head deadline.
        Deadline::at(accepted + HEAD_DEADLINE).await;
        First::TimedOut
    };
    let first = reading.or(deadline).await;
    (first, received.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use argh::FromArgs;

    fn server() -> Rc<Server> {
        let args = crate::config::Args::from_args(&["mysqlchk"], &[]).expect("flags parse");
        Server::new(Config::from_args(args, None).expect("the defaults make a configuration"))
    }

    #[test]
    fn at_the_limit_the_oldest_connection_still_waiting_is_evicted_and_busy_ones_never_are() {
        let s = server();
        let mut admitted: Vec<Admission> = (0..MAX_CONNECTIONS).map(|_| s.admit().expect("room")).collect();
        // Connections 0 and 1 got their requests: they are busy and never evicted.
        admitted[0].settled();
        admitted[1].settled();
        let newest = s.admit().expect("room made by evicting a waiting connection");
        assert!(!admitted[0].evicted.is_raised() && !admitted[1].evicted.is_raised());
        assert!(admitted[2].evicted.is_raised(), "the oldest waiting connection makes room");
        assert!(!admitted[3].evicted.is_raised());
        // The evicted connection closes, and so does a busy one: a place is free.
        drop(admitted.remove(2));
        drop(admitted.remove(0));
        assert_eq!(s.active.get(), MAX_CONNECTIONS - 1);
        let another = s.admit().expect("the freed place");
        assert!(admitted.iter().all(|a| !a.evicted.is_raised()), "a free place evicts nobody");
        // All busy: a new connection is refused rather than evicting a check.
        for a in admitted.iter().chain([&newest, &another]) {
            a.settled();
        }
        assert!(s.admit().is_none());
        assert_eq!(s.active.get(), MAX_CONNECTIONS);
        drop(admitted);
        assert_eq!(s.active.get(), 2);
        assert!(s.waiting.borrow().is_empty());
    }
}
