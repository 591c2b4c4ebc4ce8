//! Deadlines for futures on a glommio shard.
//!
//! [`within`] is a small hand-written future, not an `async fn` around `futures_lite::or`: the
//! compiler lays out an async wrapper's argument, the inner async block's copy of it and the
//! awaited value as separate slots, so the wrapped future was held three times. Around the
//! upstream call that made every connection task 3.3 KB larger, idle ones included.
//!
//! The timer is glommio's `Deadline` (a patch, see `vendor/README.md`): it takes an instant and
//! reads no clock, where `Timer` read it when made and on every poll. [`until`] is for callers
//! that have their deadline already (a forwarded call's, counted from the clock reading its
//! request already took).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use glommio::timer::Deadline;

pin_project_lite::pin_project! {
    /// The future returned by [`within`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct Within<F> {
        #[pin]
        fut: F,
        timer: Deadline,
    }
}

/// Runs `fut` for at most `limit` from now: `Some(output)` if it finished in time, `None` if the
/// time ran out (the future is dropped, which cancels whatever it was doing).
pub fn within<F: Future>(limit: Duration, fut: F) -> Within<F> {
    until(Instant::now() + limit, fut)
}

/// Runs `fut` until `deadline` at most: `Some(output)` if it finished in time, `None` if not.
pub fn until<F: Future>(deadline: Instant, fut: F) -> Within<F> {
    Within {
        fut,
        timer: Deadline::at(deadline),
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The work first: an answer that is ready when the deadline passes still counts.
        if let Poll::Ready(output) = this.fut.poll(cx) {
            return Poll::Ready(Some(output));
        }
        Pin::new(this.timer).poll(cx).map(|_| None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_shard<T>(f: impl Future<Output = T>) -> T {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(f)
    }

    #[test]
    fn finishes_or_times_out() {
        on_shard(async {
            assert_eq!(within(Duration::from_secs(5), async { 7 }).await, Some(7));
            let never = futures_lite::future::pending::<()>();
            assert_eq!(within(Duration::from_millis(1), never).await, None);
            // A deadline already past still lets finished work count.
            let past = Instant::now();
            assert_eq!(until(past, async { 7 }).await, Some(7));
            let never = futures_lite::future::pending::<()>();
            assert_eq!(until(past, never).await, None);
        });
    }

    #[test]
    fn holds_the_wrapped_future_once() {
        let inner = async {
            let big = [0u8; 1024];
            futures_lite::future::yield_now().await;
            big.len()
        };
        let inner_size = std::mem::size_of_val(&inner);
        let wrapped = on_shard(async move {
            let w = within(Duration::from_secs(1), inner);
            std::mem::size_of_val(&w)
        });
        assert!(
            wrapped < inner_size + 128,
            "{wrapped} bytes around a {inner_size}-byte future"
        );
    }
}
