//! The docs that ship with the binary: the man page (man/mysqlchk.1) documents exactly the flags
//! `--help` lists, names the current version, and renders without a groff warning; the
//! changelog has an entry for the current version.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn man_source() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("man/mysqlchk.1")).expect("man/mysqlchk.1")
}

/// Flags `--help` describes: its option lines start with two spaces and `--`.
fn help_flags() -> BTreeSet<String> {
    let out = common::mysqlchk().arg("--help").output().expect("run mysqlchk --help");
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let flags: BTreeSet<String> = help
        .lines()
        .filter_map(|l| l.strip_prefix("  --"))
        .map(|l| format!("--{}", l.split(|c: char| c.is_whitespace() || c == ',').next().unwrap_or("")))
        .collect();
    assert!(flags.len() > 10 && flags.contains("--help"), "{help}");
    flags
}

/// Flags the man page's OPTIONS section gives an entry: the tag line after each `.TP`.
fn man_flags() -> BTreeSet<String> {
    let source = man_source();
    let options = source.split("\n.SH OPTIONS\n").nth(1).expect("an OPTIONS section");
    let options = options.split("\n.SH ").next().unwrap_or(options);
    let lines: Vec<&str> = options.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == ".TP")
        .map(|w| {
            let tag = w[1].trim_start_matches(".BI ").trim_start_matches(".B ");
            let flag = tag.split_whitespace().next().unwrap_or("").replace("\\-", "-");
            assert!(flag.starts_with("--"), "an OPTIONS entry that is not a flag: {}", w[1]);
            flag
        })
        .collect()
}

#[test]
fn man_page_documents_exactly_the_flags_help_lists() {
    let (help, man) = (help_flags(), man_flags());
    let undocumented: Vec<_> = help.difference(&man).collect();
    // The plain build has no TLS options (and hides --ssl-mode, which it only refuses); the man
    // page documents both builds.
    let tls_only = ["--ssl-mode", "--ssl-ca", "--ssl-cert", "--ssl-key", "--ssl-no-resume"];
    let stale: Vec<_> =
        man.difference(&help).filter(|f| cfg!(feature = "tls") || !tls_only.contains(&f.as_str())).collect();
    assert!(undocumented.is_empty(), "in --help but not in man/mysqlchk.1: {undocumented:?}");
    assert!(stale.is_empty(), "in man/mysqlchk.1 but not in --help: {stale:?}");
}

#[test]
fn man_page_names_the_crate_version() {
    let th = man_source().lines().find(|l| l.starts_with(".TH ")).expect(".TH line").to_string();
    assert!(th.contains(&format!("\"mysqlchk {}\"", env!("CARGO_PKG_VERSION"))), "{th}");
}

#[test]
fn man_page_renders_without_groff_warnings() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/mysqlchk.1");
    for warnings in ["--warnings", "--warnings=all"] {
        let out = Command::new("man")
            .args([warnings, "-l"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .env_remove("MANPAGER")
            .env_remove("PAGER")
            .output()
            .expect("run man (apt-get install man-db groff; scripts/test.sh does)");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && err.trim().is_empty(), "man {warnings} -l: {}\n{err}", out.status);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("EXIT STATUS") && text.contains("--force-fail-file"), "{text}");
    }
}

#[test]
fn changelog_has_an_entry_for_the_crate_version() {
    // scripts/release.sh refuses a version without one; this catches it before a release.
    let log = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("CHANGELOG.md")).unwrap();
    let heading = format!("## [{}] - ", env!("CARGO_PKG_VERSION"));
    assert!(log.lines().any(|l| l.starts_with(&heading)), "CHANGELOG.md has no \"{heading}YYYY-MM-DD\" entry");
}

#[test]
fn man_page_haproxy_example_is_a_valid_configuration_without_warnings() {
    let source = man_source();
    let example = source
        .split(".EX\n")
        .skip(1)
        .filter_map(|block| block.split("\n.EE").next())
        .find(|block| block.starts_with("defaults"))
        .expect("an HAProxy example starting with defaults");
    let config = example.replace("\\-", "-");
    let dir = common::TempDir::new("man-haproxy");
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, format!("{config}\n")).unwrap();
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("run haproxy (apt-get install haproxy; scripts/test.sh does)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && !text.contains("WARNING"), "haproxy -c: {}\n{text}\n{config}", out.status);
}
