//! Deadline timers polled only when they may have fired.
//!
//! A tokio `Sleep` keeps the waker of its last poll until it fires. A future that is polled
//! many times before its deadline (a connection, a call waiting on its backend) need not poll
//! its timer each time: while the same task polls, one look at the timer's state (an atomic
//! load) says whether it has fired.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::time::{Instant, Sleep};

/// Polls `timer` when it may have fired, or when it does not hold this task's waker.
/// `holder` remembers the waker it holds: clear it after moving the timer (`reset`), since a
/// timer that fired gives its waker away.
pub(crate) fn poll_deadline(timer: Pin<&mut Sleep>, holder: &mut Option<Waker>, cx: &mut Context<'_>) -> Poll<()> {
    if holder.as_ref().is_some_and(|w| w.will_wake(cx.waker())) && !timer.is_elapsed() {
        return Poll::Pending;
    }
    // Out of coop budget, the timer answers `Pending` without taking the waker.
    let budget = tokio::task::coop::has_budget_remaining();
    let polled = timer.poll(cx);
    *holder = (polled.is_pending() && budget).then(|| cx.waker().clone());
    polled
}

/// `fut`, or `Err(TimedOut)` once `deadline` passes first: `tokio::time::timeout_at` with its
/// timer polled by [`poll_deadline`].
pub(crate) async fn within<F: Future>(deadline: Instant, fut: F) -> Result<F::Output, TimedOut> {
    let mut timer = std::pin::pin!(tokio::time::sleep_until(deadline));
    let mut fut = std::pin::pin!(fut);
    let mut holder = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        poll_deadline(timer.as_mut(), &mut holder, cx).map(|()| Err(TimedOut))
    })
    .await
}

/// The deadline passed before the work finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimedOut;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A waker that counts its wake-ups, and the count.
    fn counting_waker() -> (Arc<Counting>, Waker) {
        let count = Arc::new(Counting(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[tokio::test]
    async fn the_timer_wakes_the_task_that_polls_it_last_even_when_the_task_changes() {
        let mut timer = std::pin::pin!(tokio::time::sleep(Duration::from_millis(20)));
        let mut holder = None;
        let (first, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(poll_deadline(timer.as_mut(), &mut holder, &mut cx).is_pending());
        assert!(poll_deadline(timer.as_mut(), &mut holder, &mut cx).is_pending(), "looked at, not fired");
        // Now this test's task waits on it: it must be the one woken, not the first waker. (Were
        // it not, only the outer timeout would wake this task, and the first waker's count
        // would say so.)
        let waited = std::future::poll_fn(|cx| poll_deadline(timer.as_mut(), &mut holder, cx));
        tokio::time::timeout(Duration::from_secs(30), waited).await.expect("the timer fired");
        assert_eq!(first.0.load(Ordering::Relaxed), 0, "the earlier waker was replaced");
        assert!(holder.is_none(), "a fired timer holds no waker");
    }

    #[tokio::test]
    async fn a_moved_timer_fires_at_its_new_deadline() {
        let mut timer = std::pin::pin!(tokio::time::sleep(Duration::from_secs(3600)));
        let mut holder = None;
        let (_, waker) = counting_waker();
        assert!(poll_deadline(timer.as_mut(), &mut holder, &mut Context::from_waker(&waker)).is_pending());
        timer.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(10));
        holder = None;
        std::future::poll_fn(|cx| poll_deadline(timer.as_mut(), &mut holder, cx)).await;
        assert!(timer.is_elapsed());
    }

    #[tokio::test]
    async fn work_done_in_time_is_returned_and_work_past_its_deadline_is_not() {
        let soon = Instant::now() + Duration::from_secs(3600);
        assert_eq!(within(soon, async { 7 }).await, Ok(7));
        let past = Instant::now() + Duration::from_millis(10);
        assert_eq!(within(past, std::future::pending::<()>()).await, Err(TimedOut));
    }
}
