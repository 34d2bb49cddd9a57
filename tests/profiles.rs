//! The check profiles (`/primary`, `/replica`, `/galera`), single-flight and caching, and the
//! HAProxy agent protocol. Real MariaDB where a plain server can show the answer; the fake
//! server (answering the status queries with chosen rows) for replication and Galera states a
//! single throwaway server cannot be put in.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use common::fake::{Auth, FakeServer, Reply, Scenario};
use common::mariadb::MariaDb;
use common::{parse_response, Daemon, Response, TempDir};

/// Generous for a noisy 2-core box; no test here is about timing.
const TIMEOUT_MS: &str = "10000";

/// The fake's password for the haproxy user.
const FAKE_PW: &str = "pw";

/// One server for the tests that only read from it.
fn shared() -> &'static MariaDb {
    static DB: OnceLock<MariaDb> = OnceLock::new();
    DB.get_or_init(MariaDb::start)
}

/// One server for the tests that change it (read_only, stop) or count its connections; they take
/// turns. A test that died mid-way may have left it stopped, so the next one restarts it.
fn exclusive() -> MutexGuard<'static, MariaDb> {
    static DB: OnceLock<Mutex<MariaDb>> = OnceLock::new();
    let mut db = DB.get_or_init(|| Mutex::new(MariaDb::start())).lock().unwrap_or_else(|e| e.into_inner());
    if TcpStream::connect(db.addr()).is_err() {
        db.restart();
    }
    db
}

/// mysqlchk checking `target` as haproxy, with the force-fail file `<dir>/off` and `extra`.
fn daemon(target: &str, password: &str, dir: &TempDir, extra: &[&str]) -> Daemon {
    with_args(target, dir, extra, |args| Daemon::start(args, Some(password)))
}

/// Calls `start` with the flags of [`daemon`], `extra` appended.
fn with_args<T>(target: &str, dir: &TempDir, extra: &[&str], start: impl FnOnce(&[&str]) -> T) -> T {
    let off = dir.path("off");
    let mut args = vec!["--mysql", target, "--user", "haproxy", "--timeout", TIMEOUT_MS, "--force-fail-file", &off];
    args.extend_from_slice(extra);
    start(&args)
}

fn assert_status(r: &Response, status: u16, body_has: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert!(r.body.contains(body_has), "no {body_has:?} in {r:?}");
}

// --- real MariaDB -----------------------------------------------------------------------------

#[test]
fn primary_is_200_on_a_writable_mariadb_and_503_once_read_only_is_set() {
    let db = exclusive();
    let dir = TempDir::new("profiles");
    db.sql("SET GLOBAL read_only = 0");
    let d = daemon(&db.addr(), "hapass", &dir, &[]);
    assert_status(&d.get("/primary"), 200, "read_only is OFF");

    db.sql("SET GLOBAL read_only = 1");
    let r = d.get("/primary");
    // Restore before asserting, so a failure does not leave the next test a read-only server.
    db.sql("SET GLOBAL read_only = 0");
    assert_status(&r, 503, "read_only is ON");

    assert_status(&d.get("/primary"), 200, "read_only is OFF");
}

#[test]
fn replica_and_galera_fail_on_a_plain_mariadb_with_the_reason() {
    let db = shared();
    let dir = TempDir::new("profiles");
    let d = daemon(&db.addr(), "hapass", &dir, &[]);
    assert_status(&d.get("/replica"), 503, "not a replica");
    // MariaDB builds with wsrep report wsrep_ready OFF here; wsrep_on OFF is what counts.
    assert_status(&d.get("/galera"), 503, "wsrep not enabled (wsrep_on OFF)");
    // The plain check still passes on the same server.
    assert_status(&d.get("/"), 200, "MySQL is running.");
}

#[test]
fn unknown_path_is_404_listing_profiles_and_misspelt_parameter_is_400() {
    let db = shared();
    let dir = TempDir::new("profiles");
    let d = daemon(&db.addr(), "hapass", &dir, &[]);
    let r = d.get("/primry");
    assert_eq!(r.status, 404, "{r:?}");
    for profile in ["/primary", "/replica", "/galera"] {
        assert!(r.body.contains(profile), "404 body does not list {profile}: {r:?}");
    }
    // A typo must not silently fall back to the default lag.
    assert_eq!(d.get("/replica?max_lga=1").status, 400);
    assert_eq!(d.get("/replica?max_lag=ten").status, 400);
}

// --- fake server: replication and Galera states -----------------------------------------------

