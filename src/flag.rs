//! [`Flag`]: "it happened", raised once and awaited by any number of tasks on this thread.
//!
//! What a channel whose sender is dropped gives, without its weight: a channel is a mid-sized
//! allocation (768 bytes), and the check path made two of them per request. Under musl, every
//! mid-sized object made and freed per request is a page mapped and unmapped per request once
//! there are enough kinds of them to defeat its allocator's reuse heuristic.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

#[derive(Default)]
pub struct Flag {
    raised: Cell<bool>,
    waiting: RefCell<Vec<Waker>>,
}

impl Flag {
    /// Raises the flag and wakes every task waiting for it. Raising it again does nothing.
    pub fn raise(&self) {
        self.raised.set(true);
        for waker in self.waiting.take() {
            waker.wake();
        }
    }

    pub fn is_raised(&self) -> bool {
        self.raised.get()
    }

    /// Resolves once the flag is raised (at once if it already is).
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.raised.get() {
                return Poll::Ready(());
            }
            let mut waiting = self.waiting.borrow_mut();
            if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                waiting.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn every_waiter_wakes_once_raised() {
        let flag = Rc::new(Flag::default());
        let ex = smol::LocalExecutor::new();
        let done = Rc::new(Cell::new(0));
        for _ in 0..3 {
            let (flag, done) = (flag.clone(), done.clone());
            ex.spawn(async move {
                flag.wait().await;
                done.set(done.get() + 1);
            })
            .detach();
        }
        while ex.try_tick() {}
        assert_eq!(done.get(), 0, "nobody passes a lowered flag");
        assert_eq!(flag.waiting.borrow().len(), 3);
        flag.raise();
        while ex.try_tick() {}
        assert_eq!(done.get(), 3);
        assert!(flag.is_raised());
        smol::block_on(flag.wait());
    }
}
