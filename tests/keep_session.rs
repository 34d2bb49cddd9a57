//! `--keep-session`: one logged-in session per profile kind serves check after check, and a fresh
//! login replaces it when the server closed it (KILL, restart, wait_timeout), when it stalls, and
//! at least every SECONDS, so a changed password or a full max_connections still turns the check
//! down. Against a real MariaDB and the scriptable fake server.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fake::{Auth, FakeServer, Hostile, Reply, Scenario};
use common::mariadb::MariaDb;
use common::Daemon;

/// Generous for a noisy 2-core box, for checks that are not about timing.
const TIMEOUT_MS: &str = "10000";

/// How long past `--keep-session` a check may still answer from the old session: the bound of
/// "down within SECONDS", stretched for a loaded machine.
const LATE: Duration = Duration::from_secs(15);

/// A daemon checking `target` as haproxy with `password`, keeping sessions for `seconds`.
fn daemon(target: &str, password: &str, seconds: &str, extra: &[&str]) -> (Daemon, common::TempDir) {
    let dir = common::TempDir::new("keep");
    let off = dir.path("proxyoff");
    let mut args = vec!["--mysql", target, "--user", "haproxy", "--force-fail-file", &off, "--keep-session", seconds];
    args.extend_from_slice(extra);
    if !extra.contains(&"--timeout") {
        args.extend_from_slice(&["--timeout", TIMEOUT_MS]);
    }
    (Daemon::start(&args, Some(password)), dir)
}

/// `mysqlchk_db_logins_total` from /metrics.
fn logins(d: &Daemon) -> u64 {
    let r = d.get("/metrics");
    r.body
        .lines()
        .find_map(|l| l.strip_prefix("mysqlchk_db_logins_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no logins counter in {r:?}"))
}

fn assert_up(d: &Daemon, path: &str) {
    let r = d.get(path);
    assert_eq!(r.status, 200, "{r:?}");
}

