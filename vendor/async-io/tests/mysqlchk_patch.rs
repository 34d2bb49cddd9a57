//! mysqlchk's change to the driver (../README.md): after `no_helper_thread`, `block_on` drives
//! the reactor alone, on its own thread, however long its waits, and never starts the
//! "async-io" helper thread. Its own test binary: the promise is for the whole process.

#![cfg(target_os = "linux")]

use async_io::{block_on, no_helper_thread, Async, Timer};
use futures_lite::AsyncReadExt;
use std::io::Write;
use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::pin::pin;
use std::task::{Context, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// Whether this process has a thread named "async-io".
fn helper_running() -> bool {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .any(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).unwrap().trim() == "async-io")
}

#[test]
fn block_on_drives_the_reactor_alone() {
    no_helper_thread();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut writer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (reader, _) = listener.accept().unwrap();
    let mut reader = Async::new(reader).unwrap();
    let mut byte = [0u8; 1];
    block_on(async {
        // A read polled with a waker that wakes nobody: its byte, when it comes, ends a reactor
        // wait that notifies nobody. Upstream's block_on, woken so more than 500 µs after it
        // took the reactor, hands the reactor to the helper (starting it) and parks.
        let mut nobody = Context::from_waker(Waker::noop());
        assert!(pin!(reader.read(&mut byte)).poll(&mut nobody).is_pending());
        let late = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            writer.write_all(b"x").unwrap();
            writer
        });
        let start = Instant::now();
        Timer::after(Duration::from_millis(60)).await;
        assert!(start.elapsed() >= Duration::from_millis(60));
        let _writer = late.join().unwrap();
        // The byte that ended the unnoticed wait is still there to read.
        assert_eq!(reader.read(&mut byte).await.unwrap(), 1);
    });
    assert_eq!(&byte, b"x");
    assert!(!helper_running(), "block_on started the helper thread after no_helper_thread");
}
