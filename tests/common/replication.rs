//! A throwaway MariaDB GTID replication pair on loopback: a primary with a binary log and a
//! read-only replica following it with `MASTER_USE_GTID=slave_pos`, both [`MariaDb`] servers
//! (own temp dirs and ports, reaped and removed like any other).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::mariadb::MariaDb;

/// How long replication may take to start, stop or catch up.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The table the steady writes go to.
const BEAT_SQL: &str = "CREATE TABLE IF NOT EXISTS chk.beat (id INT PRIMARY KEY, n BIGINT NOT NULL);";

pub struct Pair {
    pub primary: MariaDb,
    pub replica: MariaDb,
}

impl Pair {
    /// Starts both servers and returns once the replica runs both threads and has caught up.
    pub fn start() -> Pair {
        let primary = MariaDb::replication_source(&["--binlog-format=ROW"]);
        let replica = MariaDb::start_with(&[
            "--log-bin=binlog",
            "--binlog-format=ROW",
            "--server-id=2",
            "--read-only=ON",
            "--log-slave-updates=ON",
        ]);
        primary.sql(BEAT_SQL);
        let pair = Pair { primary, replica };
        pair.follow(0);
        pair.wait_caught_up();
        pair
    }

    /// (Re)points the replica at the primary with `delay` seconds of `MASTER_DELAY` and starts
    /// it; returns once both threads run.
    pub fn follow(&self, delay: u32) {
        self.replica.sql("STOP SLAVE");
        self.replica.replicate_delayed("", self.primary.port, delay);
        self.wait_replica(|s| s["Slave_IO_Running"] == "Yes" && s["Slave_SQL_Running"] == "Yes", "running");
    }

    /// `SHOW SLAVE STATUS` on the replica, by column name (empty when it is no replica).
    pub fn status(&self) -> HashMap<String, String> {
        self.replica.row("SHOW SLAVE STATUS")
    }

    /// Waits until the replica's status satisfies `ok`; `what` names it in the panic.
    pub fn wait_replica(&self, ok: impl Fn(&HashMap<String, String>) -> bool, what: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let s = self.status();
            if !s.is_empty() && ok(&s) {
                return;
            }
            let seen = ["Slave_IO_Running", "Slave_SQL_Running", "Seconds_Behind_Master", "Last_Error"]
                .map(|k| format!("{k}={:?}", s.get(k)));
            assert!(Instant::now() < deadline, "replica not {what} after {DEADLINE:?}: {}", seen.join(" "));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the replica has applied everything the primary wrote so far.
    pub fn wait_caught_up(&self) {
        let pos = self.primary.sql("SELECT @@gtid_binlog_pos");
        let got = self.replica.sql(&format!("SELECT MASTER_GTID_WAIT('{pos}', {})", DEADLINE.as_secs()));
        assert_eq!(got, "0", "replica did not reach {pos}: {:?}", self.status());
    }

    /// The replica's `Seconds_Behind_Master`, `None` for NULL.
    pub fn lag(&self) -> Option<u64> {
        self.status().get("Seconds_Behind_Master")?.parse().ok()
    }

    /// Writes to the primary every 200 ms until the returned guard is dropped, so that a delayed
    /// replica always has an event waiting and shows a lag.
    pub fn steady_writes(&self) -> Writes {
        let stop = Arc::new(AtomicBool::new(false));
        let (socket, flag) = (self.primary.socket.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                n += 1;
                let _ = std::process::Command::new("mariadb")
                    .arg("--no-defaults")
                    .arg("--user=root")
                    .arg(format!("--socket={}", socket.display()))
                    .arg("-e")
                    .arg(format!("REPLACE INTO chk.beat VALUES (1, {n})"))
                    .stdin(std::process::Stdio::null())
                    .output();
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Writes { stop, thread: Some(thread) }
    }
}

/// Steady writes to the primary, stopped on drop.
pub struct Writes {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Writes {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
