//! The release artifacts in `dist/` (scripts/release.sh): the tarballs hold what an appliance
//! needs and install from where they are unpacked; the .deb packages are reproducible, pass
//! lintian, install, upgrade and purge cleanly, and their foreign binaries check a real MariaDB
//! under qemu. They need the release build and root, so they are ignored by a plain
//! `cargo test`; scripts/test.sh builds dist/ and runs them with `--ignored` (as root), and
//! fails if it cannot.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::mariadb::MariaDb;
use common::TempDir;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Debian architecture, target triple, qemu-user emulator (none: runs natively on x86_64).
const ARCHES: [(&str, &str, Option<&str>); 3] = [
    ("amd64", "x86_64-unknown-linux-musl", None),
    ("arm64", "aarch64-unknown-linux-musl", Some("qemu-aarch64-static")),
    ("armhf", "armv7-unknown-linux-musleabihf", Some("qemu-arm-static")),
];
/// The files of the Debian package other than directories.
const DEB_FILES: [&str; 15] = [
    "/etc/mysqlchk/env",
    "/usr/bin/mysqlchk",
    "/usr/lib/systemd/system/mysqlchk-inetd.socket",
    "/usr/lib/systemd/system/mysqlchk-inetd@.service",
    "/usr/lib/systemd/system/mysqlchk.service",
    "/usr/lib/systemd/system/mysqlchk.socket",
    "/usr/share/doc/mysqlchk/README.md.gz",
    "/usr/share/doc/mysqlchk/changelog.Debian.gz",
    "/usr/share/doc/mysqlchk/changelog.gz",
    "/usr/share/doc/mysqlchk/copyright",
    "/usr/share/doc/mysqlchk/examples/mysqlchk.xinetd",
    "/usr/share/doc/mysqlchk/examples/services.txt",
    "/usr/share/lintian/overrides/mysqlchk",
    "/usr/share/man/man1/mysqlchk.1.gz",
    "/etc/systemd/system/sockets.target.wants/mysqlchk.socket",
];

fn dist() -> PathBuf {
    let dir = std::env::var_os("MYSQLCHK_DIST").map(PathBuf::from).expect(
        "MYSQLCHK_DIST is not set: run scripts/release.sh, then MYSQLCHK_DIST=$PWD/dist cargo test --test packages -- --ignored",
    );
    assert!(dir.join("SHA256SUMS").is_file(), "{}: no SHA256SUMS, run scripts/release.sh", dir.display());
    dir
}

fn deb(arch: &str) -> PathBuf {
    let path = dist().join(format!("mysqlchk_{VERSION}-1_{arch}.deb"));
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).into_owned()
}

/// `dpkg-deb -x` into a fresh directory.
fn extract(deb: &Path, name: &str) -> TempDir {
    let dir = TempDir::new(name);
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&dir.0));
    dir
}

#[test]
#[ignore = "needs dist/ from scripts/release.sh and root: scripts/test.sh runs it"]
fn every_artifact_is_listed_in_sha256sums_and_matches() {
    let dist = dist();
    let sums = fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    let listed: BTreeSet<&str> = sums.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    for (arch, target, _) in ARCHES {
        for name in [format!("mysqlchk_{VERSION}-1_{arch}.deb"), format!("mysqlchk-{VERSION}-{target}.tar.gz")] {
            assert!(listed.contains(name.as_str()), "{name} not in SHA256SUMS:\n{sums}");
        }
    }
    run(Command::new("sha256sum").arg("--check").arg("--strict").arg("SHA256SUMS").current_dir(&dist));
}

#[test]
#[ignore = "needs dist/ from scripts/release.sh and root: scripts/test.sh runs it"]
fn tarball_holds_what_an_appliance_needs_and_installs_from_where_it_is_unpacked() {
    let (_, target, _) = ARCHES[0];
    let name = format!("mysqlchk-{VERSION}-{target}");
    let tarball = dist().join(format!("{name}.tar.gz"));
    let dir = TempDir::new("tarball");
    run(Command::new("tar").arg("-xzf").arg(&tarball).arg("-C").arg(&dir.0));
    let unpacked = dir.join(&name);
    let mut files: Vec<String> =
        fs::read_dir(&unpacked).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    let want = [
        "CHANGELOG.md",
        "LICENSE",
        "README.md",
        "install.sh",
        "mysqlchk",
        "mysqlchk-inetd.socket",
        "mysqlchk-inetd@.service",
        "mysqlchk.1",
        "mysqlchk.service",
        "mysqlchk.socket",
        "mysqlchk.xinetd",
        "services.txt",
    ];
    assert_eq!(files, want);

    // As an operator would: cd into it and run ./install.sh, with and without --binary.
    for args in [&[][..], &["--binary", "./mysqlchk"]] {
        let root = TempDir::new("tarball-root");
        let out = stdout(
            Command::new("./install.sh").args(args).arg("--prefix").arg(&root.0).arg("--xinetd").current_dir(&unpacked),
        );
        assert!(out.contains("Next steps"), "{out}");
        let installed = root.join("usr/local/bin/mysqlchk");
        assert_eq!(fs::read(&installed).unwrap(), fs::read(unpacked.join("mysqlchk")).unwrap());
        for f in [
            "usr/local/share/man/man1/mysqlchk.1",
            "etc/systemd/system/mysqlchk.service",
            "etc/systemd/system/mysqlchk-inetd@.service",
            "etc/xinetd.d/mysqlchk",
            "etc/mysqlchk/env",
        ] {
            assert!(root.join(f).is_file(), "{f} not installed: {out}");
        }
        let version = stdout(Command::new(&installed).arg("--version"));
        assert_eq!(version.trim_end().split(" (").next(), Some(format!("mysqlchk {VERSION}").as_str()), "{version}");
    }
}

