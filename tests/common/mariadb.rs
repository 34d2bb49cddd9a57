//! A throwaway real MariaDB for integration tests: a fresh datadir in its own temp dir, its own
//! port and socket, never the machine's server on 3306. Std only; signals go through `kill(1)`.
//!
//! Users created by the init file, each `@'%'` and `@'localhost'` so TCP and socket logins work:
//! `haproxy`/`hapass` (mysql_native_password, plus REPLICATION CLIENT and PROCESS, and SELECT on
//! `chk` so `--database chk` may select it),
//! `eduser`/`edpass` (ed25519) and `nopass` (no password). Database `chk` exists.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to become ready (or to shut down) before we give up.
const DEADLINE: Duration = Duration::from_secs(30);

/// Tries at starting the server when the port we picked was taken in the meantime.
const PORT_ATTEMPTS: u32 = 5;

/// Idempotent, so a restart can run it again. The ed25519 plugin comes from
/// `--plugin-load-add` on every start rather than `INSTALL SONAME`, which would fail the second
/// time (and a failing init file aborts the server).
const INIT_SQL: &str = "\
CREATE DATABASE IF NOT EXISTS chk;
CREATE USER IF NOT EXISTS 'haproxy'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('hapass');
CREATE USER IF NOT EXISTS 'haproxy'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('hapass');
CREATE USER IF NOT EXISTS 'eduser'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('edpass');
CREATE USER IF NOT EXISTS 'eduser'@'localhost' IDENTIFIED VIA ed25519 USING PASSWORD('edpass');
CREATE USER IF NOT EXISTS 'nopass'@'%';
CREATE USER IF NOT EXISTS 'nopass'@'localhost';
-- REPLICA MONITOR: SHOW REPLICA STATUS on MariaDB 10.5.9 and later (REPLICATION CLIENT no longer covers it).
GRANT REPLICATION CLIENT, REPLICA MONITOR, PROCESS ON *.* TO 'haproxy'@'%', 'haproxy'@'localhost';
GRANT SELECT ON chk.* TO 'haproxy'@'%', 'haproxy'@'localhost';
";

/// Cleans up after us if the test process dies without dropping the server: a `LazyLock`ed
/// shared server is never dropped, and a harness timeout kills us outright. It polls our pid and,
/// once we are gone, kills whatever mariadbd the pid file names and removes the temp dir.
const REAPER_SH: &str = r#"
while kill -0 "$1" 2>/dev/null; do sleep 1; done
if [ -f "$2/mariadbd.pid" ]; then
  p=$(cat "$2/mariadbd.pid")
  kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; sleep 1
fi
rm -rf "$2"
"#;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// How to start a server beyond the defaults of [`MariaDb::start`].
#[derive(Clone, Default)]
pub struct Options {
    /// Serve TLS with these files.
    pub tls: Option<TlsFiles>,
    /// `--require-secure-transport=ON`: TCP logins must use TLS (the socket is exempt).
    pub require_secure_transport: bool,
    /// `--tls-version`, e.g. `TLSv1.2`.
    pub tls_version: Option<String>,
    /// Addresses to listen on (default `127.0.0.1`); loopback only.
    pub bind: Option<String>,
    /// Run at every start after the default users are created (must be idempotent).
    pub init_sql: String,
    /// Server options after the defaults (later ones win), e.g. `--log-bin`.
    pub extra: Vec<String>,
    /// The temp dir and everything in it readable and writable by everyone (Galera's SST).
    pub open: bool,
}

/// The server's TLS files.
#[derive(Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Options {
    fn args(&self) -> Vec<String> {
        let mut v = vec![format!("--bind-address={}", self.bind.as_deref().unwrap_or("127.0.0.1"))];
        if let Some(t) = &self.tls {
            v.push(format!("--ssl-ca={}", t.ca.display()));
            v.push(format!("--ssl-cert={}", t.cert.display()));
            v.push(format!("--ssl-key={}", t.key.display()));
        }
        if self.require_secure_transport {
            v.push("--require-secure-transport=ON".into());
        }
        if let Some(version) = &self.tls_version {
            v.push(format!("--tls-version={version}"));
        }
        v.extend(self.extra.iter().cloned());
        v
    }
}

/// A running (or stopped) MariaDB owned by one test or shared by several.
pub struct MariaDb {
    pub port: u16,
    pub socket: PathBuf,
    /// The temp dir holding datadir, socket, pid file, error log and init file.
    pub dir: PathBuf,
    child: Option<Child>,
    reaper: Option<Child>,
    opts: Options,
}

impl MariaDb {
    /// Creates a fresh datadir in a unique temp dir and starts a server on a free port; it
    /// accepts logins when this returns.
    pub fn start() -> MariaDb {
        MariaDb::start_options(Options::default())
    }

