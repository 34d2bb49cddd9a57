//! Counters and gauges, rendered by hand in the Prometheus text format 0.0.4.
//!
//! Single-threaded like the rest of the daemon, so plain `Cell`s suffice. Time is passed in.

use std::cell::{Cell, RefCell};
use std::fmt::Write;
use std::time::Duration;

use crate::profile::Kind;

/// Upper bounds of the check duration histogram, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Results a check request can have: healthy, healthy but draining (drain file), down, the
/// force-fail file, the maintenance file.
pub const RESULTS: [&str; 5] = ["up", "drain", "down", "off", "maint"];

/// Distinct requests whose up/down state is kept (for the `mysqlchk_up` gauge and for logging
/// changes); past it the oldest is forgotten, so clients cannot grow it.
pub const MAX_TRACKED: usize = 32;

/// HTTP status codes counted.
const CODES: [u16; 5] = [200, 400, 404, 408, 503];

#[derive(Default)]
pub struct Metrics {
    /// checks[kind][result]
    checks: [[Cell<u64>; RESULTS.len()]; 4],
    /// Histogram of database round trips: counts per bucket (cumulated at render), sum, count.
    buckets: [Cell<u64>; BUCKETS.len()],
    duration_sum: Cell<f64>,
    duration_count: Cell<u64>,
    logins: Cell<u64>,
    http: [Cell<u64>; CODES.len()],
    /// The last verdict per canonical request (`/replica?max_lag=10`), oldest first.
    up: RefCell<Vec<(Kind, String, bool)>>,
    /// Unix time of the last finished database round trip.
    last_check: Cell<Option<f64>>,
}

impl Metrics {
    pub fn check(&self, kind: Kind, result: &str) {
        if let Some(i) = RESULTS.iter().position(|r| *r == result) {
            bump(&self.checks[kind.index()][i]);
        }
    }

    /// Records whether the last check of `request` (canonical form) passed; returns what the
    /// one before said, `None` the first time.
    pub fn set_up(&self, kind: Kind, request: &str, up: bool) -> Option<bool> {
        let mut all = self.up.borrow_mut();
        if let Some(entry) = all.iter_mut().find(|(_, r, _)| r == request) {
            return Some(std::mem::replace(&mut entry.2, up));
        }
        if all.len() >= MAX_TRACKED {
            all.remove(0);
        }
        all.push((kind, request.to_string(), up));
        None
    }

    /// A database round trip started (one login).
    pub fn login(&self) {
        bump(&self.logins);
    }

