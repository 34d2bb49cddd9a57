//! `mysqlchk`: flags -> Config, logger, then one check (`--once`) or the daemon on a
//! single-threaded LocalExecutor.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::rc::Rc;

use mysqlchk::check::{Checker, Verdict};
use mysqlchk::config::{Args, Config, PASSWORD_ENV};
use mysqlchk::server;
use smol::LocalExecutor;

fn main() -> ExitCode {
    #[cfg(not(feature = "tls"))]
    if let Err(e) = mysqlchk::config::tls_file_flag(std::env::args()) {
        return config_error(&e, std::env::args().any(|a| a == "--once"));
    }
    let args: Args = argh::from_env();
    let nagios = args.once;
    let env_password = std::env::var_os(PASSWORD_ENV).map(|v| v.into_encoded_bytes());
    let config = match Config::from_args(args, env_password) {
        Ok(c) => c,
        Err(e) => return config_error(&e, nagios),
    };
    // xinetd hands the client socket over as stderr too: a log line there would be sent to the
    // client in the middle of the response.
    let level = if config.inetd && stderr_is_stdin() { log::LevelFilter::Off } else { config.log_level };
    // Only our own crate logs; dependencies stay quiet at every level.
    let logger =
        simple_logger::SimpleLogger::new().with_level(log::LevelFilter::Off).with_module_level("mysqlchk", level);
    if let Err(e) = logger.init() {
        eprintln!("mysqlchk: error: cannot start logging: {e}");
    }
    if config.once {
        return run_once(&config);
    }
    let inetd = config.inetd;
    let ex = Rc::new(LocalExecutor::new());
    let server = server::Server::new(config);
    let result = if inetd {
        smol::block_on(server::serve_inetd(&server))
    } else {
        smol::block_on(ex.run(server::run(ex.clone(), server)))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mysqlchk: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A bad flag or file: the message, and exit 1, or 3 (Nagios' UNKNOWN) with `--once`.
fn config_error(e: &mysqlchk::config::ConfigError, nagios: bool) -> ExitCode {
    eprintln!("mysqlchk: error: {e}");
    ExitCode::from(if nagios { 3 } else { 1 })
}

/// One check, one line, Nagios exit codes: 0 OK, 2 CRITICAL.
fn run_once(config: &Config) -> ExitCode {
    let checker = Checker::new(config.check.clone(), config.password.clone());
    let (verdict, elapsed) = smol::block_on(checker.check(&config.profile));
    let ms = elapsed.as_secs_f64() * 1000.0;
    match verdict {
        Verdict::Up { value, detail, .. } => {
            let detail = detail.map(|d| format!(", {d}")).unwrap_or_default();
            println!("OK - {value}{detail} ({ms:.1} ms)");
            ExitCode::SUCCESS
        }
        Verdict::Draining { value, detail } => {
            let detail = detail.map(|d| format!(", {d}")).unwrap_or_default();
            println!("OK - {value}{detail}, draining ({ms:.1} ms)");
            ExitCode::SUCCESS
        }
        other => {
            println!("CRITICAL - {} ({ms:.1} ms)", other.reason());
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
