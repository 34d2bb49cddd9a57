//! Profile selection from a path and query string, split the way the agent-check line is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mysqlchk::profile::{Defaults, Flavor, Profile};

fuzz_target!(|line: &str| {
    let (path, query) = match line.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (line, None),
    };
    let d = Defaults { max_lag: 30, donor_ok: false };
    match Profile::from_path(path, query, d) {
        Ok(p) => {
            let _ = p.kind().plan(Flavor::MariaDb);
            let _ = p.kind().plan(Flavor::MySql);
            let _ = p.judge(&[]);
            // The canonical form names the same profile.
            let canonical = p.to_string();
            let (path, query) = match canonical.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (canonical.as_str(), None),
            };
            assert_eq!(Profile::from_path(path, query, d).ok(), Some(p));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
