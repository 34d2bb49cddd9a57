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

/// The names of the process's threads (/proc/PID/task/*/comm).
fn threads(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/PID/task");
    let mut names: Vec<String> = tasks
        .map(|t| std::fs::read_to_string(t.expect("a task").path().join("comm")).expect("comm").trim().to_string())
        .collect();
    names.sort();
    names
}

/// The daemon promises async-io that its one thread drives the reactor (`no_helper_thread`,
/// vendor/README.md): no "async-io" helper thread, which would take the reactor over after every
/// idle spell and hand each check's wake-ups back with futexes. Checks that come after idle
/// spells longer than the helper's back-off (about 20 ms) are answered by the one thread alone.
#[test]
fn the_daemon_is_one_thread_and_answers_after_idle_spells() {
    let Some((_fake, _dir, d)) = common::native_daemon_on_fake(&[]) else { return };
    let pid = d.child.id();
    d.checks_up(5);
    for _ in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(40));
        d.checks_up(1);
    }
    assert_eq!(threads(pid), ["mysqlchk"], "the daemon runs threads besides its own: is vendor/async-io patched in?");
}

/// What strace saw of the daemon's `sendto` and `close` calls over one check of `/`.
fn traced_check(d: &common::Daemon) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = common::TempDir::new("strace");
    let out = dir.path("trace");
    let mut strace = Command::new("strace")
        .args(["-p", &d.child.id().to_string(), "-e", "trace=sendto,close", "-o", &out])
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace (scripts/test.sh installs it)");
    // strace says so once it is attached.
    let mut said = BufReader::new(strace.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("attached") {
        line.clear();
        assert!(said.read_line(&mut line).unwrap() > 0, "strace did not attach");
    }
    d.checks_up(1);
    // Until the QUIT has gone too: it follows the answer.
    common::eventually("the check's QUIT", std::time::Duration::from_secs(10), || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.contains(r#", "\1\0\0\0\1", 5,"#))
    });
    let _ = Command::new("kill").arg(strace.id().to_string()).status();
    let _ = strace.wait();
    std::fs::read_to_string(&out).unwrap().lines().map(String::from).collect()
}

/// The answer does not wait for the goodbye: the response is written and its connection closed
/// before the check's session says COM_QUIT and closes, so the server's wake-up for the QUIT and
/// FIN costs the check no time. Before, the QUIT and the close came first.
#[test]
fn a_check_answers_before_it_says_quit() {
    let Some((fake, _dir, d)) = common::native_daemon_on_fake(&[]) else { return };
    d.checks_up(2);
    let calls = traced_check(&d);
    let at =
        |what: &str| calls.iter().position(|c| c.contains(what)).unwrap_or_else(|| panic!("no {what} in {calls:#?}"));
    let answer = at(r#", "HTTP/1.1 200 OK"#);
    let fd = calls[answer].trim_start_matches("sendto(").split(',').next().unwrap().to_string();
    let closed = at(&format!("close({fd})"));
    let quit = at(r#", "\1\0\0\0\1", 5,"#);
    assert!(answer < closed && closed < quit, "the answer, its close and then the QUIT: {calls:#?}");
    common::eventually("every check's QUIT", std::time::Duration::from_secs(10), || fake.quits() == 3);
}
