//! A throwaway 3-node MariaDB Galera cluster on loopback, built from [`MariaDb`] servers: each
//! node has its own temp dir, SQL port, group-communication, IST and SST ports, and is removed
//! (with its reaper) like any other throwaway server. Node 0 bootstraps the cluster; the others
//! join it by rsync SST. Debian's `galera-4` provides the library and `rsync` the SST
//! (scripts/test.sh installs both).

use std::time::{Duration, Instant};

use super::free_port;
use super::mariadb::MariaDb;

/// Debian's `galera-4` installs the provider here.
pub const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

/// How long the cluster may take to agree on a change (a desync, a lost quorum).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running cluster; every node is killed and removed on drop.
pub struct Galera {
    pub nodes: Vec<MariaDb>,
}

impl Galera {
    /// Starts a cluster of `size` nodes (3 for quorum tests) and returns once every node is
    /// Synced and sees all the others.
    pub fn start(size: usize) -> Galera {
        assert!(std::path::Path::new(PROVIDER).exists(), "{PROVIDER} missing: scripts/test.sh installs galera-4");
        let gcomm: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let address = gcomm.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
        let name = format!("mysqlchk-{}-{}", std::process::id(), free_port());
        let mut nodes = Vec::with_capacity(size);
        for (i, port) in gcomm.iter().enumerate() {
            // Short failure detection, so a lost quorum shows in seconds rather than the default
            // 15 s; the ordering rule is keepalive <= check period <= suspect <= inactive.
            let provider_options = format!(
                "gmcast.listen_addr=tcp://127.0.0.1:{port};ist.recv_addr=127.0.0.1:{};gcache.size=16M;\
                 evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S;\
                 evs.suspect_timeout=PT2S;evs.inactive_timeout=PT3S;evs.install_timeout=PT3S",
                free_port()
            );
            let mut args = vec![
                "--wsrep-on=ON".to_string(),
                format!("--wsrep-provider={PROVIDER}"),
                format!("--wsrep-cluster-name={name}"),
                format!("--wsrep-cluster-address=gcomm://{address}"),
                format!("--wsrep-node-name=node{i}"),
                format!("--wsrep-node-address=127.0.0.1:{port}"),
                format!("--wsrep-provider-options={provider_options}"),
                "--wsrep-sst-method=rsync".to_string(),
                format!("--wsrep-sst-receive-address=127.0.0.1:{}", free_port()),
                "--binlog-format=ROW".to_string(),
                "--innodb-autoinc-lock-mode=2".to_string(),
            ];
            if i == 0 {
                args.push("--wsrep-new-cluster".to_string());
            }
            // Joiners start after the nodes before them are up, so SST always has a donor.
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            nodes.push(MariaDb::start_open(&args));
        }
        let cluster = Galera { nodes };
        for i in 0..size {
            cluster.wait_status(i, "wsrep_cluster_size", &size.to_string());
            cluster.wait_status(i, "wsrep_local_state_comment", "Synced");
        }
        cluster
    }

    /// A `SHOW GLOBAL STATUS` value of node `i` (empty when the server has no such variable).
    pub fn status(&self, i: usize, var: &str) -> String {
        let row = self.nodes[i].sql(&format!("SHOW GLOBAL STATUS LIKE '{var}'"));
        row.split('\t').nth(1).unwrap_or("").trim().to_string()
    }

    /// Waits until node `i` reports `value` for the status variable `var`.
    pub fn wait_status(&self, i: usize, var: &str, value: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let now = self.status(i, var);
            if now == value {
                return;
            }
            assert!(Instant::now() < deadline, "node{i}: {var} is {now:?}, not {value:?} after {DEADLINE:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
