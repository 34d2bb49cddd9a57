//! HandshakeV10 parsing of an arbitrary payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mysqlchk::mysql::handshake::Greeting;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = Greeting::parse(data) {
        assert!(g.scramble.len() <= data.len());
    }
});
