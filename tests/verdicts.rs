//! Regression tests for wrong verdicts found in a review of 0.1: each fails on 0.1 and passes
//! now. A late or split request, single-flight waiters, multi-source replicas, huge status rows,
//! unbounded reasons, state keyed by kind, bad flags accepted silently. (The drain recipe and
//! `OPTIONS *` are proven with a real HAProxy in `tests/haproxy.rs`; the address race in
//! `a_dead_first_address_costs_a_quarter_second_not_the_deadline` below.)

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fake::{Auth, FakeServer, Reply, Scenario};
use common::mariadb::MariaDb;
use common::{free_port, mysqlchk, parse_response, Daemon, Response, TempDir};

/// Generous for a noisy 2-core box where no test below is about speed.
const TIMEOUT_MS: &str = "10000";

fn rows(columns: &[&str], rows: &[&[Option<&str>]]) -> Reply {
    Reply::Rows {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows: rows.iter().map(|r| r.iter().map(|v| v.map(str::to_string)).collect()).collect(),
    }
}

/// A writable-looking fake that says `read_only` is ON: `/primary` must be 503, `/` 200.
fn read_only_fake() -> FakeServer {
    let read_only = rows(&["Variable_name", "Value"], &[&[Some("read_only"), Some("ON")]]);
    FakeServer::start(Scenario::new(Auth::Native, "pw").on("read_only", read_only))
}

/// mysqlchk against `fake` with an agent listener; `extra` flags appended.
fn daemon(fake: &FakeServer, dir: &TempDir, extra: &[&str]) -> (Daemon, SocketAddr) {
    let (target, off, drain) = (fake.target(), dir.path("off"), dir.path("drain"));
    let mut args = vec!["--mysql", &target, "--timeout", TIMEOUT_MS, "--force-fail-file", &off, "--drain-file", &drain];
    args.extend(["--log-level", "error"]);
    args.extend_from_slice(extra);
    Daemon::start_with_agent(&args, Some("pw"))
}

