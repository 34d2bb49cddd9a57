//! Packets captured from a real MariaDB 10.11.19 (Debian 12) on loopback, decoded field by field,
//! and whole sessions replayed: the client must answer with exactly the bytes that server
//! accepted. Every prefix of every server packet must need more bytes, and feeding one byte at a
//! time must give the same session.
//!
//! One bit differs from the capture in each HandshakeResponse: CLIENT_MULTI_STATEMENTS
//! (0x00010000, capability bytes `a22a01` then, `a22b01` now), asked for since the capture
//! because the server offers it (`ff81`) and the probe rides along with `--query`. The same
//! server accepts it in every real-MariaDB test (tests/mariadb.rs, tests/clusters.rs).

use mysqlchk::mysql::handshake::Greeting;
use mysqlchk::mysql::packet;
use mysqlchk::mysql::{caps, Action, Error, Options, Session, Transport};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dir {
    S,
    C,
}
use Dir::{C, S};

const NATIVE_LOGIN: &[(Dir, &str)] = &[
    (S, "640000000a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100040000004548763d6a7d587e00fef7080200ff81150000000000001d000000352b7328695a687a4f5a5725006d7973716c5f6e61746976655f70617373776f726400"),
    (C, "5300000100a22b01000000012d0000000000000000000000000000000000000000000000686170726f787900149ef551125f7e018885777ffea5add18f0483e8056d7973716c5f6e61746976655f70617373776f726400"),
    (S, "0700000200000002000000"),
    (C, "120000000373656c656374204040686f73746e616d65"),
    (S, "010000010120000002036465660000000a4040686f73746e616d65000c2d0008000000fd00002700000300000302766d07000004fe000002000000"),
    (C, "0100000001"),
];

const ED25519_SWITCH: &[(Dir, &str)] = &[
    (S, "640000000a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100050000002a387b243f515a5000fef7080200ff81150000000000001d0000006072402434777a243c452423006d7973716c5f6e61746976655f70617373776f726400"),
    (C, "5200000100a22b01000000012d0000000000000000000000000000000000000000000000656475736572001402f403916683071d57594cb45d0d7693d0e38ef56d7973716c5f6e61746976655f70617373776f726400"),
    (S, "30000002fe636c69656e745f6564323535313900afda0eb1a729d3c9faf2f7bc78a3b7409810c4fa216925a78a5bdc2ef8edf044"),
    (C, "40000003064efd757fb57db360fff20db2074f03e429c026af6b7586bea7ed458cf3a5484d219ccb8239e3ac714eeb3d67f127fd5111ee5ffaa12760f743f460185d5102"),
    (S, "0700000400000002000000"),
    (C, "120000000373656c656374204040686f73746e616d65"),
    (S, "010000010120000002036465660000000a4040686f73746e616d65000c2d0008000000fd00002700000300000302766d07000004fe000002000000"),
    (C, "0100000001"),
];

