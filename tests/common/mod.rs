//! Shared helpers for the integration tests: free ports, the mysqlchk binary as a child process,
//! a raw HTTP client, a throwaway MariaDB ([`mariadb`]) and a scriptable fake server ([`fake`]).
#![allow(dead_code)]

pub mod fake;
pub mod galera;
pub mod haproxy;
pub mod mariadb;
pub mod pki;
pub mod replication;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A fresh, empty directory under the system temp dir, removed on drop; `name` says whose.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("mysqlchk-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// Removes the `name` directories of processes that are gone: those of a `TempDir` kept in
    /// a static, which no drop removes.
    pub fn sweep(name: &str) {
        let prefix = format!("mysqlchk-{name}-");
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let pid = file.to_str().and_then(|f| f.strip_prefix(&prefix)).and_then(|rest| rest.split('-').next());
            if pid.is_some_and(|pid| pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// A path inside the directory (nothing is created).
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The same, as a string for a command line.
    pub fn path(&self, name: &str) -> String {
        self.join(name).to_str().expect("temp paths are UTF-8").to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Path of the mysqlchk binary under test: `MYSQLCHK_TEST_BIN` when set (scripts/test.sh
/// points it at the static release binaries it shipped in dist/, whose panics and formatting
/// differ from a debug build's), else the debug build cargo made for these tests.
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("MYSQLCHK_TEST_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_mysqlchk").to_string())
    })
}

/// A command that runs the binary under test: directly, or through the emulator named by
/// `MYSQLCHK_TEST_RUNNER` (e.g. `qemu-arm-static`) when it is built for another architecture
/// (`cross/test-target.sh`) and binfmt_misc cannot run it directly.
pub fn mysqlchk() -> Command {
    match runner() {
        Some(runner) => {
            let mut cmd = Command::new(runner);
            cmd.arg(bin());
            cmd
        }
        None => Command::new(bin()),
    }
}

/// Whether the binary runs under an emulator: its /proc numbers (memory, descriptors, CPU) are
/// then the emulator's, not ours.
pub fn emulated() -> bool {
    runner().is_some()
}

/// For tests that read the daemon's /proc numbers: a daemon checking a fresh fake server (native
/// auth, password "pw", no force-fail file) with `extra` flags, or `None`, and a note, under an
/// emulator, whose /proc numbers are not ours. The server and the directory live as long as the
/// daemon needs them.
pub fn native_daemon_on_fake(extra: &[&str]) -> Option<(fake::FakeServer, TempDir, Daemon)> {
    if emulated() {
        eprintln!("skipped: under an emulator /proc/PID is the emulator's");
        return None;
    }
    let fake = fake::FakeServer::start(fake::Scenario::new(fake::Auth::Native, "pw"));
    let dir = TempDir::new("proc");
    let off = dir.path("proxyoff");
    let target = fake.target();
    let mut args = vec!["--mysql", target.as_str(), "--user", "haproxy", "--force-fail-file", &off];
    args.extend_from_slice(extra);
    let daemon = Daemon::start(&args, Some("pw"));
    Some((fake, dir, daemon))
}

/// The emulator named by `MYSQLCHK_TEST_RUNNER`, if any.
fn runner() -> Option<std::ffi::OsString> {
    std::env::var_os("MYSQLCHK_TEST_RUNNER").filter(|r| !r.is_empty())
}

/// A running `mysqlchk` daemon, killed on drop.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Daemon {
    /// Starts mysqlchk listening on a free port with `args` (and `--listen`), the password (if
    /// any) in MYSQLCHK_PASSWORD, and waits until it accepts connections.
    pub fn start(args: &[&str], password: Option<&str>) -> Daemon {
        Daemon::start_logging(args, password, None)
    }

    /// [`Daemon::start`], with stderr (the log) written to `log` when given.
    pub fn start_logging(args: &[&str], password: Option<&str>, log: Option<&std::path::Path>) -> Daemon {
        let (child, addrs) = spawn_listening_on("mysqlchk", 1, |addrs| daemon_command(addrs, args, password, log));
        Daemon { child, addr: addrs[0] }
    }

    /// [`Daemon::start`] with an agent listener too (`--agent-listen`), on a port of its own that
    /// is picked again with the HTTP port when a start is retried; returns the agent's address.
    pub fn start_with_agent(args: &[&str], password: Option<&str>) -> (Daemon, SocketAddr) {
        let (child, addrs) = spawn_listening_on("mysqlchk", 2, |addrs| daemon_command(addrs, args, password, None));
        (Daemon { child, addr: addrs[0] }, addrs[1])
    }

    /// Sends `request` verbatim and returns the parsed response.
    pub fn request(&self, request: &[u8]) -> Response {
        http(self.addr, request)
    }

    /// `GET /` over HTTP/1.0, like a curl.
    pub fn get(&self, path: &str) -> Response {
        self.request(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
    }

    /// `n` checks of `/`, one after another, each of which must answer 200.
    pub fn checks_up(&self, n: usize) {
        for _ in 0..n {
            let r = self.get("/");
            assert_eq!(r.status, 200, "{r:?}");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// mysqlchk listening on `addrs[0]` for HTTP and, when given, on `addrs[1]` for the agent, with
/// `args`, the password (if any) in MYSQLCHK_PASSWORD, and stderr to `log` (else inherited).
fn daemon_command(
    addrs: &[SocketAddr],
    args: &[&str],
    password: Option<&str>,
    log: Option<&std::path::Path>,
) -> Command {
    let mut cmd = mysqlchk();
    cmd.arg("--listen").arg(addrs[0].to_string());
    if let Some(agent) = addrs.get(1) {
        cmd.arg("--agent-listen").arg(agent.to_string());
    }
    cmd.args(args).env_remove("MYSQLCHK_PASSWORD");
    if let Some(pw) = password {
        cmd.env("MYSQLCHK_PASSWORD", pw);
    }
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).expect("create daemon log")),
        None => Stdio::inherit(),
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
    cmd
}

/// Spawns `command(addr)` for a free port on 127.0.0.1 and waits until it listens there. The port
/// was only free a moment ago: another test may take it first, and the process then exits, so an
/// early exit is retried on a new port a few times. A stranger listening there is never taken
/// for ours: the listening socket must be one of the child's descriptors.
pub fn spawn_listening(what: &str, command: impl Fn(SocketAddr) -> Command) -> (Child, SocketAddr) {
    let (child, addrs) = spawn_listening_on(what, 1, |addrs| command(addrs[0]));
    (child, addrs[0])
}

/// [`spawn_listening`] for a process that listens on `count` ports: each attempt picks `count`
/// new free ports, and the process counts as started once it listens on every one of them.
pub fn spawn_listening_on(
    what: &str,
    count: usize,
    command: impl Fn(&[SocketAddr]) -> Command,
) -> (Child, Vec<SocketAddr>) {
    const ATTEMPTS: u32 = 5;
    for attempt in 1..=ATTEMPTS {
        let addrs: Vec<SocketAddr> =
            (0..count).map(|_| format!("127.0.0.1:{}", free_port()).parse().unwrap()).collect();
        let mut child = command(&addrs).spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        let exited = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            if addrs.iter().all(|addr| listens_on(child.id(), addr.port())) {
                return (child, addrs);
            }
            assert!(Instant::now() < deadline, "{what} did not start listening on {addrs:?}");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(attempt < ATTEMPTS, "{what} exited early: {exited}");
    }
    unreachable!()
}

/// The IPv4 sockets listening on TCP `port`, from /proc/net/tcp: for each, how many finished
/// handshakes wait in its accept queue (a listener's rx_queue) and its inode.
pub fn tcp_listeners(port: u16) -> Vec<(u32, String)> {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else { return Vec::new() };
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let listening = f.get(3) == Some(&"0A") && f.get(1).is_some_and(|a| a.ends_with(&local));
            let queued = u32::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok()?;
            listening.then(|| Some((queued, f.get(9)?.to_string()))).flatten()
        })
        .collect()
}

