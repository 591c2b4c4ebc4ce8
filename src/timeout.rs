//! Deadlines for futures on a glommio shard.

use std::future::Future;
use std::time::Duration;

/// Runs `fut` for at most `limit`: `Some(output)` if it finished in time, `None` if the time ran out
/// (the future is dropped, which cancels whatever it was doing).
pub async fn within<F: Future>(limit: Duration, fut: F) -> Option<F::Output> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(limit).await;
        None
    })
    .await
}