/// Checks `/` until it answers 503, at most `within`; returns the last response.
fn until_down(d: &Daemon, within: Duration) -> common::Response {
    let deadline = Instant::now() + within;
    loop {
        let r = d.get("/");
        if r.status == 503 || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits up to 10 s for `f` to hold.
fn eventually(what: &str, f: impl Fn() -> bool) {
    common::eventually(what, Duration::from_secs(10), f);
}

#[test]
fn sequential_checks_share_one_login_per_profile_kind() {
    let db = MariaDb::start();
    let (d, _dir) = daemon(&db.addr(), "hapass", "60", &[]);
    let before = db.status("Connections");
    for _ in 0..10 {
        assert_up(&d, "/");
        assert_up(&d, "/primary");
    }
    assert_eq!(logins(&d), 2, "one login for / and one for /primary");
    // Two more: this status query's own connection counts as one, mysqlchk's logins as the rest.
    assert_eq!(db.status("Connections") - before, 2 + 1);
}

#[test]
fn a_killed_kept_session_is_replaced_by_a_fresh_login_without_a_down() {
    let db = MariaDb::start();
    let (d, _dir) = daemon(&db.addr(), "hapass", "60", &[]);
    assert_up(&d, "/");
    let id = db.sql("SELECT id FROM information_schema.processlist WHERE user = 'haproxy'");
    assert!(!id.is_empty() && !id.contains('\n'), "one kept session, found {id:?}");
    db.sql(&format!("KILL {id}"));
    assert_up(&d, "/");
    assert_eq!(logins(&d), 2);
    assert_up(&d, "/");
    assert_eq!(logins(&d), 2, "the new session is kept");
}

#[test]
fn checks_recover_at_once_after_a_server_restart() {
    let mut db = MariaDb::start();
    let (d, _dir) = daemon(&db.addr(), "hapass", "60", &[]);
    assert_up(&d, "/");
    db.restart();
    assert_up(&d, "/");
    assert_eq!(logins(&d), 2);
}

#[test]
fn a_session_closed_by_wait_timeout_is_replaced_without_a_down() {
    let db = MariaDb::start_with(&["--wait-timeout=2"]);
    let (d, _dir) = daemon(&db.addr(), "hapass", "60", &[]);
    assert_up(&d, "/");
    std::thread::sleep(Duration::from_secs(4));
    assert_up(&d, "/");
    assert_eq!(logins(&d), 2);
}

#[test]
fn a_changed_password_turns_the_check_down_within_keep_session() {
    let db = MariaDb::start();
    let (d, _dir) = daemon(&db.addr(), "hapass", "2", &[]);
    assert_up(&d, "/");
    db.sql(
        "ALTER USER 'haproxy'@'%' IDENTIFIED BY 'changed'; ALTER USER 'haproxy'@'localhost' IDENTIFIED BY 'changed'",
    );
    let changed = Instant::now();
    let r = until_down(&d, LATE);
    assert_eq!(r.status, 503, "still up {:?} after the password changed: {r:?}", changed.elapsed());
    assert!(r.body.contains("access denied (1045)"), "{r:?}");
}

/// `mariadb` clients that log in and sleep, holding connections; killed on drop.
struct Holders(Vec<Child>);

impl Holders {
    /// One more client holding a connection to `port`.
    fn spawn(port: u16) -> Child {
        Command::new("mariadb")
            .args(["--no-defaults", "--protocol=tcp", "-h", "127.0.0.1", "-P", &port.to_string(), "--user=nopass"])
            .args(["-e", "select sleep(600)"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the mariadb client")
    }
}

impl Drop for Holders {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_full_max_connections_turns_the_check_down_within_keep_session_and_keeps_it_down() {
    // MariaDB's smallest max_connections.
    let db = MariaDb::start_with(&["--max-connections=10"]);
    let (d, _dir) = daemon(&db.addr(), "hapass", "3", &[]);
    assert_up(&d, "/");
    // The kept session holds one place; nine sleeping clients take the others. A client refused
    // while a renewal briefly holds two places exits, and another takes its turn. (Root gets the
    // one place past max_connections that SUPER keeps.) A holder counts once it runs its query:
    // the processlist names a client's user while it still logs in, before the server checks
    // max_connections, and a client refused there leaves its place free.
    let mut holders = Holders((0..9).map(|_| Holders::spawn(db.port)).collect());
    let deadline = Instant::now() + Duration::from_secs(30);
    let running = "SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'nopass' AND command = 'Query'";
    while db.sql(running) != "9" {
        assert!(Instant::now() < deadline, "the holders did not connect");
        for h in &mut holders.0 {
            if h.try_wait().expect("try_wait").is_some() {
                *h = Holders::spawn(db.port);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = until_down(&d, LATE);
    assert_eq!(r.status, 503, "still up with max_connections reached: {r:?}");
    assert!(r.body.contains("(1040)"), "{r:?}");
    // The old session keeps its place: the server stays full, and the check down.
    for _ in 0..3 {
        let r = d.get("/");
        assert_eq!(r.status, 503, "{r:?}");
    }
    drop(holders);
    let deadline = Instant::now() + LATE;
    while d.get("/").status != 200 {
        assert!(Instant::now() < deadline, "no recovery once connections were free");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_kept_session_that_stalls_is_dropped_and_a_fresh_login_answers_in_time() {
    // Each connection answers one query, then stalls: every kept session stalls.
    let fake = FakeServer::start(Scenario::new(Auth::Native, "pw").stall_after(1));
    let (mut d, _dir) = daemon(&fake.target(), "pw", "60", &["--timeout", "2000"]);
    assert_up(&d, "/");
    for n in 2..=3 {
        let started = Instant::now();
        assert_up(&d, "/");
        assert!(started.elapsed() < Duration::from_millis(2000 + 1500), "took {:?}", started.elapsed());
        assert_eq!(fake.logins(), n);
    }
    assert!(d.child.try_wait().expect("try_wait").is_none(), "the daemon died");
}

#[test]
fn a_retired_session_says_quit_after_its_successor_logged_in() {
    let fake = FakeServer::start(Scenario::new(Auth::Native, "pw").whole_replies());
    let (d, _dir) = daemon(&fake.target(), "pw", "1", &[]);
    assert_up(&d, "/");
    assert_up(&d, "/");
    assert_eq!((fake.logins(), fake.quits()), (1, 0), "kept");
    std::thread::sleep(Duration::from_millis(1200));
    assert_up(&d, "/");
    assert_eq!(fake.logins(), 2, "renewed after --keep-session");
    eventually("the old session did not say QUIT", || fake.quits() == 1);
    // Idle for 1.2 s: the reply's delayed ACK, then QUIT with FIN.
    fake.assert_quit_segments(&[2]);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[test]
fn an_expired_session_keeps_its_place_while_its_successor_login_times_out() {
    let fake = FakeServer::start(Scenario::new(Auth::Native, "pw"));
    let (d, _dir) = daemon(&fake.target(), "pw", "1", &["--timeout", "1000"]);
    assert_up(&d, "/");
    std::thread::sleep(Duration::from_millis(1200));
    // Renewal time, and the server takes the new login but never answers it.
    fake.set_scenario(Scenario::hostile(Hostile::LoginSilent));
    let r = d.get("/");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("timeout"), "{r:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fake.quits(), 0, "the expired session was given up before a successor logged in");
    // Once a login succeeds, the old session goes.
    fake.set_scenario(Scenario::new(Auth::Native, "pw"));
    assert_up(&d, "/");
    eventually("the old session did not say QUIT", || fake.quits() == 1);
}

/// A fake whose every query gets ERR `code`.
fn erring_fake(code: u16) -> FakeServer {
    let reply = Reply::Error { code, state: "08S01".into(), message: format!("error {code}") };
    FakeServer::start(Scenario::new(Auth::Native, "pw").reply(reply))
}

#[test]
fn a_lasting_query_error_is_answered_on_the_kept_session_without_new_logins() {
    // A node without quorum (1047) or a missing privilege: the database's answer, which a fresh
    // login would only repeat.
    let fake = erring_fake(1047);
    let (d, _dir) = daemon(&fake.target(), "pw", "60", &[]);
    for _ in 0..4 {
        let r = d.get("/");
        assert_eq!(r.status, 503, "{r:?}");
        assert!(r.body.contains("1047"), "{r:?}");
    }
    assert_eq!((fake.logins(), fake.quits()), (1, 0), "one session for every check");
}

#[test]
fn an_error_about_the_connection_on_the_kept_session_means_a_fresh_login() {
    // 1927: the connection was killed while it ran the query; only a fresh login can tell
    // whether the database is fine.
    let fake = erring_fake(1927);
    let (d, _dir) = daemon(&fake.target(), "pw", "60", &[]);
    for _ in 0..3 {
        assert_eq!(d.get("/").status, 503);
    }
    assert_eq!(fake.logins(), 3, "each check after the first logs in afresh");
}

#[test]
fn sighup_drops_the_kept_sessions() {
    let fake = FakeServer::start(Scenario::new(Auth::Native, "pw").whole_replies());
    let dir = common::TempDir::new("keep-hup");
    let pw = dir.join("pw");
    std::fs::write(&pw, "pw\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let pw = pw.to_str().unwrap().to_string();
    let (d, _dir) = daemon(&fake.target(), "", "60", &["--password-file", &pw]);
    assert_sighup_renews_the_kept_session(&d, &fake);
}

/// One login kept over two checks; SIGHUP QUITs it, and the next check logs in afresh.
fn assert_sighup_renews_the_kept_session(d: &Daemon, fake: &FakeServer) {
    assert_up(d, "/");
    assert_up(d, "/");
    assert_eq!(fake.logins(), 1);
    // Idle long enough for the reply's delayed ACK to go before the QUIT (below).
    std::thread::sleep(Duration::from_millis(500));
    let ok = Command::new("kill").arg("-HUP").arg(d.child.id().to_string()).status().is_ok_and(|s| s.success());
    assert!(ok, "kill -HUP");
    eventually("SIGHUP did not retire the kept session", || fake.quits() == 1);
    fake.assert_quit_segments(&[2]);
    assert_up(d, "/");
    assert_eq!(fake.logins(), 2);
}

#[test]
fn sighup_drops_the_kept_sessions_with_the_password_from_the_environment() {
    // The shipped unit's way: MYSQLCHK_PASSWORD, no file to reread, and SIGHUP still QUITs.
    let fake = FakeServer::start(Scenario::new(Auth::Native, "pw").whole_replies());
    let (d, _dir) = daemon(&fake.target(), "pw", "60", &[]);
    assert_sighup_renews_the_kept_session(&d, &fake);
}

#[test]
fn a_stopping_daemon_quits_its_kept_sessions() {
    let fake = FakeServer::start(Scenario::new(Auth::Native, "pw").whole_replies());
    let (mut d, _dir) = daemon(&fake.target(), "pw", "60", &[]);
    assert_up(&d, "/");
    assert_eq!((fake.logins(), fake.quits()), (1, 0), "kept");
    std::thread::sleep(Duration::from_millis(500));
    let ok = Command::new("kill").arg("-TERM").arg(d.child.id().to_string()).status().is_ok_and(|s| s.success());
    assert!(ok, "kill -TERM");
    let status = d.child.wait().expect("wait");
    assert!(status.success(), "{status}");
    eventually("the kept session did not say QUIT at shutdown", || fake.quits() == 1);
    // Idle for 500 ms: the reply's delayed ACK, then QUIT with FIN.
    fake.assert_quit_segments(&[2]);
}
