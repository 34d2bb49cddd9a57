//! The reactor claim of the hot path (ARCHITECTURE.md, vendor/README.md): a reactor wait is an
//! `epoll_pwait` and the socket's re-arm, nothing more. The patched polling keeps no timerfd (no
//! `timerfd_settime` and `epoll_ctl` per wait) and reads its wake-up descriptor only when it was
//! woken (no `read` and `epoll_ctl` per wait). Stock polling 3.11 does both on every wait, four
//! or five waits a check: building against it again fails here.

mod common;

/// `read(2)` calls the process has made (`syscr` of /proc/PID/io). The daemon reads its sockets
/// with `recvfrom`, which this does not count: what is left is the reactor's wake-up descriptor.
fn reads(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines().find_map(|l| l.strip_prefix("syscr:")).and_then(|v| v.trim().parse().ok()).expect("syscr")
}

/// The daemon's descriptors that are timerfds.
fn timerfds(pid: u32) -> usize {
    common::fd_targets(pid).iter().filter(|target| target.to_string_lossy().contains("timerfd")).count()
}

#[test]
fn a_check_waits_without_rearming_a_timer_or_reading_the_wakeup_descriptor() {
    let Some((_fake, _dir, d)) = common::native_daemon_on_fake(&[]) else { return };
    let pid = d.child.id();
    d.checks_up(20);
    assert_eq!(timerfds(pid), 0, "the reactor made a timerfd: is vendor/polling patched in?");
    let before = reads(pid);
    const N: u64 = 300;
    d.checks_up(N as usize);
    let per_check = (reads(pid) - before) as f64 / N as f64;
    // Stock polling reads its eventfd after every wait: 4 or more a check. A wake-up from the
    // async-io thread may still cost one now and then.
    assert!(per_check < 0.5, "{per_check:.2} read(2) calls a check: the reactor reads its wake-up descriptor per wait");
}
