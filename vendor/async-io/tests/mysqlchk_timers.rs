//! mysqlchk's change to the reactor's timers (../README.md). Its own test binary, without
//! `no_helper_thread`: that promise is for a whole process, and a second `block_on` on another
//! test thread would break it (tests/mysqlchk_patch.rs makes it).

#![cfg(target_os = "linux")]

use async_io::{block_on, Timer};
use std::time::{Duration, Instant};

/// mysqlchk's change to the reactor's timers (../README.md): the ready ones are taken off the
/// front of the map, not split off it. Timers already due, several due at one instant and a
/// later one each fire once, none before its deadline, and the map, emptied and refilled, keeps
/// working.
#[test]
fn timers_fire_at_their_deadlines_never_early() {
    use futures_lite::future::zip;
    let fired_at = |when: Instant| async move {
        Timer::at(when).await;
        (when, Instant::now())
    };
    block_on(async {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let (late, (same, (also_same, due))) = zip(
            fired_at(at(60)),
            zip(fired_at(at(30)), zip(fired_at(at(30)), fired_at(t0))),
        )
        .await;
        for (when, fired) in [late, same, also_same, due] {
            assert!(fired >= when, "a timer fired {:?} early", when - fired);
        }
        assert!(late.1 >= same.1.max(also_same.1));
        for _ in 0..50 {
            let (when, fired) = fired_at(Instant::now() + Duration::from_millis(1)).await;
            assert!(fired >= when);
        }
    });
}
