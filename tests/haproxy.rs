//! mysqlchk behind a real HAProxy (the distribution's, 2.6 on Debian 12): HTTP checks and agent
//! checks against a real MariaDB, read back from HAProxy's own `show stat` on its admin socket.
//! HAProxy runs in the foreground (`-db`) as our child, with its own config, socket and ports.

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::mariadb::MariaDb;
use common::{free_port, Daemon, TempDir};

/// How long HAProxy may take to notice a change. Checks run every 300 ms and one result flips the
/// state (`fall 1 rise 1`), so this is slack for a busy box and a restarting MariaDB.
const DEADLINE: Duration = Duration::from_secs(15);

/// Generous for a noisy 2-core box; no test here is about mysqlchk's timing.
const TIMEOUT_MS: &str = "3000";

/// HAProxy settings shared by every config: fast checks, one result flips the state, and a
/// check timeout above mysqlchk's `--timeout` so HAProxy sees mysqlchk's answer, not its own
/// timeout.
const CHECK: &str = "inter 300ms fall 1 rise 1";
const DEFAULTS: &str = "\
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout check 5s
";

/// A foreground HAProxy with an admin stats socket, killed on drop.
struct HaProxy {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl HaProxy {
    /// Writes `global` (the admin socket), [`DEFAULTS`] and `proxies` to `<dir>/haproxy.cfg` and
    /// starts HAProxy on it; returns once the admin socket answers `show stat`.
    fn start(dir: &TempDir, proxies: &str) -> HaProxy {
        let socket = dir.0.join("admin.sock");
        let cfg = dir.0.join("haproxy.cfg");
        let log = dir.0.join("haproxy.log");
        let global = format!("global\n    stats socket {} mode 600 level admin\n", socket.display());
        fs::write(&cfg, format!("{global}\n{DEFAULTS}\n{proxies}")).unwrap();
        let out = fs::File::create(&log).unwrap();
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn haproxy (is it installed? scripts/test.sh installs it)");
        let mut h = HaProxy { child, socket, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.try_show_stat().is_err() {
            if let Ok(Some(status)) = h.child.try_wait() {
                panic!("haproxy exited early ({status}):\n{}", h.log());
            }
            assert!(Instant::now() < deadline, "haproxy admin socket not ready:\n{}", h.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        h
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `show stat` over the admin socket: the CSV with its `# ` header.
    fn try_show_stat(&self) -> std::io::Result<String> {
        let mut s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"show stat\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        if !out.starts_with("# pxname,") {
            return Err(std::io::Error::other(format!("unexpected show stat output: {out:?}")));
        }
        Ok(out)
    }

    /// The `show stat` row of `proxy`/`server`, as column name -> value.
    fn stat(&self, proxy: &str, server: &str) -> HashMap<String, String> {
        let csv = self.try_show_stat().unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().trim_start_matches("# ").split(',').collect();
        for line in lines {
            let row: Vec<&str> = line.split(',').collect();
            if row.first() == Some(&proxy) && row.get(1) == Some(&server) {
                return header.iter().zip(row).map(|(k, v)| (k.to_string(), v.to_string())).collect();
            }
        }
        panic!("no {proxy}/{server} in show stat:\n{csv}");
    }

    /// Polls `show stat` until `proxy`/`server` has `status` (and, if given, a last health check
    /// status `check`); panics with the row after [`DEADLINE`].
    fn wait_for(&self, proxy: &str, server: &str, status: &str, check: Option<&str>) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let row = self.stat(proxy, server);
            // A check in progress shows the last result as "* L7OK".
            let last_check = row["check_status"].trim_start_matches("* ");
            if row["status"] == status && check.is_none_or(|c| c == last_check) {
                return;
            }
            if Instant::now() > deadline {
                let fields = ["status", "check_status", "last_chk", "agent_status", "last_agt", "weight"];
                let seen: Vec<String> = fields.iter().map(|f| format!("{f}={:?}", row.get(*f))).collect();
                panic!("{proxy}/{server} not {status} after {DEADLINE:?}: {}\n{}", seen.join(" "), self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One server for the tests that neither stop nor change it.
fn shared() -> &'static MariaDb {
    static DB: OnceLock<MariaDb> = OnceLock::new();
    DB.get_or_init(MariaDb::start)
}

/// mysqlchk checking `db` as haproxy with the force-fail file `<dir>/off`, plus `extra`.
fn daemon(db: &MariaDb, dir: &TempDir, extra: &[&str]) -> Daemon {
    let (target, off) = (db.addr(), dir.path("off"));
    let mut args = vec!["--mysql", &target, "--user", "haproxy", "--timeout", TIMEOUT_MS, "--force-fail-file", &off];
    args.extend_from_slice(extra);
    Daemon::start(&args, Some("hapass"))
}

/// A `listen` section on a free port with one server `db` pointing at `db_port`.
fn listen(name: &str, options: &str, db_port: u16, server_options: &str) -> String {
    format!(
        "listen {name}\n    bind 127.0.0.1:{}\n{options}    server db 127.0.0.1:{db_port} {server_options}\n",
        free_port()
    )
}

#[test]
fn httpchk_marks_up_then_down_on_force_fail_then_down_on_db_stop_then_up_again() {
    let mut db = MariaDb::start();
    let dir = TempDir::new("haproxy");
    let d = daemon(&db, &dir, &[]);
    // Plain `option httpchk`: HAProxy sends `OPTIONS / HTTP/1.0` to mysqlchk's port.
    let server = format!("check port {} {CHECK}", d.addr.port());
    let h = HaProxy::start(&dir, &listen("mysql", "    option httpchk\n", db.port, &server));
    h.wait_for("mysql", "db", "UP", Some("L7OK"));

    fs::write(dir.path("off"), "").unwrap();
    h.wait_for("mysql", "db", "DOWN", Some("L7STS"));
    fs::remove_file(dir.path("off")).unwrap();
    h.wait_for("mysql", "db", "UP", Some("L7OK"));

    db.stop();
    h.wait_for("mysql", "db", "DOWN", Some("L7STS"));
    db.restart();
    h.wait_for("mysql", "db", "UP", Some("L7OK"));
}

/// An agent listener on a free port, for `--agent-listen`.
fn agent_addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

/// A MySQL session through HAProxy's frontend on `port`: the `mariadb` client reading SQL from a
/// pipe, one tab-separated row per line.
struct Session {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Session {
    fn open(port: u16) -> Session {
        let mut child = Command::new("mariadb")
            .args(["--no-defaults", "-h", "127.0.0.1", "-P", &port.to_string(), "-u", "haproxy", "-phapass"])
            .args(["-B", "-N", "-n", "--connect-timeout=10"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the mariadb client");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Session { child, lines }
    }

    /// Runs `select 'word'` on the session; true if the answer came back.
    fn ask(&mut self, word: &str) -> bool {
        let sent = self.child.stdin.as_mut().unwrap().write_all(format!("select '{word}';\n").as_bytes());
        sent.is_ok() && self.lines.recv_timeout(Duration::from_secs(10)).is_ok_and(|l| l == word)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn httpchk_with_agent_drain_keeps_sessions_then_force_fail_cuts_them() {
    // The README's agent recipe: httpchk and agent-check together. The drain file makes the
    // agent say drain while the HTTP check stays 200, so HAProxy shows DRAIN and keeps the
    // sessions; 0.1 had only the force-fail file, which failed the HTTP check too (DOWN, and
    // on-marked-down shutdown-sessions cut the very sessions a drain should keep).
    let db = shared();
    let dir = TempDir::new("haproxy");
    let agent = agent_addr();
    let drain = dir.path("drain");
    let d = daemon(db, &dir, &["--agent-listen", &agent.to_string(), "--drain-file", &drain]);
    let server = format!(
        "check port {} {CHECK} agent-check agent-port {} agent-inter 300ms on-marked-down shutdown-sessions",
        d.addr.port(),
        agent.port()
    );
    let proxy = listen("mysql", "    option httpchk\n", db.port, &server);
    let frontend: u16 = proxy.split("bind 127.0.0.1:").nth(1).unwrap().split('\n').next().unwrap().parse().unwrap();
    let h = HaProxy::start(&dir, &proxy);
    h.wait_for("mysql", "db", "UP", Some("L7OK"));
    wait_for_agent(&h, "L7OK");
    let mut session = Session::open(frontend);
    assert!(session.ask("before"), "no session through HAProxy");

    fs::write(&drain, "").unwrap();
    // HAProxy names who set the admin state: the agent; the HTTP check stays L7OK.
    h.wait_for("mysql", "db", "DRAIN (agent)", Some("L7OK"));
    assert!(session.ask("draining"), "the drain cut the session");

    fs::write(dir.path("off"), "").unwrap();
    h.wait_for("mysql", "db", "DOWN", Some("L7STS"));
    assert!(!session.ask("down"), "DOWN with shutdown-sessions must cut the session");

    fs::remove_file(dir.path("off")).unwrap();
    fs::remove_file(&drain).unwrap();
    h.wait_for("mysql", "db", "UP", Some("L7OK"));
}

#[test]
fn httpchk_options_asterisk_from_the_haproxy_manual_is_up() {
    // The example in HAProxy's own manual; 0.1 answered 404 to the asterisk form.
    let db = shared();
    let dir = TempDir::new("haproxy");
    let d = daemon(db, &dir, &[]);
    let server = format!("check port {} {CHECK}", d.addr.port());
    let option = "    option httpchk OPTIONS * HTTP/1.1\\r\\nHost:\\ www\n";
    let h = HaProxy::start(&dir, &listen("mysql", option, db.port, &server));
    h.wait_for("mysql", "db", "UP", Some("L7OK"));
}

/// Waits until the agent has answered at least once with `agent_status`.
fn wait_for_agent(h: &HaProxy, agent_status: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let row = h.stat("mysql", "db");
        if row["agent_status"].trim_start_matches("* ") == agent_status {
            return;
        }
        assert!(Instant::now() < deadline, "agent_status {:?} last_agt {:?}", row["agent_status"], row["last_agt"]);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn agent_check_maint_file_puts_the_server_in_maint() {
    let db = shared();
    let dir = TempDir::new("haproxy");
    let agent = agent_addr();
    let maint = dir.path("maint");
    let _d = daemon(db, &dir, &["--agent-listen", &agent.to_string(), "--maint-file", &maint]);
    let server = format!("check {CHECK} agent-check agent-port {} agent-inter 300ms", agent.port());
    let h = HaProxy::start(&dir, &listen("mysql", "", db.port, &server));
    h.wait_for("mysql", "db", "UP", Some("L4OK"));
    wait_for_agent(&h, "L7OK");

    // `maint` sets the admin state MAINT (new traffic stops, health checks pause) while the agent
    // keeps being asked, so its `up ready` after the file goes is what brings the server back.
    fs::write(&maint, "").unwrap();
    h.wait_for("mysql", "db", "MAINT", None);
    fs::remove_file(&maint).unwrap();
    h.wait_for("mysql", "db", "UP", None);
}

#[test]
fn httpchk_primary_is_up_and_replica_is_down_on_a_plain_mariadb() {
    let db = shared();
    let dir = TempDir::new("haproxy");
    let d = daemon(db, &dir, &[]);
    let server = format!("check port {} {CHECK}", d.addr.port());
    let proxies = [
        listen("primary", "    option httpchk GET /primary\n", db.port, &server),
        listen("replica", "    option httpchk GET /replica?max_lag=10\n", db.port, &server),
    ]
    .concat();
    let h = HaProxy::start(&dir, &proxies);
    h.wait_for("primary", "db", "UP", Some("L7OK"));
    h.wait_for("replica", "db", "DOWN", Some("L7STS"));
    let replica = h.stat("replica", "db");
    assert_eq!(replica["check_code"], "503", "{replica:?}");
}
