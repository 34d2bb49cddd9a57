//! The everyday interface: `--version`, `--help`, exit codes for every configuration error.

mod common;

use std::process::{Command, Output, Stdio};

fn run(args: &[&str]) -> Output {
    let mut cmd: Command = common::mysqlchk();
    cmd.args(args).env_remove("MYSQLCHK_PASSWORD").stdin(Stdio::null());
    cmd.output().expect("run mysqlchk")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_names_the_version_and_the_target_and_exits_0() {
    let out = run(&["--version"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let line = text(&out.stdout);
    let want = format!("mysqlchk {} (", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&want) && line.ends_with(")\n") && line.lines().count() == 1, "{line:?}");
    let inside = &line[want.len()..line.len() - 2];
    let target = inside.strip_suffix(", tls").unwrap_or(inside);
    // A target triple: arch-vendor-os[-env], e.g. x86_64-unknown-linux-musl.
    assert!(target.split('-').count() >= 3 && target.contains("linux"), "{line:?}");
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn help_lists_every_log_level_including_off_and_exits_0() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let help = text(&out.stdout);
    assert!(help.contains("--version"), "{help}");
    let log_level = help.split("--log-level").nth(2).expect("--log-level described");
    for level in ["off", "error", "warn", "info", "debug", "trace"] {
        assert!(log_level.contains(level), "{level} missing from: {log_level}");
    }
}

#[test]
fn every_configuration_error_under_once_exits_3_unknown() {
    for args in [
        &["--once", "--timeout", "abc"][..],
        &["--once", "--bogus"],
        &["--once", "--max-lag", "-1"],
        &["--once", "--timeout", "0"],
        &["--once", "--log-level", "loud"],
        &["--once", "--profile", "/nope"],
        &["--once", "--mysql", "a b:1"],
        &["--timeout", "abc", "--once"],
        &["--once", "--listen"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.starts_with("mysqlchk: error: "), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
}

#[test]
fn configuration_errors_without_once_exit_1() {
    for args in [&["--timeout", "abc"][..], &["--bogus"], &["--timeout", "0"], &["--max-lag", "-1"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("error"), "{args:?}");
    }
}

#[test]
fn the_binary_crate_polls_no_library_future() {
    // A library future polled from main.rs (smol::block_on, .await) is compiled a second time in
    // the binary crate: 10 KB of the armv7 build's 400 KiB. main.rs calls blocking entry points.
    let main = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/main.rs")).unwrap();
    for polling in ["smol::", "futures_lite::", ".await", "async "] {
        assert!(!main.contains(polling), "src/main.rs uses {polling}: call a blocking entry point of the library");
    }
}