const REPLICA_SQL: &str = "SHOW REPLICA STATUS";
const SLAVE_SQL: &str = "SHOW SLAVE STATUS";
const VARIABLES_SQL: &str = "SHOW GLOBAL VARIABLES";
const STATUS_SQL: &str = "SHOW GLOBAL STATUS";

/// One row of SHOW REPLICA STATUS (MySQL 8.0.22+ names) or SHOW SLAVE STATUS (MariaDB and older
/// MySQL names), with a few of the real columns around the ones that matter.
fn replica_status(mysql8: bool, io: &str, sql: &str, lag: Option<&str>) -> Reply {
    let columns = if mysql8 {
        ["Replica_IO_State", "Source_Host", "Replica_IO_Running", "Replica_SQL_Running", "Seconds_Behind_Source"]
    } else {
        ["Slave_IO_State", "Master_Host", "Slave_IO_Running", "Slave_SQL_Running", "Seconds_Behind_Master"]
    };
    let row = vec![
        Some("Waiting for source to send event".into()),
        Some("10.0.0.1".into()),
        Some(io.into()),
        Some(sql.into()),
        lag.map(Into::into),
    ];
    Reply::Rows { columns: columns.map(Into::into).to_vec(), rows: vec![row] }
}

/// SHOW ... WHERE Variable_name IN (...) rows.
fn variables(pairs: &[(&str, &str)]) -> Reply {
    Reply::Rows {
        columns: vec!["Variable_name".into(), "Value".into()],
        rows: pairs.iter().map(|(k, v)| vec![Some(k.to_string()), Some(v.to_string())]).collect(),
    }
}

fn no_rows(columns: &[&str]) -> Reply {
    Reply::Rows { columns: columns.iter().map(|c| c.to_string()).collect(), rows: vec![] }
}

/// What MySQL < 8.0.22 and MariaDB < 10.5 answer to SHOW REPLICA STATUS.
fn parse_error() -> Reply {
    Reply::Error {
        code: 1064,
        state: "42000".into(),
        message: "You have an error in your SQL syntax; check the manual near 'REPLICA STATUS'".into(),
    }
}

fn scenario() -> Scenario {
    Scenario::new(Auth::Native, FAKE_PW).user("haproxy")
}

/// Runs each `(name, scenario, path, status, body_has)` against one fake and one daemon: the fake
/// takes the case's scenario (its rules answer the status queries, `--query` gets `fake-1`), then
/// `GET path` must give `status` and a body containing `body_has`. No cache, so every case is a
/// fresh login that sees its own scenario.
fn run_cases(cases: &[(&str, Scenario, &str, u16, &str)]) -> FakeServer {
    let fake = FakeServer::start(scenario());
    let dir = TempDir::new("profiles");
    let d = daemon(&fake.target(), FAKE_PW, &dir, &[]);
    for (name, scenario, path, status, body_has) in cases {
        fake.set_scenario(scenario.clone());
        let r = d.get(path);
        assert_eq!(r.status, *status, "case {name}: GET {path}: {r:?}");
        assert!(r.body.contains(body_has), "case {name}: GET {path}: no {body_has:?} in {r:?}");
    }
    assert_eq!(fake.violations(), Vec::<String>::new());
    fake
}

#[test]
fn replica_needs_both_threads_running_and_lag_within_max_lag_under_either_column_naming() {
    let mut cases = Vec::new();
    for (mysql8, names) in [(true, "MySQL 8 names"), (false, "Slave_* names")] {
        let sql = if mysql8 { REPLICA_SQL } else { SLAVE_SQL };
        // Old servers reject SHOW REPLICA STATUS; new ones accept it, and the fake answers both.
        let with = |io: &str, lag: Option<&str>| {
            let s = scenario().on(sql, replica_status(mysql8, io, "Yes", lag));
            if mysql8 {
                s
            } else {
                s.on(REPLICA_SQL, parse_error())
            }
        };
        cases.extend([
            (names, with("Yes", Some("3")), "/replica?max_lag=10", 200, "replica lag 3 s <= 10 s"),
            (names, with("Yes", Some("30")), "/replica?max_lag=10", 503, "replica lag 30 s > 10 s"),
            (names, with("Yes", Some("30")), "/replica", 200, "replica lag 30 s <= 30 s"),
            (names, with("Yes", Some("31")), "/replica", 503, "replica lag 31 s > 30 s"),
            (names, with("Yes", None), "/replica?max_lag=10", 503, "replica lag unknown"),
            (names, with("Connecting", Some("0")), "/replica", 503, "replica IO thread not running (Connecting)"),
        ]);
    }
    let sql_stopped = scenario().on(REPLICA_SQL, replica_status(true, "Yes", "No", Some("0")));
    cases.push(("SQL thread stopped", sql_stopped, "/replica", 503, "replica SQL thread not running (No)"));
    let empty = scenario().on(REPLICA_SQL, no_rows(&["Replica_IO_Running", "Seconds_Behind_Source"]));
    cases.push(("no rows", empty, "/replica", 503, "not a replica"));
    run_cases(&cases);
}

