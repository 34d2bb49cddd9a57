//! The mysqlchk binary against a real MariaDB: logins with each auth plugin, both transports,
//! and the failure modes HAProxy cares about (stopped, frozen, forced off), plus the promise that
//! checks disconnect cleanly instead of piling up aborted-connection counters.

mod common;

use common::mariadb::MariaDb;
use common::{once, Daemon};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Generous for a noisy 2-core box, for tests that are not about timing.
const TIMEOUT_MS: &str = "10000";

/// One server for the tests that neither stop nor freeze it, nor count its connections.
fn shared() -> &'static MariaDb {
    static DB: OnceLock<MariaDb> = OnceLock::new();
    DB.get_or_init(MariaDb::start)
}

/// Common flags: target `mysql`, log in as `user`, and a force-fail file that does not exist
/// (the default `/dev/shm/proxyoff` might exist on the host), followed by `extra`.
fn flags(db: &MariaDb, mysql: &str, user: &str, extra: &[&str]) -> Vec<String> {
    let off = db.dir.join("proxyoff");
    let mut v: Vec<String> = vec![
        "--mysql".into(),
        mysql.into(),
        "--user".into(),
        user.into(),
        "--force-fail-file".into(),
        off.to_str().unwrap().into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs `--once` against `target` as `user` (password `pw`) with `extra` flags, asserts it
/// exits 0 (OK) and returns its stdout, `OK - <value> (<ms> ms)`.
fn once_ok(db: &MariaDb, target: &str, user: &str, pw: Option<&str>, extra: &[&str]) -> String {
    let (code, out) = once(&strs(&flags(db, target, user, extra)), pw);
    assert_eq!(code, 0, "{out}");
    out
}

/// Asks for the account MariaDB matched, which tells the plugin and transport apart.
const CURRENT_USER: &[&str] = &["--timeout", TIMEOUT_MS, "--query", "select current_user()"];

/// A daemon checking `db` over TCP as haproxy with `password`.
fn haproxy_daemon(db: &MariaDb, password: &str, extra: &[&str]) -> Daemon {
    Daemon::start(&strs(&flags(db, &db.addr(), "haproxy", extra)), Some(password))
}

#[test]
fn correct_native_login_gives_200_with_hostname() {
    let db = shared();
    let hostname = db.sql("select @@hostname");
    let d = haproxy_daemon(db, "hapass", &["--timeout", TIMEOUT_MS]);
    let r = d.get("/");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("MySQL is running."), "{r:?}");
    assert!(r.body.contains(&hostname), "no {hostname:?} in {r:?}");
}

#[test]
fn wrong_password_gives_503_access_denied() {
    let db = shared();
    let d = haproxy_daemon(db, "not-hapass", &["--timeout", TIMEOUT_MS]);
    let r = d.get("/");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("MySQL is *down*."), "{r:?}");
    assert!(r.body.contains("access denied (1045)"), "{r:?}");
    assert!(!r.raw.windows(10).any(|w| w == b"not-hapass"), "password echoed: {r:?}");
}

#[test]
fn ed25519_user_logs_in() {
    let db = shared();
    let out = once_ok(db, &db.addr(), "eduser", Some("edpass"), CURRENT_USER);
    assert!(out.starts_with("OK - eduser@%"), "{out}");
}

#[test]
fn user_without_password_logs_in() {
    let db = shared();
    let out = once_ok(db, &db.addr(), "nopass", None, CURRENT_USER);
    assert!(out.starts_with("OK - nopass@%"), "{out}");
}

#[test]
fn unix_socket_target_works() {
    let db = shared();
    let socket = db.socket.to_str().unwrap();
    // Over the socket MariaDB matches the @'localhost' account; over TCP it would be @'%'.
    let out = once_ok(db, socket, "haproxy", Some("hapass"), CURRENT_USER);
    assert!(out.starts_with("OK - haproxy@localhost"), "{out}");
}

#[test]
fn database_flag_selects_the_database() {
    let db = shared();
    let extra = ["--timeout", TIMEOUT_MS, "--database", "chk", "--query", "select database()"];
    let out = once_ok(db, &db.addr(), "haproxy", Some("hapass"), &extra);
    assert!(out.starts_with("OK - chk "), "{out}");
}

