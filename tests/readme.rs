//! The README's recipes, run as written against real peers, so a README that drifts from the code
//! fails CI: every HAProxy configuration (warning-free, and producing the states the README
//! says), the example responses, the database-user SQL and the flag table.
//!
//! Addresses are substituted, nothing else: `bind *:PORT` becomes a free port on 127.0.0.1,
//! `10.0.0.N:3306` becomes 127.0.0.N and a real MariaDB's port, `port 9200` and `agent-port
//! 9201` become the ports the mysqlchk daemons listen on (at 127.0.0.N, one per database host).

mod common;

use std::fs;
use std::process::Command;
use std::sync::OnceLock;

use common::fake::{Auth, FakeServer, Reply, Scenario};
use common::haproxy::HaProxy;
use common::mariadb::MariaDb;
use common::{free_port, mysqlchk, Daemon, TempDir};

const README: &str = include_str!("../README.md");

/// Every fenced block of the README: the heading it is under, its language ("" for a plain
/// fence) and its text.
fn fences() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut fence: Option<(String, String)> = None;
    for line in README.lines() {
        match &mut fence {
            Some(_) if line == "```" => {
                let (lang, text) = fence.take().unwrap();
                out.push((heading.clone(), lang, text));
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None if line.starts_with('#') => heading = line.trim_start_matches('#').trim().to_string(),
            None => {
                if let Some(lang) = line.strip_prefix("```") {
                    fence = Some((lang.to_string(), String::new()));
                }
            }
        }
    }
    out
}

/// The fenced blocks of `lang` under the heading `heading`, in order.
fn blocks(heading: &str, lang: &str) -> Vec<String> {
    fences().into_iter().filter(|(h, l, _)| h == heading && l == lang).map(|(_, _, text)| text).collect()
}

/// Every ```lang block in the README.
fn blocks_everywhere(lang: &str) -> Vec<String> {
    fences().into_iter().filter(|(_, l, _)| l == lang).map(|(_, _, text)| text).collect()
}

fn block(heading: &str, lang: &str) -> String {
    let found = blocks(heading, lang);
    assert_eq!(found.len(), 1, "README: expected one ```{lang} block under \"{heading}\"");
    found.into_iter().next().unwrap()
}

/// One database host of a recipe: its address in the README (`10.0.0.N`), where its MySQL is,
/// and the mysqlchk daemon watching it (listening on 127.0.0.N).
struct Host {
    readme_ip: String,
    db_port: u16,
    _daemon: Daemon,
    dir: TempDir,
}

/// The ports every host's daemon uses, as `port 9200` and `agent-port 9201` are the same for
/// every server of a `default-server` line.
struct Ports {
    http: u16,
    agent: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports { http: free_port(), agent: free_port() }
    }
}

/// Starts mysqlchk for README host `10.0.0.N` checking `db` (as `haproxy`), listening on
/// 127.0.0.N at the shared ports, with its operator files in its own dir.
fn host(n: u8, db: &MariaDb, ports: &Ports, extra: &[&str]) -> Host {
    let dir = TempDir::new(&format!("readme-db{n}"));
    let listen = format!("127.0.0.{n}:{}", ports.http);
    let agent = format!("127.0.0.{n}:{}", ports.agent);
    let (target, off, drain) = (db.addr(), dir.path("proxyoff"), dir.path("proxydrain"));
    let mut args = vec!["--listen", &listen, "--agent-listen", &agent, "--mysql", &target, "--user", "haproxy"];
    args.extend(["--force-fail-file", &off, "--drain-file", &drain, "--log-level", "warn"]);
    args.extend_from_slice(extra);
    let daemon = Daemon::start(&args, Some("hapass"));
    Host { readme_ip: format!("10.0.0.{n}"), db_port: db.port, _daemon: daemon, dir }
}