#[test]
fn replica_falls_back_to_show_slave_status_when_show_replica_status_is_a_syntax_error() {
    let old = scenario().on(REPLICA_SQL, parse_error()).on(SLAVE_SQL, replica_status(false, "Yes", "Yes", Some("2")));
    let fake = run_cases(&[("1064 fallback", old, "/replica?max_lag=10", 200, "replica lag 2 s <= 10 s")]);
    let queries = fake.queries();
    let replica = queries.iter().position(|q| q.contains(REPLICA_SQL));
    let slave = queries.iter().position(|q| q.contains(SLAVE_SQL));
    assert!(matches!((replica, slave), (Some(r), Some(s)) if r < s), "queries: {queries:?}");

    // Any other error is the answer, not a reason to try the old syntax.
    let denied = Reply::Error { code: 1227, state: "42000".into(), message: "Access denied".into() };
    let refused = scenario().on(REPLICA_SQL, denied).on(SLAVE_SQL, replica_status(false, "Yes", "Yes", Some("0")));
    let fake = run_cases(&[("1227 no fallback", refused, "/replica", 503, "query failed (1227)")]);
    assert!(!fake.queries().iter().any(|q| q.contains(SLAVE_SQL)), "queries: {:?}", fake.queries());
}

#[test]
fn galera_needs_synced_and_primary_and_accepts_donor_only_when_asked() {
    let wsrep = |state: &str, cluster: &str| galera(state, cluster, "ON");
    run_cases(&[
        ("synced", wsrep("4", "Primary"), "/galera", 200, "wsrep_local_state 4 (Synced), cluster Primary"),
        ("donor", wsrep("2", "Primary"), "/galera", 503, "wsrep_local_state 2 (Donor/Desynced)"),
        ("donor ok", wsrep("2", "Primary"), "/galera?donor_ok=1", 200, "wsrep_local_state 2 (Donor/Desynced)"),
        ("joining", wsrep("1", "Primary"), "/galera?donor_ok=1", 503, "wsrep_local_state 1 (Joining)"),
        ("non-primary", wsrep("0", "non-Primary"), "/galera", 503, "wsrep_cluster_status non-Primary"),
        ("not ready", galera("4", "Primary", "OFF"), "/galera", 503, "wsrep_ready OFF"),
        ("no wsrep", scenario().on(STATUS_SQL, variables(&[])), "/galera", 503, "wsrep not enabled"),
    ]);
}

/// A Galera node: `wsrep_on` ON, queries not rejected, and this status.
fn galera(state: &str, cluster: &str, ready: &str) -> Scenario {
    scenario().on(VARIABLES_SQL, variables(&[("wsrep_on", "ON"), ("wsrep_reject_queries", "NONE")])).on(
        STATUS_SQL,
        variables(&[("wsrep_local_state", state), ("wsrep_cluster_status", cluster), ("wsrep_ready", ready)]),
    )
}

#[test]
fn a_node_refusing_queries_is_down_on_every_profile_though_select_hostname_answers() {
    // What a Galera node without quorum or with wsrep_reject_queries answers to any query
    // touching a table; `select @@hostname` (the default --query) still answers there.
    let refused = Reply::Error {
        code: 1047,
        state: "08S01".into(),
        message: "WSREP has not yet prepared node for application use".into(),
    };
    let node = || {
        scenario()
            .on("mysqlchk_probe", refused.clone())
            .on(VARIABLES_SQL, variables(&[("read_only", "OFF")]))
            .on(REPLICA_SQL, replica_status(true, "Yes", "Yes", Some("0")))
    };
    run_cases(&[
        ("default", node(), "/", 503, "node refuses queries (1047)"),
        ("primary", node(), "/primary", 503, "node refuses queries (1047)"),
        ("replica", node(), "/replica", 503, "node refuses queries (1047)"),
        (
            "taking queries",
            scenario().on(VARIABLES_SQL, variables(&[("read_only", "OFF")])),
            "/primary",
            200,
            "read_only is OFF",
        ),
    ]);
}

