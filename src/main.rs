//! `mysqlchk`: flags -> Config, logger, then one check (`--once`) or the daemon on a
//! single-threaded LocalExecutor.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use argh::FromArgs;
use mysqlchk::check::{Checker, Verdict};
use mysqlchk::config::{Args, Config, PASSWORD_ENV};
use mysqlchk::logger::{write_stderr, write_stdout};
use mysqlchk::server;

fn main() -> ExitCode {
    // This thread drives every socket and timer, inside `block_on`: async-io starts no helper
    // thread, whose hand-overs of the reactor cost every check that follows an idle spell
    // (vendor/README.md).
    async_io::no_helper_thread();
    #[cfg(not(feature = "tls"))]
    if let Err(e) = mysqlchk::config::tls_only_flag(lossy_args()) {
        return config_error(&e.to_string(), given("--once"), given("--inetd"));
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    if args.version {
        write_stdout(&format!("{}\n", version_line()));
        return ExitCode::SUCCESS;
    }
    let (nagios, inetd) = (args.once, args.inetd);
    let env_password = std::env::var_os(PASSWORD_ENV).map(|v| v.into_encoded_bytes());
    let config = match Config::from_args(args, env_password) {
        Ok(c) => c,
        Err(e) => return config_error(&e.to_string(), nagios, inetd),
    };
    // xinetd hands the client socket over as stderr too: a log line there would be sent to the
    // client in the middle of the response.
    let level = if config.inetd && stderr_is_stdin() { log::LevelFilter::Off } else { config.log_level };
    // Only our own crate logs; dependencies stay quiet at every level.
    if let Err(e) = mysqlchk::logger::init(level) {
        write_stderr(&format!("mysqlchk: error: cannot start logging: {e}\n"));
    }
    if config.once {
        return run_once(&config);
    }
    let inetd = config.inetd;
    let server = server::Server::new(config);
    let result = if inetd { server::block_on_inetd(&server) } else { server::block_on_daemon(server) };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            write_stderr(&format!("mysqlchk: error: {e}\n"));
            ExitCode::FAILURE
        }
    }
}

/// A bad flag or file: the message on stderr, and exit 1, or 3 (Nagios' UNKNOWN) with `--once`.
/// Under `--inetd` a client on a socket is answered with it too (a 500,
/// [`server::refuse_inetd`]); under xinetd, whose stderr is that socket, only so.
fn config_error(message: &str, once: bool, inetd: bool) -> ExitCode {
    let message = format!("mysqlchk: error: {message}\n");
    if !(inetd && stderr_is_stdin()) {
        write_stderr(&message);
    }
    if inetd {
        // A client that cannot be answered is nobody left to tell.
        let _ = server::refuse_inetd(&message);
    }
    config_error_code(once)
}

/// The arguments after the program name, as text (a non-UTF-8 argument is read lossily, never
/// a panic).
fn lossy_args() -> impl Iterator<Item = String> {
    std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned())
}

/// Nagios reads 3 as UNKNOWN: under `--once` every configuration error exits 3, daemons exit 1.
fn config_error_code(once: bool) -> ExitCode {
    ExitCode::from(if once { 3 } else { 1 })
}

/// Whether the flag `name` is among the arguments (before any `--`), for the errors of flags that
/// do not parse. Only error paths call it: the code a start runs stays as `cross/hot-text.ld`
/// lists it.
fn given(name: &str) -> bool {
    lossy_args().take_while(|a| a != "--").any(|a| a == name)
}

/// argv -> [`Args`], as `argh::from_env` does, except that a parse error is a
/// [`config_error`]. `--help` prints to stdout and exits 0.
fn parse_args() -> Result<Args, ExitCode> {
    let raw: Vec<String> = lossy_args().collect();
    let once = raw.iter().take_while(|a| *a != "--").any(|a| a == "--once");
    let args: Vec<&str> = raw.iter().map(String::as_str).collect();
    Args::from_args(&["mysqlchk"], &args).map_err(|exit| match exit.status {
        Ok(()) => {
            write_stdout(&format!("{}\n", exit.output));
            ExitCode::SUCCESS
        }
        Err(()) => {
            let message = format!("{}\nRun mysqlchk --help for more information.", exit.output.trim_end());
            config_error(&message, once, given("--inetd"))
        }
    })
}

/// `mysqlchk 0.2.0 (x86_64-unknown-linux-musl)`, with `, tls` in the TLS build.
fn version_line() -> String {
    let tls = if cfg!(feature = "tls") { ", tls" } else { "" };
    format!("mysqlchk {} ({}{tls})", env!("CARGO_PKG_VERSION"), env!("MYSQLCHK_TARGET"))
}

/// One check, one line, Nagios exit codes: 0 OK, 2 CRITICAL.
fn run_once(config: &Config) -> ExitCode {
    let checker = Checker::new(config.check.clone(), config.password.clone());
    let (verdict, elapsed) = checker.check_blocking(&config.profile);
    let ms = elapsed.as_secs_f64() * 1000.0;
    match verdict {
        Verdict::Up { value, detail, .. } => {
            let detail = detail.map(|d| format!(", {d}")).unwrap_or_default();
            write_stdout(&format!("OK - {value}{detail} ({ms:.1} ms)\n"));
            ExitCode::SUCCESS
        }
        Verdict::Draining { value, detail } => {
            let detail = detail.map(|d| format!(", {d}")).unwrap_or_default();
            write_stdout(&format!("OK - {value}{detail}, draining ({ms:.1} ms)\n"));
            ExitCode::SUCCESS
        }
        other => {
            write_stdout(&format!("CRITICAL - {} ({ms:.1} ms)\n", other.reason()));
            ExitCode::from(2)
        }
    }
}

/// Whether stderr is the same file as stdin (both the client socket under xinetd).
fn stderr_is_stdin() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let id = |fd: std::os::fd::BorrowedFd<'_>| {
        let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
        file.metadata().ok().map(|m| (m.dev(), m.ino()))
    };
    let stdin = id(std::io::stdin().as_fd());
    stdin.is_some() && stdin == id(std::io::stderr().as_fd())
}

/// dlmalloc keeps freed memory for reuse, where musl's allocator unmaps it eagerly.
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
