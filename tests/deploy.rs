//! The ways operators run mysqlchk, against a real MariaDB: under a real xinetd, under systemd
//! socket activation (both `Accept=yes`, on fd 3 or stdin, and `Accept=no`), behind `--allow`,
//! with a password file and SIGHUP, scraped by Prometheus, and stopped with SIGTERM mid-check.
//! Also: the password never leaks, and the shipped unit files and install script hold up.

mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::fake::{FakeServer, Hostile, Scenario};
use common::mariadb::MariaDb;
use common::{bin, free_port, http, Daemon, Response, TempDir};

/// Generous for a noisy 2-core box, for checks that are not about timing.
const TIMEOUT_MS: &str = "10000";
/// How long anything may take to start, answer or stop before a test gives up.
const DEADLINE: Duration = Duration::from_secs(30);

/// One server for the tests that neither stop it nor count its connections.
fn shared() -> &'static MariaDb {
    static DB: OnceLock<MariaDb> = OnceLock::new();
    DB.get_or_init(MariaDb::start)
}

// --- helpers ----------------------------------------------------------------------------------

/// A child process (xinetd, systemd-socket-activate, a daemon with captured stderr), killed on
/// drop.
struct Proc(Child);

impl Proc {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits up to `within` for the process to exit.
    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends SIG`name` to `pid` with kill(1).
fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().is_ok_and(|s| s.success());
    assert!(ok, "kill -{name} {pid} failed");
}

/// A program from Debian's packages, found on PATH or in the sbin directories a non-root PATH
/// may lack.
fn program(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found: apt-get install {package} (scripts/test.sh does)"))
}

/// Waits until `addr` accepts a TCP connection (closing it at once: mysqlchk sees a client
/// that left, and checks nothing). Panics if `child` exits first or after [`DEADLINE`].
fn wait_listening(addr: SocketAddr, child: &mut Proc, what: &str) {
    let deadline = Instant::now() + DEADLINE;
    while TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("{what} exited early: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET path` over HTTP/1.0.
fn get(addr: SocketAddr, path: &str) -> Response {
    http(addr, format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
}

/// Asks `addr` for `path` until the status is `want` (a reloaded password, a slow start).
fn get_until(addr: SocketAddr, path: &str, want: u16) -> Response {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = get(addr, path);
        if r.status == want || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The response is exactly one well-formed HTTP response: a status line first and a body as
/// long as Content-Length says (nothing logged into the socket).
fn assert_clean(r: &Response) {
    assert!(r.raw.starts_with(b"HTTP/1.1 "), "not a bare HTTP response: {:?}", String::from_utf8_lossy(&r.raw));
    let len: usize = r.header("Content-Length").expect("Content-Length").parse().unwrap();
    assert_eq!(r.body.len(), len, "body length in {:?}", String::from_utf8_lossy(&r.raw));
}

/// How many responses `raw` holds.
fn responses_in(raw: &[u8]) -> usize {
    raw.windows(9).filter(|w| *w == b"HTTP/1.1 ").count()
}

/// Sends `request` and reports whether the connection was closed without a single byte of
/// answer (a reset counts as closed).
fn closed_without_answer(addr: SocketAddr, request: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => buf.is_empty(),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => buf.is_empty(),
        Err(e) => panic!("reading from {addr}: {e}"),
    }
}

/// Writes `text` to `path` with mode `mode` (set explicitly, whatever the umask).
fn write_mode(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// `--mysql`, `--user`, `--timeout`, and force-fail and drain files in `dir` (never the ones in
/// /dev/shm).
fn check_flags(mysql: &str, user: &str, dir: &TempDir) -> Vec<String> {
    let (off, drain) = (dir.path("proxyoff"), dir.path("proxydrain"));
    ["--mysql", mysql, "--user", user, "--timeout", TIMEOUT_MS, "--force-fail-file", &off, "--drain-file", &drain]
        .map(String::from)
        .to_vec()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A mysqlchk daemon on a free 127.0.0.1 port with `args`, the environment password `env_pw`
/// (if any) and stderr written to `stderr`.
fn spawn_daemon(args: &[String], env_pw: Option<&str>, stderr: &Path) -> (Proc, SocketAddr) {
    let (child, addr) = common::spawn_listening("mysqlchk", |addr| {
        let mut cmd = common::mysqlchk();
        cmd.arg("--listen").arg(addr.to_string()).args(args).env_remove("MYSQLCHK_PASSWORD");
        if let Some(pw) = env_pw {
            cmd.env("MYSQLCHK_PASSWORD", pw);
        }
        let log = fs::File::create(stderr).unwrap();
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        cmd
    });
    (Proc(child), addr)
}

/// Prometheus text 0.0.4, checked line by line: every sample is `name{labels} value` with a
/// `# TYPE` for its family before it. Returns `name{labels}` -> value.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut typed: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(valid_name(name), "bad metric name in {line:?}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "bad type in {line:?}"
                    );
                    typed.push(name.to_string());
                }
                (Some("HELP"), Some(name), _) => assert!(valid_name(name), "bad metric name in {line:?}"),
                _ => {}
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                for pair in labels.split(',') {
                    let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("bad label in {line:?}"));
                    assert!(valid_name(k), "bad label name in {line:?}");
                    assert!(v.len() >= 2 && v.starts_with('"') && v.ends_with('"'), "unquoted label in {line:?}");
                }
                name
            }
            None => series,
        };
        assert!(valid_name(name), "bad metric name in {line:?}");
        let family_typed = typed.iter().any(|t| {
            name == t || ["_bucket", "_sum", "_count"].iter().any(|s| name.strip_suffix(s) == Some(t.as_str()))
        });
        assert!(family_typed, "no # TYPE before {line:?}");
        samples.push((series.to_string(), value));
    }
    samples
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v).unwrap_or_else(|| panic!("no {series} in {samples:?}"))
}

