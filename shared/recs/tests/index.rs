//! The item and signal indexes in a real store (the embedded one and the emulator's S3):
//! round trip, immutability, refusal of damaged versions, and pickup of a new version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shopmind_recs::{
    build_signals, read_archive, ItemIndex, ItemMeta, LiveIndexes, RecsError, Signals,
    SignalsConfig,
};
use shopmind_storage::embedded::EmbeddedStore;
use shopmind_storage::BlobStore;

fn meta(id: &str, cat: &str) -> ItemMeta {
    ItemMeta {
        item_id: id.into(),
        title: format!("Item {id}"),
        category: cat.into(),
        brand: Some("Acme".into()),
        price: Some(12.5),
        in_stock: id != "c",
        created_at: None,
    }
}

fn index(version: &str, scale: f32) -> ItemIndex {
    let items = vec![
        meta("a", "Home > Lamps"),
        meta("b", "Home > Rugs"),
        meta("c", "Garden"),
    ];
    let vectors = vec![3.0 * scale, 4.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0];
    ItemIndex::new(version, "test-model", 3, items, vectors).unwrap()
}

async fn round_trip(blobs: Arc<dyn BlobStore>) {
    assert!(ItemIndex::load_latest(blobs.as_ref())
        .await
        .unwrap()
        .is_none());
    let idx = index("v1", 1.0);
    // Rows are unit length: (3, 4, 0) / 5.
    assert_eq!(idx.vector(0).unwrap(), &[0.6, 0.8, 0.0]);
    idx.publish(blobs.as_ref(), 1_700_000_000).await.unwrap();

    let back = ItemIndex::load_latest(blobs.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.version(), "v1");
    assert_eq!(back.model(), "test-model");
    assert_eq!(back.matrix(), idx.matrix());
    assert_eq!(back.items(), idx.items());
    assert_eq!(back.row("b"), Some(1));
    assert!(!back.meta(2).unwrap().in_stock);

    // Versions are immutable.
    let again = index("v1", 2.0)
        .publish(blobs.as_ref(), 1_700_000_001)
        .await;
    assert!(matches!(again, Err(RecsError::VersionExists(v)) if v == "v1"));

    // A damaged file is refused, never half-used.
    blobs
        .put_blob(
            "indexes/items/v/v1/vectors.f32",
            Bytes::from_static(&[0u8; 36]),
        )
        .await
        .unwrap();
    let err = ItemIndex::load(blobs.as_ref(), "v1").await.unwrap_err();
    assert!(matches!(err, RecsError::Corrupt { .. }), "{err}");
    // The items alone (what the signals job reads) never touch the vectors file, and are
    // checked on their own.
    let items = ItemIndex::load_latest_meta(blobs.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(items, idx.items());
    blobs
        .put_blob(
            "indexes/items/v/v1/items.jsonl",
            Bytes::from_static(b"{}\n"),
        )
        .await
        .unwrap();
    let err = ItemIndex::load_latest_meta(blobs.as_ref())
        .await
        .unwrap_err();
    assert!(matches!(err, RecsError::Corrupt { .. }), "{err}");
    // A pointer at a version that was never written is refused too.
    assert!(ItemIndex::load(blobs.as_ref(), "v9").await.is_err());
    // And a version name that would escape the prefix is invalid.
    assert!(matches!(
        ItemIndex::load(blobs.as_ref(), "../x").await,
        Err(RecsError::Invalid(_))
    ));
}

#[tokio::test]
async fn item_index_round_trip_embedded() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(Arc::new(EmbeddedStore::open(dir.path()).unwrap())).await;
}

#[tokio::test]
async fn item_index_round_trip_emulator() {
    round_trip(Arc::new(
        shopmind_storage::conformance::emulator_store().await,
    ))
    .await;
}

#[tokio::test]
async fn a_new_version_is_picked_up_after_the_refresh_interval_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let slow = LiveIndexes::new(blobs.clone(), Duration::from_secs(3600));
    let eager = LiveIndexes::new(blobs.clone(), Duration::ZERO);
    assert!(
        eager.current().await.unwrap().items.is_none(),
        "nothing published yet"
    );

    index("v1", 1.0).publish(blobs.as_ref(), 1).await.unwrap();
    assert_eq!(
        slow.current()
            .await
            .unwrap()
            .items
            .as_ref()
            .unwrap()
            .version(),
        "v1"
    );
    index("v2", 2.0).publish(blobs.as_ref(), 2).await.unwrap();
    // Within the interval the slow one keeps v1; the eager one sees v2 at once.
    assert_eq!(
        slow.current()
            .await
            .unwrap()
            .items
            .as_ref()
            .unwrap()
            .version(),
        "v1"
    );
    assert_eq!(
        eager
            .current()
            .await
            .unwrap()
            .items
            .as_ref()
            .unwrap()
            .version(),
        "v2"
    );

    // A pointer moved to a damaged version: the eager reader keeps serving v2.
    blobs
        .put_blob(
            "indexes/items/LATEST",
            Bytes::from_static(br#"{"version":"v3"}"#),
        )
        .await
        .unwrap();
    let snap = eager.current().await.unwrap();
    assert_eq!(snap.items.as_ref().unwrap().version(), "v2");
}

