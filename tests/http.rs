//! The HTTP side as HAProxy, curl and telnet see it: status lines, exact headers, HEAD, silent
//! and slow clients, bad requests, and a close that never loses the response to a reset.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::fake::{Auth, FakeServer, Scenario};
use common::{parse_response, segments_in, Daemon, Response};

fn daemon(fake: &FakeServer, force_fail: &std::path::Path) -> Daemon {
    let target = fake.target();
    let ff = force_fail.to_str().unwrap().to_string();
    Daemon::start(&["--mysql", &target, "--force-fail-file", &ff, "--log-level", "error"], Some("pw"))
}

fn setup() -> (FakeServer, Daemon, std::path::PathBuf) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let ff = std::env::temp_dir().join(format!("mysqlchk-http-{}-{n}", std::process::id()));
    let _ = std::fs::remove_file(&ff);
    let fake = FakeServer::start(Scenario::new(Auth::Native, "pw"));
    let d = daemon(&fake, &ff);
    (fake, d, ff)
}

fn assert_well_formed(r: &Response) {
    let len: usize = r.header("Content-Length").expect("Content-Length").parse().unwrap();
    assert_eq!(len, r.body.len(), "Content-Length must be exact: {r:?}");
    assert_eq!(r.header("Connection").as_deref(), Some("close"));
    assert_eq!(r.header("Content-Type").as_deref(), Some("text/plain"));
    assert!(r.head.starts_with("HTTP/1.1 "), "{r:?}");
}

#[test]
fn haproxy_default_options_http10_without_host_gets_200_with_the_value() {
    let (_fake, d, _) = setup();
    let r = d.request(b"OPTIONS / HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(r.body, "MySQL is running.\r\nfake-1\r\n");
    assert_well_formed(&r);
}

#[test]
fn head_gets_the_headers_of_get_and_no_body() {
    let (_fake, d, _) = setup();
    let get = d.get("/");
    let head = d.request(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "");
    assert_eq!(head.header("Content-Length"), get.header("Content-Length"));
}

#[test]
fn silent_client_gets_the_default_check() {
    let (_fake, d, _) = setup();
    let started = Instant::now();
    let r = d.request(b"");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.starts_with("MySQL is running."));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_request_in_pieces_is_assembled() {
    let (_fake, d, _) = setup();
    let mut s = TcpStream::connect(d.addr).unwrap();
    for piece in [&b"GE"[..], b"T /prim", b"ary HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"] {
        s.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let r = parse_response(raw);
    // The fake answers the read_only query with its default value, which is not OFF.
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("read_only"), "{r:?}");
}

#[test]
fn garbage_gets_400_and_the_next_check_200() {
    let (fake, d, _) = setup();
    let r = d.request(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n");
    assert_eq!(r.status, 400, "{r:?}");
    assert_well_formed(&r);
    assert_eq!(fake.logins(), 0, "a bad request costs no login");
    assert_eq!(d.get("/").status, 200);
}

#[test]
fn an_incomplete_head_gets_408() {
    let (fake, d, _) = setup();
    let mut s = TcpStream::connect(d.addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost:").unwrap();
    let mut raw = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.read_to_end(&mut raw).unwrap();
    let r = parse_response(raw);
    assert_eq!(r.status, 408, "{r:?}");
    assert_eq!(fake.logins(), 0);
}

#[test]
fn unknown_paths_are_404_and_bad_parameters_400_without_a_login() {
    let (fake, d, _) = setup();
    let r = d.get("/primry");
    assert_eq!(r.status, 404);
    assert!(r.body.contains("/primary") && r.body.contains("/replica") && r.body.contains("/galera"), "{r:?}");
    assert_eq!(d.get("/replica?max_lga=10").status, 400);
    assert_eq!(fake.logins(), 0);
}

#[test]
fn force_fail_file_gives_503_without_a_login_and_its_removal_200() {
    let (fake, d, ff) = setup();
    std::fs::write(&ff, "").unwrap();
    let r = d.get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "MySQL is *down*.\r\nforce-fail file present\r\n");
    assert_eq!(fake.logins(), 0);
    std::fs::remove_file(&ff).unwrap();
    assert_eq!(d.get("/").status, 200);
}

#[test]
fn a_force_fail_file_that_cannot_be_looked_at_counts_as_present() {
    // A path under a regular file fails with ENOTDIR, as one under a directory we may not search
    // fails with EACCES (which root, running the tests, would not see): fail closed, not open.
    let (fake, _, base) = setup();
    std::fs::write(&base, "").unwrap();
    let d = daemon(&fake, &base.join("proxyoff"));
    let r = d.get("/");
    assert_eq!((r.status, r.body.as_str()), (503, "MySQL is *down*.\r\nforce-fail file present\r\n"));
    assert_eq!(fake.logins(), 0);
    // Once the path can be looked at and holds no file, the check runs.
    std::fs::remove_file(&base).unwrap();
    assert_eq!(d.get("/").status, 200);
}

#[test]
fn the_response_survives_a_client_that_sent_more_than_the_head() {
    // Unread bytes in our receive buffer at close() would make the kernel send a reset, which
    // can destroy the response before the client reads it; the daemon half-closes and drains.
    let (_fake, d, _) = setup();
    for _ in 0..5 {
        let mut s = TcpStream::connect(d.addr).unwrap();
        let body = vec![b'x'; 200 * 1024];
        let head = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len());
        s.write_all(head.as_bytes()).unwrap();
        // Keep sending while the answer is produced.
        let _ = s.write_all(&body[..32 * 1024]);
        std::thread::sleep(Duration::from_millis(100));
        let _ = s.shutdown(Shutdown::Write);
        let mut raw = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.read_to_end(&mut raw).expect("no reset");
        let r = parse_response(raw);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "MySQL is running.\r\nfake-1\r\n");
    }
}

