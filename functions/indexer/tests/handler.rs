//! The indexer handler called directly with the sample events from `events/`, on the
//! embedded store and the real encoder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use indexer::{job_of, Handler, IndexerError, Job};
use serde_json::{json, Value};
use shopmind_inference::{InferenceConfig, LazyEncoder};
use shopmind_recs::{ItemIndex, Signals, SignalsConfig};
use shopmind_storage::embedded::EmbeddedStore;
use shopmind_storage::BlobStore;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sample(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo().join("events").join(name)).unwrap())
        .unwrap()
}

fn handler(dir: &Path) -> (Handler, Arc<EmbeddedStore>) {
    let models = std::env::var_os("SHOPMIND_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("models"))
        .to_string_lossy()
        .into_owned();
    let cfg =
        InferenceConfig::from_lookup(move |k| (k == "SHOPMIND_MODELS_DIR").then(|| models.clone()))
            .unwrap();
    let store = Arc::new(EmbeddedStore::open(dir).unwrap());
    let h = Handler {
        blobs: store.clone(),
        encoder: Arc::new(LazyEncoder::new(cfg)),
        signals: SignalsConfig::default(),
    };
    (h, store)
}

#[test]
fn invocations_are_recognised_and_bad_ones_refused() {
    // The sample S3 event: one put under catalog/ (URL-decoded), one delete (skipped).
    assert_eq!(
        job_of(&sample("s3/catalog-object-created.json")).unwrap(),
        Job::catalogs(vec!["catalog/winter sale(2026).jsonl".into()])
    );
    // The same upload through EventBridge (what the template wires): the key is not encoded.
    assert_eq!(
        job_of(&sample("eventbridge/s3-catalog-object-created.json")).unwrap(),
        Job::catalogs(vec!["catalog/winter sale(2026).jsonl".into()])
    );
    let mut deleted = sample("eventbridge/s3-catalog-object-created.json");
    deleted["detail-type"] = json!("Object Deleted");
    assert_eq!(job_of(&deleted).unwrap(), Job::catalogs(vec![]));
    let mut kb = sample("eventbridge/s3-catalog-object-created.json");
    kb["detail"]["object"]["key"] = json!("kb/faq.jsonl");
    let kb_job = |kb, intents| Job::Objects {
        catalogs: vec![],
        kb,
        intents,
    };
    assert_eq!(job_of(&kb).unwrap(), kb_job(true, false));
    let mut intents = sample("eventbridge/s3-catalog-object-created.json");
    intents["detail"]["object"]["key"] = json!("kb/intents.json");
    assert_eq!(job_of(&intents).unwrap(), kb_job(false, true));
    let mut other = sample("eventbridge/s3-catalog-object-created.json");
    other["detail"]["object"]["key"] = json!("exports/report.csv");
    assert_eq!(job_of(&other).unwrap(), Job::catalogs(vec![]));
    assert_eq!(job_of(&json!({"job": "kb"})).unwrap(), kb_job(true, false));
    assert_eq!(
        job_of(&json!({"job": "intents"})).unwrap(),
        kb_job(false, true)
    );
    assert_eq!(
        job_of(&sample("eventbridge/signals-schedule.json")).unwrap(),
        Job::Signals
    );
    assert_eq!(job_of(&json!({"job": "signals"})).unwrap(), Job::Signals);
    for bad in [
        json!({"job": "catalog"}),
        json!({"job": "catalog", "key": "kb/a.jsonl"}),
        json!({"job": "reindex"}),
        json!({"hello": 1}),
        json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {}}),
    ] {
        assert!(
            matches!(job_of(&bad), Err(IndexerError::BadInvocation(_))),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_catalog_upload_becomes_a_new_index_version_and_bad_lines_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (h, store) = handler(dir.path());
    let catalog = concat!(
        r#"{"item_id":"a","title":"Linen summer dress","category":"Women > Dresses"}"#,
        "\n{oops\n",
        r#"{"item_id":"b","title":"LED desk lamp","category":"Home > Lamps","in_stock":false}"#,
        "\n"
    );
    store
        .put_blob("catalog/spring.jsonl", Bytes::from(catalog))
        .await
        .unwrap();
    let out = h
        .run(job_of(&json!({"job": "catalog", "key": "catalog/spring.jsonl"})).unwrap())
        .await
        .unwrap();
    let report = &out["catalogs"][0]["report"];
    assert_eq!(report["items"], 2);
    assert_eq!(report["bad_lines"][0]["line"], 2);
    let idx = ItemIndex::load_latest(store.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(idx.version(), report["version"].as_str().unwrap());
    assert_eq!((idx.len(), idx.dim()), (2, 512));
    assert!(!idx.meta(idx.row("b").unwrap()).unwrap().in_stock);

    // A missing object fails the invocation (so it is retried), and the index stays.
    let err = h
        .run(Job::catalogs(vec!["catalog/gone.jsonl".into()]))
        .await
        .unwrap_err();
    assert!(matches!(err, IndexerError::MissingObject(_)));
    // So does a catalog with no valid line.
    store
        .put_blob("catalog/empty.jsonl", Bytes::from_static(b"nope\n"))
        .await
        .unwrap();
    assert!(h
        .run(Job::catalogs(vec!["catalog/empty.jsonl".into()]))
        .await
        .is_err());
    let still = ItemIndex::latest_version(store.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still, idx.version());
}

#[tokio::test]
async fn the_schedule_rebuilds_signals_from_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let (h, store) = handler(dir.path());
    let lines = [("1", "x"), ("2", "y")]
        .map(|(id, item)| {
            format!(r#"{{"event_id":"{id}","user_id":"u","type":"purchase","item_id":"{item}","timestamp":"2026-11-20T10:00:0{id}Z"}}"#)
        })
        .join("\n");
    store
        .put_blob("events/dt=2026-11-20/a.jsonl", Bytes::from(lines))
        .await
        .unwrap();
    let out = h
        .run(job_of(&sample("eventbridge/signals-schedule.json")).unwrap())
        .await
        .unwrap();
    assert_eq!(out["signals"]["events"], 2);
    let v = Signals::latest_version(store.as_ref())
        .await
        .unwrap()
        .unwrap();
    let s = Signals::load(store.as_ref(), &v).await.unwrap();
    assert_eq!(s.neighbours["x"][0].item_id, "y");
    assert!(
        h.encoder.loaded().is_none(),
        "the signals job needs no model"
    );
}