#[tokio::test]
async fn signals_from_the_archive_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let line = |id: &str, user: &str, item: &str, ts: &str| {
        format!(
            r#"{{"event_id":"{id}","user_id":"{user}","type":"purchase","item_id":"{item}","timestamp":"{ts}","session_id":"s-{user}"}}"#
        )
    };
    let day1 = [
        line("e1", "u1", "a", "2026-11-01T10:00:00Z"),
        line("e2", "u1", "b", "2026-11-01T10:05:00Z"),
        "{not json".to_owned(),
    ]
    .join("\n");
    // The same batch archived twice (a redelivery) and one more shopper.
    let day2 = [
        line("e1", "u1", "a", "2026-11-01T10:00:00Z"),
        line("e2", "u1", "b", "2026-11-01T10:05:00Z"),
        line("e3", "u2", "a", "2026-11-02T09:00:00Z"),
    ]
    .join("\n");
    blobs
        .put_blob("events/dt=2026-11-01/x.jsonl", Bytes::from(day1))
        .await
        .unwrap();
    blobs
        .put_blob("events/dt=2026-11-02/y.jsonl", Bytes::from(day2))
        .await
        .unwrap();
    let (events, bad) = read_archive(blobs.as_ref()).await.unwrap();
    assert_eq!(
        (events.len(), bad),
        (3, 1),
        "e1 and e2 once each, one bad line"
    );

    let idx = index("v1", 1.0);
    let cat = |id: &str| {
        idx.row(id)
            .and_then(|r| idx.meta(r))
            .map(|m| m.category.clone())
    };
    let signals = build_signals(&events, &cat, 1_764_000_000, &SignalsConfig::default());
    // a: |a|² = 25 + 25, b: 25, a·b = 25 → 25 / √(50 · 25) = 1/√2.
    let ab = &signals.neighbours["a"][0];
    assert_eq!(ab.item_id, "b");
    assert!((ab.score - 0.5f64.sqrt()).abs() < 1e-9);
    assert_eq!(signals.popular[0].item_id, "a");
    assert_eq!(signals.trending["Home"].len(), 2);

    let manifest = signals
        .publish(blobs.as_ref(), 1_764_000_000)
        .await
        .unwrap();
    let latest = Signals::latest_version(blobs.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest, manifest.version);
    assert_eq!(
        Signals::load(blobs.as_ref(), &latest).await.unwrap(),
        signals
    );
}

#[tokio::test]
async fn a_build_that_finishes_late_never_takes_latest_back() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = EmbeddedStore::open(dir.path()).unwrap();
    let older = "20261207T100000Z-aaaaaaaaaaaa";
    let newer = "20261207T110000Z-bbbbbbbbbbbb";
    assert!(index(older, 1.0)
        .publish_unless_newer(&blobs, 1)
        .await
        .unwrap());
    assert!(index(newer, 2.0)
        .publish_unless_newer(&blobs, 2)
        .await
        .unwrap());
    assert_eq!(
        ItemIndex::latest_version(&blobs).await.unwrap().as_deref(),
        Some(newer)
    );
    // A fanned-out build planned before `newer` and merged after it: written, not pointed at.
    let late = "20261207T103000Z-cccccccccccc";
    assert!(!index(late, 3.0)
        .publish_unless_newer(&blobs, 3)
        .await
        .unwrap());
    assert_eq!(
        ItemIndex::latest_version(&blobs).await.unwrap().as_deref(),
        Some(newer)
    );
    assert_eq!(ItemIndex::load(&blobs, late).await.unwrap().version(), late);
    // Versions stay immutable on this path too.
    assert!(matches!(
        index(late, 4.0).publish_unless_newer(&blobs, 4).await,
        Err(RecsError::VersionExists(_))
    ));
}

/// Random unit-ish rows, deterministic.
fn random_index(version: &str, n: usize, dim: usize) -> ItemIndex {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let items = (0..n).map(|i| meta(&format!("i{i}"), "Home")).collect();
    let vectors = (0..n * dim).map(|_| next()).collect();
    ItemIndex::new(version, "test-model", dim, items, vectors).unwrap()
}

#[tokio::test]
async fn the_int8_rows_are_published_and_loaded_as_they_were_built() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = EmbeddedStore::open(dir.path()).unwrap();
    let (n, dim) = (500, 24);
    let built = random_index("v1", n, dim);
    let manifest = built.publish(&blobs, 1).await.unwrap();
    let names: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    assert!(
        names.contains(&"vectors.i8") && names.contains(&"scales.f32"),
        "{names:?}"
    );
    let loaded = ItemIndex::load(&blobs, "v1").await.unwrap();
    let query = built.vector(7).unwrap().to_vec();
    assert_eq!(
        loaded.nearest(&query, 20, |_| true),
        built.nearest(&query, 20, |_| true)
    );
    assert_eq!(loaded.memory_bytes(), built.memory_bytes());

    // A version published before the int8 rows were stored (the same files without them)
    // is quantised at load and answers the same.
    let (_, mut files) = shopmind_recs::artifact::load(&blobs, "items", "v1")
        .await
        .unwrap();
    files.retain(|(name, _)| name == "vectors.f32" || name == "items.jsonl");
    shopmind_recs::artifact::write_version(&blobs, "items", "v0", 0, files, manifest.meta.clone())
        .await
        .unwrap();
    let older = ItemIndex::load(&blobs, "v0").await.unwrap();
    assert_eq!(
        older.nearest(&query, 20, |_| true),
        built.nearest(&query, 20, |_| true)
    );

    // Stored codes that do not fit the rows (well-formed files, wrong sizes) are refused.
    let (_, mut files) = shopmind_recs::artifact::load(&blobs, "items", "v1")
        .await
        .unwrap();
    for (name, body) in files.iter_mut() {
        if name == "vectors.i8" {
            *body = body.slice(..body.len() - dim);
        }
    }
    shopmind_recs::artifact::write_version(&blobs, "items", "v2", 2, files, manifest.meta)
        .await
        .unwrap();
    let err = ItemIndex::load(&blobs, "v2").await.unwrap_err();
    assert!(matches!(err, RecsError::Corrupt { .. }), "{err}");
}
