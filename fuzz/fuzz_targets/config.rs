//! `--target` and `--allow` parsing: no panics, and what parses prints back as something that
//! parses to the same target.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use mysqlchk::config::{Cidr, Target};

fuzz_target!(|s: &str| {
    if let Ok(t) = Target::parse(s) {
        let shown = t.to_string();
        assert_eq!(Target::parse(&shown).ok(), Some(t), "{s:?} shown as {shown:?}");
    }
    if let Ok(c) = Cidr::parse(s) {
        for ip in ["127.0.0.1", "::1", "::ffff:10.0.0.1", "10.1.2.3", "fe80::1"] {
            let _ = c.contains(ip.parse::<IpAddr>().unwrap());
        }
    }
});
