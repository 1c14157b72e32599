//! The indexes a running function serves from, swapped for a new version without a redeploy:
//! the `LATEST` pointers are read at most once per refresh interval, and a new version is
//! loaded and verified before it replaces the old one (a broken version is logged and the
//! old one kept).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shopmind_artifacts::Live;
use shopmind_profiles::{ItemVectors, ProfileError};
use shopmind_storage::BlobStore;

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
pub struct LiveIndexes {
    blobs: Arc<dyn BlobStore>,
    live: Live<Snapshot>,
}

impl LiveIndexes {
    pub fn new(blobs: Arc<dyn BlobStore>, refresh: Duration) -> Self {
        Self {
            blobs,
            live: Live::new(refresh),
        }
    }

    /// The current snapshot, checking the pointers first if the interval has passed (see
    /// [`Live`]: requests never wait behind a refresh once a snapshot exists; a failed
    /// refresh keeps serving the last good one).
    pub async fn current(&self) -> Result<Arc<Snapshot>, RecsError> {
        self.live
            .current(|old| async move { self.refreshed(&old).await })
            .await
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
