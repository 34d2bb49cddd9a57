//! A real HAProxy (the distribution's, 2.6 on Debian 12) in the foreground as our child, with its
//! own config, admin socket and ports; states are read back from its own `show stat`.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// How long HAProxy may take to notice a change: slack for a busy box and a restarting MariaDB.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// HAProxy settings shared by every config: fast checks, one result flips the state, and a
/// check timeout above mysqlchk's `--timeout` so HAProxy sees mysqlchk's answer, not its own
/// timeout.
pub const CHECK: &str = "inter 300ms fall 1 rise 1";
pub const DEFAULTS: &str = "\
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout check 5s
";

/// A foreground HAProxy with an admin stats socket, killed on drop.
pub struct HaProxy {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    /// The configuration it runs, as given (without the admin socket).
    config: String,
}

impl HaProxy {
    /// Writes `global` (the admin socket), [`DEFAULTS`] and `proxies` to `<dir>/haproxy.cfg` and
    /// starts HAProxy on it; returns once the admin socket answers `show stat`.
    pub fn start(dir: &TempDir, proxies: &str) -> HaProxy {
        HaProxy::start_config(dir, &format!("global\n\n{DEFAULTS}\n{proxies}"))
    }

    /// Starts HAProxy on `config`, a whole configuration whose `global` section gains the admin
    /// socket and `noreuseport`. Its `bind 127.0.0.1:PORT` lines name ports that were free a
    /// moment ago: when HAProxy cannot bind one because another test took it first, every such
    /// line gets a new free port and HAProxy starts again ([`HaProxy::bind_port`] tells where a
    /// proxy ended up).
    pub fn start_config(dir: &TempDir, config: &str) -> HaProxy {
        const ATTEMPTS: u32 = 5;
        let mut config = config.to_string();
        for attempt in 1..=ATTEMPTS {
            match HaProxy::try_start(dir, &config) {
                Ok(h) => return h,
                Err(log) if attempt < ATTEMPTS && log.contains("cannot bind socket") => config = rebind(&config),
                Err(log) => panic!("haproxy exited early:\n{log}"),
            }
        }
        unreachable!()
    }

    /// HAProxy on `config` once the admin socket answers `show stat`; its log if it exits first.
    fn try_start(dir: &TempDir, config: &str) -> Result<HaProxy, String> {
        let socket = dir.0.join("admin.sock");
        let cfg = dir.0.join("haproxy.cfg");
        let log = dir.0.join("haproxy.log");
        // noreuseport: HAProxy binds with SO_REUSEPORT by default, so two of them given the same
        // port would share it quietly instead of the second one failing to start.
        let admin = format!("global\n    stats socket {} mode 600 level admin\n    noreuseport\n", socket.display());
        assert!(config.starts_with("global\n"), "a configuration starts with its global section");
        fs::write(&cfg, config.replacen("global\n", &admin, 1)).unwrap();
        let out = fs::File::create(&log).unwrap();
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn haproxy (is it installed? scripts/test.sh installs it)");
        let mut h = HaProxy { child, socket, log, config: config.to_string() };
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.try_show_stat().is_err() {
            if let Ok(Some(status)) = h.child.try_wait() {
                return Err(format!("({status}) {}", h.log()));
            }
            assert!(Instant::now() < deadline, "haproxy admin socket not ready:\n{}", h.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(h)
    }

    /// HAProxy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The port that `listen` section `proxy` binds on 127.0.0.1.
    pub fn bind_port(&self, proxy: &str) -> u16 {
        let section = self.config.split(&format!("listen {proxy}\n")).nth(1).expect("no such listen section");
        let bind = section.lines().find_map(|l| l.trim().strip_prefix("bind 127.0.0.1:")).expect("a bind line");
        bind.split_whitespace().next().and_then(|p| p.parse().ok()).expect("a port")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `show stat` over the admin socket: the CSV with its `# ` header.
    pub fn try_show_stat(&self) -> std::io::Result<String> {
        let mut s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"show stat\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        if !out.starts_with("# pxname,") {
            return Err(std::io::Error::other(format!("unexpected show stat output: {out:?}")));
        }
        Ok(out)
    }

    /// The `show stat` row of `proxy`/`server`, as column name -> value.
    pub fn stat(&self, proxy: &str, server: &str) -> HashMap<String, String> {
        let csv = self.try_show_stat().unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().trim_start_matches("# ").split(',').collect();
        for line in lines {
            let row: Vec<&str> = line.split(',').collect();
            if row.first() == Some(&proxy) && row.get(1) == Some(&server) {
                return header.iter().zip(row).map(|(k, v)| (k.to_string(), v.to_string())).collect();
            }
        }
        panic!("no {proxy}/{server} in show stat:\n{csv}");
    }

    /// Polls `show stat` until `proxy`/`server` has `status` (or `status (who)`, e.g.
    /// `DOWN (agent)`) and, if given, a last health check status `check`; panics with the row
    /// after [`DEADLINE`].
    pub fn wait_for(&self, proxy: &str, server: &str, status: &str, check: Option<&str>) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let row = self.stat(proxy, server);
            // A check in progress shows the last result as "* L7OK".
            let last_check = row["check_status"].trim_start_matches("* ");
            // "DOWN (agent)" is DOWN too: who set it is in the parentheses.
            let state = &row["status"];
            let matches = state == status || state.strip_prefix(status).is_some_and(|r| r.starts_with(" ("));
            if matches && check.is_none_or(|c| c == last_check) {
                return;
            }
            if Instant::now() > deadline {
                let fields = ["status", "check_status", "last_chk", "agent_status", "last_agt", "weight"];
                let seen: Vec<String> = fields.iter().map(|f| format!("{f}={:?}", row.get(*f))).collect();
                panic!("{proxy}/{server} not {status} after {DEADLINE:?}: {}\n{}", seen.join(" "), self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `config` with a new free port in every `bind 127.0.0.1:PORT` line.
fn rebind(config: &str) -> String {
    let mut out = String::new();
    for line in config.lines() {
        match line.split_once("bind 127.0.0.1:") {
            Some((indent, rest)) if indent.trim().is_empty() => {
                let options = rest.split_once(char::is_whitespace).map_or("", |(_, o)| o);
                let new = format!("{indent}bind 127.0.0.1:{} {options}", super::free_port());
                out.push_str(new.trim_end());
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
