//! Polling a connection so that the wake-ups it causes itself are handled in the same poll.
//!
//! Within one poll of a connection, hyper hands the request body from its reader to the
//! handler, and the in-task backend client hands the request to its connection and the answer
//! back: each of these wakes the connection's own task while it is running. The runtime treats
//! a task woken during its own poll as one that yielded: it queues it again and wakes another
//! worker thread to come and take it, a futex or eventfd write and a thread switch per call on
//! a lightly loaded gateway. Here such a wake-up only marks the connection, and the poll goes
//! round again at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

/// How many rounds one poll may take because the future woke itself. A future that keeps
/// waking itself (one out of its cooperative budget, or a fair loop that yields) gets back to
/// the scheduler after these, as it would without this wrapper.
const ROUNDS: usize = 4;

const IDLE: u8 = 0;
const POLLING: u8 = 1;
const WOKEN: u8 = 2;

/// `inner`, polled with a waker that, while `inner` is being polled, only marks it woken.
pub(crate) struct Inline<F> {
    inner: F,
    flag: Arc<Flag>,
    waker: Waker,
}

struct Flag {
    state: AtomicU8,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self.state.compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire) {
            // Being polled: the poll goes round again.
            Ok(_) | Err(WOKEN) => {}
            // Not being polled: wake the task as usual.
            Err(_) => self.task.wake(),
        }
    }
}

impl<F: Future + Unpin> Inline<F> {
    pub(crate) fn new(inner: F) -> Self {
        let flag = Arc::new(Flag { state: AtomicU8::new(IDLE), task: AtomicWaker::new() });
        Self { inner, waker: Waker::from(flag.clone()), flag }
    }
}

impl<F: Future + Unpin> Future for Inline<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        this.flag.task.register(cx.waker());
        let mut inner_cx = Context::from_waker(&this.waker);
        for _ in 0..ROUNDS {
            this.flag.state.store(POLLING, Ordering::Release);
            if let Poll::Ready(out) = Pin::new(&mut this.inner).poll(&mut inner_cx) {
                this.flag.state.store(IDLE, Ordering::Release);
                return Poll::Ready(out);
            }
            // Not woken meanwhile: wake-ups from now on go to the task.
            if this.flag.state.compare_exchange(POLLING, IDLE, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                return Poll::Pending;
            }
        }
        this.flag.state.store(IDLE, Ordering::Release);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Wakes itself `n` times while being polled, then is ready.
    struct SelfWaking {
        left: usize,
        polls: Arc<AtomicUsize>,
    }

    impl Future for SelfWaking {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            if self.left == 0 {
                return Poll::Ready(());
            }
            self.left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    struct CountingWake(AtomicUsize);

    impl Wake for CountingWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_future_that_wakes_itself_is_polled_again_in_the_same_poll_up_to_a_bound() {
        let task = Arc::new(CountingWake(AtomicUsize::new(0)));
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let polls = Arc::new(AtomicUsize::new(0));
        let mut f = Inline::new(SelfWaking { left: 2, polls: polls.clone() });
        assert_eq!(Pin::new(&mut f).poll(&mut cx), Poll::Ready(()));
        assert_eq!((polls.load(Ordering::Relaxed), task.0.load(Ordering::Relaxed)), (3, 0), "two self-wakes, no task wake-up");

        // One that keeps waking itself yields to the scheduler after the bound, woken as usual.
        let polls = Arc::new(AtomicUsize::new(0));
        let mut f = Inline::new(SelfWaking { left: 100, polls: polls.clone() });
        assert_eq!(Pin::new(&mut f).poll(&mut cx), Poll::Pending);
        assert_eq!((polls.load(Ordering::Relaxed), task.0.load(Ordering::Relaxed)), (ROUNDS, 1));
    }

    #[test]
    fn a_wake_up_between_polls_reaches_the_task() {
        let task = Arc::new(CountingWake(AtomicUsize::new(0)));
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let (tx, rx) = futures::channel::oneshot::channel::<u8>();
        let mut f = Inline::new(rx);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        tx.send(7).expect("receiver alive");
        assert_eq!(task.0.load(Ordering::Relaxed), 1, "a send after the poll wakes the task");
        assert_eq!(Pin::new(&mut f).poll(&mut cx), Poll::Ready(Ok(7)));
    }
}
