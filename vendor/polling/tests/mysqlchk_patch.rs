//! mysqlchk's changes to the epoll backend (../README.md): no timerfd, and the wake-up
//! descriptor read and re-armed only after a wait it ended. These pin down what the second one
//! must keep: a wake-up is never lost, whatever ended the waits before it.

use polling::{Event, Events, Poller};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let a = TcpStream::connect(listener.local_addr()?)?;
    let (b, _) = listener.accept()?;
    Ok((a, b))
}

/// Waits that I/O ended leave the wake-up descriptor armed: a notification after them still
/// ends the next wait, at once and with no event.
#[test]
fn notify_after_waits_ended_by_io() -> io::Result<()> {
    let poller = Poller::new()?;
    let (mut read, mut write) = tcp_pair()?;
    unsafe { poller.add(&read, Event::readable(1))? };
    let mut events = Events::new();
    for _ in 0..100 {
        write.write_all(&[1])?;
        events.clear();
        poller.wait(&mut events, Some(Duration::from_secs(5)))?;
        assert_eq!(events.iter().next().map(|e| e.key), Some(1));
        read.read_exact(&mut [0])?;
        poller.modify(&read, Event::readable(1))?;

        poller.notify()?;
        events.clear();
        let start = Instant::now();
        poller.wait(&mut events, Some(Duration::from_secs(5)))?;
        assert!(events.is_empty());
        assert!(start.elapsed() < Duration::from_secs(4), "the notification was lost");
    }
    poller.delete(&read)?;
    Ok(())
}

/// A notification that arrives together with I/O is consumed by that wait: the next wait sleeps
/// until its timeout instead of returning at once for nothing, and a later notification still
/// ends a wait.
#[test]
fn notify_with_io_is_consumed_once() -> io::Result<()> {
    let poller = Poller::new()?;
    let (mut read, mut write) = tcp_pair()?;
    unsafe { poller.add(&read, Event::readable(1))? };
    let mut events = Events::new();
    write.write_all(&[1])?;
    poller.notify()?;
    // The readiness of the byte may lag its write a little: wait until the socket says so.
    let deadline = Instant::now() + Duration::from_secs(5);
    while events.is_empty() && Instant::now() < deadline {
        poller.wait(&mut events, Some(Duration::from_millis(100)))?;
    }
    assert_eq!(events.iter().next().map(|e| e.key), Some(1));
    read.read_exact(&mut [0])?;

    events.clear();
    let start = Instant::now();
    poller.wait(&mut events, Some(Duration::from_millis(50)))?;
    assert!(events.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(50), "a spent notification ended a wait");

    let poller = Arc::new(poller);
    let notifier = thread::spawn({
        let poller = poller.clone();
        move || {
            thread::sleep(Duration::from_millis(20));
            poller.notify().unwrap();
        }
    });
    let start = Instant::now();
    poller.wait(&mut events, Some(Duration::from_secs(5)))?;
    assert!(start.elapsed() < Duration::from_secs(4), "the notification was lost");
    notifier.join().unwrap();
    poller.delete(&read)?;
    Ok(())
}

/// Deadlines go to epoll_pwait in milliseconds, rounded up: a wait never ends before its
/// timeout, and no timerfd is made.
#[test]
fn timeouts_round_up_to_milliseconds_without_a_timerfd() -> io::Result<()> {
    let poller = Poller::new()?;
    let mut events = Events::new();
    for micros in [1, 300, 1_000, 1_500, 20_000] {
        let timeout = Duration::from_micros(micros);
        let start = Instant::now();
        poller.wait(&mut events, Some(timeout))?;
        assert!(start.elapsed() >= timeout, "{micros} µs: ended after {:?}", start.elapsed());
    }
    let timerfds = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.to_string_lossy().contains("timerfd"))
        .count();
    assert_eq!(timerfds, 0);
    Ok(())
}