#[test]
#[ignore = "needs dist/ from scripts/release.sh and root: scripts/test.sh runs it"]
fn debs_carry_the_tarballs_binary_and_are_reproducible_from_it() {
    for (arch, target, _) in ARCHES {
        let deb = deb(arch);
        let x = extract(&deb, "deb-repro");
        let bin = x.join("usr/bin/mysqlchk");
        // The TLS build where there is one, else the plain one: byte for byte.
        let tls = dist().join(format!("mysqlchk-tls-{VERSION}-{target}.tar.gz"));
        let (tarball, name) = if tls.is_file() {
            (tls, format!("mysqlchk-tls-{VERSION}-{target}"))
        } else {
            (dist().join(format!("mysqlchk-{VERSION}-{target}.tar.gz")), format!("mysqlchk-{VERSION}-{target}"))
        };
        let t = TempDir::new("deb-tarball");
        run(Command::new("tar").arg("-xzf").arg(&tarball).arg("-C").arg(&t.0));
        assert!(
            fs::read(t.join(&name).join("mysqlchk")).unwrap() == fs::read(&bin).unwrap(),
            "{arch}: not {name}'s binary"
        );
        // Every mtime in the package is SOURCE_DATE_EPOCH.
        let epoch = fs::metadata(&bin).unwrap().mtime();
        let out = TempDir::new("deb-rebuild");
        for _ in 0..2 {
            run(Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/deb.sh"))
                .arg(&bin)
                .arg(arch)
                .arg(&out.0)
                .env("SOURCE_DATE_EPOCH", epoch.to_string()));
            let again = out.join(&deb.file_name().unwrap().to_string_lossy());
            assert!(fs::read(&again).unwrap() == fs::read(&deb).unwrap(), "{arch}: rebuilt .deb differs from {deb:?}");
        }
    }
}

#[test]
#[ignore = "needs dist/ from scripts/release.sh and root: scripts/test.sh runs it"]
fn lintian_reports_no_errors_and_no_warnings_beyond_the_shipped_overrides() {
    let debs: Vec<PathBuf> = ARCHES.iter().map(|(arch, _, _)| deb(arch)).collect();
    let out = Command::new("lintian")
        .args(["--display-info", "--fail-on", "error,warning"])
        .args(&debs)
        .output()
        .expect("run lintian (apt-get install lintian; scripts/test.sh does)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "lintian: {}\n{report}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let flagged: Vec<&str> = report.lines().filter(|l| l.starts_with("E:") || l.starts_with("W:")).collect();
    assert!(flagged.is_empty(), "{report}");
}

#[test]
#[ignore = "needs dist/ from scripts/release.sh and root: scripts/test.sh runs it"]
fn foreign_debs_run_under_qemu_and_check_a_real_mariadb() {
    let db = MariaDb::start();
    let hostname = db.sql("select @@hostname");
    for (arch, target, emulator) in ARCHES {
        let x = extract(&deb(arch), "deb-qemu");
        let bin = x.join("usr/bin/mysqlchk");
        let mysqlchk = |args: &[&str]| {
            let mut cmd = match emulator {
                Some(qemu) => {
                    let mut c = Command::new(qemu);
                    c.arg(&bin);
                    c
                }
                None => Command::new(&bin),
            };
            cmd.args(args).env("MYSQLCHK_PASSWORD", "hapass").stdin(Stdio::null());
            cmd.output().unwrap_or_else(|e| panic!("{arch}: run {}: {e}", emulator.unwrap_or("natively")))
        };
        let version = mysqlchk(&["--version"]);
        let line = String::from_utf8_lossy(&version.stdout);
        assert!(version.status.success(), "{arch}: {version:?}");
        assert!(line.starts_with(&format!("mysqlchk {VERSION} ({target}")), "{arch}: {line}");
        let once = mysqlchk(&["--once", "--mysql", &db.addr(), "--user", "haproxy", "--timeout", "20000"]);
        let line = String::from_utf8_lossy(&once.stdout);
        assert_eq!(once.status.code(), Some(0), "{arch}: {line} {}", String::from_utf8_lossy(&once.stderr));
        assert!(line.starts_with(&format!("OK - {hostname}")), "{arch}: {line}");
    }
}

fn mode_owner(path: &str) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (m.permissions().mode() & 0o7777, m.uid(), m.gid())
}

