//! The recommender's domain, free of Lambda and HTTP types: what a catalog line is, the
//! versioned immutable indexes the indexer writes and the recommend function reads, the exact
//! top-k over the item matrix, and the collaborative signals (co-occurrence, popularity,
//! trending) built from the behaviour-event archive.

#[cfg(test)]
mod archive_fixture;
mod blend;
mod catalog_index;
mod cooc;
mod ease;
mod error;
pub mod eval;
mod index;
mod indexer;
mod live;
mod signals_sql;
mod topk;
mod window;

pub use blend::{
    for_you, for_you_candidates, similar, BlendConfig, Candidates, ForYou, Reason, Recommendation,
    Source, Theta,
};
pub use catalog_index::{
    build_of_ready_key, embed_catalog_shard, index_catalog, merge_catalog_build, ready_key,
    CatalogReport, FanOut, MergeReport, ShardMessage, ShardQueue, ShardReport, DEFAULT_SHARD_TEXTS,
    STAGING,
};
pub use cooc::{
    archive_object, build_signals, read_archive, top_category, Neighbour, Relation, Scored,
    Signals, SignalsConfig, TimedEvent,
};
pub use error::RecsError;
pub use index::{ItemIndex, ItemMeta, TextKey};
pub use indexer::{index_signals, SignalsEngine, SignalsReport};
pub use live::{IndexItemVectors, LiveIndexes, Snapshot};
pub use shopmind_artifacts::{self as artifact, ArtifactFile, ArtifactManifest, Pointer};
pub use shopmind_catalog::{check_item_id, parse_catalog, BadLine, CatalogItem, ParsedCatalog};
pub use signals_sql::{
    signals_by_sql, signals_from_sql_result, signals_sql, SqlEngine, SqlResult, SqlStats,
};
pub use topk::{dot, dot_i8, top_k, top_k_quantised, QuantRows};
pub use window::{date_of, read_window, signals_over_window, window_days, WindowStats, DAY_KIND};