/// The README configuration with loopback addresses in.
fn substitute(config: &str, hosts: &[&Host], ports: &Ports) -> String {
    let mut out = String::new();
    for line in config.lines() {
        let mut line = line.to_string();
        if let Some(rest) = line.trim_start().strip_prefix("bind *:") {
            assert!(rest.parse::<u16>().is_ok(), "unexpected bind line {line:?}");
            line = format!("    bind 127.0.0.1:{}", free_port());
        }
        for h in hosts {
            line =
                line.replace(&format!("{}:3306", h.readme_ip), &format!("127.0.0.{}:{}", &h.readme_ip[7..], h.db_port));
        }
        line = line.replace("agent-port 9201", &format!("agent-port {}", ports.agent));
        line = line.replace("port 9200", &format!("port {}", ports.http));
        assert!(!line.contains("10.0.0."), "README server not substituted: {line:?}");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A MariaDB also listening on 127.0.0.4, .5 and .6, the README's database hosts.
fn multi_homed(extra: &[&str]) -> MariaDb {
    MariaDb::start_with(&[&["--bind-address=127.0.0.1,127.0.0.4,127.0.0.5,127.0.0.6"], extra].concat())
}

fn shared() -> &'static MariaDb {
    static DB: OnceLock<MariaDb> = OnceLock::new();
    DB.get_or_init(|| multi_homed(&[]))
}

#[test]
fn every_haproxy_configuration_in_the_readme_is_valid_and_warning_free() {
    let all = blocks_everywhere("haproxy");
    assert!(all.len() >= 4, "expected the four HAProxy recipes, found {}", all.len());
    let dir = TempDir::new("readme-haproxy-c");
    for (i, config) in all.iter().enumerate() {
        // Any address does for a syntax check; keep them as written, ports and all.
        let path = dir.join(&format!("{i}.cfg"));
        fs::write(&path, config).unwrap();
        let out = Command::new("haproxy").arg("-c").arg("-f").arg(&path).output().expect("run haproxy -c");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "haproxy -c failed on README configuration {i}:\n{text}\n{config}");
        assert!(
            !text.contains("[WARNING]") && !text.contains("[ALERT]"),
            "README configuration {i}:\n{text}\n{config}"
        );
    }
}

#[test]
fn readme_plain_health_check_is_up_and_down_on_force_fail() {
    let db = shared();
    let ports = Ports::new();
    let (db4, db5) = (host(4, db, &ports, &[]), host(5, db, &ports, &[]));
    let dir = TempDir::new("readme-plain");
    let h = HaProxy::start_config(&dir, &substitute(&block("Plain health check", "haproxy"), &[&db4, &db5], &ports));
    h.wait_for("mysql", "db4", "UP", Some("L7OK"));
    h.wait_for("mysql", "db5", "UP", Some("L7OK"));
    // `touch /dev/shm/proxyoff` on db4.
    fs::write(db4.dir.join("proxyoff"), "").unwrap();
    h.wait_for("mysql", "db4", "DOWN", Some("L7STS"));
    h.wait_for("mysql", "db5", "UP", Some("L7OK"));
    fs::remove_file(db4.dir.join("proxyoff")).unwrap();
    h.wait_for("mysql", "db4", "UP", Some("L7OK"));
}

#[test]
fn readme_writers_and_readers_move_the_writer_on_failover() {
    // db4 the writable source; db5 and db6 the replica (one server, two addresses).
    let source = MariaDb::replication_source(&["--bind-address=127.0.0.1,127.0.0.4"]);
    let replica = multi_homed(&["--server-id=2"]);
    replica.replicate("", source.port);
    replica.sql("SET GLOBAL read_only = ON");
    let ports = Ports::new();
    let (db4, db5, db6) =
        (host(4, &source, &ports, &[]), host(5, &replica, &ports, &[]), host(6, &replica, &ports, &[]));
    let dir = TempDir::new("readme-split");
    let config = substitute(&block("Writers and readers", "haproxy"), &[&db4, &db5, &db6], &ports);
    let h = HaProxy::start_config(&dir, &config);
    h.wait_for("mysql-writer", "db4", "UP", Some("L7OK"));
    h.wait_for("mysql-writer", "db5", "DOWN", Some("L7STS"));
    h.wait_for("mysql-readers", "db5", "UP", Some("L7OK"));
    h.wait_for("mysql-readers", "db6", "UP", Some("L7OK"));

    // Demote db4, promote db5.
    source.sql("SET GLOBAL read_only = ON");
    h.wait_for("mysql-writer", "db4", "DOWN", Some("L7STS"));
    replica.sql("STOP SLAVE; SET GLOBAL read_only = OFF");
    h.wait_for("mysql-writer", "db5", "UP", Some("L7OK"));
    h.wait_for("mysql-readers", "db5", "DOWN", Some("L7STS"));
    let writer = h.stat("mysql-writer", "db5");
    assert_eq!(writer["bck"], "1", "db5 serves as the backup: {writer:?}");
}