#[test]
fn galera_donor_ok_flag_accepts_a_donor_for_every_request() {
    let fake = FakeServer::start(galera("2", "Primary", "ON"));
    let dir = TempDir::new("profiles");
    let d = daemon(&fake.target(), FAKE_PW, &dir, &["--galera-donor-ok"]);
    assert_status(&d.get("/galera"), 200, "Donor/Desynced");
    assert_status(&d.get("/galera?donor_ok=0"), 503, "wsrep_local_state 2 (Donor/Desynced)");
}

#[test]
fn primary_fails_on_read_only_or_super_read_only() {
    let vars =
        |ro: &str, sro: &str| scenario().on(VARIABLES_SQL, variables(&[("read_only", ro), ("super_read_only", sro)]));
    run_cases(&[
        ("writable", vars("OFF", "OFF"), "/primary", 200, "read_only is OFF"),
        ("read_only", vars("ON", "OFF"), "/primary", 503, "read_only is ON"),
        ("super_read_only", vars("OFF", "ON"), "/primary", 503, "super_read_only is ON"),
    ]);
}

#[test]
fn primary_reads_wsrep_ready_where_dirty_reads_let_the_probe_through() {
    // wsrep_dirty_reads=ON: a node without quorum answers the probe instead of 1047.
    let node = |dirty: &str, ready: &str| {
        scenario()
            .on(VARIABLES_SQL, variables(&[("read_only", "OFF"), ("wsrep_on", "ON"), ("wsrep_dirty_reads", dirty)]))
            .on(STATUS_SQL, variables(&[("wsrep_ready", ready)]))
    };
    let fake = run_cases(&[
        ("dirty reads, no quorum", node("ON", "OFF"), "/primary", 503, "wsrep_ready OFF"),
        ("dirty reads, ready", node("ON", "ON"), "/primary", 200, "read_only is OFF"),
    ]);
    assert_eq!(fake.queries().iter().filter(|q| q.contains(STATUS_SQL)).count(), 2);
    // Without dirty reads the probe's 1047 tells, and no status is read.
    let fake = run_cases(&[
        ("no dirty reads", node("OFF", "OFF"), "/primary", 200, "read_only is OFF"),
        ("not galera", scenario().on(VARIABLES_SQL, variables(&[("read_only", "OFF")])), "/primary", 200, "OFF"),
    ]);
    assert!(!fake.queries().iter().any(|q| q.contains(STATUS_SQL)), "{:?}", fake.queries());
}

// --- single-flight and cache ------------------------------------------------------------------

/// Sends `GET path` on an already connected stream and reads the whole response.
fn exchange(mut s: TcpStream, path: &str) -> Response {
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_response(raw)
}

#[test]
fn two_hundred_simultaneous_checks_share_a_few_logins() {
    const CLIENTS: usize = 200;
    let db = exclusive();
    let dir = TempDir::new("profiles");
    // A check that takes a second: on a busy 2-core box 200 threads need anything from a few to
    // hundreds of milliseconds to send their requests, and a one-millisecond login would let
    // that spread alone decide how many logins there are. With a one-second check, every request
    // sent within a second of the first shares its login.
    let d = daemon(&db.addr(), "hapass", &dir, &["--query", "select sleep(1)"]);
    let before = db.status("Connections");

    // Connect first, then send all requests at once from behind a barrier, so they arrive close
    // together rather than trickling in as threads start.
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let addr = d.addr;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let barrier = barrier.clone();
            let stream = TcpStream::connect(addr).unwrap();
            std::thread::spawn(move || {
                barrier.wait();
                exchange(stream, "/")
            })
        })
        .collect();
    let responses: Vec<Response> = clients.into_iter().map(|c| c.join().unwrap()).collect();

    let after = db.status("Connections");
    // `Connections` counts every connection attempt, including the mariadb client that read it:
    // `before` already counted its own, `after` counts one more.
    let logins = after - before - 1;
    let failed: Vec<_> = responses.iter().filter(|r| r.status != 200).collect();
    assert!(failed.is_empty(), "{} of {CLIENTS} checks failed, e.g. {:?}", failed.len(), failed[0]);
    // A request arriving while a login is in flight waits for it and shares its answer, so each
    // login serves every request that arrived before it finished: the count is 1 plus the number
    // of seconds the arrivals are spread over, 1 or 2 in practice. 10 leaves room for a box so
    // loaded that clients straggle for several seconds, and is still far below the 200 logins a
    // check-per-request daemon would make.
    assert!(logins >= 1, "no login at all ({before} -> {after})");
    assert!(logins <= 10, "{CLIENTS} simultaneous checks made {logins} logins");
}