const WRONG_PASSWORD: &[(Dir, &str)] = &[
    (S, "640000000a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100060000005940713c765d4d4c00fef7080200ff81150000000000001d000000727a2e737a2f73792a5d765d006d7973716c5f6e61746976655f70617373776f726400"),
    (C, "5300000100a22b01000000012d0000000000000000000000000000000000000000000000686170726f78790014e8c97166caa2324404a53804f0da6b5cb6a7e0c46d7973716c5f6e61746976655f70617373776f726400"),
    (S, "4b000002ff15042332383030304163636573732064656e69656420666f7220757365722027686170726f78792740273132372e302e302e312720287573696e672070617373776f72643a2059455329"),
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn opts(user: &str, password: &str) -> Options {
    Options { user: user.into(), password: password.into(), database: None, transport: Transport::Tcp }
}

/// Replays `transcript`, feeding server bytes `chunk` at a time, and checks every byte the client
/// writes. Returns the first value of the query, or the login error.
fn replay(transcript: &[(Dir, &str)], mut session: Session, chunk: usize) -> Result<Vec<u8>, Error> {
    let mut value = None;
    let mut steps = transcript.iter();
    loop {
        match session.poll()? {
            Action::Write(bytes) => {
                let (dir, want) = steps.next().expect("client wrote past the transcript");
                assert_eq!(*dir, C, "client wrote when the server was due");
                assert_eq!(bytes, unhex(want), "client bytes differ from the accepted ones");
            }
            Action::NeedMore => {
                let (dir, bytes) = steps.next().expect("client waits past the transcript");
                assert_eq!(*dir, S, "client waits when it is due to write");
                for piece in unhex(bytes).chunks(chunk) {
                    session.feed(piece);
                }
            }
            Action::Ready if value.is_none() => assert!(session.query("select @@hostname")),
            Action::Ready => session.quit(),
            Action::Reply(r) => value = Some(r.unwrap().first_value().unwrap().to_vec()),
            Action::Closed => break,
            Action::StartTls => panic!("TLS was not requested"),
        }
    }
    assert!(steps.next().is_none(), "transcript not finished");
    Ok(value.unwrap())
}

#[test]
fn greeting_decodes_field_by_field() {
    let frame = unhex(NATIVE_LOGIN[0].1);
    let (p, used) = packet::decode(&frame).unwrap().unwrap();
    assert_eq!((p.seq, used), (0, frame.len()));
    let g = Greeting::parse(p.payload).unwrap();
    assert_eq!(g.server_version, "5.5.5-10.11.19-MariaDB-0+deb12u1");
    assert_eq!(g.connection_id, 4);
    assert_eq!(g.scramble, b"EHv=j}X~5+s(iZhzOZW%");
    assert_eq!(g.auth_plugin, "mysql_native_password");
    for cap in [
        caps::PROTOCOL_41,
        caps::SECURE_CONNECTION,
        caps::PLUGIN_AUTH,
        caps::PLUGIN_AUTH_LENENC_CLIENT_DATA,
        caps::DEPRECATE_EOF,
        caps::CONNECT_WITH_DB,
    ] {
        assert_ne!(g.capabilities & cap, 0, "cap {cap:#x}");
    }
}

#[test]
fn native_login_replays_byte_for_byte() {
    assert_eq!(replay(NATIVE_LOGIN, Session::new(opts("haproxy", "hapass")), usize::MAX).unwrap(), b"vm");
}

#[test]
fn ed25519_switch_replays_byte_for_byte() {
    assert_eq!(replay(ED25519_SWITCH, Session::new(opts("eduser", "edpass")), usize::MAX).unwrap(), b"vm");
}

#[test]
fn sessions_fed_one_byte_at_a_time_are_the_same() {
    assert_eq!(replay(NATIVE_LOGIN, Session::new(opts("haproxy", "hapass")), 1).unwrap(), b"vm");
    assert_eq!(replay(ED25519_SWITCH, Session::new(opts("eduser", "edpass")), 1).unwrap(), b"vm");
}

#[test]
fn wrong_password_is_err_1045_with_sqlstate() {
    match replay(WRONG_PASSWORD, Session::new(opts("haproxy", "bad")), 1) {
        Err(Error::Server(e)) => {
            assert_eq!(e.code, 1045);
            assert_eq!(e.state.as_deref(), Some("28000"));
            assert_eq!(e.message, "Access denied for user 'haproxy'@'127.0.0.1' (using password: YES)");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_prefix_of_every_server_packet_needs_more_bytes() {
    for transcript in [NATIVE_LOGIN, ED25519_SWITCH, WRONG_PASSWORD] {
        for (i, (dir, hex)) in transcript.iter().enumerate() {
            if *dir != S {
                continue;
            }
            let whole = unhex(hex);
            for n in 0..whole.len() {
                // A session advanced to just before this packet, then fed a prefix of it.
                let mut s = Session::new(opts("haproxy", "hapass"));
                advance_to(&mut s, &transcript[..i]);
                s.feed(&whole[..n]);
                loop {
                    match s.poll() {
                        Ok(Action::NeedMore) => break,
                        Ok(Action::Write(_)) if n == 0 => continue,
                        other => panic!("packet {i} prefix {n}: {other:?}"),
                    }
                }
            }
        }
    }
}

/// Feeds the server packets of `before` and swallows the client's writes and Ready steps.
fn advance_to(s: &mut Session, before: &[(Dir, &str)]) {
    for (dir, hex) in before {
        loop {
            match s.poll() {
                Ok(Action::Write(_)) | Ok(Action::Reply(_)) => continue,
                Ok(Action::Ready) => {
                    let _ = s.query("select @@hostname");
                }
                _ => break,
            }
        }
        if *dir == S {
            s.feed(&unhex(hex));
        }
    }
}
