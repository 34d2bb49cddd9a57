//! `/galera`, `/replica` and `/primary` judged against real clusters on loopback: a 3-node
//! MariaDB Galera cluster (`tests/common/galera.rs`) and a GTID primary/replica pair
//! (`tests/common/replication.rs`), with a real HAProxy following a desync and a failover.
//! Transition times are printed (`--nocapture`); the bounds asserted are generous.

mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::galera::Galera;
use common::haproxy::HaProxy;
use common::mariadb::MariaDb;
use common::replication::Pair;
use common::{free_port, Daemon, Response, TempDir};

/// How HAProxy checks in these tests: a state flips after `fall` (or `rise`) results `inter`
/// apart, so a change shows within `inter × fall` plus one check's duration.
const INTER_MS: u64 = 500;
const FALL: u64 = 2;
/// What a transition may take beyond `inter × fall`: a check in flight, a busy box.
const MARGIN: Duration = Duration::from_secs(10);

/// mysqlchk checking `db` as haproxy; the force-fail file lives in `dir` and never exists.
fn daemon(db: &MariaDb, dir: &TempDir, extra: &[&str]) -> Daemon {
    db.checker(dir, extra)
}

#[track_caller]
fn expect(r: &Response, status: u16, body_has: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert!(r.body.contains(body_has), "no {body_has:?} in {r:?}");
}

/// A `listen` section on a free port checking `servers` (name, database port, mysqlchk port,
/// extra server options) with `GET path`.
fn listen(name: &str, path: &str, servers: &[(&str, u16, u16, &str)]) -> String {
    let mut s = format!(
        "listen {name}\n    bind 127.0.0.1:{}\n    option httpchk GET {path}\n    \
         default-server inter {INTER_MS}ms fall {FALL} rise {FALL}\n",
        free_port()
    );
    for (server, db, check, extra) in servers {
        let _ = writeln!(s, "    server {server} 127.0.0.1:{db} check port {check} {extra}");
    }
    s
}

/// Waits for HAProxy to show `proxy`/`server` as `status`, asserts it took at most
/// `inter × fall + MARGIN` since `since`, and returns how long it took.
#[track_caller]
fn transition(h: &HaProxy, proxy: &str, server: &str, status: &str, since: Instant) -> Duration {
    h.wait_for(proxy, server, status, None);
    let took = since.elapsed();
    let bound = Duration::from_millis(INTER_MS * FALL) + MARGIN;
    assert!(took <= bound, "{proxy}/{server} took {took:?} to go {status}, more than {bound:?}");
    eprintln!("haproxy: {proxy}/{server} {status} after {} ms", took.as_millis());
    took
}

