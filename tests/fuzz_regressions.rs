//! Inputs the fuzz targets in `fuzz/` found, replayed against the same APIs.

use mysqlchk::config::Target;

/// Found by the `config` target: a bare `host:port` whose host holds a colon but is no IPv6
/// literal (`a:b:80`) is accepted as host `a:b`, which no resolver knows, and is then shown as
/// `[a:b]:80`, which does not parse. A target must print as something that parses back to it.
#[test]
fn a_parsed_target_prints_as_something_that_parses_back_to_it() {
    for s in ["a:b:80", "db:1:3306"] {
        if let Ok(t) = Target::parse(s) {
            let shown = t.to_string();
            assert_eq!(Target::parse(&shown).ok(), Some(t), "{s:?} shown as {shown:?}");
        }
    }
}