    /// A database round trip ended after `took`, at `unix_now` seconds.
    pub fn round_trip(&self, took: Duration, unix_now: f64) {
        let s = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            bump(&self.buckets[i]);
        }
        self.duration_sum.set(self.duration_sum.get() + s);
        bump(&self.duration_count);
        self.last_check.set(Some(unix_now));
    }

    pub fn http(&self, code: u16) {
        if let Some(i) = CODES.iter().position(|c| *c == code) {
            bump(&self.http[i]);
        }
    }

    pub fn logins(&self) -> u64 {
        self.logins.get()
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let o = &mut out;
        help(o, "mysqlchk_checks_total", "counter", "Check requests answered, by profile and result.");
        for kind in Kind::ALL {
            for (i, result) in RESULTS.iter().enumerate() {
                let n = self.checks[kind.index()][i].get();
                let _ = writeln!(o, "mysqlchk_checks_total{{profile=\"{}\",result=\"{result}\"}} {n}", kind.name());
            }
        }
        help(
            o,
            "mysqlchk_check_duration_seconds",
            "histogram",
            "Duration of database round trips (connect, login, queries, quit).",
        );
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].get();
            let _ = writeln!(o, "mysqlchk_check_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.duration_count.get();
        let _ = writeln!(o, "mysqlchk_check_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(o, "mysqlchk_check_duration_seconds_sum {}", self.duration_sum.get());
        let _ = writeln!(o, "mysqlchk_check_duration_seconds_count {count}");
        help(o, "mysqlchk_db_logins_total", "counter", "Database logins attempted.");
        let _ = writeln!(o, "mysqlchk_db_logins_total {}", self.logins.get());
        #[cfg(feature = "tls")]
        {
            let (full, resumed) = crate::tls::handshakes();
            help(
                o,
                "mysqlchk_tls_handshakes_total",
                "counter",
                "TLS handshakes with the database, by whether they resumed an earlier session.",
            );
            let _ = writeln!(o, "mysqlchk_tls_handshakes_total{{resumed=\"no\"}} {full}");
            let _ = writeln!(o, "mysqlchk_tls_handshakes_total{{resumed=\"yes\"}} {resumed}");
        }
        help(o, "mysqlchk_http_requests_total", "counter", "HTTP responses sent, by status code.");
        for (i, code) in CODES.iter().enumerate() {
            let _ = writeln!(o, "mysqlchk_http_requests_total{{code=\"{code}\"}} {}", self.http[i].get());
        }
        help(o, "mysqlchk_up", "gauge", "1 if the last check of the request passed, 0 if it failed.");
        for (kind, request, up) in self.up.borrow().iter() {
            let _ = writeln!(
                o,
                "mysqlchk_up{{profile=\"{}\",request=\"{}\"}} {}",
                kind.name(),
                label(request),
                u8::from(*up)
            );
        }
        help(o, "mysqlchk_last_check_timestamp_seconds", "gauge", "Unix time of the last database round trip.");
        let _ = writeln!(o, "mysqlchk_last_check_timestamp_seconds {}", self.last_check.get().unwrap_or(0.0));
        out
    }
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

fn help(o: &mut String, name: &str, kind: &str, text: &str) {
    let _ = writeln!(o, "# HELP {name} {text}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_counts_checks_buckets_and_codes() {
        let m = Metrics::default();
        m.check(Kind::Default, "up");
        m.check(Kind::Replica, "down");
        assert_eq!(m.set_up(Kind::Default, "/", true), None);
        assert_eq!(m.set_up(Kind::Replica, "/replica?max_lag=10", false), None);
        m.login();
        m.round_trip(Duration::from_millis(3), 1_700_000_000.5);
        m.http(200);
        m.http(999);
        let text = m.render();
        assert!(text.contains("mysqlchk_checks_total{profile=\"default\",result=\"up\"} 1\n"));
        assert!(text.contains("mysqlchk_checks_total{profile=\"replica\",result=\"down\"} 1\n"));
        assert!(text.contains("mysqlchk_check_duration_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(text.contains("mysqlchk_check_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("mysqlchk_check_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("mysqlchk_db_logins_total 1\n"));
        // Only the TLS build has TLS handshakes to count.
        assert_eq!(text.contains("mysqlchk_tls_handshakes_total{resumed=\"no\"} "), cfg!(feature = "tls"));
        assert_eq!(text.contains("mysqlchk_tls_handshakes_total{resumed=\"yes\"} "), cfg!(feature = "tls"));
        assert!(text.contains("mysqlchk_http_requests_total{code=\"200\"} 1\n"));
        assert!(text.contains(
            "mysqlchk_up{profile=\"default\",request=\"/\"} 1\n\
             mysqlchk_up{profile=\"replica\",request=\"/replica?max_lag=10\"} 0\n"
        ));
        assert!(!text.contains("mysqlchk_up{profile=\"galera\""));
        assert!(text.contains("mysqlchk_last_check_timestamp_seconds 1700000000.5\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn up_state_is_kept_per_request_and_bounded() {
        let m = Metrics::default();
        // Two requests judged differently against one lag never overwrite each other's state.
        for _ in 0..3 {
            assert_ne!(m.set_up(Kind::Replica, "/replica?max_lag=10", false), Some(true));
            assert_ne!(m.set_up(Kind::Replica, "/replica?max_lag=60", true), Some(false));
        }
        for i in 0..100 {
            m.set_up(Kind::Replica, &format!("/replica?max_lag={i}"), true);
        }
        assert_eq!(m.up.borrow().len(), MAX_TRACKED);
        assert!(label("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
    }
}