/// The Galera scenarios share one cluster and run in order, the destructive one (losing
/// quorum) last.
#[test]
fn galera_cluster_desync_reject_and_lost_quorum_are_judged_and_followed_by_haproxy() {
    let started = Instant::now();
    let mut cluster = Galera::start(3);
    eprintln!("galera: 3 nodes Synced after {} ms", started.elapsed().as_millis());
    let dir = TempDir::new("galera");
    let daemons: Vec<Daemon> = cluster.nodes.iter().map(|n| daemon(n, &dir, &[])).collect();

    for d in &daemons {
        expect(&d.get("/galera"), 200, "wsrep_local_state 4 (Synced), cluster Primary");
        expect(&d.get("/"), 200, "MySQL is running");
        expect(&d.get("/primary"), 200, "read_only is OFF");
    }

    let servers: Vec<(String, u16, u16)> = cluster
        .nodes
        .iter()
        .zip(&daemons)
        .enumerate()
        .map(|(i, (n, d))| (format!("g{i}"), n.port, d.addr.port()))
        .collect();
    let servers: Vec<(&str, u16, u16, &str)> = servers.iter().map(|(s, db, chk)| (s.as_str(), *db, *chk, "")).collect();
    let h = HaProxy::start(&dir, &listen("galera", "/galera", &servers));
    for (server, ..) in &servers {
        h.wait_for("galera", server, "UP", None);
    }

    // HAProxy polls /galera too, and a request that arrives while its round trip is in flight
    // shares it (single-flight): right after a change, /galera may still tell what that round
    // trip, started before, found. So wait for one that started after. `/` and `/primary` have
    // no such company.
    let galera_says = |d: &Daemon, text: &str| d.get("/galera").body.contains(text);

    // A desynced node (as a donor or for a backup) is out unless donor_ok says otherwise.
    let t = Instant::now();
    cluster.nodes[0].sql("SET GLOBAL wsrep_desync=ON");
    cluster.wait_status(0, "wsrep_local_state_comment", "Donor/Desynced");
    wait_until("GET /galera says Donor/Desynced", || galera_says(&daemons[0], "Donor/Desynced"));
    expect(&daemons[0].get("/galera"), 503, "wsrep_local_state 2 (Donor/Desynced)");
    expect(&daemons[0].get("/galera?donor_ok=1"), 200, "wsrep_local_state 2 (Donor/Desynced), cluster Primary");
    transition(&h, "galera", "g0", "DOWN", t);
    h.wait_for("galera", "g1", "UP", None);
    let t = Instant::now();
    cluster.nodes[0].sql("SET GLOBAL wsrep_desync=OFF");
    wait_until("GET /galera 200", || daemons[0].get("/galera").status == 200);
    transition(&h, "galera", "g0", "UP", t);

    // Refusing queries by hand: down on every profile, not only /galera.
    for reject in ["ALL", "ALL_KILL"] {
        cluster.nodes[1].sql(&format!("SET GLOBAL wsrep_reject_queries={reject}"));
        let reason = format!("wsrep_reject_queries {reject}");
        wait_until(&format!("GET /galera says {reason}"), || galera_says(&daemons[1], &reason));
        expect(&daemons[1].get("/galera"), 503, &reason);
        expect(&daemons[1].get("/"), 503, "node refuses queries (1047)");
        expect(&daemons[1].get("/primary"), 503, "node refuses queries (1047)");
        cluster.nodes[1].sql("SET GLOBAL wsrep_reject_queries=NONE");
        wait_until("GET /galera says Synced", || galera_says(&daemons[1], "Synced"));
        expect(&daemons[1].get("/galera"), 200, "Synced");
        expect(&daemons[1].get("/"), 200, "MySQL is running");
    }

    // Two of three nodes die: the survivor has no quorum and must be out, with the cause named.
    let t = Instant::now();
    cluster.nodes[1].kill();
    cluster.nodes[2].kill();
    cluster.wait_status(0, "wsrep_cluster_status", "non-Primary");
    eprintln!("galera: survivor non-Primary {} ms after SIGKILL", t.elapsed().as_millis());
    // HAProxy's bound counts from the loss of quorum, not from the kill: Galera's own failure
    // detection (suspect, inactive, view install) is no part of what is judged here.
    let lost = Instant::now();
    wait_until("GET /galera says non-Primary", || galera_says(&daemons[0], "non-Primary"));
    expect(&daemons[0].get("/galera"), 503, "wsrep_cluster_status non-Primary");
    expect(&daemons[0].get("/galera?donor_ok=1"), 503, "wsrep_cluster_status non-Primary");
    expect(&daemons[0].get("/"), 503, "node refuses queries (1047)");
    expect(&daemons[0].get("/primary"), 503, "node refuses queries (1047)");
    transition(&h, "galera", "g0", "DOWN", lost);
    // With wsrep_dirty_reads the survivor answers reads, the probe included: `/` follows that
    // choice, and `/primary` reads wsrep_ready, which dirty reads leave OFF.
    cluster.nodes[0].sql("SET GLOBAL wsrep_dirty_reads=ON");
    expect(&daemons[0].get("/"), 200, "MySQL is running");
    expect(&daemons[0].get("/primary"), 503, "wsrep_ready OFF (wsrep_dirty_reads lets reads through)");
    expect(&daemons[0].get("/galera"), 503, "wsrep_cluster_status non-Primary");
    eprintln!("galera: whole scenario {} ms", started.elapsed().as_millis());
}

#[test]
fn replica_and_primary_profiles_follow_the_real_pair_and_name_the_stopped_thread() {
    let pair = Pair::start();
    let dir = TempDir::new("replication");
    let (p, r) = (daemon(&pair.primary, &dir, &[]), daemon(&pair.replica, &dir, &[]));

    expect(&r.get("/replica"), 200, "lag 0 s");
    expect(&r.get("/"), 200, "MySQL is running");
    expect(&p.get("/primary"), 200, "read_only is OFF");
    expect(&r.get("/primary"), 503, "read_only is ON");
    assert_eq!(p.get("/replica").status, 503, "the primary is no replica");

    for thread in ["SQL", "IO"] {
        let column = format!("Slave_{thread}_Running");
        pair.replica.sql(&format!("STOP SLAVE {thread}_THREAD"));
        pair.wait_replica(|s| s[&column] == "No", &format!("stopped ({thread})"));
        let down = r.get("/replica");
        expect(&down, 503, &format!("{thread} thread"));
        pair.replica.sql(&format!("START SLAVE {thread}_THREAD"));
        pair.wait_replica(|s| s[&column] == "Yes", &format!("running ({thread})"));
        wait_until("GET /replica 200", || r.get("/replica").status == 200);
    }
}

