//! The client state machine fed arbitrary server bytes, as the check driver runs it.
//!
//! Input: one byte of options, four chunk sizes (0 feeds one byte at a time, 0xFF the rest),
//! then the server's side of the conversation. The same bytes are also fed in one piece: both
//! runs must take the same steps, since every byte can be fed one at a time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mysqlchk::mysql::{Action, Options, Session, Transport};

/// No write may be this large: every packet we build is far smaller.
const MAX_WRITE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, sizes @ ..], server)) = data.split_first_chunk::<5>() else {
        return;
    };
    let opts = Options {
        user: "haproxy".into(),
        password: if flags & 1 != 0 { "hapass".into() } else { Default::default() },
        database: (flags & 2 != 0).then(|| "chk".into()),
        transport: if flags & 4 != 0 { Transport::Unix } else { Transport::Tcp },
    };
    let chunked = run(Session::new(opts.clone()), server, sizes);
    let whole = run(Session::new(opts), server, [0xFF; 4]);
    assert_eq!(chunked, whole, "feeding in chunks {sizes:?} changed the session");
});

/// Drives one session to its end; returns what it did. Writes are kept as their frame header and
/// length, since RSA-OAEP output is random.
fn run(mut s: Session, mut server: &[u8], sizes: [u8; 4]) -> Vec<String> {
    let mut trace = Vec::new();
    let mut queried = false;
    let mut feeds = 0;
    // Every step but NeedMore needs a packet (4 bytes at least) or our query/quit.
    for _ in 0..10_000 + 2 * server.len() {
        let action = s.poll();
        match &action {
            Ok(Action::Write(bytes)) => {
                assert!(bytes.len() < MAX_WRITE, "write of {} bytes", bytes.len());
                trace.push(format!("write {:02x?} +{}", &bytes[..bytes.len().min(4)], bytes.len()));
                continue;
            }
            Ok(Action::NeedMore) => {
                if server.is_empty() {
                    return trace;
                }
                let n = match sizes[feeds % 4] {
                    0xFF => server.len(),
                    b => usize::from(b) + 1,
                };
                let (now, later) = server.split_at(n.min(server.len()));
                s.feed(now);
                server = later;
                feeds += 1;
                continue;
            }
            _ => trace.push(format!("{action:?}")),
        }
        match action {
            Ok(Action::Ready) => {
                assert!(s.is_logged_in());
                if queried {
                    s.quit();
                } else {
                    assert!(s.query("select @@hostname"));
                    queried = true;
                }
            }
            Ok(Action::Reply(_)) => {}
            Ok(Action::Closed) => return trace,
            Err(_) => {
                assert_eq!(s.poll(), Ok(Action::Closed), "a failed session must stay closed");
                return trace;
            }
            // TLS is never requested here: the check driver owns the handshake.
            Ok(Action::Write(_) | Action::NeedMore | Action::StartTls) => unreachable!(),
        }
    }
    panic!("session still busy after {} steps: {trace:?}", trace.len());
}
