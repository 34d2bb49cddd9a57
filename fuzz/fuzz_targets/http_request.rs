//! The HTTP request reader, fed as the daemon feeds it: the bytes received so far, grown one read
//! at a time (the read size comes from the last byte), until a head, an error, or the end. A complete head is then mapped to a profile
//! and answered. Incomplete heads never grow past `MAX_HEAD`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mysqlchk::http::{self, parse_request, Status, MAX_HEAD};
use mysqlchk::profile::{Defaults, Profile};

fuzz_target!(|data: &[u8]| {
    // The last byte picks the read size, so short reads are exercised too and seeds stay plain
    // requests.
    let Some(&last) = data.last() else {
        return;
    };
    let step = usize::from(last) * 4 + 1;
    let mut end = 0;
    while end < data.len() {
        end = (end + step).min(data.len());
        match parse_request(&data[..end]) {
            Ok(None) => assert!(end <= MAX_HEAD, "{end} bytes buffered without a head"),
            Ok(Some(req)) => {
                let defaults = Defaults { max_lag: 30, donor_ok: false };
                let status = match Profile::from_path(&req.path, req.query.as_deref(), defaults) {
                    Ok(_) => Status::Ok,
                    Err(_) => Status::NotFound,
                };
                let out = http::render(status, "text/plain", &req.path, req.is_head());
                assert!(out.starts_with(b"HTTP/1.1 "));
                return;
            }
            Err(_) => return,
        }
    }
});
