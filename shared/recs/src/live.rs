//! The indexes a running function serves from, swapped for a new version without a redeploy:
//! the `LATEST` pointers are read at most once per refresh interval, and a new version is
//! loaded and verified before it replaces the old one (a broken version is logged and the
//! old one kept).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use shopmind_profiles::{ItemVectors, ProfileError};
use shopmind_storage::BlobStore;
use tokio::sync::Mutex;

use crate::cooc::Signals;
use crate::error::RecsError;
use crate::index::ItemIndex;

/// One consistent view: an item index and the signals, either possibly absent.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub items: Option<Arc<ItemIndex>>,
    pub signals: Option<Arc<Signals>>,
    pub signals_version: Option<String>,
}

#[derive(Debug)]
struct State {
    snapshot: Arc<Snapshot>,
    checked: Option<Instant>,
}

#[derive(Debug)]
pub struct LiveIndexes {
    blobs: Arc<dyn BlobStore>,
    refresh: Duration,
    state: Mutex<State>,
}

impl LiveIndexes {
    pub fn new(blobs: Arc<dyn BlobStore>, refresh: Duration) -> Self {
        Self {
            blobs,
            refresh,
            state: Mutex::new(State {
                snapshot: Arc::default(),
                checked: None,
            }),
        }
    }

    /// The current snapshot, checking the pointers first if the interval has passed. The
    /// first call fails if the store does; later failures keep serving the last good one.
    pub async fn current(&self) -> Result<Arc<Snapshot>, RecsError> {
        let mut state = self.state.lock().await;
        let due = state.checked.is_none_or(|t| t.elapsed() >= self.refresh);
        if !due {
            return Ok(state.snapshot.clone());
        }
        match self.refreshed(&state.snapshot).await {
            Ok(next) => {
                state.snapshot = next;
                state.checked = Some(Instant::now());
            }
            Err(e) if state.checked.is_some() => {
                tracing::warn!(error = %e, "index refresh failed; serving the previous version");
                state.checked = Some(Instant::now());
            }
            Err(e) => return Err(e),
        }
        Ok(state.snapshot.clone())
    }

    async fn refreshed(&self, old: &Arc<Snapshot>) -> Result<Arc<Snapshot>, RecsError> {
        let blobs = self.blobs.as_ref();
        let items_version = ItemIndex::latest_version(blobs).await?;
        let signals_version = Signals::latest_version(blobs).await?;
        let same_items = items_version.as_deref() == old.items.as_ref().map(|i| i.version());
        if same_items && signals_version == old.signals_version {
            return Ok(old.clone());
        }
        let items = match (&items_version, same_items) {
            (_, true) => old.items.clone(),
            (Some(v), false) => {
                let index = ItemIndex::load(blobs, v).await?;
                tracing::info!(version = v, items = index.len(), "item index loaded");
                Some(Arc::new(index))
            }
            (None, false) => None,
        };
        let signals = match &signals_version {
            v if *v == old.signals_version => old.signals.clone(),
            Some(v) => {
                let s = Signals::load(blobs, v).await?;
                tracing::info!(version = v, "signals loaded");
                Some(Arc::new(s))
            }
            None => None,
        };
        Ok(Arc::new(Snapshot {
            items,
            signals,
            signals_version,
        }))
    }
}

/// Item embeddings for the profile updater, from the live item index.
#[derive(Debug)]
pub struct IndexItemVectors(pub Arc<LiveIndexes>);

#[async_trait]
impl ItemVectors for IndexItemVectors {
    async fn item_vector(&self, item_id: &str) -> Result<Option<Vec<f32>>, ProfileError> {
        let snap = self
            .0
            .current()
            .await
            .map_err(|e| ProfileError::Config(format!("item index: {e}")))?;
        Ok(snap.items.as_ref().and_then(|idx| {
            idx.row(item_id)
                .and_then(|r| idx.vector(r))
                .map(<[f32]>::to_vec)
        }))
    }
}
