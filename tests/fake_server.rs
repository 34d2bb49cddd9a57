//! mysqlchk against the scriptable fake server (`tests/common/fake.rs`): every auth path, both
//! result-set framings, and one test per hostile server. The first tests check the fake itself
//! with a tiny client written here, so a failure below points at mysqlchk, not at the fake.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::fake::*;
use common::{once, Daemon};

const PW: &str = "secret";

/// The hostile tests' `--timeout`, and what a check may take beyond it.
const TIMEOUT_MS: u64 = 1000;
const SLACK: Duration = Duration::from_millis(1500);
/// The query after `--query` that a Galera node refusing queries answers with 1047.
const PROBE: &str = "SELECT 1 FROM (SELECT 1) AS mysqlchk_probe";

/// A `--force-fail-file` path that does not exist.
fn no_fail_file() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let p: PathBuf = std::env::temp_dir().join(format!(
        "mysqlchk-fake-nofail-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_file(&p);
    p.to_str().unwrap().to_string()
}

/// The common flags plus `extra`.
fn args(fake: &FakeServer, timeout_ms: u64, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--mysql".into(),
        fake.target(),
        "--timeout".into(),
        timeout_ms.to_string(),
        "--force-fail-file".into(),
        no_fail_file(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// `mysqlchk --once` against `fake` with a generous deadline.
fn check(fake: &FakeServer, extra: &[&str], pw: Option<&str>) -> (i32, String) {
    let a = args(fake, 10_000, extra);
    once(&a.iter().map(String::as_str).collect::<Vec<_>>(), pw)
}

/// `mysqlchk --once --timeout 1000`; also how long it took.
fn check_hostile(fake: &FakeServer) -> (i32, String, Duration) {
    let a = args(fake, TIMEOUT_MS, &[]);
    let started = Instant::now();
    let (code, out) = once(&a.iter().map(String::as_str).collect::<Vec<_>>(), Some("pw"));
    (code, out, started.elapsed())
}

fn daemon(fake: &FakeServer, timeout_ms: u64, pw: Option<&str>) -> Daemon {
    let a = args(fake, timeout_ms, &[]);
    Daemon::start(&a.iter().map(String::as_str).collect::<Vec<_>>(), pw)
}

/// Waits (5 s at most) for `cond`: the fake counts on its own threads.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    common::eventually(what, Duration::from_secs(5), cond);
}

fn assert_ok(code: i32, out: &str, value: &str, fake: &FakeServer) {
    assert_eq!(code, 0, "stdout {out:?}, fake saw {:?}", fake.violations());
    assert!(out.starts_with(&format!("OK - {value} (")), "stdout {out:?}");
    assert!(out.trim_end().ends_with(" ms)"), "stdout {out:?}");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

fn assert_critical_in_time(h: impl std::fmt::Debug, code: i32, out: &str, took: Duration) {
    assert_eq!(code, 2, "{h:?}: stdout {out:?}");
    assert!(out.starts_with("CRITICAL - "), "{h:?}: stdout {out:?}");
    let bound = Duration::from_millis(TIMEOUT_MS) + SLACK;
    assert!(took < bound, "{h:?}: took {took:?}, more than {bound:?}");
}

fn hostile_once(h: Hostile) -> (FakeServer, String) {
    let fake = FakeServer::start(Scenario::hostile(h));
    let (code, out, took) = check_hostile(&fake);
    eprintln!("{h:?}: {out:?} after {took:?}, fake saw {:?}", fake.violations());
    assert_critical_in_time(h, code, &out, took);
    // A client may cap a huge packet or result set, or read it until the deadline.
    let waits = matches!(
        h,
        Hostile::Silent
            | Hostile::SlowGreeting
            | Hostile::LoginSilent
            | Hostile::QuerySilent
            | Hostile::HugePacket
            | Hostile::Stream200MB
    );
    if !waits {
        // The fault is on the wire at once, or the fake hung up: nothing to wait for.
        assert!(!out.contains("timeout"), "{h:?}: waited for the deadline: {out:?}");
    }
    (fake, out)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

// ---------------------------------------------------------------------------------------------
// The fake itself, against a tiny client written here.

/// A minimal MySQL client: just enough to drive the fake.
struct Tiny {
    s: TcpStream,
}

impl Tiny {
    fn connect(fake: &FakeServer) -> Tiny {
        let s = TcpStream::connect(fake.addr.unwrap()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Tiny { s }
    }

    fn read(&mut self) -> (u8, Vec<u8>) {
        let mut h = [0u8; 4];
        self.s.read_exact(&mut h).unwrap();
        let mut p = vec![0; u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize];
        self.s.read_exact(&mut p).unwrap();
        (h[3], p)
    }

    fn write(&mut self, seq: u8, p: &[u8]) {
        self.s.write_all(&frame(seq, p)).unwrap();
    }

    /// Reads the HandshakeV10; returns (caps, 20-byte scramble, plugin).
    fn greeting(&mut self) -> (u32, Vec<u8>, String) {
        let (seq, p) = self.read();
        assert_eq!((seq, p[0]), (0, 10));
        let v = p.iter().position(|&b| b == 0).unwrap();
        let mut at = v + 1 + 4;
        let mut scramble = p[at..at + 8].to_vec();
        at += 9;
        let lo = u16::from_le_bytes([p[at], p[at + 1]]) as u32;
        let hi = u16::from_le_bytes([p[at + 5], p[at + 6]]) as u32;
        assert_eq!(p[at + 7], 21);
        at += 8 + 10;
        scramble.extend_from_slice(&p[at..at + 12]);
        assert_eq!(p[at + 12], 0);
        let plugin = &p[at + 13..p.len() - 1];
        assert_eq!(*p.last().unwrap(), 0);
        assert!(scramble.iter().all(|b| b.is_ascii_graphic()));
        (lo | hi << 16, scramble, String::from_utf8(plugin.to_vec()).unwrap())
    }

    fn login(&mut self, caps: u32, auth: &[u8], plugin: &str) {
        let mut p = caps.to_le_bytes().to_vec();
        p.extend_from_slice(&(1u32 << 24).to_le_bytes());
        p.push(45);
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(b"tiny\0");
        p.extend_from_slice(&lenenc_str(auth));
        p.extend_from_slice(plugin.as_bytes());
        p.push(0);
        self.write(1, &p);
    }
}

const TINY_CAPS: u32 =
    CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;

#[test]
fn fake_auth_formulas_match_the_shared_vectors() {
    // From /work/shared/testdata/auth-vectors.json, cases A, C, D and E.
    let cases = [
        (
            "0102030405060708090a0b0c0d0e0f1011121314",
            "secret",
            "b32bb3a583e1340c0a1108d58b1be49781ad8c2f",
            "746ebe205d56a0707acb3e796e834e0dd7b1d61743b26bd5202c7a623230c7c9",
        ),
        (
            "5a667433412c595a3a4f60764f6840447541242d",
            "hapass",
            "e6fed1829fb1ae462c35ad2f7fb45691b0107b5d",
            "73a1c7128d8fe65798724c47d05dd696f531b428c598536e6eebd004537a71d0",
        ),
        (
            "0102030405060708090a0b0c0d0e0f1011121314",
            "pässwörd",
            "9891a8536587af22d12e126cf5f7a8ea86d63b0e",
            "8526563d365f5cb2cf44b162e5251a5cc348e1a1afeec271669611d0fdac23f7",
        ),
        ("0102030405060708090a0b0c0d0e0f1011121314", "", "", ""),
    ];
    for (nonce, pw, native, sha2) in cases {
        assert_eq!(native_response(&hex(nonce), pw), hex(native), "native {pw:?}");
        assert_eq!(caching_sha2_response(&hex(nonce), pw), hex(sha2), "caching_sha2 {pw:?}");
    }
}

#[test]
fn fake_serves_a_tiny_client_with_eof_packets() {
    let fake = FakeServer::start(
        Scenario::new(Auth::Native, PW)
            .reply(Reply::Rows { columns: vec!["a".into(), "b".into()], rows: vec![vec![None, Some("x".into())]] }),
    );
    let mut c = Tiny::connect(&fake);
    let (caps, scramble, plugin) = c.greeting();
    assert_eq!(plugin, NATIVE);
    assert_ne!(caps & CLIENT_DEPRECATE_EOF, 0);
    c.login(TINY_CAPS, &native_response(&scramble, PW), NATIVE);
    assert_eq!(c.read(), (2, vec![0, 0, 0, 2, 0, 0, 0]));
    c.write(0, b"\x03select 1");
    assert_eq!(c.read(), (1, vec![2]));
    let (seq, def) = c.read();
    assert_eq!((seq, &def[..4]), (2, &b"\x03def"[..]));
    assert_eq!(c.read().0, 3);
    assert_eq!(c.read(), (4, vec![0xfe, 0, 0, 2, 0]), "EOF after the column definitions");
    assert_eq!(c.read(), (5, b"\xfb\x01x".to_vec()));
    assert_eq!(c.read(), (6, vec![0xfe, 0, 0, 2, 0]), "EOF after the rows");
    c.write(0, &[0x01]);
    eventually("quit counted", || fake.quits() == 1);
    assert_eq!((fake.connections(), fake.logins()), (1, 1));
    assert_eq!(fake.queries(), vec!["select 1".to_string()]);
    assert_eq!(fake.violations(), Vec::<String>::new());
    assert_eq!(fake.last_login().unwrap().user, "tiny");
}

#[test]
fn fake_ends_rows_with_ok_packet_under_deprecate_eof() {
    let fake = FakeServer::start(Scenario::new(Auth::CachingSha2Fast, PW));
    let mut c = Tiny::connect(&fake);
    let (_, scramble, plugin) = c.greeting();
    assert_eq!(plugin, CACHING_SHA2);
    c.login(TINY_CAPS | CLIENT_DEPRECATE_EOF, &caching_sha2_response(&scramble, PW), CACHING_SHA2);
    assert_eq!(c.read(), (2, vec![0x01, 0x03]));
    assert_eq!(c.read().0, 3);
    c.write(0, b"\x03select 1");
    assert_eq!(c.read(), (1, vec![1]));
    assert_eq!(c.read().0, 2);
    assert_eq!(c.read(), (3, b"\x06fake-1".to_vec()), "no EOF between definitions and rows");
    assert_eq!(c.read(), (4, vec![0xfe, 0, 0, 2, 0, 0, 0]));
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[test]
fn fake_full_path_decrypts_rsa_oaep_sha1() {
    use rsa::pkcs8::DecodePublicKey;
    let fake = FakeServer::start(Scenario::new(Auth::CachingSha2Full, PW));
    let mut c = Tiny::connect(&fake);
    let (_, scramble, _) = c.greeting();
    c.login(TINY_CAPS, &caching_sha2_response(&scramble, PW), CACHING_SHA2);
    assert_eq!(c.read(), (2, vec![0x01, 0x04]));
    c.write(3, &[0x02]);
    let (seq, key) = c.read();
    assert_eq!((seq, key[0]), (4, 0x01));
    let key = rsa::PublicKey::from_public_key_pem(std::str::from_utf8(&key[1..]).unwrap());
    let plain: Vec<u8> = b"secret\0".iter().zip(scramble.iter().cycle()).map(|(a, b)| a ^ b).collect();
    let ct = key.unwrap().oaep_encrypt::<sha1::Sha1>(&plain).unwrap();
    c.write(5, &ct);
    assert_eq!(c.read(), (6, vec![0, 0, 0, 2, 0, 0, 0]));
    eventually("login counted", || fake.logins() == 1);
    assert_eq!(fake.rsa_exchanges(), 1);
}

#[test]
fn fake_truncated_result_set_closes_mid_row() {
    let fake = FakeServer::start(Scenario::hostile(Hostile::TruncatedResultSet).deprecate_eof(false));
    let mut c = Tiny::connect(&fake);
    let (_, scramble, _) = c.greeting();
    c.login(TINY_CAPS, &native_response(&scramble, "pw"), NATIVE);
    assert_eq!(c.read().0, 2);
    c.write(0, b"\x03select 1");
    assert_eq!(c.read(), (1, vec![1]));
    assert_eq!(c.read().0, 2);
    assert_eq!(c.read(), (3, vec![0xfe, 0, 0, 2, 0]));
    let started = Instant::now();
    let mut rest = Vec::new();
    c.s.read_to_end(&mut rest).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "the fake did not close");
    assert_eq!(rest.len(), 4 + 12);
    assert_eq!(&rest[..5], &[40, 0, 0, 4, 39]);
}

#[test]
fn fake_denies_a_wrong_password_with_1045() {
    let fake = FakeServer::start(Scenario::new(Auth::Native, PW));
    let mut c = Tiny::connect(&fake);
    let (_, scramble, _) = c.greeting();
    c.login(TINY_CAPS, &native_response(&scramble, "nope"), NATIVE);
    let (seq, p) = c.read();
    assert_eq!((seq, &p[..9]), (2, &b"\xff\x15\x04#28000"[..]));
    assert!(String::from_utf8_lossy(&p).contains("Access denied for user 'tiny'"));
}

#[test]
fn fake_too_many_connections_is_err_1040_at_seq_0_without_sqlstate() {
    let fake = FakeServer::start(Scenario::hostile(Hostile::TooManyConnections));
    let mut c = Tiny::connect(&fake);
    assert_eq!(c.read(), (0, b"\xff\x10\x04Too many connections".to_vec()));
}

#[test]
fn fake_flags_a_wrong_sequence_id_from_the_client() {
    let fake = FakeServer::start(Scenario::new(Auth::Native, PW));
    let mut c = Tiny::connect(&fake);
    let (_, scramble, _) = c.greeting();
    let mut p = TINY_CAPS.to_le_bytes().to_vec();
    p.extend_from_slice(&[0; 28]);
    p.extend_from_slice(b"tiny\0");
    p.extend_from_slice(&lenenc_str(&native_response(&scramble, PW)));
    p.extend_from_slice(b"mysql_native_password\0");
    c.write(2, &p);
    eventually("violation recorded", || !fake.violations().is_empty());
    assert_eq!(fake.logins(), 0);
}

// ---------------------------------------------------------------------------------------------
// mysqlchk logging in.

#[test]
fn native_password_logs_in_and_reports_first_value() {
    let fake = FakeServer::start(Scenario::new(Auth::Native, PW));
    let (code, out) = check(&fake, &[], Some(PW));
    assert_ok(code, &out, "fake-1", &fake);
    // The default `--query` reads its value through the probe's derived table, which a Galera
    // node refusing queries would refuse: one statement.
    assert_eq!(fake.queries(), vec!["SELECT @@hostname FROM (SELECT 1) AS mysqlchk_probe".to_string()]);
    assert_eq!(fake.last_login().unwrap().user, "haproxy");
}

#[test]
fn caching_sha2_fast_path_logs_in() {
    let fake = FakeServer::start(Scenario::new(Auth::CachingSha2Fast, PW));
    let (code, out) = check(&fake, &[], Some(PW));
    assert_ok(code, &out, "fake-1", &fake);
    assert_eq!((fake.logins(), fake.rsa_exchanges(), fake.clear_passwords()), (1, 0, 0));
}

#[test]
fn caching_sha2_full_path_uses_rsa_on_tcp() {
    let fake = FakeServer::start(Scenario::new(Auth::CachingSha2Full, PW));
    let (code, out) = check(&fake, &[], Some(PW));
    assert_ok(code, &out, "fake-1", &fake);
    assert_eq!((fake.logins(), fake.rsa_exchanges(), fake.clear_passwords()), (1, 1, 0));
}

#[test]
fn caching_sha2_full_path_sends_clear_password_on_unix_socket() {
    let fake = FakeServer::unix(Scenario::new(Auth::CachingSha2Full, PW));
    let (code, out) = check(&fake, &[], Some(PW));
    assert_ok(code, &out, "fake-1", &fake);
    assert_eq!((fake.logins(), fake.rsa_exchanges(), fake.clear_passwords()), (1, 0, 1));
}

#[test]
fn caching_sha2_full_path_with_non_ascii_password() {
    let pw = "pässwörd";
    let fake = FakeServer::start(Scenario::new(Auth::CachingSha2Full, pw));
    let (code, out) = check(&fake, &[], Some(pw));
    assert_ok(code, &out, "fake-1", &fake);
}

#[test]
fn empty_password_logs_in_with_every_plugin() {
    for auth in [Auth::Native, Auth::CachingSha2Fast, Auth::SwitchToNative] {
        let fake = FakeServer::start(Scenario::new(auth, ""));
        let (code, out) = check(&fake, &[], None);
        assert_ok(code, &out, "fake-1", &fake);
        assert_eq!(fake.last_login().unwrap().auth_response, Vec::<u8>::new(), "{auth:?}");
    }
}

#[test]
fn auth_switch_to_native_works() {
    let fake = FakeServer::start(Scenario::new(Auth::SwitchToNative, PW));
    let (code, out) = check(&fake, &[], Some(PW));
    assert_ok(code, &out, "fake-1", &fake);
    assert_eq!(fake.logins(), 1);
}

#[test]
fn auth_switch_to_caching_sha2_full_path_works() {
    let fake = FakeServer::start(Scenario::new(Auth::SwitchToCachingSha2Full, PW));
    let (code, out) = check(&fake, &[], Some(PW));
    assert_ok(code, &out, "fake-1", &fake);
    assert_eq!((fake.logins(), fake.rsa_exchanges()), (1, 1));
}

#[test]
fn auth_switch_to_caching_sha2_full_path_works_on_unix_socket() {
    let fake = FakeServer::unix(Scenario::new(Auth::SwitchToCachingSha2Full, PW));
    let (code, out) = check(&fake, &[], Some(PW));
    assert_ok(code, &out, "fake-1", &fake);
    assert_eq!((fake.logins(), fake.clear_passwords()), (1, 1));
}

#[test]
fn second_auth_switch_is_refused() {
    let fake = FakeServer::start(Scenario::new(Auth::SwitchTwice, PW));
    let (code, out) = check(&fake, &[], Some(PW));
    assert_eq!(code, 2, "stdout {out:?}");
    assert!(out.starts_with("CRITICAL - "), "stdout {out:?}");
    assert_eq!(fake.logins(), 0);
    assert_eq!(fake.violations(), Vec::<String>::new(), "the client answered the second switch");
}

#[test]
fn unknown_plugin_dialog_is_refused() {
    let fake = FakeServer::start(Scenario::new(Auth::SwitchToDialog, PW));
    let (code, out) = check(&fake, &[], Some(PW));
    assert_eq!(code, 2, "stdout {out:?}");
    assert!(out.starts_with("CRITICAL - "), "stdout {out:?}");
    assert_eq!(fake.logins(), 0);
    assert_eq!(fake.violations(), Vec::<String>::new(), "the client answered the dialog switch");
}

#[test]
fn wrong_password_is_access_denied_1045() {
    for auth in [Auth::Native, Auth::CachingSha2Fast, Auth::CachingSha2Full, Auth::SwitchToNative] {
        let fake = FakeServer::start(Scenario::new(auth, PW));
        let (code, out) = check(&fake, &[], Some("wrong"));
        assert_eq!(code, 2, "{auth:?}: stdout {out:?}");
        assert!(out.starts_with("CRITICAL - "), "{auth:?}: stdout {out:?}");
        assert!(out.contains("1045"), "{auth:?}: stdout {out:?}");
        assert!(out.to_lowercase().contains("access denied"), "{auth:?}: stdout {out:?}");
        assert_eq!(fake.logins(), 0);
    }
}

#[test]
fn wrong_user_is_access_denied_1045() {
    let fake = FakeServer::start(Scenario::new(Auth::Native, PW).user("monitor"));
    let (code, out) = check(&fake, &["--user", "someone"], Some(PW));
    assert_eq!(code, 2, "stdout {out:?}");
    assert!(out.contains("1045"), "stdout {out:?}");
    let (code, out) = check(&fake, &["--user", "monitor"], Some(PW));
    assert_ok(code, &out, "fake-1", &fake);
}

// ---------------------------------------------------------------------------------------------
// Result sets.

#[test]
fn result_without_eof_packets_is_read() {
    let fake = FakeServer::start(Scenario::new(Auth::Native, PW).deprecate_eof(true));
    let (code, out) = check(&fake, &[], Some(PW));
    assert_ok(code, &out, "fake-1", &fake);
    assert_ne!(fake.last_login().unwrap().caps & CLIENT_DEPRECATE_EOF, 0);
}

#[test]
fn result_with_eof_packets_is_read() {
    let fake = FakeServer::start(Scenario::new(Auth::Native, PW).deprecate_eof(false));
    let (code, out) = check(&fake, &[], Some(PW));
    assert_ok(code, &out, "fake-1", &fake);
    assert_eq!(fake.last_login().unwrap().caps & CLIENT_DEPRECATE_EOF, 0);
}

#[test]
fn first_value_of_a_wide_result_is_reported_in_both_framings() {
    let reply = Reply::Rows {
        columns: vec!["host".into(), "port".into(), "extra".into()],
        rows: vec![
            vec![Some("db-7".into()), Some("3306".into()), None],
            vec![Some("db-8".into()), None, Some("y".repeat(300))],
        ],
    };
    for eof in [true, false] {
        let fake = FakeServer::start(Scenario::new(Auth::Native, PW).deprecate_eof(eof).reply(reply.clone()));
        let (code, out) = check(&fake, &["--query", "select host, port, extra from t"], Some(PW));
        assert_ok(code, &out, "db-7", &fake);
        assert_eq!(fake.queries(), vec!["select host, port, extra from t".to_string(), PROBE.to_string()]);
    }
}

#[test]
fn null_first_value_is_reported() {
    let reply = Reply::Rows { columns: vec!["v".into()], rows: vec![vec![None]] };
    for eof in [true, false] {
        let fake = FakeServer::start(Scenario::new(Auth::Native, PW).deprecate_eof(eof).reply(reply.clone()));
        let (code, out) = check(&fake, &[], Some(PW));
        assert_ok(code, &out, "NULL", &fake);
    }
}

#[test]
fn empty_result_is_ok() {
    let reply = Reply::Rows { columns: vec!["v".into()], rows: vec![] };
    for eof in [true, false] {
        let fake = FakeServer::start(Scenario::new(Auth::Native, PW).deprecate_eof(eof).reply(reply.clone()));
        let (code, out) = check(&fake, &[], Some(PW));
        assert_eq!(code, 0, "stdout {out:?}");
        assert_eq!(fake.violations(), Vec::<String>::new());
    }
}

#[test]
fn client_sends_quit_after_every_login() {
    let fake = FakeServer::start(Scenario::new(Auth::CachingSha2Fast, PW).whole_replies());
    for _ in 0..3 {
        let (code, out) = check(&fake, &[], Some(PW));
        assert_eq!(code, 0, "stdout {out:?}");
    }
    let d = daemon(&fake, 10_000, Some(PW));
    for _ in 0..2 {
        let r = d.get("/");
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body.contains("MySQL is running."), "{r:?}");
        assert!(r.body.contains("fake-1"), "{r:?}");
    }
    eventually("five quits", || fake.quits() == 5);
    assert_eq!((fake.logins(), fake.quits()), (5, 5));
    // Each command waits for the previous one's reply: a MySQL-protocol proxy in front of the
    // database (Tungsten Connector, ProxySQL) is not bound to read pipelined commands.
    assert_eq!(fake.pipelined(), 0, "a QUIT (or query) sent before the query's reply");
    fake.assert_quit_segments(&[1; 5]);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[test]
fn handshake_response_advertises_only_what_it_should() {
    let must =
        CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
    for offer_eof in [true, false] {
        let fake = FakeServer::start(Scenario::new(Auth::Native, PW).deprecate_eof(offer_eof));
        let (code, out) = check(&fake, &[], Some(PW));
        assert_ok(code, &out, "fake-1", &fake);
        let login = fake.last_login().unwrap();
        assert_eq!(login.caps & must, must, "caps {:#x}", login.caps);
        assert_eq!(login.caps & CLIENT_DEPRECATE_EOF != 0, offer_eof, "caps {:#x}", login.caps);
        assert_eq!(login.caps & CLIENT_CONNECT_WITH_DB, 0, "caps {:#x}", login.caps);
        assert_eq!(login.database, None);
        assert_eq!(login.caps & (CLIENT_SSL | CLIENT_COMPRESS), 0, "caps {:#x}", login.caps);

        let (code, out) = check(&fake, &["--database", "chk"], Some(PW));
        assert_ok(code, &out, "fake-1", &fake);
        let login = fake.last_login().unwrap();
        assert_ne!(login.caps & CLIENT_CONNECT_WITH_DB, 0, "caps {:#x}", login.caps);
        assert_eq!(login.database.as_deref(), Some("chk"));
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile servers: each check must end CRITICAL within --timeout plus slack.

#[test]
fn garbage_instead_of_greeting_is_critical() {
    hostile_once(Hostile::Garbage);
}

#[test]
fn silent_server_is_critical_within_deadline() {
    hostile_once(Hostile::Silent);
}

#[test]
fn greeting_at_one_byte_per_second_is_critical_within_deadline() {
    hostile_once(Hostile::SlowGreeting);
}

#[test]
fn announced_16_mib_packet_is_critical_within_deadline() {
    hostile_once(Hostile::HugePacket);
}

#[test]
fn close_after_login_is_critical() {
    hostile_once(Hostile::CloseAfterLogin);
}

#[test]
fn too_many_connections_greeting_is_critical() {
    let (_fake, out) = hostile_once(Hostile::TooManyConnections);
    assert!(out.contains("Too many connections") || out.contains("1040"), "stdout {out:?}");
}

#[test]
fn result_set_truncated_mid_row_is_critical() {
    let (fake, _) = hostile_once(Hostile::TruncatedResultSet);
    assert_eq!(fake.logins(), 1);
}

#[test]
fn wrong_sequence_id_is_critical() {
    let (fake, _) = hostile_once(Hostile::WrongSequenceIds);
    assert_eq!(fake.queries(), Vec::<String>::new(), "the client carried on after seq 9");
}

#[test]
fn protocol_version_9_is_critical() {
    let (fake, _) = hostile_once(Hostile::ProtocolVersion9);
    assert_eq!(fake.last_login(), None, "the client answered a v9 greeting");
}

#[test]
fn query_error_is_critical() {
    let reply = Reply::Error { code: 1146, state: "42S02".into(), message: "Table 'chk.nope' doesn't exist".into() };
    let fake = FakeServer::start(Scenario::new(Auth::Native, "pw").reply(reply));
    let (code, out, took) = check_hostile(&fake);
    assert_critical_in_time("query error", code, &out, took);
    assert!(out.contains("1146"), "stdout {out:?}");
    assert_eq!(fake.logins(), 1);
    eventually("quit after the error", || fake.quits() == 1);
}

#[test]
fn unanswered_query_is_critical_within_deadline() {
    let (fake, _) = hostile_once(Hostile::QuerySilent);
    assert_eq!(fake.logins(), 1);
}

#[test]
fn unanswered_login_is_critical_within_deadline() {
    let (fake, _) = hostile_once(Hostile::LoginSilent);
    assert!(fake.last_login().is_some());
}

#[test]
fn stream_of_200_mb_is_cut_short() {
    let (fake, _) = hostile_once(Hostile::Stream200MB);
    assert_eq!(fake.logins(), 1);
    assert!(fake.streamed_bytes() < 200_000_000, "the client read all of it");
}

// ---------------------------------------------------------------------------------------------
// The HTTP daemon against hostile servers: 503 in time, and it keeps answering.

/// GET / must answer 503 within --timeout + slack; returns the body.
fn get_503_in_time(d: &Daemon, h: Hostile) -> String {
    let started = Instant::now();
    let r = d.get("/");
    let took = started.elapsed();
    assert_eq!(r.status, 503, "{h:?}: {r:?}");
    assert!(r.body.contains("MySQL is *down*."), "{h:?}: {r:?}");
    let bound = Duration::from_millis(TIMEOUT_MS) + SLACK;
    assert!(took < bound, "{h:?}: took {took:?}, more than {bound:?}");
    r.body
}

fn daemon_survives(h: Hostile) -> (FakeServer, String) {
    let fake = FakeServer::start(Scenario::hostile(h));
    let d = daemon(&fake, TIMEOUT_MS, Some("pw"));
    let body = get_503_in_time(&d, h);
    eprintln!("{h:?}: {body:?}");
    get_503_in_time(&d, h);
    // Then the server heals and the next check passes.
    fake.set_scenario(Scenario::new(Auth::Native, "pw"));
    let r = d.get("/");
    assert_eq!(r.status, 200, "{h:?}: {r:?}");
    assert!(r.body.contains("MySQL is running.") && r.body.contains("fake-1"), "{r:?}");
    (fake, body)
}

#[test]
fn daemon_answers_503_for_silent_server_and_recovers() {
    daemon_survives(Hostile::Silent);
}

#[test]
fn daemon_answers_503_for_too_many_connections_and_recovers() {
    let (_fake, body) = daemon_survives(Hostile::TooManyConnections);
    assert!(body.contains("Too many connections") || body.contains("1040"), "{body:?}");
}

#[test]
fn daemon_answers_503_for_garbage_and_recovers() {
    daemon_survives(Hostile::Garbage);
}

#[test]
fn daemon_answers_503_for_unanswered_query_and_recovers() {
    daemon_survives(Hostile::QuerySilent);
}

#[test]
fn daemon_answers_503_promptly_for_a_200_mb_result_set() {
    let (fake, _) = daemon_survives(Hostile::Stream200MB);
    assert!(fake.streamed_bytes() < 200_000_000 * 2, "the client read all of it");
}