/// Whether process `pid` holds the socket listening on TCP `port` (IPv4): the listener's inode
/// among the process's descriptors.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let sockets: Vec<String> = tcp_listeners(port).into_iter().map(|(_, inode)| format!("socket:[{inode}]")).collect();
    fd_targets(pid).iter().any(|l| sockets.iter().any(|s| l.as_os_str() == s.as_str()))
}

/// What the descriptors of process `pid` point at (`/proc/PID/fd`): paths, `socket:[INODE]`,
/// `anon_inode:[timerfd]` and so on. Empty if the process is gone.
pub fn fd_targets(pid: u32) -> Vec<PathBuf> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    fds.flatten().filter_map(|fd| std::fs::read_link(fd.path()).ok()).collect()
}

/// A raw HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
    pub raw: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Connects to `addr`, sends `request` (it may be empty: a silent client), half-closes nothing,
/// and reads until the server closes (30 s at most).
pub fn http(addr: SocketAddr, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect to mysqlchk");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    if !request.is_empty() {
        s.write_all(request).unwrap();
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let _ = s.shutdown(Shutdown::Both);
    parse_response(raw)
}

pub fn parse_response(raw: Vec<u8>) -> Response {
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Response { status, head: head.to_string(), body: body.to_string(), raw }
}

/// Runs `mysqlchk --once` with `args` and the password in the environment; returns the exit code
/// and stdout.
pub fn once(args: &[&str], password: Option<&str>) -> (i32, String) {
    let mut cmd = mysqlchk();
    cmd.arg("--once").args(args).env_remove("MYSQLCHK_PASSWORD");
    if let Some(pw) = password {
        cmd.env("MYSQLCHK_PASSWORD", pw);
    }
    let out = cmd.output().expect("run mysqlchk --once");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits up to `within` for `ok` to hold, looking every 20 ms; panics with `what` if it never
/// does. For counters and states that other threads or processes update.
pub fn eventually(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "never happened within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Segments our side of the TCP connection `s` has received (TCP_INFO's tcpi_segs_in), or `None` where
/// TCP_INFO is refused or its answer short: qemu-user passes TCP options through as an `int`.
pub fn segments_in(s: &TcpStream) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc =
        unsafe { libc::getsockopt(s.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_INFO, (&raw mut info).cast(), &mut len) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        assert!(matches!(e.raw_os_error(), Some(libc::ENOPROTOOPT | libc::EINVAL | libc::EOPNOTSUPP)), "TCP_INFO: {e}");
        return None;
    }
    let needed = std::mem::offset_of!(libc::tcp_info, tcpi_segs_in) + 4;
    (len as usize >= needed).then_some(info.tcpi_segs_in)
}

/// Whether TCP_INFO counts segments here ([`segments_in`]).
pub fn segments_counted() -> bool {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let s = TcpStream::connect(listener.local_addr().expect("local_addr")).expect("connect");
    segments_in(&s).is_some()
}