#[test]
fn readme_agent_recipe_drains_and_force_fail_marks_down() {
    let db = shared();
    let ports = Ports::new();
    let (db4, db5) = (host(4, db, &ports, &[]), host(5, db, &ports, &[]));
    let dir = TempDir::new("readme-agent");
    let h =
        HaProxy::start_config(&dir, &substitute(&block("Agent check with drain", "haproxy"), &[&db4, &db5], &ports));
    h.wait_for("mysql", "db4", "UP", Some("L7OK"));
    wait_agent(&h, "db4");
    // `touch /dev/shm/proxydrain` on db4.
    fs::write(db4.dir.join("proxydrain"), "").unwrap();
    h.wait_for("mysql", "db4", "DRAIN (agent)", Some("L7OK"));
    fs::remove_file(db4.dir.join("proxydrain")).unwrap();
    h.wait_for("mysql", "db4", "UP", Some("L7OK"));
    // Both the HTTP check and the agent say so; whichever HAProxy hears first names the state.
    fs::write(db4.dir.join("proxyoff"), "").unwrap();
    h.wait_for("mysql", "db4", "DOWN", Some("L7STS"));
    h.wait_for("mysql", "db5", "UP", Some("L7OK"));
}

/// Waits until the agent of `server` has answered (`agent_status` L7OK).
fn wait_agent(h: &HaProxy, server: &str) {
    let deadline = std::time::Instant::now() + common::haproxy::DEADLINE;
    loop {
        let row = h.stat("mysql", server);
        if row["agent_status"].trim_start_matches("* ") == "L7OK" {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "agent never answered: {row:?}\n{}", h.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn readme_example_responses_are_what_the_daemon_sends() {
    // `select @@hostname` on host db4.
    let fake = FakeServer::start(Scenario::new(Auth::Native, "pw").reply(Reply::value("db4")));
    let dir = TempDir::new("readme-responses");
    let (target, off) = (fake.target(), dir.path("off"));
    let d = Daemon::start(&["--mysql", &target, "--force-fail-file", &off], Some("pw"));
    let examples: Vec<String> = blocks_everywhere("").into_iter().filter(|b| b.starts_with("HTTP/1.1 ")).collect();
    assert_eq!(examples.len(), 2, "the 200 and 503 examples");
    let up = d.get("/");
    let shown = examples[0].replace('\n', "\r\n");
    assert_eq!(String::from_utf8_lossy(&up.raw), shown, "the README's 200 example");
    fake.set_scenario(Scenario::new(Auth::Native, "another password"));
    let down = d.get("/");
    assert_eq!(String::from_utf8_lossy(&down.raw), examples[1].replace('\n', "\r\n"), "the README's 503 example");
}

#[test]
fn readme_database_user_sql_works_over_tcp_and_the_socket() {
    let db = MariaDb::start();
    // The test server already has a `haproxy` user; the README's statements make `readme`.
    let sql = block("The database user", "sql").replace("'haproxy'", "'readme'");
    db.sql(&sql);
    let socket = db.socket.to_str().unwrap().to_string();
    for target in [db.addr(), socket] {
        for (profile, code, out) in
            [("/", 0, "OK - "), ("/primary", 0, "read_only is OFF"), ("/replica", 2, "not a replica")]
        {
            let (got, stdout) =
                common::once(&["--mysql", &target, "--user", "readme", "--profile", profile], Some("secret"));
            assert_eq!(got, code, "{target} {profile}: {stdout}");
            assert!(stdout.contains(out), "{target} {profile}: {stdout}");
        }
    }
}

#[test]
fn readme_flag_table_lists_exactly_the_flags_of_help() {
    let out = mysqlchk().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let flags = |text: &str, line_start: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix(line_start))
            .filter_map(|l| l.strip_prefix("--"))
            .map(|l| l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).next().unwrap().to_string())
            .filter(|f| f != "help")
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let in_help = flags(&help, "");
    let table = README.split("## Flags").nth(1).unwrap().split("\n## ").next().unwrap();
    let mut in_readme = flags(table, "| `");
    // The plain build refuses the TLS build's flags but does not list them.
    if !cfg!(feature = "tls") {
        in_readme.retain(|f| !f.starts_with("ssl-"));
    }
    assert_eq!(in_readme, in_help, "README flag table vs --help");
}

#[test]
fn readme_size_claim_holds_for_the_binary_under_test() {
    // "Every plain binary stays under 400 KiB, and every TLS binary under 1.25 MiB": only the
    // static release build is meant. scripts/test.sh runs the TLS build's release binary with
    // the tests built `--features tls`.
    let Some(bin) = std::env::var_os("MYSQLCHK_TEST_BIN").filter(|b| !b.is_empty()) else { return };
    let (claim, budget) =
        if cfg!(feature = "tls") { ("under 1.25 MiB", 1_310_720) } else { ("under 400 KiB", 400 * 1024) };
    assert!(README.contains(claim), "the README no longer makes the claim this test checks: {claim}");
    let size = fs::metadata(&bin).unwrap().len();
    assert!(size <= budget, "{} is {size} bytes, over {budget}", bin.to_string_lossy());
}

// --- the xinetd and systemd recipes -------------------------------------------------------------

/// What `/` means to a recipe run here: a private root the shims below treat as the system.
/// `systemctl` is a shim: `restart xinetd` runs a real xinetd on the recipe's installed service,
/// `enable --now mysqlchk.socket` runs the installed units under a real
/// `systemd-socket-activate`, with the paths read as under this root.
const SHIMS: &str = r#"
set -euo pipefail
root_path() { case "$1" in /*) echo "$ROOT$1" ;; *) echo "$1" ;; esac; }
systemctl() {
    case "$*" in
    "restart xinetd")
        local conf="$ROOT/run/xinetd.conf"
        mkdir -p "$ROOT/run"
        # The installed service, its paths under the root and its address the test's.
        sed -e "s#^\(\s*server\s*=\s*\)/#\1$ROOT/#" -e "s#^\(\s*port\s*=\s*\)9200#\1$PORT#" \
            -e "s#127\.0\.0\.1:3306#$DB#" \
            -e 's#^\(\s*\)}#\1\tbind = 127.0.0.1\n}#' "$ROOT/etc/xinetd.d/mysqlchk" >"$conf"
        xinetd -dontfork -f "$conf" -pidfile "$ROOT/run/xinetd.pid" -filelog "$ROOT/run/xinetd.log" \
            </dev/null >/dev/null 2>&1 &
        echo $! >>"$ROOT/run/pids"
        wait_port ;;
    "enable --now mysqlchk.socket")
        local unit="$ROOT/etc/systemd/system" exec args
        grep -q '^ListenStream=9200$' "$unit/mysqlchk.socket"
        exec=$(sed -n 's/^ExecStart=//p' "$unit/mysqlchk.service")
        grep -q '^EnvironmentFile=-/etc/mysqlchk/env$' "$unit/mysqlchk.service"
        # EnvironmentFile= lines: NAME=value, the value taken whole.
        while IFS= read -r line; do
            [[ $line == [A-Z]*=* ]] && export "${line%%=*}=${line#*=}"
        done <"$ROOT/etc/mysqlchk/env"
        # ExecStart's $MYSQLCHK_ARGS, split on whitespace as systemd does.
        read -r -a args <<<"${exec#* }"
        eval "args=(${args[*]})"
        systemd-socket-activate -l "127.0.0.1:$PORT" -E MYSQLCHK_PASSWORD \
            "$(root_path "${exec%% *}")" "${args[@]}" </dev/null >/dev/null 2>&1 &
        echo $! >>"$ROOT/run/pids"
        wait_port ;;
    "daemon-reload") ;;
    *) echo "systemctl shim: $* is not part of the recipes" >&2; return 1 ;;
    esac
}
wait_port() {
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0; sleep 0.1; done
    echo "nothing listens on $PORT" >&2; return 1
}
# The directories a Debian system has.
mkdir -p "$ROOT/run" "$ROOT/etc/xinetd.d" "$ROOT/usr/local/bin"
touch "$ROOT/etc/services"
"#;

/// Runs `recipe` (a README shell block) in `cwd` under the shims, with its system paths, the
/// database address and port 9200 substituted; returns its stdout.
fn run_recipe(recipe: &str, root: &TempDir, cwd: &std::path::Path, db: &MariaDb) -> String {
    let port = free_port();
    let script = recipe
        .replace(" /etc/", &format!(" {}/etc/", root.0.display()))
        .replace(" /usr/local/bin/", &format!(" {}/usr/local/bin/", root.0.display()))
        .replace("127.0.0.1:3306", &db.addr())
        .replace("127.0.0.1:9200", &format!("127.0.0.1:{port}"));
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{SHIMS}\n{script}"))
        .current_dir(cwd)
        .env("ROOT", &root.0)
        .env("PORT", port.to_string())
        .env("DB", db.addr())
        .env_remove("MYSQLCHK_PASSWORD")
        .output()
        .expect("run bash");
    // Whatever the shims started goes with the test.
    for pid in fs::read_to_string(root.join("run/pids")).unwrap_or_default().lines() {
        let _ = Command::new("kill").arg(pid).status();
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "recipe failed ({}):\n{script}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A MariaDB whose `haproxy` user has the README's password, `secret`.
fn recipe_db() -> MariaDb {
    let db = MariaDb::start();
    db.sql("ALTER USER 'haproxy'@'%' IDENTIFIED BY 'secret'; ALTER USER 'haproxy'@'localhost' IDENTIFIED BY 'secret'");
    db
}

/// An unpacked tarball: the binary under test and the files `scripts/release.sh` puts beside it
/// (its `payload` list, read from the script).
fn unpacked(dir: &TempDir) -> std::path::PathBuf {
    let stage = dir.join("mysqlchk-tarball");
    fs::create_dir_all(&stage).unwrap();
    fs::copy(common::bin(), stage.join("mysqlchk")).unwrap();
    let release = include_str!("../scripts/release.sh");
    let list = release.split("payload=(").nth(1).and_then(|r| r.split(')').next()).expect("release.sh payload");
    for f in list.split_whitespace() {
        let name = f.rsplit('/').next().unwrap();
        fs::copy(format!("{}/{f}", env!("CARGO_MANIFEST_DIR")), stage.join(name)).unwrap();
    }
    stage
}

/// Runs the README's shell block under `heading` as pasted, after `prepare` has set up the
/// unpacked tarball in the private root, and expects the recipe's own curl to show a 200.
fn recipe_serves_checks(heading: &str, prepare: impl FnOnce(&TempDir, &std::path::Path)) {
    if common::emulated() {
        eprintln!("{heading} recipe skipped under an emulator: the service would run the binary without it");
        return;
    }
    let db = recipe_db();
    let root = TempDir::new(&format!("readme-{heading}"));
    let stage = unpacked(&root);
    prepare(&root, &stage);
    let out = run_recipe(&block(heading, "sh"), &root, &stage, &db);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.contains("MySQL is running."), "{out}");
}

#[test]
fn readme_xinetd_recipe_serves_checks_when_pasted() {
    recipe_serves_checks("xinetd", |_, _| {});
}

#[test]
fn readme_systemd_recipe_serves_checks_when_pasted() {
    recipe_serves_checks("systemd", |root, stage| {
        // "from a tarball, ./install.sh does the same": into the private root.
        let install =
            Command::new("bash").arg("./install.sh").arg("--prefix").arg(&root.0).current_dir(stage).output().unwrap();
        assert!(install.status.success(), "{}", String::from_utf8_lossy(&install.stderr));
    });
}
