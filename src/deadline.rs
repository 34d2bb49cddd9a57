//! [`Deadline`]: a point in time to give up at, which costs no system call to set.
//!
//! An async-io `Timer` per check is a timer inserted into the reactor per check, and async-io
//! wakes the reactor for every insertion: a write to its eventfd, then one more pass through
//! epoll that finds nothing (six system calls, two of them `epoll_ctl`), for a deadline that
//! almost never fires.
//!
//! The deadlines share one timer instead, armed no later than the earliest deadline anyone
//! waits for. A deadline later than the armed one arms nothing, and that is every check's when
//! checks of one `--timeout` follow one another. When the shared timer fires it wakes the expired
//! waiters and is armed anew at the earliest of the rest. So the timer is armed about once per
//! timeout rather than once per check, and no deadline fires late or early.
//!
//! Checks use them, and so do the connections that wait for the rest of a request head: a
//! request often arrives a moment after its connection is accepted, and arming an async-io timer
//! for that wait cost most checks those six system calls.
//!
//! The timer's waker may be called on async-io's own thread, so the shared state is behind a
//! mutex (held only for a few operations; the executor itself is single-threaded).

use async_io::Timer;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// Resolves at `when`, or at once if that has passed.
pub struct Deadline {
    when: Instant,
    /// Its place in [`Shared::waiters`] plus one; 0 while it is not waiting.
    slot: usize,
}

struct Waiter {
    when: Instant,
    waker: Waker,
}

struct Shared {
    /// When `timer` fires; `None` when it is not armed.
    armed: Option<Instant>,
    timer: Option<Timer>,
    /// The timer's waker, [`Ring`]; made once.
    ring: Option<Waker>,
    /// Every deadline waited for, at the place it took when it first waited; freed places are
    /// reused, so a connection's or a check's deadline allocates nothing once the daemon has
    /// seen its busiest moment.
    waiters: Vec<Option<Waiter>>,
    free: Vec<usize>,
    /// How many times the timer has been armed (for the tests).
    arms: u64,
}

static SHARED: Mutex<Shared> =
    Mutex::new(Shared { armed: None, timer: None, ring: None, waiters: Vec::new(), free: Vec::new(), arms: 0 });

fn shared() -> MutexGuard<'static, Shared> {
    SHARED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The shared timer fired.
struct Ring;

impl Wake for Ring {
    fn wake(self: Arc<Self>) {
        rearm(&mut shared());
    }
}

/// Wakes the waiters whose deadline has passed and arms the timer at the earliest of the rest.
fn rearm(shared: &mut Shared) {
    // Unarmed first, so that nothing below can leave a past time armed: every later deadline
    // would then count on a timer that is not there.
    shared.armed = None;
    loop {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for waiter in shared.waiters.iter().flatten() {
            if waiter.when <= now {
                waiter.waker.wake_by_ref();
            } else if next.is_none_or(|next| waiter.when < next) {
                next = Some(waiter.when);
            }
        }
        match next {
            Some(when) if !arm(shared, when) => continue,
            _ => return,
        }
    }
}

/// Arms the timer at `when`; false if that passed while it was being armed.
fn arm(shared: &mut Shared, when: Instant) -> bool {
    shared.arms += 1;
    let ring = shared.ring.get_or_insert_with(|| Waker::from(Arc::new(Ring)));
    let timer = shared.timer.get_or_insert_with(Timer::never);
    timer.set_at(when);
    if Pin::new(timer).poll(&mut Context::from_waker(ring)).is_ready() {
        return false;
    }
    shared.armed = Some(when);
    true
}

impl Deadline {
    pub fn at(when: Instant) -> Deadline {
        Deadline { when, slot: 0 }
    }

    pub fn after(duration: Duration) -> Deadline {
        Deadline::at(Instant::now() + duration)
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let now = Instant::now();
        if now >= this.when {
            this.forget();
            return Poll::Ready(());
        }
        let mut shared = shared();
        let shared = &mut *shared;
        match this.slot.checked_sub(1).and_then(|i| shared.waiters[i].as_mut()) {
            Some(waiter) => {
                if !waiter.waker.will_wake(cx.waker()) {
                    waiter.waker = cx.waker().clone();
                }
            }
            None => {
                let waiter = Some(Waiter { when: this.when, waker: cx.waker().clone() });
                let i = match shared.free.pop() {
                    Some(i) => {
                        shared.waiters[i] = waiter;
                        i
                    }
                    None => {
                        shared.waiters.push(waiter);
                        shared.waiters.len() - 1
                    }
                };
                this.slot = i + 1;
            }
        }
        // An armed time already past is a ring still on its way (or lost): arm for this one too.
        if shared.armed.is_none_or(|armed| this.when < armed || armed <= now) && !arm(shared, this.when) {
            rearm(shared);
        }
        Poll::Pending
    }
}

impl Deadline {
    fn forget(&mut self) {
        if let Some(i) = std::mem::take(&mut self.slot).checked_sub(1) {
            let mut shared = shared();
            shared.waiters[i] = None;
            shared.free.push(i);
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.forget();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::FutureExt;

    // The tests share the one timer, so they run as one test, in order. Spans are long enough
    // that a stalled thread (qemu, a loaded machine) does not turn "not yet" into "already".
    #[test]
    fn deadlines_fire_on_time_and_share_one_timer() {
        let ms = Duration::from_millis;
        let watchdog = async {
            async_io::Timer::after(Duration::from_secs(30)).await;
            panic!("a deadline never fired");
        };
        smol::block_on(watchdog.or(async {
            // Never before its time.
            let when = Instant::now() + ms(30);
            Deadline::at(when).await;
            assert!(Instant::now() >= when);

            // A far deadline arms the timer; later ones, each waited on for a while, arm nothing.
            let far = Duration::from_secs(600);
            let arms = shared().arms;
            let mut first = Deadline::after(far);
            assert!(futures_lite::future::poll_once(&mut first).await.is_none());
            assert_eq!(shared().arms, arms + 1);
            for _ in 0..100 {
                let mut next = Deadline::after(far);
                assert!(futures_lite::future::poll_once(&mut next).await.is_none());
            }
            assert_eq!(shared().arms, arms + 1, "later deadlines re-armed the timer");
            let waiting = |s: &Shared| s.waiters.iter().flatten().count();
            assert_eq!(waiting(&shared()), 1, "dropped deadlines are forgotten");
            assert!(shared().waiters.len() <= 2, "their places are reused");

            // An earlier one re-arms it, fires on time, and the far one still waits.
            let when = Instant::now() + ms(300);
            let first = async {
                first.await;
                "far"
            };
            let which = first.or(async {
                Deadline::at(when).await;
                "early"
            });
            assert_eq!(which.await, "early");
            assert!(Instant::now() >= when);
            // Armed for the early one, then again for the far one when it fired: nothing else.
            assert_eq!(shared().arms, arms + 3);

            // A deadline waited on while the timer is armed for an earlier one that is then
            // dropped still fires: the timer fires for nobody and is armed anew for it.
            let mut short = Deadline::after(ms(200));
            assert!(futures_lite::future::poll_once(&mut short).await.is_none());
            let when = Instant::now() + ms(400);
            let longer = Deadline::at(when);
            drop(short);
            longer.await;
            assert!(Instant::now() >= when);
            assert_eq!(waiting(&shared()), 0);
        }));
    }
}