/// Connects, then sends each piece after its delay, then reads to the end.
fn exchange(addr: SocketAddr, pieces: &[(Duration, &str)]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for (delay, piece) in pieces {
        std::thread::sleep(*delay);
        s.write_all(piece.as_bytes()).unwrap();
    }
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

const NOW: Duration = Duration::ZERO;
/// Later than 0.1's silent wait (1 s) and the first retransmission of a lost segment.
const LATE: Duration = Duration::from_millis(1200);
const PAUSE: Duration = Duration::from_millis(400);

fn http(text: String) -> Response {
    parse_response(text.into_bytes())
}

// --- 1. a late or split request is answered for what it asks ------------------------------------

#[test]
fn a_late_http_request_is_judged_as_its_own_profile_not_the_default() {
    let fake = read_only_fake();
    let dir = TempDir::new("verdicts");
    let (d, _) = daemon(&fake, &dir, &[]);
    let at_once = http(exchange(d.addr, &[(NOW, "GET /primary HTTP/1.0\r\n\r\n")]));
    assert_eq!(at_once.status, 503, "{at_once:?}");
    let late = http(exchange(d.addr, &[(LATE, "GET /primary HTTP/1.0\r\n\r\n")]));
    assert_eq!(late.status, 503, "a request sent {LATE:?} after connecting: {late:?}");
    assert!(late.body.contains("read_only is ON"), "{late:?}");
    let split = http(exchange(d.addr, &[(NOW, "GET /pri"), (LATE, "mary HTTP/1.0\r\n\r\n")]));
    assert_eq!(split.status, 503, "{split:?}");
    // A silent client still gets the default check.
    let silent = d.request(b"");
    assert_eq!(silent.status, 200, "{silent:?}");
}

#[test]
fn an_agent_line_sent_late_or_split_is_judged_as_sent() {
    let fake = read_only_fake();
    let dir = TempDir::new("verdicts");
    let (_d, agent) = daemon(&fake, &dir, &[]);
    let down = "down #read_only is ON\n";
    assert_eq!(exchange(agent, &[(NOW, "primary\n")]), down);
    assert_eq!(exchange(agent, &[(PAUSE, "primary\n")]), down, "sent after {PAUSE:?}");
    assert_eq!(exchange(agent, &[(LATE, "primary\n")]), down, "sent after {LATE:?}");
    assert_eq!(exchange(agent, &[(NOW, "prim"), (PAUSE, "ary\n")]), down, "split");
    // Nothing at all: the agent profile, here the default.
    assert_eq!(exchange(agent, &[]), "up ready\n");
}

#[test]
fn an_agent_without_agent_send_checks_the_agent_profile() {
    let fake = read_only_fake();
    let dir = TempDir::new("verdicts");
    let (_d, agent) = daemon(&fake, &dir, &["--agent-profile", "/primary"]);
    assert_eq!(exchange(agent, &[]), "down #read_only is ON\n");
    assert_eq!(exchange(agent, &[(NOW, "\n")]), "down #read_only is ON\n", "an empty line means the same");
    assert_eq!(exchange(agent, &[(NOW, "/\n")]), "up ready\n", "a line still wins");
}

#[test]
fn a_partial_agent_line_is_never_answered_with_another_profile() {
    let fake = read_only_fake();
    let dir = TempDir::new("verdicts");
    let (_d, agent) = daemon(&fake, &dir, &[]);
    // "prim" and then nothing: not "/" (up ready), not "/prim" either.
    let reply = exchange(agent, &[(NOW, "prim")]);
    assert!(reply.starts_with("down #incomplete agent-send line"), "{reply:?}");
}

// --- 2. single-flight waiters share the round trip in flight ------------------------------------

#[test]
fn single_flight_waiters_are_answered_when_the_round_trip_in_flight_ends() {
    // Every query takes DELAY; requests arrive every DELAY / 24 for three round trips. Each must
    // be answered by the round trip in flight when it arrived (or its own): within DELAY plus
    // scheduling, which on an emulated build with 72 client threads takes a while. 0.1 let a
    // newcomer take the lock as a round trip ended, and the waiters then sat through a second
    // one (the slowest about 1.7 to 2 x DELAY).
    const DELAY: Duration = Duration::from_millis(3000);
    let fake = FakeServer::start(Scenario::new(Auth::Native, "pw").delay(DELAY));
    let dir = TempDir::new("verdicts");
    let (d, _) = daemon(&fake, &dir, &[]);
    let took = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..72)
        .map(|i| {
            let (took, addr) = (took.clone(), d.addr);
            std::thread::spawn(move || {
                std::thread::sleep(DELAY / 24 * i);
                let started = Instant::now();
                let r = common::http(addr, b"GET / HTTP/1.0\r\n\r\n");
                took.lock().unwrap().push((started.elapsed(), r.status));
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let took = took.lock().unwrap();
    assert!(took.iter().all(|(_, status)| *status == 200), "{took:?}");
    let slowest = took.iter().map(|(t, _)| *t).max().unwrap();
    let bound = DELAY + Duration::from_millis(1500);
    assert!(slowest < bound, "a request took {slowest:?}, more than one round trip ({bound:?})");
    assert!(fake.logins() <= 6, "{} logins for 72 requests over 3 round trips", fake.logins());
}

// --- 3. multi-source replication ------------------------------------------------------------

fn until(what: &str, ok: impl FnMut() -> bool) {
    common::eventually(what, Duration::from_secs(30), ok);
}

#[test]
fn every_connection_of_a_multi_source_mariadb_replica_is_judged() {
    let primary = MariaDb::replication_source(&[]);
    let replica = MariaDb::start_with(&["--server-id=2"]);
    let dir = TempDir::new("verdicts");
    let target = replica.addr();
    let off = dir.path("off");
    let d = Daemon::start(
        &["--mysql", &target, "--user", "haproxy", "--timeout", TIMEOUT_MS, "--force-fail-file", &off],
        Some("hapass"),
    );

    // A healthy named connection alone: SHOW REPLICA STATUS shows nothing (0.1 said "not a
    // replica"); SHOW ALL REPLICAS STATUS shows it.
    replica.replicate("a", primary.port);
    until("connection a running", || d.get("/replica").status == 200);
    // One connection: no channel count (the lag itself may be a few seconds while it catches up).
    until("connection a caught up", || d.get("/replica?max_lag=10").status == 200);
    let r = d.get("/replica?max_lag=3600");
    assert!(r.body.contains(" s <= 3600 s\r\n"), "{r:?}");
    assert_eq!(d.get("/replica?channel=a").status, 200);
    assert_eq!(d.get("/replica?channel=nope").status, 503);

    // The source moves to the default connection, and a named one is broken: 0.1 judged the
    // default alone and said 200.
    replica.sql("STOP SLAVE 'a'; RESET SLAVE 'a' ALL");
    replica.replicate("", primary.port);
    replica.replicate("b", free_port());
    until("the default connection running", || d.get("/replica?channel=").status == 200);
    let r = d.get("/replica");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("replica IO thread not running") && r.body.contains("on channel \"b\""), "{r:?}");
}

// --- 4. a huge status row ---------------------------------------------------------------------

#[test]
fn a_healthy_replica_with_a_one_megabyte_status_row_is_up() {
    // Long replication filters or MySQL GTID sets with many server UUIDs make a status row
    // larger than any buffer we keep: 0.1 said "protocol error" at 64 KiB.
    let filters = "db.t,".repeat(200_000);
    let status = rows(
        &["Slave_IO_Running", "Slave_SQL_Running", "Replicate_Ignore_Table", "Seconds_Behind_Master"],
        &[&[Some("Yes"), Some("Yes"), Some(&filters), Some("2")]],
    );
    for eof in [true, false] {
        let fake = FakeServer::start(Scenario::new(Auth::Native, "pw").deprecate_eof(eof).on("STATUS", status.clone()));
        let dir = TempDir::new("verdicts");
        let (d, _) = daemon(&fake, &dir, &[]);
        let r = d.get("/replica?max_lag=5");
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body.contains("replica lag 2 s <= 5 s"), "{r:?}");
    }
}

// --- 9. reasons are bounded and clean ----------------------------------------------------------

#[test]
fn down_reasons_from_the_server_are_capped_and_cleaned() {
    let evil = format!("non-Primary\r\nX-Injected: yes\x1b[31m{}", "x".repeat(5000));
    let status = rows(
        &["Variable_name", "Value"],
        &[
            &[Some("wsrep_local_state"), Some("4")],
            &[Some("wsrep_ready"), Some("ON")],
            &[Some("wsrep_cluster_status"), Some(&evil)],
        ],
    );
    let fake = FakeServer::start(Scenario::new(Auth::Native, "pw").on("wsrep", status));
    let dir = TempDir::new("verdicts");
    let (d, agent) = daemon(&fake, &dir, &[]);
    let r = d.get("/galera");
    assert_eq!(r.status, 503, "{r:?}");
    let reason = r.body.lines().nth(1).unwrap();
    assert!(reason.starts_with("wsrep_cluster_status non-Primary??X-Injected: yes?[31mxxx"), "{reason:?}");
    assert!(reason.len() <= 256, "{} bytes", reason.len());
    assert!(!r.head.contains("X-Injected"), "{r:?}");
    let reply = exchange(agent, &[(NOW, "galera\n")]);
    assert!(reply.starts_with("down #wsrep_cluster_status non-Primary") && reply.len() <= 256 + 8, "{reply:?}");
    assert_eq!(reply.matches('\n').count(), 1, "one line: {reply:?}");
}

// --- 10. state per request, not per kind -------------------------------------------------------

#[test]
fn requests_judged_differently_keep_their_own_state_and_log_no_flaps() {
    let status = rows(
        &["Slave_IO_Running", "Slave_SQL_Running", "Seconds_Behind_Master"],
        &[&[Some("Yes"), Some("Yes"), Some("30")]],
    );
    let fake = FakeServer::start(Scenario::new(Auth::Native, "pw").on("STATUS", status));
    let dir = TempDir::new("verdicts");
    let log = dir.join("log");
    let (target, off) = (fake.target(), dir.path("off"));
    let args = ["--mysql", &target, "--timeout", TIMEOUT_MS, "--force-fail-file", &off, "--log-level", "info"];
    let d = Daemon::start_logging(&args, Some("pw"), Some(&log));
    for _ in 0..4 {
        assert_eq!(d.get("/replica?max_lag=10").status, 503);
        assert_eq!(d.get("/replica?max_lag=60").status, 200);
    }
    let metrics = d.get("/metrics").body;
    assert!(metrics.contains("mysqlchk_up{profile=\"replica\",request=\"/replica?max_lag=10\"} 0\n"), "{metrics}");
    assert!(metrics.contains("mysqlchk_up{profile=\"replica\",request=\"/replica?max_lag=60\"} 1\n"), "{metrics}");
    let text = std::fs::read_to_string(&log).unwrap();
    let changes: Vec<&str> = text.lines().filter(|l| l.contains(" is up") || l.contains(" is down")).collect();
    assert_eq!(changes.len(), 2, "one line per request, no flapping:\n{text}");
}

// --- 7, 8. bad configuration is refused at start ----------------------------------------------

#[test]
fn bad_flags_are_refused_at_start_with_a_hint() {
    let cases: &[(&[&str], &str)] = &[
        (&["--allow", "::ffff:10.0.0.0/8"], "10.0.0.0/8"),
        (&["--allow", "10.0.0.1/8"], "did you mean 10.0.0.0/8?"),
        (&["--mysql", "10.0.0.256:3306"], "invalid --mysql"),
        (&["--listen", "0"], "invalid --listen"),
        (&["--force-fail-file", ""], "absolute path"),
        (&["--maint-file", "maint"], "absolute path"),
        (&["--drain-file", "drain"], "absolute path"),
        (&["--agent-profile", "/nope"], "--agent-profile"),
    ];
    for (args, hint) in cases {
        let out = mysqlchk().args(*args).env_remove("MYSQLCHK_PASSWORD").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(hint), "{args:?}: no {hint:?} in {stderr}");
    }
}

#[test]
fn a_bare_mysql_port_means_the_local_server() {
    let fake = FakeServer::start(Scenario::new(Auth::Native, "pw"));
    let port = fake.addr.unwrap().port().to_string();
    let (code, out) = common::once(&["--mysql", &port], Some("pw"));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_parameter_given_twice_is_a_bad_request() {
    let fake = FakeServer::start(Scenario::new(Auth::Native, "pw"));
    let dir = TempDir::new("verdicts");
    let (d, _) = daemon(&fake, &dir, &[]);
    let r = d.get("/replica?max_lag=5&max_lag=1000");
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(fake.logins(), 0);
}

// --- 11. a dead first address ------------------------------------------------------------------

/// A listener whose accept queue is full: the kernel drops further SYNs, so a connect to it hangs
/// like one to a dead host.
fn black_hole() -> (TcpListener, Vec<TcpStream>, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut filled = Vec::new();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => filled.push(s),
            Err(_) => break,
        }
        assert!(filled.len() < 10_000, "the accept queue never filled");
    }
    (listener, filled, addr)
}

