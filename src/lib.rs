//! mysqlchk: an HAProxy health checker for MySQL-protocol servers.
//!
//! * [`mysql`]: a sans-IO MySQL client (framing, handshake, auth plugins, text results).
//! * [`http`]: a sans-IO HTTP request reader and response writer.
//! * [`config`]: flags into a validated configuration.
//! * [`deadline`]: deadlines that share one timer, so that setting one costs no system call.
//! * [`flag`]: a one-shot "it happened" that tasks on this thread wait for.
//! * [`logger`]: the log on stderr, which never panics when stderr is gone.
//! * [`metrics`]: counters rendered as Prometheus text.
//! * [`profile`]: what each check path asks the server and how the answers are judged.
//! * [`check`]: drives a MySQL session over a socket within a deadline; single-flight checker.
//! * [`link`]: the socket a check talks through, or TLS over it.
//! * [`net`]: sockets that cost as few system calls as a check allows.
//! * [`server`]: the HTTP daemon.
#![forbid(unsafe_code)]

pub mod check;
pub mod config;
pub mod deadline;
pub mod flag;
pub mod http;
pub mod link;
pub mod logger;
pub mod metrics;
pub mod mysql;
pub mod net;
pub mod profile;
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;