#[test]
fn cached_verdict_saves_logins_but_force_fail_file_still_drains_at_once() {
    let db = exclusive();
    let dir = TempDir::new("profiles");
    let d = daemon(&db.addr(), "hapass", &dir, &["--cache-ms", "60000"]);
    let before = db.status("Connections");
    for _ in 0..20 {
        assert_status(&d.get("/"), 200, "MySQL is running.");
    }
    // The force-fail file is read on every request: the very next answer is 503, cache or not,
    // and removing it brings the cached verdict straight back.
    std::fs::write(dir.path("off"), "").unwrap();
    assert_status(&d.get("/"), 503, "force-fail file present");
    std::fs::remove_file(dir.path("off")).unwrap();
    assert_status(&d.get("/"), 200, "MySQL is running.");
    let after = db.status("Connections");
    // As in the single-flight test, `after` counts the status query that read it.
    let logins = after - before - 1;
    assert_eq!(logins, 1, "22 checks within the cache lifetime made {logins} logins");
}

// --- agent protocol -------------------------------------------------------------------------

/// A daemon with an agent listener; returns it and the agent address.
fn agent_daemon(target: &str, password: &str, dir: &TempDir, extra: &[&str]) -> (Daemon, SocketAddr) {
    with_args(target, dir, extra, |args| Daemon::start_with_agent(args, Some(password)))
}

/// Connects to the agent port, sends `line` (nothing if empty) and reads its answer to the end.
fn agent(addr: SocketAddr, line: &str) -> String {
    // Both listeners are bound before either serves, but allow for the moment in between.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("agent port {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn agent_answers_up_ready_up_drain_down_and_maint_from_the_operator_files() {
    let db = shared();
    let dir = TempDir::new("profiles");
    let (maint, drain) = (dir.path("maint"), dir.path("drain"));
    let (_d, addr) = agent_daemon(&db.addr(), "hapass", &dir, &["--maint-file", &maint, "--drain-file", &drain]);
    // HAProxy without agent-send says nothing: the agent answers the default check.
    assert_eq!(agent(addr, ""), "up ready\n");
    assert_eq!(agent(addr, "primary\n"), "up ready\n");
    assert_eq!(agent(addr, "/primary\n"), "up ready\n");
    let replica = agent(addr, "replica?max_lag=10\n");
    assert_eq!(replica, "down #not a replica\n");

    // The drain file: healthy but no new sessions; a broken profile is still down.
    std::fs::write(&drain, "").unwrap();
    assert_eq!(agent(addr, ""), "up drain\n");
    assert_eq!(agent(addr, "replica\n"), "down #not a replica\n");
    std::fs::remove_file(&drain).unwrap();
    assert_eq!(agent(addr, ""), "up ready\n");

    // The force-fail file is a hard fail.
    std::fs::write(dir.path("off"), "").unwrap();
    assert_eq!(agent(addr, ""), "down #force-fail file present\n");
    std::fs::remove_file(dir.path("off")).unwrap();
    assert_eq!(agent(addr, ""), "up ready\n");

    std::fs::write(&maint, "").unwrap();
    assert_eq!(agent(addr, ""), "maint\n");
    assert_eq!(agent(addr, "primary\n"), "maint\n");
    std::fs::remove_file(&maint).unwrap();
    assert_eq!(agent(addr, ""), "up ready\n");
}

#[test]
fn agent_says_down_with_a_reason_when_the_server_is_stopped() {
    let mut db = exclusive();
    let dir = TempDir::new("profiles");
    let (_d, addr) = agent_daemon(&db.addr(), "hapass", &dir, &[]);
    assert_eq!(agent(addr, ""), "up ready\n");

    db.stop();
    let answer = agent(addr, "");
    let second = agent(addr, "primary\n");
    db.restart();
    assert!(answer.starts_with("down #") && answer.ends_with('\n'), "{answer:?}");
    assert!(answer.contains("connection refused"), "{answer:?}");
    assert!(second.starts_with("down #"), "{second:?}");
    assert_eq!(agent(addr, ""), "up ready\n");
}
