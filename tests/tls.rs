//! TLS to the database (`--ssl-mode`), against a real MariaDB with `require_secure_transport`
//! and against the fake server speaking TLS (rustls, server side), plus hostile TLS servers.
//! Everything but the flag checks of the plain build needs the TLS build (`--features tls`).

mod common;

use common::fake::{FakeServer, Hostile, Scenario};
use common::once;

/// Generous for a noisy 2-core box, for tests that are not about timing.
const TIMEOUT_MS: &str = "10000";

/// `--once` flags: check `target` as `user`, a force-fail file that does not exist, then `extra`.
fn args(target: &str, user: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> =
        ["--mysql", target, "--user", user, "--force-fail-file", "/nonexistent/mysqlchk-off", "--timeout", TIMEOUT_MS]
            .iter()
            .map(|s| s.to_string())
            .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn run_once(target: &str, user: &str, pw: Option<&str>, extra: &[&str]) -> (i32, String) {
    let a = args(target, user, extra);
    once(&a.iter().map(String::as_str).collect::<Vec<_>>(), pw)
}

/// Runs `mysqlchk --once` with `flags` and returns the exit code and stderr.
fn start_error(flags: &[&str]) -> (i32, String) {
    let out = common::mysqlchk()
        .args(flags)
        .args(["--force-fail-file", "/nonexistent/mysqlchk-off"])
        .env_remove("MYSQLCHK_PASSWORD")
        .output()
        .expect("run mysqlchk");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn mysql8_error_3159_says_tls_is_required() {
    let fake = FakeServer::start(Scenario::hostile(Hostile::RequireSecureTransport));
    let (code, out) = run_once(&fake.target(), "u", Some("pw"), &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("TLS required by server (use --ssl-mode)"), "{out}");
}

#[cfg(not(feature = "tls"))]
#[test]
fn plain_build_refuses_every_ssl_flag_naming_the_tls_build() {
    for flags in [
        &["--ssl-mode", "REQUIRED"][..],
        &["--ssl-mode", "preferred"],
        &["--ssl-ca", "/etc/ssl/certs/ca-certificates.crt"],
        &["--ssl-cert", "/x.pem", "--ssl-key", "/k.pem"],
        &["--ssl-no-resume"],
    ] {
        let (code, err) = start_error(&[flags, &["--listen", "127.0.0.1:1"]].concat());
        assert_eq!(code, 1, "{flags:?}: {err}");
        assert!(err.contains("mysqlchk-tls") && err.contains(flags[0]), "{flags:?}: {err}");
        let (code, _) = start_error(&[flags, &["--once"]].concat());
        assert_eq!(code, 3, "{flags:?} with --once");
    }
    let (code, err) = start_error(&["--ssl-mode", "DISABLED", "--once", "--mysql", "127.0.0.1:1", "--timeout", "500"]);
    assert_eq!(code, 2, "DISABLED is accepted and checks (and fails to connect): {err}");
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use common::fake::Auth;
    use common::mariadb::{MariaDb, Options, TlsFiles};
    use common::pki::Pki;
    use common::{Daemon, TempDir};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    fn pki() -> &'static Pki {
        static PKI: OnceLock<Pki> = OnceLock::new();
        PKI.get_or_init(Pki::new)
    }

    /// The users of the TLS server: REQUIRE SSL (native), REQUIRE X509, ed25519 REQUIRE SSL.
    const TLS_USERS: &str = "\
CREATE USER IF NOT EXISTS 'ssluser'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('sslpass') REQUIRE SSL;
CREATE USER IF NOT EXISTS 'x509user'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('x509pass') REQUIRE X509;
CREATE USER IF NOT EXISTS 'edssl'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('edpass') REQUIRE SSL;
";

    fn tls_server(pair: &common::pki::Pair, require: bool, version: Option<&str>, bind: Option<&str>) -> MariaDb {
        let p = pki();
        MariaDb::start_options(Options {
            tls: Some(TlsFiles { ca: p.ca.clone(), cert: pair.cert.clone(), key: pair.key.clone() }),
            require_secure_transport: require,
            tls_version: version.map(String::from),
            bind: bind.map(String::from),
            init_sql: TLS_USERS.into(),
            ..Options::default()
        })
    }

    /// require_secure_transport=ON, listening on 127.0.0.1 and 127.0.0.2 (not in the SANs).
    fn secure() -> &'static MariaDb {
        static DB: OnceLock<MariaDb> = OnceLock::new();
        DB.get_or_init(|| tls_server(&pki().server, true, None, Some("127.0.0.1,127.0.0.2")))
    }

    fn path(p: &std::path::Path) -> &str {
        p.to_str().unwrap()
    }

    fn ok(out: &(i32, String)) {
        assert_eq!(out.0, 0, "expected OK: {}", out.1);
    }

    fn critical(out: &(i32, String), reason: &str) {
        assert_eq!(out.0, 2, "expected CRITICAL: {}", out.1);
        assert!(out.1.contains(reason), "expected {reason:?} in {}", out.1);
    }

    #[test]
    fn every_mode_against_require_secure_transport() {
        let db = secure();
        let p = pki();
        let addr = db.addr();
        let ca = path(&p.ca);
        // DISABLED: MariaDB answers a bare 1045 (no hint that TLS would help).
        critical(&run_once(&addr, "ssluser", Some("sslpass"), &[]), "access denied (1045)");
        let query = ["--query", "select current_user()"];
        for mode in ["PREFERRED", "REQUIRED"] {
            let out = run_once(&addr, "ssluser", Some("sslpass"), &[&["--ssl-mode", mode][..], &query].concat());
            ok(&out);
            assert!(out.1.starts_with("OK - ssluser@%"), "{}", out.1);
        }
        for mode in ["VERIFY_CA", "VERIFY_IDENTITY"] {
            ok(&run_once(&addr, "ssluser", Some("sslpass"), &["--ssl-mode", mode, "--ssl-ca", ca]));
            ok(&run_once(
                &format!("localhost:{}", db.port),
                "ssluser",
                Some("sslpass"),
                &["--ssl-mode", mode, "--ssl-ca", ca],
            ));
        }
        // ed25519 inside TLS.
        ok(&run_once(&addr, "edssl", Some("edpass"), &["--ssl-mode", "VERIFY_IDENTITY", "--ssl-ca", ca]));
        // The wrong password is still a 1045, TLS or not.
        critical(&run_once(&addr, "ssluser", Some("nope"), &["--ssl-mode", "REQUIRED"]), "access denied (1045)");
    }

    #[test]
    fn require_x509_needs_the_client_certificate() {
        let db = secure();
        let p = pki();
        let base = ["--ssl-mode", "VERIFY_IDENTITY", "--ssl-ca", path(&p.ca)];
        critical(&run_once(&db.addr(), "x509user", Some("x509pass"), &base), "access denied (1045)");
        let with_cert = [&base[..], &["--ssl-cert", path(&p.client.cert), "--ssl-key", path(&p.client.key)]].concat();
        ok(&run_once(&db.addr(), "x509user", Some("x509pass"), &with_cert));
    }

    #[test]
    fn wrong_ca_is_not_trusted_and_an_address_outside_the_sans_is_a_name_mismatch() {
        let db = secure();
        let p = pki();
        for mode in ["VERIFY_CA", "VERIFY_IDENTITY"] {
            let out =
                run_once(&db.addr(), "ssluser", Some("sslpass"), &["--ssl-mode", mode, "--ssl-ca", path(&p.other_ca)]);
            critical(&out, "TLS certificate not trusted");
        }
        let other = format!("127.0.0.2:{}", db.port);
        let verify =
            |mode| run_once(&other, "ssluser", Some("sslpass"), &["--ssl-mode", mode, "--ssl-ca", path(&p.ca)]);
        critical(&verify("VERIFY_IDENTITY"), "TLS certificate name mismatch");
        ok(&verify("VERIFY_CA"));
    }

    #[test]
    fn expired_server_certificate() {
        let p = pki();
        let db = tls_server(&p.expired, true, None, None);
        for mode in ["VERIFY_CA", "VERIFY_IDENTITY"] {
            let out = run_once(&db.addr(), "ssluser", Some("sslpass"), &["--ssl-mode", mode, "--ssl-ca", path(&p.ca)]);
            critical(&out, "TLS certificate expired");
        }
        ok(&run_once(&db.addr(), "ssluser", Some("sslpass"), &["--ssl-mode", "REQUIRED"]));
    }

    #[test]
    fn tls_1_2_only_and_1_3_only_servers() {
        let p = pki();
        // The session's own TLS version, as the server saw it.
        let query = "select variable_value from information_schema.session_status where variable_name = 'Ssl_version'";
        for version in ["TLSv1.2", "TLSv1.3"] {
            let db = tls_server(&p.server, true, Some(version), None);
            let flags = ["--ssl-mode", "VERIFY_IDENTITY", "--ssl-ca", path(&p.ca), "--query", query];
            let out = run_once(&db.addr(), "ssluser", Some("sslpass"), &flags);
            ok(&out);
            assert!(out.1.starts_with(&format!("OK - {version} ")), "{}", out.1);
        }
    }

    #[test]
    fn preferred_falls_back_to_plaintext_and_required_fails_without_tls() {
        let db = MariaDb::start();
        ok(&run_once(&db.addr(), "haproxy", Some("hapass"), &["--ssl-mode", "PREFERRED"]));
        critical(
            &run_once(&db.addr(), "haproxy", Some("hapass"), &["--ssl-mode", "REQUIRED"]),
            "server does not offer TLS",
        );
    }

    #[test]
    fn caching_sha2_full_auth_sends_the_clear_password_inside_tls_and_asks_no_key() {
        let p = pki();
        let fake = FakeServer::start(Scenario::new(Auth::CachingSha2Full, "pw").tls(p.server.server_config()));
        ok(&run_once(&fake.target(), "u", Some("pw"), &["--ssl-mode", "VERIFY_IDENTITY", "--ssl-ca", path(&p.ca)]));
        assert_eq!(fake.tls_handshakes(), 1);
        assert_eq!(fake.tls_clear_passwords(), 1, "the password arrived inside TLS");
        assert_eq!(fake.rsa_exchanges(), 0, "no public key requested");
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
        // Without TLS the same server gets the RSA exchange instead.
        ok(&run_once(&fake.target(), "u", Some("pw"), &[]));
        assert_eq!(fake.rsa_exchanges(), 1);
    }

    /// Three checks against the fake TLS server with VERIFY_IDENTITY and `extra` flags: the
    /// fake's resumptions, and the daemon's (full, resumed) handshake counters.
    fn three_tls_checks(extra: &[&str]) -> (usize, (u64, u64)) {
        let p = pki();
        let fake = FakeServer::start(Scenario::new(Auth::Native, "pw").whole_replies().tls(p.server.server_config()));
        let target = fake.target();
        let flags = ["--mysql", &target, "--user", "u", "--force-fail-file", "/nonexistent/mysqlchk-off"];
        let d = Daemon::start(
            &[&flags[..], &["--ssl-mode", "VERIFY_IDENTITY", "--ssl-ca", path(&p.ca)], extra].concat(),
            Some("pw"),
        );
        for _ in 0..3 {
            assert_eq!(d.get("/").status, 200);
        }
        assert_eq!(fake.tls_handshakes(), 3);
        // The QUIT's record, the close_notify and the FIN: one segment.
        fake.assert_quit_segments(&[1; 3]);
        (fake.tls_resumptions(), handshakes(&d))
    }

    #[test]
    fn later_checks_resume_the_tls_session() {
        let (resumed, counters) = three_tls_checks(&[]);
        assert_eq!(resumed, 2, "the first check's session is resumed by the next two");
        assert_eq!(counters, (1, 2));
    }

    #[test]
    fn ssl_no_resume_makes_a_full_handshake_every_check() {
        let (resumed, counters) = three_tls_checks(&["--ssl-no-resume"]);
        assert_eq!(resumed, 0, "every check verified the certificate afresh");
        assert_eq!(counters, (3, 0));
    }

    #[test]
    fn metrics_count_resumed_handshakes_against_mariadb() {
        let db = secure();
        let addr = db.addr();
        let flags = ["--mysql", &addr, "--user", "ssluser", "--force-fail-file", "/nonexistent/mysqlchk-off"];
        let tls = ["--ssl-mode", "VERIFY_IDENTITY", "--ssl-ca", path(&pki().ca)];
        let d = Daemon::start(&[&flags[..], &tls].concat(), Some("sslpass"));
        assert_eq!(handshakes(&d), (0, 0));
        for _ in 0..3 {
            assert_eq!(d.get("/").status, 200);
        }
        assert_eq!(handshakes(&d), (1, 2), "MariaDB's TLS 1.3 tickets let later checks resume");
        let d = Daemon::start(&[&flags[..], &tls, &["--ssl-no-resume"]].concat(), Some("sslpass"));
        for _ in 0..3 {
            assert_eq!(d.get("/").status, 200);
        }
        assert_eq!(handshakes(&d), (3, 0));
    }

    /// `mysqlchk_tls_handshakes_total` from the daemon's /metrics: (full, resumed).
    fn handshakes(d: &Daemon) -> (u64, u64) {
        let body = d.get("/metrics").body;
        let count = |resumed: &str| -> u64 {
            let series = format!("mysqlchk_tls_handshakes_total{{resumed=\"{resumed}\"}} ");
            let line = body.lines().find_map(|l| l.strip_prefix(series.as_str()));
            line.unwrap_or_else(|| panic!("no {series} in {body}")).parse().unwrap()
        };
        (count("no"), count("yes"))
    }

    #[test]
    fn hostile_tls_servers_give_503_in_time_and_the_daemon_lives_on() {
        let p = pki();
        let mut long_chain = Vec::new();
        let ca_der: Vec<_> = {
            use rustls::pki_types::pem::PemObject;
            rustls::pki_types::CertificateDer::pem_file_iter(&p.ca).unwrap().collect::<Result<_, _>>().unwrap()
        };
        for _ in 0..200 {
            long_chain.extend(ca_der.iter().cloned());
        }
        let fake = FakeServer::start(Scenario::hostile(Hostile::TlsGarbage));
        let target = fake.target();
        let flags = ["--mysql", &target, "--user", "u", "--force-fail-file", "/nonexistent/mysqlchk-off"];
        let d = Daemon::start(&[&flags[..], &["--ssl-mode", "REQUIRED", "--timeout", "1500"]].concat(), Some("pw"));
        let cases: [(Scenario, &str); 3] = [
            (Scenario::hostile(Hostile::TlsGarbage), "TLS error"),
            (Scenario::hostile(Hostile::TlsStall), "timeout"),
            (Scenario::new(Auth::Native, "pw").tls(p.server.server_config_with_chain(long_chain)), "TLS error"),
        ];
        for (scenario, reason) in cases {
            fake.set_scenario(scenario);
            let t = Instant::now();
            let r = d.get("/");
            assert_eq!(r.status, 503, "{r:?}");
            assert!(r.body.contains(reason), "expected {reason:?}: {r:?}");
            assert!(t.elapsed() < Duration::from_secs(6), "took {:?}", t.elapsed());
        }
        fake.set_scenario(Scenario::new(Auth::Native, "pw").tls(p.server.server_config()));
        let r = d.get("/");
        assert_eq!(r.status, 200, "the daemon lives on: {r:?}");
        // Memory stays bounded: the release build's whole peak RSS (scripts/test.sh), natively.
        if std::env::var_os("MYSQLCHK_TEST_BIN").is_some() && !common::emulated() {
            let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
            let hwm: u64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok())
                .unwrap();
            assert!(hwm < 4096, "peak RSS {hwm} KiB after hostile TLS servers");
        }
    }

    #[test]
    fn config_errors_stop_at_start() {
        let p = pki();
        let dir = TempDir::new("tlsflags");
        let open_key = dir.join("open-key.pem");
        std::fs::copy(&p.client.key, &open_key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let missing = dir.join("missing.pem");
        let cases: [(&[&str], &str); 5] = [
            (&["--ssl-mode", "VERIFY_CA"], "needs --ssl-ca"),
            (&["--ssl-mode", "VERIFY_IDENTITY"], "needs --ssl-ca"),
            (&["--ssl-mode", "SOMETIMES"], "invalid --ssl-mode"),
            (
                &["--ssl-mode", "REQUIRED", "--ssl-cert", path(&p.client.cert), "--ssl-key", path(&open_key)],
                "chmod 600",
            ),
            (&["--ssl-mode", "VERIFY_CA", "--ssl-ca", path(&missing)], "--ssl-ca"),
        ];
        for (flags, want) in cases {
            let (code, err) = start_error(&[flags, &["--once"]].concat());
            assert_eq!(code, 3, "{flags:?}: {err}");
            assert!(err.contains(want), "{flags:?}: {err}");
            let (code, _) = start_error(&[flags, &["--listen", "127.0.0.1:1"]].concat());
            assert_eq!(code, 1, "{flags:?}");
        }
    }

    #[test]
    fn unix_socket_ignores_the_ssl_mode() {
        let db = secure();
        let sock = path(&db.socket);
        ok(&run_once(sock, "haproxy", Some("hapass"), &["--ssl-mode", "REQUIRED"]));
    }
}
