//! The COM_QUERY reply parser fed framed payloads until it is done or refuses. The first byte
//! picks the dialect (CLIENT_DEPRECATE_EOF or not).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mysqlchk::mysql::packet;
use mysqlchk::mysql::resultset::{Parser, Progress, MAX_RESULT_BYTES};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut parser = Parser::new(flags & 1 != 0);
    while let Ok(Some((p, used))) = packet::decode(rest) {
        rest = &rest[used..];
        match parser.packet(p.payload) {
            Ok(Progress::More) => {}
            Ok(Progress::Done(Ok(rs))) => {
                let kept: usize = rs.columns.iter().map(|c| c.len() + 24).sum::<usize>()
                    + rs.rows.iter().flatten().map(|v| v.as_ref().map_or(0, Vec::len) + 24).sum::<usize>();
                assert!(kept <= MAX_RESULT_BYTES, "kept {kept} bytes");
                assert!(rs.rows.iter().all(|r| r.len() == rs.columns.len()));
                return;
            }
            Ok(Progress::Done(Err(_))) | Err(_) => return,
        }
    }
});
