//! The log: one line per record on stderr, `LEVEL [module] message`, with no timestamp (journald
//! and syslog add their own). Only this crate's records are written.
//!
//! A line that cannot be written is dropped: stderr may be a pipe whose reader has gone, or a
//! terminal hung up after the daemon was started from it. `eprintln!` would panic there, and a
//! release build's panic ends the process; the daemon must keep answering HAProxy instead.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr {
    level: LevelFilter,
}

impl Log for Stderr {
    fn enabled(&self, m: &Metadata) -> bool {
        let t = m.target();
        m.level() <= self.level && (t == "mysqlchk" || t.starts_with("mysqlchk::"))
    }

    fn log(&self, r: &Record) {
        if self.enabled(r.metadata()) {
            // Whole, so that it is one write and lines of two threads never interleave.
            let line = format!("{:<5} [{}] {}\n", r.level().as_str(), r.target(), r.args());
            write_stderr(&line);
        }
    }

    fn flush(&self) {}
}

/// Starts logging this crate's records up to `level`. Fails only if a logger is already set.
pub fn init(level: LevelFilter) -> Result<(), log::SetLoggerError> {
    log::set_logger(Box::leak(Box::new(Stderr { level })))?;
    log::set_max_level(level);
    Ok(())
}

/// Writes `text` to stderr, dropping it if stderr is gone (never a panic).
pub fn write_stderr(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Writes `text` to stdout, dropping it if stdout is gone (never a panic).
pub fn write_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
