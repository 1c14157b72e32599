//! A snapshot of published artifacts that a running function serves from and swaps for new
//! versions without a redeploy: the pointers are checked at most once per interval, by one
//! task at a time; requests never wait behind a refresh once a snapshot exists (the others
//! keep serving the current one), and a failed refresh is logged and the last good snapshot
//! kept. Only the very first load fails when the store does.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct State<T> {
    snapshot: Arc<T>,
    checked: Option<Instant>,
}

#[derive(Debug)]
pub struct Live<T> {
    refresh: Duration,
    /// Read by every request; written only when a refresh finishes.
    state: RwLock<State<T>>,
    /// One refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
}

impl<T: Default> Live<T> {
    pub fn new(refresh: Duration) -> Self {
        Self {
            refresh,
            state: RwLock::new(State {
                snapshot: Arc::default(),
                checked: None,
            }),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }
}

impl<T> Live<T> {
    fn read(&self) -> (Arc<T>, Option<Instant>) {
        let s = self.state.read().unwrap_or_else(|p| p.into_inner());
        (s.snapshot.clone(), s.checked)
    }

    fn due(&self, checked: Option<Instant>) -> bool {
        checked.is_none_or(|t| t.elapsed() >= self.refresh)
    }

    /// The current snapshot; when the interval has passed, `refresh(current)` builds the next
    /// one first (returning `current` itself when nothing changed).
    pub async fn current<F, Fut, E>(&self, refresh: F) -> Result<Arc<T>, E>
    where
        F: FnOnce(Arc<T>) -> Fut,
        Fut: Future<Output = Result<Arc<T>, E>>,
        E: std::fmt::Display,
    {
        let (snapshot, checked) = self.read();
        if !self.due(checked) {
            return Ok(snapshot);
        }
        let _guard = if checked.is_some() {
            match self.refreshing.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(snapshot),
            }
        } else {
            self.refreshing.lock().await
        };
        // Another task may have refreshed while this one waited for the lock.
        let (snapshot, checked) = self.read();
        if !self.due(checked) {
            return Ok(snapshot);
        }
        let next = match refresh(snapshot.clone()).await {
            Ok(next) => next,
            Err(e) if checked.is_some() => {
                tracing::warn!(error = %e, "refresh failed; serving the previous version");
                snapshot
            }
            Err(e) => return Err(e),
        };
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = State {
            snapshot: next.clone(),
            checked: Some(Instant::now()),
        };
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_load_may_fail_later_failures_keep_the_last_good_snapshot() {
        let live: Live<u32> = Live::new(Duration::ZERO);
        let err = live
            .current(|_| async { Err::<Arc<u32>, _>("store down") })
            .await;
        assert_eq!(err, Err("store down"));
        let one = live.current(|_| async { Ok::<_, &str>(Arc::new(1)) }).await;
        assert_eq!(one.as_deref(), Ok(&1));
        // A refresh is handed the current snapshot and may fail without losing it.
        let kept = live
            .current(|old| async move {
                assert_eq!(*old, 1);
                Err::<Arc<u32>, _>("store down")
            })
            .await;
        assert_eq!(kept.as_deref(), Ok(&1));
        let two = live.current(|_| async { Ok::<_, &str>(Arc::new(2)) }).await;
        assert_eq!(two.as_deref(), Ok(&2));
    }

    #[tokio::test]
    async fn within_the_interval_nothing_is_reloaded() {
        let live: Live<u32> = Live::new(Duration::from_secs(3600));
        live.current(|_| async { Ok::<_, &str>(Arc::new(7)) })
            .await
            .unwrap();
        let again = live
            .current(|_| async {
                panic!("refreshed within the interval") as Result<Arc<u32>, &str>
            })
            .await;
        assert_eq!(again.as_deref(), Ok(&7));
    }
}