// --- xinetd -----------------------------------------------------------------------------------

/// A real xinetd in the foreground, stopped on drop.
struct Xinetd {
    proc: Proc,
    addr: SocketAddr,
}

impl Xinetd {
    /// Serves the shipped scripts/mysqlchk.xinetd with these changes: a free port on 127.0.0.1,
    /// the binary under test, `server_args` and `env`, root as the user (`nobody` may not reach
    /// the build tree), bound to 127.0.0.1. The shipped `type = UNLISTED` lets the port differ
    /// from /etc/services.
    fn start(dir: &TempDir, server_args: &str, env: &str) -> Xinetd {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let shipped = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mysqlchk.xinetd")).unwrap();
        // `user` is required when xinetd runs as root and ignored otherwise.
        let root = fs::metadata("/proc/self").unwrap().uid() == 0;
        let port_s = port.to_string();
        let set = [("port", port_s.as_str()), ("server", bin()), ("server_args", server_args), ("env", env)];
        let mut conf = String::new();
        for line in shipped.lines() {
            let key = line.split('=').next().unwrap_or("").trim();
            if let Some((k, v)) = set.iter().find(|(k, _)| *k == key) {
                conf += &format!("\t{k} = {v}\n");
            } else if key == "user" {
                if root {
                    conf += "\tuser = root\n";
                }
            } else if line.trim() == "}" {
                conf += "\tbind = 127.0.0.1\n}\n";
            } else {
                conf += line;
                conf.push('\n');
            }
        }
        for (k, _) in set {
            assert!(conf.contains(&format!("\t{k} = ")), "scripts/mysqlchk.xinetd has no {k} line");
        }
        let conf_path = dir.join("xinetd.conf");
        fs::write(&conf_path, conf).unwrap();
        let mut cmd = Command::new(program("xinetd", "xinetd"));
        cmd.arg("-dontfork")
            .arg("-f")
            .arg(&conf_path)
            .arg("-pidfile")
            .arg(dir.join("xinetd.pid"))
            .arg("-filelog")
            .arg(dir.join("xinetd.log"))
            // Only `env` may carry the password: prove it, not our own environment.
            .env_remove("MYSQLCHK_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut proc = Proc(cmd.spawn().expect("spawn xinetd"));
        wait_listening(addr, &mut proc, "xinetd");
        Xinetd { proc, addr }
    }
}

#[test]
fn xinetd_serves_checks_with_the_inetd_mode() {
    let db = shared();
    let hostname = db.sql("select @@hostname");
    let dir = TempDir::new("xinetd");
    let off = dir.join("proxyoff");
    // Debug logging on purpose: xinetd makes stderr the client socket, so mysqlchk must notice
    // and keep quiet, or log lines would corrupt the response.
    let args = format!(
        "--inetd --mysql {} --user haproxy --timeout {TIMEOUT_MS} --log-level debug --force-fail-file {}",
        db.addr(),
        off.display()
    );
    let mut x = Xinetd::start(&dir, &args, "MYSQLCHK_PASSWORD=hapass");

    let up = get(x.addr, "/");
    assert_eq!(up.status, 200, "{up:?}");
    assert!(up.body.contains(&hostname), "{up:?}");
    assert_clean(&up);

    fs::write(&off, "").unwrap();
    let drained = get(x.addr, "/");
    assert_eq!(drained.status, 503, "{drained:?}");
    assert!(drained.body.contains("force-fail"), "{drained:?}");
    assert_clean(&drained);
    fs::remove_file(&off).unwrap();

    // A silent client (a bare TCP check) still gets the default check, after SILENT_WAIT.
    let silent = http(x.addr, b"");
    assert_eq!(silent.status, 200, "{silent:?}");
    assert_clean(&silent);

    // A request in pieces, as a slow network delivers it.
    let mut s = TcpStream::connect(x.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for piece in ["G", "ET / HT", "TP/1.0\r\n", "User-Agent: pieces\r\n", "\r\n"] {
        s.write_all(piece.as_bytes()).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let pieces = common::parse_response(raw);
    assert_eq!(pieces.status, 200, "{pieces:?}");
    assert!(pieces.body.contains(&hostname), "{pieces:?}");
    assert_clean(&pieces);

    assert!(x.proc.0.try_wait().unwrap().is_none(), "xinetd died (or disabled the service)");
    let log = fs::read_to_string(dir.join("xinetd.log")).unwrap_or_default();
    assert!(!log.contains("Deactivating"), "xinetd deactivated the service:\n{log}");
}

// --- systemd socket activation ----------------------------------------------------------------

/// `systemd-socket-activate` on a free port running mysqlchk with `args` and `hapass` in its
/// environment; `accept` is systemd's Accept=yes (one mysqlchk --inetd per connection).
fn socket_activate(accept: bool, args: &[String]) -> (Proc, SocketAddr) {
    let flags: &[&str] = if accept { &["-a", "--inetd"] } else { &[] };
    activate(flags, bin(), args)
}

/// `systemd-socket-activate FLAGS -l <free port> PROGRAM ARGS`, with `hapass` in the
/// environment.
fn activate(flags: &[&str], program_path: &str, args: &[String]) -> (Proc, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = Command::new(program("systemd-socket-activate", "systemd"));
    cmd.args(flags);
    // Like a unit's Environment=: systemd-socket-activate passes on only what -E names, and
    // -E NAME takes the value from our environment, keeping it out of every argv.
    cmd.args(["-E", "MYSQLCHK_PASSWORD", "-l"])
        .arg(addr.to_string())
        .arg(program_path)
        .args(args)
        .env("MYSQLCHK_PASSWORD", "hapass")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut proc = Proc(cmd.spawn().expect("spawn systemd-socket-activate"));
    wait_listening(addr, &mut proc, "systemd-socket-activate");
    (proc, addr)
}

#[test]
fn systemd_socket_activate_inetd_mode_serves_one_exchange_per_connection() {
    let db = shared();
    let hostname = db.sql("select @@hostname");
    let dir = TempDir::new("accept-yes");
    let mut args = vec!["--inetd".to_string()];
    args.extend(check_flags(&db.addr(), "haproxy", &dir));
    let (_sa, addr) = socket_activate(true, &args);

    let up = get(addr, "/");
    assert_eq!(up.status, 200, "{up:?}");
    assert!(up.body.contains(&hostname), "{up:?}");
    assert_clean(&up);

    // Each connection is a fresh process: the login just made is not in this one's metrics.
    let metrics = get(addr, "/metrics");
    assert_eq!(metrics.status, 200, "{metrics:?}");
    assert_eq!(sample(&parse_prometheus(&metrics.body), "mysqlchk_db_logins_total"), 0.0, "{}", metrics.body);

    // Two pipelined keep-alive requests on one connection: one answer, then the close.
    let two = http(addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(two.status, 200, "{two:?}");
    assert_eq!(responses_in(&two.raw), 1, "{:?}", String::from_utf8_lossy(&two.raw));
    assert_clean(&two);

    let again = get(addr, "/");
    assert_eq!(again.status, 200, "{again:?}");
}

/// `GET /` at `addr` is a clean 200 naming `hostname`; `what` says which setup answered.
fn assert_up(addr: SocketAddr, hostname: &str, what: &str) {
    let up = get(addr, "/");
    assert_eq!(up.status, 200, "{what}: {up:?}");
    assert!(up.body.contains(hostname), "{what}: {up:?}");
    assert_clean(&up);
}

/// A shipped unit file.
fn shipped(name: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)).unwrap()
}

/// The value of the one `key=` line of a unit file.
fn unit_value(unit: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    let mut values = unit.lines().filter_map(|l| l.strip_prefix(&prefix));
    let value = values.next().unwrap_or_else(|| panic!("no {key}= in:\n{unit}"));
    assert!(values.next().is_none(), "two {key}= lines in:\n{unit}");
    value.to_string()
}

#[test]
fn accept_yes_without_stdin_wiring_serves_the_connection_systemd_passes_as_fd_3() {
    let db = shared();
    let hostname = db.sql("select @@hostname");
    let dir = TempDir::new("accept-fd3");
    let mut args = vec!["--inetd".to_string()];
    args.extend(check_flags(&db.addr(), "haproxy", &dir));
    // -a alone: LISTEN_FDS=1, the connection on fd 3, stdin is /dev/null.
    let (_sa, addr) = activate(&["-a"], bin(), &args);
    for _ in 0..2 {
        assert_up(addr, &hostname, "-a");
    }
}

#[test]
fn shipped_accept_yes_units_serve_under_systemd_socket_activate_with_and_without_stdin_wiring() {
    let socket = shipped("mysqlchk-inetd.socket");
    assert_eq!(unit_value(&socket, "Accept"), "yes");
    assert_eq!(unit_value(&socket, "ListenStream"), "9200");
    let service = shipped("mysqlchk-inetd@.service");
    assert!(!service.contains("\nStandardInput="), "the service relies on LISTEN_FDS, not stdin:\n{service}");
    // Both services share one hardening block, so the per-connection one cannot drift weaker.
    let hardening = |unit: &str| unit[unit.find("# --- hardening").expect("hardening block")..].to_string();
    let daemon = shipped("mysqlchk.service");
    assert_eq!(
        hardening(&service),
        hardening(&daemon).split("\n[Install]").next().unwrap().trim_end().to_string() + "\n"
    );

    // ExecStart as systemd would run it, with the env file's MYSQLCHK_ARGS split on whitespace.
    let exec = unit_value(&service, "ExecStart");
    let mut argv = exec.split_whitespace();
    assert_eq!(argv.next(), Some("/usr/local/bin/mysqlchk"), "{exec}");
    let db = shared();
    let hostname = db.sql("select @@hostname");
    let dir = TempDir::new("inetd-units");
    let env_args = check_flags(&db.addr(), "haproxy", &dir);
    let args: Vec<String> =
        argv.flat_map(|a| if a == "$MYSQLCHK_ARGS" { env_args.clone() } else { vec![a.to_string()] }).collect();
    assert!(args.contains(&"--inetd".to_string()), "{exec}");
    for flags in [&["-a"][..], &["-a", "--inetd"]] {
        let (_sa, addr) = activate(flags, bin(), &args);
        assert_up(addr, &hostname, &flags.join(" "));
    }
}

#[test]
fn inetd_on_pipes_prints_the_full_response_and_exits_0() {
    let db = shared();
    let hostname = db.sql("select @@hostname");
    let dir = TempDir::new("inetd-pipe");
    let run = |extra: &[&str]| {
        let mut cmd = common::mysqlchk();
        cmd.arg("--inetd").args(check_flags(&db.addr(), "haproxy", &dir)).args(extra);
        cmd.env("MYSQLCHK_PASSWORD", "hapass").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn mysqlchk --inetd");
        let mut stdin = child.stdin.take().unwrap();
        // Refused by --allow, it exits without reading: the write may then meet a closed pipe.
        let _ = stdin.write_all(b"GET / HTTP/1.0\r\n\r\n");
        drop(stdin);
        child.wait_with_output().expect("mysqlchk --inetd")
    };
    let out = run(&[]);
    assert!(out.status.success(), "{}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    let r = common::parse_response(out.stdout);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains(&hostname), "{r:?}");
    assert_clean(&r);

    // The peer of a pipe is unknown: --allow refuses it, says why, and answers nothing.
    let out = run(&["--allow", "127.0.0.1"]);
    assert!(out.status.success(), "{}", out.status);
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("refused by --allow") && log.contains("address is unknown"), "{log}");
}

#[test]
fn inetd_with_a_listening_socket_on_stdin_is_a_clear_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let out = common::mysqlchk()
        .args(["--inetd", "--mysql", "127.0.0.1:1"])
        .stdin(std::os::fd::OwnedFd::from(listener))
        .output()
        .expect("run mysqlchk --inetd");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listening socket") && err.contains("Accept=yes"), "{err}");
    assert!(out.stdout.is_empty());
}

/// Flags that make no configuration, each with what its error names.
const BROKEN: [(&[&str], &str); 3] = [
    (&["--bogus"], "Unrecognized argument: --bogus"),
    (&["--timeout", "abc"], "--timeout"),
    (&["--password-file", "/nonexistent/mysqlchk-pw"], "/nonexistent/mysqlchk-pw"),
];

/// `r` is a clean 500 whose body names `what` (the check is broken, not the database down).
fn assert_refused_with(r: &Response, what: &str) {
    assert_eq!(r.status, 500, "{r:?}");
    assert!(r.body.starts_with("mysqlchk: error: ") && r.body.contains(what), "{what}: {r:?}");
    assert_clean(r);
}

#[test]
fn inetd_configuration_errors_on_pipes_go_to_stderr_only() {
    // Whoever typed it reads stderr; stdout gets no response to mistake for the check's.
    for (flags, what) in BROKEN {
        let mut child = common::mysqlchk()
            .arg("--inetd")
            .args(flags)
            .env_remove("MYSQLCHK_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mysqlchk --inetd");
        // It exits without reading: the write may meet a closed pipe.
        let _ = child.stdin.take().unwrap().write_all(b"GET / HTTP/1.0\r\n\r\n");
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("mysqlchk: error: ") && err.contains(what), "{flags:?}: {err}");
        assert!(out.stdout.is_empty(), "{flags:?}: {}", String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn inetd_configuration_errors_answer_500_under_xinetd_and_systemd() {
    let dir = TempDir::new("inetd-broken");
    // xinetd makes stderr the client socket: the error must come as the response, never before
    // it. A bad flag reaches mysqlchk only through server_args.
    for (flags, what) in BROKEN {
        let args = format!("--inetd --mysql 127.0.0.1:1 {}", flags.join(" "));
        let x = Xinetd::start(&dir, &args, "MYSQLCHK_PASSWORD=hapass");
        assert_refused_with(&get(x.addr, "/"), what);
        // A request in two pieces is read whole before the answer.
        let mut s = TcpStream::connect(x.addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(b"GET / HT").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        s.write_all(b"TP/1.0\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        assert_refused_with(&common::parse_response(raw), what);
    }
    // systemd's Accept=yes, the connection on fd 3 and stderr elsewhere: the same answer, and
    // to HEAD the head alone.
    let (_sa, addr) = activate(&["-a"], bin(), &["--inetd".to_string(), "--timeout".to_string(), "abc".to_string()]);
    assert_refused_with(&get(addr, "/"), "--timeout");
    let head = http(addr, b"HEAD / HTTP/1.0\r\n\r\n");
    assert_eq!(head.status, 500, "{head:?}");
    assert!(head.body.is_empty(), "HEAD got a body: {head:?}");
    // A client that hangs up at once is answered nothing, and the next one still is.
    drop(TcpStream::connect(addr).unwrap());
    assert_refused_with(&get(addr, "/"), "--timeout");
    // One that trickles bytes after the answer is drained for LINGER (1 s) in all, not for as
    // long as it keeps trickling: the process exits and the socket closes under it.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 500", "{:?}", String::from_utf8_lossy(&head));
    let answered = Instant::now();
    let closed = loop {
        std::thread::sleep(Duration::from_millis(100));
        if s.write_all(b"x").is_err() {
            break answered.elapsed();
        }
        assert!(answered.elapsed() < Duration::from_secs(15), "still draining a trickling client after 15 s");
    };
    assert!(closed >= Duration::from_millis(900), "closed after {closed:?}, before LINGER");
}

#[test]
fn systemd_socket_activation_serves_on_passed_socket() {
    let db = shared();
    let hostname = db.sql("select @@hostname");
    let dir = TempDir::new("accept-no");
    let ignored: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut args = vec!["--listen".to_string(), ignored.to_string()];
    args.extend(check_flags(&db.addr(), "haproxy", &dir));
    // Accept=no: systemd-socket-activate execs mysqlchk itself on the first connection, so the
    // pid is mysqlchk's from then on.
    let (mut sa, addr) = socket_activate(false, &args);

    for _ in 0..3 {
        let up = get(addr, "/");
        assert_eq!(up.status, 200, "{up:?}");
        assert!(up.body.contains(&hostname), "{up:?}");
    }
    // One long-running process served them all.
    let metrics = get(addr, "/metrics");
    assert_eq!(sample(&parse_prometheus(&metrics.body), "mysqlchk_db_logins_total"), 3.0, "{}", metrics.body);
    // It is running (it answered), so it would have bound --listen by now: it did not.
    assert!(TcpStream::connect(ignored).is_err(), "--listen {ignored} was bound despite the passed socket");

    signal(sa.pid(), "TERM");
    let status = sa.wait_exit(DEADLINE).expect("mysqlchk did not exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
}

// --- --allow ----------------------------------------------------------------------------------

#[test]
fn allowlist_closes_other_peers_without_a_check() {
    // Its own server: the test counts connections.
    let db = MariaDb::start();
    let dir = TempDir::new("allow");
    let flags = check_flags(&db.addr(), "haproxy", &dir);
    let request = b"GET / HTTP/1.0\r\n\r\n";

    let mut args = strs(&flags);
    args.extend(["--allow", "10.0.0.0/8", "--allow", "192.168.0.0/16"]);
    let d = Daemon::start(&args, Some("hapass"));
    let before = db.status("Connections");
    for _ in 0..5 {
        assert!(closed_without_answer(d.addr, request), "a 127.0.0.1 client got an answer");
    }
    assert!(closed_without_answer(d.addr, b""), "a silent 127.0.0.1 client got an answer");
    // The status query itself is one connection.
    let after = db.status("Connections");
    assert!(after <= before + 1, "refused clients reached MariaDB: Connections {before} -> {after}");
    drop(d);

    let mut args = strs(&flags);
    args.extend(["--allow", "10.0.0.0/8", "--allow", "127.0.0.0/8"]);
    let d = Daemon::start(&args, Some("hapass"));
    let up = d.get("/");
    assert_eq!(up.status, 200, "{up:?}");
    assert!(db.status("Connections") > after + 1, "the allowed check did not log in");
    drop(d);

    let Ok(v6) = TcpListener::bind("[::1]:0") else {
        println!("note: cannot bind [::1] here; skipping the IPv6 part of the allowlist test");
        return;
    };
    let v6_addr = v6.local_addr().unwrap();
    drop(v6);
    // ::1 only: the IPv6 loopback client is served, the IPv4 one is not.
    let mut args = strs(&flags);
    let v6_listen = v6_addr.to_string();
    args.extend(["--listen", &v6_listen, "--allow", "::1/128"]);
    let d = Daemon::start(&args, Some("hapass"));
    assert!(closed_without_answer(d.addr, request), "127.0.0.1 got an answer with --allow ::1/128");
    let up = get(v6_addr, "/");
    assert_eq!(up.status, 200, "{up:?}");
    drop(d);

    // A dual-stack listener sees 127.0.0.1 as ::ffff:127.0.0.1; an IPv4-mapped rule matches both
    // that peer and the plain IPv4 one, and not ::1.
    let any6: SocketAddr = format!("[::]:{}", free_port()).parse().unwrap();
    let mapped: SocketAddr = format!("127.0.0.1:{}", any6.port()).parse().unwrap();
    let v6_loop: SocketAddr = format!("[::1]:{}", any6.port()).parse().unwrap();
    let mut args = strs(&flags);
    let any6_listen = any6.to_string();
    args.extend(["--listen", &any6_listen, "--allow", "::ffff:127.0.0.1/128"]);
    let d = Daemon::start(&args, Some("hapass"));
    let via_v4 = d.get("/");
    assert_eq!(via_v4.status, 200, "plain IPv4 peer: {via_v4:?}");
    let via_mapped = get(mapped, "/");
    assert_eq!(via_mapped.status, 200, "IPv4-mapped peer: {via_mapped:?}");
    assert!(closed_without_answer(v6_loop, request), "::1 got an answer with --allow ::ffff:127.0.0.1/128");
}

// --- password file and SIGHUP -----------------------------------------------------------------

#[test]
fn password_file_readable_by_others_is_refused() {
    let dir = TempDir::new("pwmode");
    let file = dir.join("password");
    for mode in [0o644, 0o640, 0o604, 0o660] {
        write_mode(&file, "hapass\n", mode);
        let port = free_port().to_string();
        let mut child = Proc(
            common::mysqlchk()
                .args(["--listen", &format!("127.0.0.1:{port}"), "--password-file", file.to_str().unwrap()])
                .args(["--mysql", "127.0.0.1:1", "--force-fail-file", dir.join("proxyoff").to_str().unwrap()])
                .env_remove("MYSQLCHK_PASSWORD")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let status = child.wait_exit(DEADLINE).unwrap_or_else(|| panic!("mode {mode:o}: mysqlchk kept running"));
        let mut err = String::new();
        child.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(!status.success(), "mode {mode:o}: exit {status}");
        assert!(err.contains(file.to_str().unwrap()), "mode {mode:o}: message does not name the file: {err}");
        assert!(err.contains("chmod 600"), "mode {mode:o}: message does not say chmod 600: {err}");
    }
}

#[test]
fn sighup_rereads_the_password_file() {
    let db = shared();
    let dir = TempDir::new("sighup");
    let file = dir.join("password");
    write_mode(&file, "not-the-password\n", 0o600);
    let mut flags = check_flags(&db.addr(), "haproxy", &dir);
    flags.extend(["--password-file".to_string(), file.to_str().unwrap().to_string()]);
    let log = dir.join("stderr");
    let (d, addr) = spawn_daemon(&flags, None, &log);

    let denied = get(addr, "/");
    assert_eq!(denied.status, 503, "{denied:?}");
    assert!(denied.body.contains("access denied"), "{denied:?}");

    // Rewritten in place: the mode stays 600.
    fs::write(&file, "hapass\n").unwrap();
    signal(d.pid(), "HUP");
    let up = get_until(addr, "/", 200);
    assert_eq!(up.status, 200, "after SIGHUP: {up:?}");

    // A file that became unsafe is refused on SIGHUP, and the old password stays.
    write_mode(&file, "wrong-again\n", 0o644);
    signal(d.pid(), "HUP");
    let deadline = Instant::now() + DEADLINE;
    while !fs::read_to_string(&log).unwrap().contains("keeping the old password") {
        assert!(Instant::now() < deadline, "no log of the refused reread:\n{}", fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    let still = get(addr, "/");
    assert_eq!(still.status, 200, "a refused file replaced the password: {still:?}");
}

// --- the password never leaks -----------------------------------------------------------------

#[test]
fn password_never_appears_in_argv_logs_or_responses() {
    let db = shared();
    const PW: &str = "Zx7-secret-4b1d9e-QpL";
    // A user whose password is PW, for the success path; haproxy with PW is the failure path.
    db.sql(&format!(
        "CREATE USER IF NOT EXISTS 'leaktest'@'%' IDENTIFIED BY '{PW}';\
         CREATE USER IF NOT EXISTS 'leaktest'@'localhost' IDENTIFIED BY '{PW}';"
    ));
    let dir = TempDir::new("leak");
    let file = dir.join("password");
    write_mode(&file, &format!("{PW}\n"), 0o600);
    let requests: &[&[u8]] = &[
        b"GET / HTTP/1.0\r\n\r\n",
        b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /metrics HTTP/1.0\r\n\r\n",
        b"GET /nope HTTP/1.0\r\n\r\n",
        b"GET /replica?max_lag=banana HTTP/1.0\r\n\r\n",
        b"\x16\x03\x01\x00\xa5garbage that is no HTTP\r\n\r\n",
        b"GET / HTTP/1.0\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
        b"",
    ];

    for (how, user, want) in [("file", "leaktest", 200), ("env", "haproxy", 503), ("file", "haproxy", 503)] {
        let mut flags = check_flags(&db.addr(), user, &dir);
        flags.extend(["--log-level", "trace"].map(String::from));
        let env_pw = if how == "file" {
            flags.extend(["--password-file".to_string(), file.to_str().unwrap().to_string()]);
            None
        } else {
            Some(PW)
        };
        let log = dir.join(&format!("stderr-{how}-{user}"));
        let (mut d, addr) = spawn_daemon(&flags, env_pw, &log);
        let check = get(addr, "/");
        assert_eq!(check.status, want, "{how}, {user}: {check:?}");
        let mut answers = vec![check];
        answers.extend(requests.iter().map(|r| http(addr, r)));
        for r in &answers {
            assert!(!contains(&r.raw, PW), "{how}, {user}: the password is in a response: {r:?}");
        }
        let cmdline = fs::read(format!("/proc/{}/cmdline", d.pid())).unwrap();
        assert!(!contains(&cmdline, PW), "{how}, {user}: the password is in argv");
        // A SIGHUP reread logs too.
        signal(d.pid(), "HUP");
        std::thread::sleep(Duration::from_millis(300));
        signal(d.pid(), "TERM");
        d.wait_exit(DEADLINE).expect("mysqlchk did not exit after SIGTERM");
        let stderr = fs::read(&log).unwrap();
        assert!(!stderr.is_empty(), "trace logging wrote nothing: is stderr captured?");
        assert!(
            !contains(&stderr, PW),
            "{how}, {user}: the password is in the log:\n{}",
            String::from_utf8_lossy(&stderr)
        );
    }
    db.sql("DROP USER 'leaktest'@'%', 'leaktest'@'localhost'");
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

// --- /metrics ---------------------------------------------------------------------------------

#[test]
fn metrics_count_checks_and_logins() {
    let db = shared();
    let dir = TempDir::new("metrics");
    let flags = check_flags(&db.addr(), "haproxy", &dir);
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let d = Daemon::start(&strs(&flags), Some("hapass"));

    for _ in 0..3 {
        assert_eq!(d.get("/").status, 200);
    }
    fs::write(dir.join("proxyoff"), "").unwrap();
    assert_eq!(d.get("/").status, 503, "force-fail");
    fs::remove_file(dir.join("proxyoff")).unwrap();
    fs::write(dir.join("proxydrain"), "").unwrap();
    let draining = d.get("/");
    assert_eq!(draining.status, 200, "draining stays 200: {draining:?}");
    assert!(draining.body.contains("draining"), "{draining:?}");
    fs::remove_file(dir.join("proxydrain")).unwrap();
    assert_eq!(d.get("/nope").status, 404);
    assert_eq!(d.request(b"NOT HTTP\r\n\r\n").status, 400);

    let m = d.get("/metrics");
    assert_eq!(m.status, 200, "{m:?}");
    assert_eq!(m.header("Content-Type").as_deref(), Some("text/plain; version=0.0.4"), "{m:?}");
    let s = parse_prometheus(&m.body);
    let text = &m.body;
    assert_eq!(sample(&s, r#"mysqlchk_checks_total{profile="default",result="up"}"#), 3.0, "{text}");
    assert_eq!(sample(&s, r#"mysqlchk_checks_total{profile="default",result="off"}"#), 1.0, "{text}");
    assert_eq!(sample(&s, r#"mysqlchk_checks_total{profile="default",result="drain"}"#), 1.0, "{text}");
    assert_eq!(sample(&s, r#"mysqlchk_checks_total{profile="default",result="down"}"#), 0.0, "{text}");
    // The forced-off check never logged in; the draining one did.
    assert_eq!(sample(&s, "mysqlchk_db_logins_total"), 4.0, "{text}");
    assert_eq!(sample(&s, "mysqlchk_check_duration_seconds_count"), 4.0, "{text}");
    assert_eq!(sample(&s, r#"mysqlchk_check_duration_seconds_bucket{le="+Inf"}"#), 4.0, "{text}");
    let buckets: Vec<f64> =
        s.iter().filter(|(k, _)| k.starts_with("mysqlchk_check_duration_seconds_bucket")).map(|(_, v)| *v).collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "buckets not cumulative: {text}");
    assert!(sample(&s, "mysqlchk_check_duration_seconds_sum") > 0.0, "{text}");
    // This /metrics request is counted after it is rendered.
    assert_eq!(sample(&s, r#"mysqlchk_http_requests_total{code="200"}"#), 4.0, "{text}");
    assert_eq!(sample(&s, r#"mysqlchk_http_requests_total{code="503"}"#), 1.0, "{text}");
    assert_eq!(sample(&s, r#"mysqlchk_http_requests_total{code="404"}"#), 1.0, "{text}");
    assert_eq!(sample(&s, r#"mysqlchk_http_requests_total{code="400"}"#), 1.0, "{text}");
    assert_eq!(sample(&s, r#"mysqlchk_up{profile="default",request="/"}"#), 1.0, "{text}");
    let last = sample(&s, "mysqlchk_last_check_timestamp_seconds");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(started - 1.0 <= last && last <= now + 1.0, "last check at {last}, test ran {started}..{now}");

    let again = parse_prometheus(&d.get("/metrics").body);
    assert_eq!(sample(&again, r#"mysqlchk_http_requests_total{code="200"}"#), 5.0);
}

// --- SIGTERM ----------------------------------------------------------------------------------

#[test]
fn sigterm_lets_a_check_in_flight_finish_then_exits_0() {
    // Logs in, then never answers the query: the check hangs until --timeout.
    let fake = FakeServer::start(Scenario::hostile(Hostile::QuerySilent));
    let dir = TempDir::new("sigterm");
    let timeout = Duration::from_millis(1500);
    let mut flags = check_flags(&fake.target(), "haproxy", &dir);
    let at = flags.iter().position(|f| f == "--timeout").unwrap() + 1;
    flags[at] = timeout.as_millis().to_string();
    let (mut d, addr) = spawn_daemon(&flags, Some("pw"), &dir.join("stderr"));

    // The check starts after this, and cannot end before its --timeout: the query is never
    // answered.
    let asked = Instant::now();
    let client = std::thread::spawn(move || get(addr, "/"));
    let deadline = Instant::now() + DEADLINE;
    while fake.queries().is_empty() {
        assert!(Instant::now() < deadline, "the check never reached the query");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(d.pid(), "TERM");

    // The listener closes as soon as the signal is handled, long before the check ends. A
    // connection the kernel completed just before the close is reset with it: refused and reset
    // both mean not served.
    let refused_by = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect(addr) {
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset) => break,
            Err(e) => panic!("connect after SIGTERM: {e}"),
            Ok(s) => {
                let _ = s.shutdown(Shutdown::Both);
                assert!(Instant::now() < refused_by, "still accepting 5 s after SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    let answer = client.join().expect("client thread");
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.body.contains("timeout"), "{answer:?}");
    assert_clean(&answer);
    // timeout + the server's grace (head deadline and linger) + slack for a busy box.
    let status = d.wait_exit(timeout + Duration::from_secs(10)).expect("mysqlchk did not exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(asked.elapsed() >= timeout, "exited before the check could finish");
    let log = fs::read_to_string(dir.join("stderr")).unwrap();
    assert!(log.contains("stopping: 1 connections in flight"), "{log}");
}

#[test]
fn a_second_sigterm_stops_at_once() {
    // A check that cannot end before its (long) --timeout: the first signal waits for it, the
    // second does not.
    let fake = FakeServer::start(Scenario::hostile(Hostile::QuerySilent));
    let dir = TempDir::new("sigterm2");
    let mut flags = check_flags(&fake.target(), "haproxy", &dir);
    let at = flags.iter().position(|f| f == "--timeout").unwrap() + 1;
    flags[at] = "60000".into();
    let (mut d, addr) = spawn_daemon(&flags, Some("pw"), &dir.join("stderr"));
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let deadline = Instant::now() + DEADLINE;
    while fake.queries().is_empty() {
        assert!(Instant::now() < deadline, "the check never reached the query");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(d.pid(), "TERM");
    let log = dir.join("stderr");
    common::eventually("the first SIGTERM was not handled", DEADLINE, || {
        fs::read_to_string(&log).is_ok_and(|l| l.contains("stopping: 1 connections in flight"))
    });
    assert!(d.wait_exit(Duration::from_millis(500)).is_none(), "exited with a check in flight");
    signal(d.pid(), "TERM");
    let status = d.wait_exit(DEADLINE).expect("mysqlchk did not exit after a second SIGTERM");
    assert!(status.success(), "exit status {status}");
}

// --- the shipped files ------------------------------------------------------------------------

/// Runs scripts/install.sh with `args`; returns its stdout.
fn install(args: &[&str]) -> String {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/install.sh");
    assert!(
        out.status.success(),
        "install.sh {args:?}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

#[test]
fn install_into_a_prefix_is_idempotent_and_keeps_the_env_file() {
    let dir = TempDir::new("install");
    let root = dir.join("root");
    let root_s = root.to_str().unwrap();
    let first = install(&["--prefix", root_s, "--binary", bin(), "--xinetd"]);
    assert!(first.contains("Next steps"), "{first}");
    assert!(!first.contains("systemctl daemon-reload done"), "systemctl ran under --prefix: {first}");

    let installed = root.join("usr/local/bin/mysqlchk");
    assert_eq!(fs::read(&installed).unwrap(), fs::read(bin()).unwrap());
    assert_eq!(mode(&installed), 0o755);
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    for (src, dst, m) in [
        ("mysqlchk.service", "etc/systemd/system/mysqlchk.service", 0o644),
        ("mysqlchk.socket", "etc/systemd/system/mysqlchk.socket", 0o644),
        ("mysqlchk-inetd.socket", "etc/systemd/system/mysqlchk-inetd.socket", 0o644),
        ("mysqlchk-inetd@.service", "etc/systemd/system/mysqlchk-inetd@.service", 0o644),
        ("mysqlchk.xinetd", "etc/xinetd.d/mysqlchk", 0o600),
    ] {
        assert_eq!(fs::read(scripts.join(src)).unwrap(), fs::read(root.join(dst)).unwrap(), "{dst}");
        assert_eq!(mode(&root.join(dst)), m, "{dst}");
    }
    let man = root.join("usr/local/share/man/man1/mysqlchk.1");
    assert_eq!(
        fs::read(&man).unwrap(),
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("man/mysqlchk.1")).unwrap()
    );
    assert_eq!(mode(&man), 0o644);
    let env = root.join("etc/mysqlchk/env");
    assert_eq!(mode(&env), 0o600);
    assert_eq!(mode(&root.join("etc/mysqlchk")), 0o700);
    assert!(fs::read_to_string(&env).unwrap().contains("MYSQLCHK_PASSWORD="));

    // The operator fills in the password; a second run changes nothing of theirs.
    fs::write(&env, "MYSQLCHK_PASSWORD=operators-secret\n").unwrap();
    let second = install(&["--prefix", root_s, "--binary", bin(), "--xinetd"]);
    assert!(second.contains("kept the existing"), "{second}");
    assert_eq!(fs::read_to_string(&env).unwrap(), "MYSQLCHK_PASSWORD=operators-secret\n");
    assert_eq!(mode(&env), 0o600);
    let services = fs::read_to_string(root.join("etc/services")).unwrap();
    assert_eq!(services.matches("9200/tcp").count(), 1, "{services}");
    assert!(services.starts_with("mysqlchk"), "{services}");
}

#[test]
fn install_sh_runs_from_an_unpacked_tarball_with_the_binary_beside_it() {
    // The release tarball's layout: everything flat, beside install.sh (scripts/release.sh).
    let dir = TempDir::new("tarball-layout");
    let unpacked = dir.join("mysqlchk-x");
    fs::create_dir(&unpacked).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in [
        "scripts/install.sh",
        "scripts/mysqlchk.service",
        "scripts/mysqlchk.socket",
        "scripts/mysqlchk-inetd.socket",
        "scripts/mysqlchk-inetd@.service",
        "scripts/mysqlchk.xinetd",
        "scripts/services.txt",
        "man/mysqlchk.1",
    ] {
        fs::copy(repo.join(f), unpacked.join(Path::new(f).file_name().unwrap())).unwrap();
    }
    fs::copy(bin(), unpacked.join("mysqlchk")).unwrap();
    let root = dir.join("root");
    let out = Command::new("./install.sh")
        .arg("--prefix")
        .arg(&root)
        .current_dir(&unpacked)
        .stdin(Stdio::null())
        .output()
        .expect("run ./install.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}: {text}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("building"), "it built instead of taking the binary beside it: {text}");
    assert_eq!(fs::read(root.join("usr/local/bin/mysqlchk")).unwrap(), fs::read(bin()).unwrap());
    assert!(root.join("usr/local/share/man/man1/mysqlchk.1").is_file());
    assert!(root.join("etc/systemd/system/mysqlchk-inetd@.service").is_file());

    // Without the binary beside it, and outside a source tree, it says what to do.
    fs::remove_file(unpacked.join("mysqlchk")).unwrap();
    let out = Command::new("./install.sh").arg("--prefix").arg(&root).current_dir(&unpacked).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--binary PATH"), "{out:?}");
}

#[test]
fn unit_files_pass_systemd_analyze_verify() {
    // verify insists the ExecStart binary exists: point it at the one under test.
    let dir = TempDir::new("verify");
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let service = fs::read_to_string(scripts.join("mysqlchk.service")).unwrap();
    assert!(service.contains("ExecStart=/usr/local/bin/mysqlchk $MYSQLCHK_ARGS"), "{service}");
    fs::write(dir.join("mysqlchk.service"), service.replace("/usr/local/bin/mysqlchk", bin())).unwrap();
    fs::copy(scripts.join("mysqlchk.socket"), dir.join("mysqlchk.socket")).unwrap();
    let inetd = fs::read_to_string(scripts.join("mysqlchk-inetd@.service")).unwrap();
    assert!(inetd.contains("ExecStart=/usr/local/bin/mysqlchk --inetd $MYSQLCHK_ARGS"), "{inetd}");
    fs::write(dir.join("mysqlchk-inetd@.service"), inetd.replace("/usr/local/bin/mysqlchk", bin())).unwrap();
    fs::copy(scripts.join("mysqlchk-inetd.socket"), dir.join("mysqlchk-inetd.socket")).unwrap();
    // verify runs `man mysqlchk(1)` for Documentation=: point it at the page in the repo.
    fs::create_dir_all(dir.join("man/man1")).unwrap();
    fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("man/mysqlchk.1"), dir.join("man/man1/mysqlchk.1")).unwrap();
    let out = Command::new(program("systemd-analyze", "systemd"))
        .env("MANPATH", dir.join("man"))
        .arg("verify")
        .arg(dir.join("mysqlchk.socket"))
        .arg(dir.join("mysqlchk.service"))
        .arg(dir.join("mysqlchk-inetd.socket"))
        .arg(dir.join("mysqlchk-inetd@.service"))
        .output()
        .expect("run systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "systemd-analyze verify: {}\n{err}", out.status);
}