#[test]
fn a_dead_first_address_costs_a_quarter_second_not_the_deadline() {
    let (_listener, _filled, dead) = black_hole();
    let alive = TcpListener::bind("127.0.0.1:0").unwrap();
    let good = alive.local_addr().unwrap();
    let started = Instant::now();
    let stream = smol::block_on(mysqlchk::check::connect_any(&[dead, good])).expect("connect to the live address");
    let took = started.elapsed();
    assert_eq!(stream.get_ref().peer_addr().unwrap(), good);
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // The other way round, the live address answers at once.
    let started = Instant::now();
    smol::block_on(mysqlchk::check::connect_any(&[good, dead])).unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    // A refusal moves on at once, without waiting for the stagger.
    let refused: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let stream = smol::block_on(mysqlchk::check::connect_any(&[refused, good])).unwrap();
    assert_eq!(stream.get_ref().peer_addr().unwrap(), good);
}

// --- the phase a failure is reported in ---------------------------------------------------------

/// A fresh login does not wait for the TCP connection to complete (the greeting's readability
/// says it), yet the log still tells a refused or unanswered connection from a server that
/// accepted and never greeted.
#[test]
fn the_log_tells_a_failed_connect_from_a_server_that_never_greets() {
    let dir = TempDir::new("phases");
    let off = dir.path("off");
    let run = |target: &str, name: &str| -> String {
        let log = dir.join(name);
        let args = ["--mysql", target, "--timeout", "300", "--force-fail-file", &off, "--log-level", "info"];
        let d = Daemon::start_logging(&args, Some("pw"), Some(&log));
        assert_eq!(d.get("/").status, 503);
        drop(d);
        std::fs::read_to_string(&log).unwrap()
    };
    // Nobody listens: refused.
    let closed = format!("127.0.0.1:{}", free_port());
    let text = run(&closed, "refused");
    assert!(text.contains("connect failed: Connection refused"), "{text}");
    // Accepts (the kernel completes the handshake: a backlog) and never says a word.
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let text = run(&mute.local_addr().unwrap().to_string(), "mute");
    assert!(text.contains("timeout after 300 ms during login"), "{text}");
}