#[test]
fn stopped_server_gives_503_quickly_and_restarted_gives_200() {
    let mut db = MariaDb::start();
    let d = haproxy_daemon(&db, "hapass", &["--timeout", TIMEOUT_MS]);
    assert_eq!(d.get("/").status, 200);

    db.stop();
    let t = Instant::now();
    let r = d.get("/");
    let elapsed = t.elapsed();
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("connection refused"), "{r:?}");
    // A refused connect is immediate; only a bug would wait for the 10 s timeout.
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");

    db.restart();
    let r = d.get("/");
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn frozen_server_gives_503_within_timeout() {
    let db = MariaDb::start();
    let d = haproxy_daemon(&db, "hapass", &["--timeout", "800"]);
    // The short timeout is for the frozen check; a healthy one may miss it on a loaded machine
    // now and then, so those are retried (a daemon that never answers 200 still fails).
    let healthy = |what: &str| common::eventually(what, Duration::from_secs(10), || d.get("/").status == 200);
    healthy("up before the freeze");

    // The kernel still completes the TCP handshake for a stopped process, so this exercises the
    // read deadline, not the connect.
    db.freeze();
    let t = Instant::now();
    let r = d.get("/");
    let elapsed = t.elapsed();
    db.thaw();
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("timeout") || r.body.contains("timed out"), "{r:?}");
    assert!(elapsed < Duration::from_millis(800 + 1500), "took {elapsed:?}");

    // The abandoned half-login must not wedge the daemon.
    healthy("up after the thaw");
}

#[test]
fn fifty_checks_leave_aborted_counters_unchanged() {
    // Its own server: a wrong-password test on the shared one bumps Aborted_connects.
    let db = MariaDb::start();
    let d = haproxy_daemon(&db, "hapass", &["--timeout", TIMEOUT_MS]);
    let before = (db.status("Aborted_clients"), db.status("Aborted_connects"));
    for i in 0..50 {
        let r = d.get("/");
        assert_eq!(r.status, 200, "check {i}: {r:?}");
    }
    // MariaDB counts an abort when its thread notices the dropped connection, which can be
    // after our response; wait until only the status query itself is connected.
    let deadline = Instant::now() + Duration::from_secs(15);
    while db.status("Threads_connected") > 1 {
        assert!(Instant::now() < deadline, "mysqlchk connections still open");
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = (db.status("Aborted_clients"), db.status("Aborted_connects"));
    assert_eq!(before, after, "(Aborted_clients, Aborted_connects) changed");
}

#[test]
fn force_fail_file_gives_503_without_a_login() {
    // Its own server, so no other test's logins move Connections.
    let db = MariaDb::start();
    std::fs::write(db.dir.join("proxyoff"), "").unwrap();
    let d = haproxy_daemon(&db, "hapass", &["--timeout", TIMEOUT_MS]);
    let before = db.status("Connections");
    let r = d.get("/");
    let after = db.status("Connections");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("MySQL is *down*."), "{r:?}");
    // The one extra connection is the status query that read `after`.
    assert_eq!(after, before + 1, "mysqlchk logged in despite the force-fail file");
}

#[test]
fn the_probe_rides_along_with_the_query_in_one_com_query_unless_it_has_a_semicolon() {
    let db = MariaDb::start();
    db.sql("SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = ON");
    let logged = || {
        db.sql(
            "SELECT REPLACE(CONVERT(argument USING utf8mb4), '\\n', ' ') FROM mysql.general_log \
             WHERE command_type = 'Query' AND user_host LIKE 'haproxy%' ORDER BY event_time",
        )
    };
    // One COM_QUERY, and a trailing comment must not eat the probe; with a semicolon, two.
    let cases = [
        ("select @@port -- why", "select @@port -- why ;SELECT 1 FROM (SELECT 1) AS mysqlchk_probe"),
        ("select @@port; -- why", "select @@port; -- why\nSELECT 1 FROM (SELECT 1) AS mysqlchk_probe"),
    ];
    for (query, queries_logged) in cases {
        db.sql("TRUNCATE mysql.general_log");
        let out = once_ok(&db, &db.addr(), "haproxy", Some("hapass"), &["--timeout", TIMEOUT_MS, "--query", query]);
        assert!(out.starts_with(&format!("OK - {} (", db.port)), "{out}");
        assert_eq!(logged(), queries_logged, "--query {query:?}");
    }
}
