//! Behaviour events keep shopper profiles current: the event contract and its validation,
//! the profile (counts, decayed affinities, recent and purchased items, an embedding), and the
//! updater that applies each event at most once under concurrency, merges identified
//! shoppers and writes the event archive. Free of Lambda and HTTP types.

pub mod config;
mod error;
pub mod event;
mod forget;
pub mod intake;
pub mod profile;
pub mod updater;

pub use config::{UpdaterConfig, Weights};
pub use error::ProfileError;
pub use event::{BehaviourEvent, EventType, ValidEvent};
pub use forget::{forget_shopper, Forgotten};
pub use intake::{
    apply_storefront_batch, batch_events, parse_batch, BatchOutcome, EventResult, Sender,
};
pub use profile::{Decayed, DecayedVector, Profile, SeenItem};
pub use updater::{idempotency_key, Applied, ItemVectors, ProfileUpdater, QueryEmbedder};