    /// [`MariaDb::start`] with extra server options, e.g. `--log-bin` and `--server-id=1` for a
    /// replication source.
    pub fn start_with(extra: &[&str]) -> MariaDb {
        MariaDb::start_options(Options { extra: extra.iter().map(|a| a.to_string()).collect(), ..Options::default() })
    }

    /// [`MariaDb::start_with`], with the temp dir and everything in it readable and writable by
    /// everyone: Galera's rsync SST, run as root, receives the datadir as `nobody`.
    pub fn start_open(extra: &[&str]) -> MariaDb {
        MariaDb::start_options(Options {
            extra: extra.iter().map(|a| a.to_string()).collect(),
            open: true,
            ..Options::default()
        })
    }

    /// [`MariaDb::start`] with TLS, other listen addresses, more users or extra server options.
    pub fn start_options(opts: Options) -> MariaDb {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mysqlchk-mariadb-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create mariadb temp dir");
        let reaper = Command::new("sh")
            .arg("-c")
            .arg(REAPER_SH)
            .arg("mysqlchk-reaper")
            .arg(std::process::id().to_string())
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn reaper sh");
        fs::write(dir.join("init.sql"), format!("{INIT_SQL}{}", opts.init_sql)).expect("write init.sql");
        fs::create_dir_all(dir.join("tmp")).expect("create mariadb tmpdir");
        let out = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            // Concurrent bootstraps sharing /tmp clobber each other's temporary tables.
            .arg(format!("--tmpdir={}", dir.join("tmp").display()))
            .args(["--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .stdin(Stdio::null())
            .output()
            .expect("run mariadb-install-db (is mariadb-server installed? scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if opts.open {
            let ok = Command::new("chmod").arg("-R").arg("a+rwX").arg(&dir).status().is_ok_and(|s| s.success());
            assert!(ok, "chmod -R a+rwX {} failed", dir.display());
        }
        let mut db =
            MariaDb { port: 0, socket: dir.join("mariadbd.sock"), dir, child: None, reaper: Some(reaper), opts };
        // The port is only free "a moment ago"; another test may grab it before mariadbd binds,
        // in which case mariadbd exits and we pick another.
        for attempt in 1..=PORT_ATTEMPTS {
            db.port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            match db.spawn_and_wait() {
                Ok(()) => return db,
                Err(e) if attempt < PORT_ATTEMPTS && e.contains("Bind on TCP/IP port") => continue,
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    /// A replication source: binary log on, server id 1, and a `repl`/`replpw` user allowed to
    /// replicate.
    pub fn replication_source(extra: &[&str]) -> MariaDb {
        let db = MariaDb::start_with(&[&["--log-bin=binlog", "--server-id=1"], extra].concat());
        db.sql(
            "CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY 'replpw'; GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'",
        );
        db
    }

    /// Replicates from the [`MariaDb::replication_source`] on `port` through the named
    /// `connection` ("" is the default one), by GTID; returns once it is started, not caught up.
    /// The replica needs a `--server-id` of its own.
    pub fn replicate(&self, connection: &str, port: u16) {
        self.replicate_delayed(connection, port, 0);
    }

    /// [`MariaDb::replicate`], applying events `delay` seconds late (`MASTER_DELAY`).
    pub fn replicate_delayed(&self, connection: &str, port: u16, delay: u32) {
        self.sql(&format!(
            "CHANGE MASTER '{connection}' TO MASTER_HOST='127.0.0.1', MASTER_PORT={port}, MASTER_USER='repl', \
             MASTER_PASSWORD='replpw', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos, MASTER_DELAY={delay}; \
             START SLAVE '{connection}'"
        ));
    }

    /// "127.0.0.1:PORT", for `--mysql`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// mysqlchk checking this server as `haproxy` with `--timeout 3000` (generous for a noisy 2-core
    /// box: no test that uses it is about mysqlchk's timing) and the force-fail file
    /// `<dir>/off` (which tests create and remove), plus `extra`.
    pub fn checker(&self, dir: &super::TempDir, extra: &[&str]) -> super::Daemon {
        self.with_checker_args(dir, extra, |args| super::Daemon::start(args, Some("hapass")))
    }

    /// [`MariaDb::checker`] with an agent listener too; returns it and the agent's address.
    pub fn checker_with_agent(&self, dir: &super::TempDir, extra: &[&str]) -> (super::Daemon, std::net::SocketAddr) {
        self.with_checker_args(dir, extra, |args| super::Daemon::start_with_agent(args, Some("hapass")))
    }

    fn with_checker_args<T>(&self, dir: &super::TempDir, extra: &[&str], start: impl FnOnce(&[&str]) -> T) -> T {
        let (target, off) = (self.addr(), dir.path("off"));
        let mut args = vec!["--mysql", &target, "--user", "haproxy", "--timeout", "3000", "--force-fail-file", &off];
        args.extend_from_slice(extra);
        start(&args)
    }

    /// Clean shutdown: SIGTERM, then wait for exit (SIGKILL after the deadline). Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // A frozen server would never act on SIGTERM.
        signal(&child, "CONT");
        signal(&child, "TERM");
        let deadline = Instant::now() + DEADLINE;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("mariadbd did not shut down in {DEADLINE:?}:\n{}", self.log_tail());
                }
            }
        }
    }

    /// Starts the server again on the same datadir, port and socket; ready when this returns.
    pub fn restart(&mut self) {
        self.stop();
        // The old process has exited, but a port in TIME_WAIT is fine for a listener
        // (mariadbd sets SO_REUSEADDR); a few tries cover a slow release of the socket file.
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(e) => {
                    last = e;
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        panic!("restart failed: {last}");
    }

    /// SIGKILL, as a crash or a pulled plug would: no clean shutdown. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the server keeps its sockets open but answers nothing, like a hung host.
    pub fn freeze(&self) {
        let child = self.child.as_ref().expect("freeze: server is not running");
        assert!(signal(child, "STOP"), "kill -STOP {} failed", child.id());
    }

    /// SIGCONT: undoes [`MariaDb::freeze`].
    pub fn thaw(&self) {
        let child = self.child.as_ref().expect("thaw: server is not running");
        assert!(signal(child, "CONT"), "kill -CONT {} failed", child.id());
    }

    /// Runs `sql` as root over the unix socket and returns trimmed stdout (`-N -B`: no column
    /// names, tab-separated). Panics with stderr on failure.
    pub fn sql(&self, sql: &str) -> String {
        match self.try_sql(sql) {
            Ok(out) => out,
            Err(e) => panic!("sql {sql:?} failed: {e}"),
        }
    }

    /// `SHOW GLOBAL STATUS LIKE 'var'` as a number.
    pub fn status(&self, var: &str) -> u64 {
        let row = self.sql(&format!("SHOW GLOBAL STATUS LIKE '{var}'"));
        row.split('\t')
            .nth(1)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("status {var}: unexpected row {row:?}"))
    }

    /// Runs `sql` as root and returns its first row by column name (`SHOW SLAVE STATUS`); empty
    /// when there is no row. Panics with stderr on failure.
    pub fn row(&self, sql: &str) -> std::collections::HashMap<String, String> {
        let out = self.run(sql, false).unwrap_or_else(|e| panic!("sql {sql:?} failed: {e}"));
        let mut lines = out.lines();
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else { return Default::default() };
        names.split('\t').zip(values.split('\t')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn try_sql(&self, sql: &str) -> Result<String, String> {
        self.run(sql, true)
    }

    /// The mariadb client in batch mode (tab-separated), with or without the column names line.
    fn run(&self, sql: &str, skip_names: bool) -> Result<String, String> {
        let out: Output = Command::new("mariadb")
            .arg("--no-defaults")
            .arg("--user=root")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["--connect-timeout=10", "-B", "-e", sql])
            .args(skip_names.then_some("-N"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run the mariadb client: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// Spawns mariadbd and waits until root can run a query. On failure the child is reaped and
    /// the error carries the error log's tail.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let d = &self.dir;
        let mut child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg("--user=root")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg(format!("--socket={}", self.socket.display()))
            .arg(format!("--port={}", self.port))
            .arg("--skip-name-resolve")
            .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", d.join("err.log").display()))
            .arg(format!("--init-file={}", d.join("init.sql").display()))
            .arg("--plugin-load-add=auth_ed25519")
            // Small and fast: tests care about logins, not durability or throughput.
            .args([
                "--innodb-buffer-pool-size=8M",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--skip-log-bin",
                "--performance-schema=OFF",
                "--max-connections=500",
            ])
            // TLS, listen addresses and extra options; later ones win.
            .args(self.opts.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot spawn mariadbd (is mariadb-server installed?): {e}"))?;
        let deadline = Instant::now() + DEADLINE;
        let mut last = String::from("not tried yet");
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("mariadbd exited early ({status}):\n{}", self.log_tail()));
            }
            if self.socket.exists() && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                match self.try_sql("select 1") {
                    Ok(_) => break,
                    Err(e) => last = e,
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "mariadbd not ready after {DEADLINE:?} (last error: {last}):\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
        Ok(())
    }

    /// The last lines of the error log, for panic messages.
    fn log_tail(&self) -> String {
        tail(&self.dir.join("err.log"), 30)
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut reaper) = self.reaper.take() {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
        if let Some(mut child) = self.child.take() {
            // SIGKILL works on a stopped process too, but CONT first lets it be reaped promptly.
            signal(&child, "CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Sends SIG`name` with `kill(1)` (std can send nothing but SIGKILL); true if it was delivered.
/// Never panics, since `Drop` uses it.
fn signal(child: &Child, name: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| format!("(no {}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
