//! Profile selection from a path and query string, split the way the agent-check line is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mysqlchk::profile::{Defaults, Profile};

fuzz_target!(|line: &str| {
    let (path, query) = match line.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (line, None),
    };
    let d = Defaults { max_lag: 30, donor_ok: false };
    match Profile::from_path(path, query, d) {
        Ok(p) => {
            let _ = p.kind().plan();
            let _ = p.judge(&[]);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
