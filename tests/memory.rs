//! The allocation claim of the hot path: over thousands of checks the daemon's resident memory
//! and its memory mappings stay flat. A leak, a buffer that grows with every check, or an
//! allocator that keeps mapping fresh memory shows here. Against the fake server, fresh logins
//! and a kept session alike.

mod common;

/// Resident memory (KiB) and the number of memory mappings of `pid`.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps").lines().count();
    (rss, maps)
}

fn stays_flat(extra: &[&str]) {
    // Under qemu the process is the emulator, whose translation cache grows as it runs.
    let Some((fake, _dir, d)) = common::native_daemon_on_fake(extra) else { return };
    // Warm up: the allocator's pools, the metrics, the logger reach their working size.
    d.checks_up(500);
    let (rss0, maps0) = footprint(d.child.id());
    d.checks_up(5000);
    let (rss1, maps1) = footprint(d.child.id());
    assert!(rss1 <= rss0 + 64, "resident memory grew from {rss0} KiB to {rss1} KiB over 5000 checks");
    assert!(maps1 <= maps0, "memory mappings went from {maps0} to {maps1} over 5000 checks");
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[test]
fn memory_stays_flat_over_5000_fresh_logins() {
    stays_flat(&[]);
}

#[test]
fn memory_stays_flat_over_5000_checks_on_a_kept_session() {
    stays_flat(&["--keep-session", "3600"]);
}