fn dpkg_installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "mysqlchk"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

#[test]
#[ignore = "needs dist/ from scripts/release.sh and root: scripts/test.sh runs it"]
fn amd64_deb_installs_upgrades_over_itself_keeping_the_env_and_purges_to_nothing() {
    assert_eq!(
        Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).ok(),
        Some("0".to_string()),
        "this test installs a package: run it as root on a throwaway machine (CI does)"
    );
    assert!(!dpkg_installed(), "mysqlchk is installed here already: this test installs and purges it");
    let deb = deb("amd64");
    run(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(dpkg_installed());

    let listed = stdout(Command::new("dpkg-query").args(["-L", "mysqlchk"]));
    for f in DEB_FILES.iter().filter(|f| !f.contains("sockets.target.wants")) {
        assert!(listed.lines().any(|l| l == *f), "{f} not in the package:\n{listed}");
    }
    assert_eq!(mode_owner("/usr/bin/mysqlchk"), (0o755, 0, 0));
    assert_eq!(mode_owner("/etc/mysqlchk/env"), (0o600, 0, 0));
    assert_eq!(mode_owner("/usr/lib/systemd/system/mysqlchk.service"), (0o644, 0, 0));
    assert_eq!(mode_owner("/usr/share/man/man1/mysqlchk.1.gz"), (0o644, 0, 0));
    assert_eq!(
        stdout(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "mysqlchk"])).split_whitespace().next(),
        Some("/etc/mysqlchk/env")
    );
    let env = fs::read_to_string("/etc/mysqlchk/env").unwrap();
    assert!(env.lines().all(|l| l.is_empty() || l.starts_with('#')), "the env file sets nothing:\n{env}");
    assert!(env.contains("#MYSQLCHK_PASSWORD=") && env.contains("#MYSQLCHK_ARGS="), "{env}");

    let version = stdout(Command::new("/usr/bin/mysqlchk").arg("--version"));
    assert!(version.starts_with(&format!("mysqlchk {VERSION} (x86_64-unknown-linux-musl")), "{version}");
    for unit in ["mysqlchk.service", "mysqlchk.socket", "mysqlchk-inetd.socket", "mysqlchk-inetd@.service"] {
        let text = fs::read_to_string(format!("/usr/lib/systemd/system/{unit}")).unwrap();
        assert!(!text.contains("/usr/local"), "{unit} points at /usr/local:\n{text}");
    }
    let verify = run(Command::new("systemd-analyze").args([
        "verify",
        "/usr/lib/systemd/system/mysqlchk.socket",
        "/usr/lib/systemd/system/mysqlchk.service",
        "/usr/lib/systemd/system/mysqlchk-inetd.socket",
        "/usr/lib/systemd/system/mysqlchk-inetd@.service",
    ]));
    let warnings = String::from_utf8_lossy(&verify.stderr);
    assert!(warnings.trim().is_empty(), "systemd-analyze verify:\n{warnings}");

    // The operator fills in the env file and enables the socket; an upgrade keeps both.
    let edited = format!("{env}MYSQLCHK_PASSWORD=operators-secret\n");
    fs::write("/etc/mysqlchk/env", &edited).unwrap();
    run(Command::new("systemctl").args(["enable", "mysqlchk.socket"]));
    assert!(Path::new("/etc/systemd/system/sockets.target.wants/mysqlchk.socket").exists());
    run(Command::new("dpkg").arg("-i").arg(&deb));
    assert_eq!(fs::read_to_string("/etc/mysqlchk/env").unwrap(), edited);
    assert_eq!(mode_owner("/etc/mysqlchk/env"), (0o600, 0, 0));

    run(Command::new("dpkg").args(["--purge", "mysqlchk"]));
    assert!(!dpkg_installed());
    for f in DEB_FILES {
        assert!(fs::symlink_metadata(f).is_err(), "{f} left behind by the purge");
    }
    for d in ["/etc/mysqlchk", "/usr/share/doc/mysqlchk", "/usr/lib/systemd/system/mysqlchk.service"] {
        assert!(!Path::new(d).exists(), "{d} left behind by the purge");
    }
    let leftovers =
        stdout(Command::new("sh").arg("-c").arg("ls /etc/mysqlchk* /var/lib/dpkg/info/mysqlchk.* 2>/dev/null || true"));
    assert!(leftovers.trim().is_empty(), "left behind: {leftovers}");
}
