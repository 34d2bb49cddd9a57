//! mysqlchk behind a real HAProxy (`tests/common/haproxy.rs`): HTTP checks and agent checks
//! against a real MariaDB, read back from HAProxy's own `show stat` on its admin socket.

mod common;

use std::fs;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::haproxy::{HaProxy, CHECK, DEADLINE};
use common::mariadb::MariaDb;
use common::{free_port, Daemon, TempDir};

/// One server for the tests that neither stop nor change it.
fn shared() -> &'static MariaDb {
    static DB: OnceLock<MariaDb> = OnceLock::new();
    DB.get_or_init(MariaDb::start)
}

/// mysqlchk checking `db` as haproxy with the force-fail file `<dir>/off`, plus `extra`.
fn daemon(db: &MariaDb, dir: &TempDir, extra: &[&str]) -> Daemon {
    db.checker(dir, extra)
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
    let drain = dir.path("drain");
    let (d, agent) = db.checker_with_agent(&dir, &["--drain-file", &drain]);
    let server = format!(
        "check port {} {CHECK} agent-check agent-port {} agent-inter 300ms on-marked-down shutdown-sessions",
        d.addr.port(),
        agent.port()
    );
    let proxy = listen("mysql", "    option httpchk\n", db.port, &server);
    let h = HaProxy::start(&dir, &proxy);
    let frontend = h.bind_port("mysql");
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
    let maint = dir.path("maint");
    let (_d, agent) = db.checker_with_agent(&dir, &["--maint-file", &maint]);
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

/// Through the TLS build: HAProxy marks a `require_secure_transport` MariaDB UP via
/// VERIFY_IDENTITY, and DOWN once the CA file is swapped for an unrelated CA and SIGHUP rereads it.
#[cfg(feature = "tls")]
#[test]
fn httpchk_over_verified_tls_goes_down_when_sighup_rereads_a_wrong_ca() {
    use common::mariadb::{Options, TlsFiles};
    let pki = common::pki::Pki::new();
    let db = MariaDb::start_options(Options {
        tls: Some(TlsFiles { ca: pki.ca.clone(), cert: pki.server.cert.clone(), key: pki.server.key.clone() }),
        require_secure_transport: true,
        ..Options::default()
    });
    let dir = TempDir::new("haproxy");
    let ca = dir.path("ca.pem");
    fs::copy(&pki.ca, &ca).unwrap();
    let d = daemon(&db, &dir, &["--ssl-mode", "VERIFY_IDENTITY", "--ssl-ca", &ca]);
    let server = format!("check port {} {CHECK}", d.addr.port());
    let h = HaProxy::start(&dir, &listen("mysql", "    option httpchk\n", db.port, &server));
    h.wait_for("mysql", "db", "UP", Some("L7OK"));

    fs::copy(&pki.other_ca, &ca).unwrap();
    let hup = Command::new("kill").args(["-HUP", &d.child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    h.wait_for("mysql", "db", "DOWN", Some("L7STS"));
    let r = d.get("/");
    assert!(r.body.contains("TLS certificate not trusted"), "{r:?}");
}

#[test]
fn haproxy_given_a_port_someone_else_holds_starts_on_another() {
    // The race the retry is for, made certain: the port is taken before HAProxy binds it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new("haproxy-rebind");
    let h = HaProxy::start(&dir, &format!("listen p\n    bind 127.0.0.1:{port}\n    server s 127.0.0.1:9\n"));
    let moved = h.bind_port("p");
    assert_ne!(moved, port, "bind_port names the port HAProxy was restarted on");
    assert!(common::listens_on(h.pid(), moved), "HAProxy listens on {moved}");
}
