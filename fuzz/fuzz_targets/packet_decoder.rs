//! Framing: `decode` never panics, takes exactly one frame, refuses oversized lengths, and every
//! prefix of a frame needs more bytes. Each payload is then walked with `Reader` and `parse_err`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mysqlchk::mysql::packet::{self, Reader, HEADER_LEN, MAX_PAYLOAD};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((p, used))) = packet::decode(rest) {
        assert_eq!(used, HEADER_LEN + p.payload.len());
        assert!(used <= rest.len() && p.payload.len() <= MAX_PAYLOAD);
        for n in 0..used {
            assert_eq!(packet::decode(&rest[..n]), Ok(None), "prefix {n} of a {used}-byte frame");
        }
        let _ = mysqlchk::mysql::parse_err(p.payload);
        read_fields(p.payload, p.seq);
        rest = &rest[used..];
    }
});

/// Reads typed fields until the payload ends or one is malformed; the sequence id picks the
/// first field type, then they rotate. Every read must consume or fail, never loop.
fn read_fields(payload: &[u8], first: u8) {
    let mut r = Reader::new(payload);
    for op in (0..7).cycle().skip(usize::from(first % 7)) {
        let before = r.remaining().len();
        let ok = match op {
            0 => r.u8("u8").is_ok(),
            1 => r.u16("u16").is_ok(),
            2 => r.u32("u32").is_ok(),
            3 => r.lenenc_int("lenenc int").is_ok(),
            4 => r.lenenc_str("lenenc str").is_ok(),
            5 => r.bytes(usize::from(first), "bytes").is_ok(),
            _ => {
                r.nul_str();
                true
            }
        };
        if !ok || r.is_empty() {
            break;
        }
        assert!(r.remaining().len() < before || (op == 5 && first == 0), "op {op} consumed nothing");
    }
}
