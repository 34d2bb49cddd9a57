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

#[test]
fn agent_check_drains_on_force_fail_and_recovers() {
    let db = shared();
    let dir = TempDir::new("haproxy");
    let agent = agent_addr();
    let _d = daemon(db, &dir, &["--agent-listen", &agent.to_string()]);
    // The health check is a plain TCP connect to MariaDB; the agent alone says drain, so the
    // force-fail file takes new traffic away without marking the server DOWN.
    let server = format!("check {CHECK} agent-check agent-port {} agent-inter 300ms", agent.port());
    let h = HaProxy::start(&dir, &listen("mysql", "", db.port, &server));
    h.wait_for("mysql", "db", "UP", Some("L4OK"));
    wait_for_agent(&h, "L7OK");

    fs::write(dir.path("off"), "").unwrap();
    // HAProxy names who set the admin state: the agent.
    h.wait_for("mysql", "db", "DRAIN (agent)", None);
    fs::remove_file(dir.path("off")).unwrap();
    h.wait_for("mysql", "db", "UP", None);
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