/// A client that sends bytes after its complete request, while the check runs (a pipelined
/// request, say), still reads the whole response: the daemon sees them before it closes and
/// lingers, so its close is no reset (which destroyed the response in 0.2.0, and would now
/// discard a response held back for the FIN whole).
#[test]
fn the_response_survives_bytes_sent_after_a_complete_head() {
    let fake = FakeServer::start(Scenario::new(Auth::Native, "pw").delay(Duration::from_millis(300)));
    let ff = std::env::temp_dir().join(format!("mysqlchk-http-late-{}", std::process::id()));
    let d = daemon(&fake, &ff);
    for _ in 0..3 {
        let mut s = TcpStream::connect(d.addr).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.read_to_end(&mut raw).expect("no reset");
        let r = parse_response(raw);
        assert_eq!((r.status, r.body.as_str()), (200, "MySQL is running.\r\nfake-1\r\n"));
    }
}

/// The response goes out with MSG_MORE and the close (or, when the daemon lingers, the
/// half-close) adds the FIN to its segment: the client receives the SYN-ACK, the ACK of its
/// request and one segment with the whole response and the end, so it is woken once to read it.
/// Without MSG_MORE the FIN is a fourth segment.
#[test]
fn the_response_and_the_fin_come_in_one_segment() {
    let (_fake, d, _) = setup();
    let requests: [&[u8]; 3] = [
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        // A body: the daemon half-closes and drains before it closes.
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    ];
    for request in requests {
        for round in 0..20 {
            let mut s = TcpStream::connect(d.addr).unwrap();
            s.write_all(request).unwrap();
            let mut raw = Vec::new();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.read_to_end(&mut raw).unwrap();
            let r = parse_response(raw);
            assert_eq!(r.status, 200, "{r:?}");
            let Some(segments) = segments_in(&s) else {
                eprintln!("TCP_INFO is refused or short here (qemu-user?): segments not counted");
                return;
            };
            let what = String::from_utf8_lossy(request);
            assert_eq!(segments, 3, "{what:?}, round {round}: SYN-ACK, ACK, response with FIN");
        }
    }
}

#[test]
fn metrics_are_prometheus_text() {
    let (_fake, d, _) = setup();
    d.get("/");
    let r = d.get("/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type").as_deref(), Some("text/plain; version=0.0.4"));
    assert!(r.body.contains("mysqlchk_checks_total{profile=\"default\",result=\"up\"} 1\n"), "{}", r.body);
    assert!(r.body.contains("mysqlchk_db_logins_total 1\n"));
}