#[test]
fn real_lag_from_master_delay_is_503_above_max_lag_and_200_below() {
    let pair = Pair::start();
    let dir = TempDir::new("replication");
    let r = daemon(&pair.replica, &dir, &[]);
    // With MASTER_DELAY every event waits 5 s on the replica; steady writes keep one waiting.
    // Seconds_Behind_Master then saws between about 5 less the gap between writes and 5, in whole
    // seconds, less a clock difference it rounds to a second: once it reads 3, no later reading
    // falls to 1.
    pair.follow(5);
    let writes = pair.steady_writes();
    pair.wait_replica(|s| s["Seconds_Behind_Master"].parse().is_ok_and(|lag: u64| lag >= 3), "lagging 3 s");
    let down = r.get("/replica?max_lag=1");
    expect(&down, 503, "> 1 s");
    expect(&r.get("/replica?max_lag=60"), 200, "<= 60 s");

    drop(writes);
    pair.follow(0);
    pair.wait_caught_up();
    pair.wait_replica(|s| s["Seconds_Behind_Master"] == "0", "caught up");
    expect(&r.get("/replica?max_lag=1"), 200, "lag 0 s <= 1 s");
}

#[test]
fn haproxy_moves_the_writer_on_failover_and_readers_drop_the_promoted_replica() {
    let pair = Pair::start();
    let dir = TempDir::new("failover");
    let (p, r) = (daemon(&pair.primary, &dir, &[]), daemon(&pair.replica, &dir, &[]));
    let writers = listen(
        "writers",
        "/primary",
        &[("p", pair.primary.port, p.addr.port(), ""), ("r", pair.replica.port, r.addr.port(), "backup")],
    );
    let readers = listen("readers", "/replica?max_lag=10", &[("r", pair.replica.port, r.addr.port(), "")]);
    let h = HaProxy::start(&dir, &format!("{writers}\n{readers}"));
    h.wait_for("writers", "p", "UP", None);
    h.wait_for("writers", "r", "DOWN", None);
    h.wait_for("readers", "r", "UP", None);
    let writer_port = h.bind_port("writers");
    assert_eq!(through(writer_port), pair.primary.port.to_string(), "writes go to the primary");

    // Demote the primary, then promote the replica, as an operator or orchestrator would.
    let t = Instant::now();
    pair.primary.sql("SET GLOBAL read_only=ON");
    transition(&h, "writers", "p", "DOWN", t);
    let t = Instant::now();
    pair.replica.sql("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=OFF");
    transition(&h, "writers", "r", "UP", t);
    transition(&h, "readers", "r", "DOWN", t);
    assert_eq!(through(writer_port), pair.replica.port.to_string(), "writes go to the promoted replica");
}

/// `select @@port` through HAProxy at `port`: which server it sent us to.
fn through(port: u16) -> String {
    let out = std::process::Command::new("mariadb")
        .args(["--no-defaults", "--protocol=tcp", "-h127.0.0.1", "-uhaproxy", "-phapass", "-N", "-B"])
        .arg(format!("-P{port}"))
        .args(["-e", "select @@port"])
        .output()
        .expect("run the mariadb client");
    assert!(out.status.success(), "through haproxy: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn lag_weight_agent_lowers_haproxy_weight_while_the_real_replica_lags_and_restores_it() {
    let pair = Pair::start();
    let dir = TempDir::new("lagweight");
    let (_r, agent) = pair.replica.checker_with_agent(&dir, &["--lag-weight"]);
    let agent = agent.port();
    // A plain TCP health check; the agent alone sets the weight, as a percentage of 100.
    let readers = format!(
        "listen readers\n    bind 127.0.0.1:{}\n    server r 127.0.0.1:{} check inter 300ms weight 100 \
         agent-check agent-port {agent} agent-inter 300ms agent-send \"/replica?max_lag=10\\n\"\n",
        free_port(),
        pair.replica.port
    );
    let h = HaProxy::start(&dir, &readers);
    h.wait_for("readers", "r", "UP", None);
    let weight = || h.stat("readers", "r")["weight"].parse::<u64>().expect("a numeric weight");
    wait_until("weight 100 while caught up", || weight() == 100);

    // 5 s of MASTER_DELAY with steady writes: a lag of about 5 of max_lag 10, weight about 55.
    pair.follow(5);
    let writes = pair.steady_writes();
    pair.wait_replica(|s| s["Seconds_Behind_Master"].parse().is_ok_and(|lag: u64| lag >= 3), "lagging 3 s");
    let t = Instant::now();
    wait_until("a weight below 100 while lagging", || (10..=73).contains(&weight()));
    let lagging = (weight(), pair.lag());
    eprintln!(
        "haproxy: readers/r weight {} at lag {:?} s, {} ms after lag >= 3 s",
        lagging.0,
        lagging.1,
        t.elapsed().as_millis()
    );
    assert_eq!(h.stat("readers", "r")["status"], "UP", "lagging within max_lag is still up");

    drop(writes);
    pair.follow(0);
    pair.wait_caught_up();
    let t = Instant::now();
    wait_until("weight 100 again once caught up", || weight() == 100);
    eprintln!("haproxy: readers/r weight 100 again {} ms after catching up", t.elapsed().as_millis());
}

/// Polls `ok` every 100 ms for 30 s; panics naming `what`.
#[track_caller]
fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "not {what} after 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}
