//! The indexer handler called directly with the sample events from `events/`, on the
//! embedded store and the real encoder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use bytes::Bytes;
use indexer::{job_of, Handler, IndexerError, Job, ShardConfig};
use serde_json::{json, Value};
use shopmind_inference::{InferenceConfig, LazyEncoder};
use shopmind_recs::{ItemIndex, ShardQueue, Signals, SignalsConfig, TextKey};
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
        signals_sql: None,
        shards: None,
        shard_texts: shopmind_recs::DEFAULT_SHARD_TEXTS,
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
        merges: vec![],
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
    // The last shard's `ready` object: a merge; other staging objects are skipped.
    assert_eq!(
        job_of(&sample("eventbridge/s3-catalog-build-ready.json")).unwrap(),
        Job::Objects {
            catalogs: vec![],
            kb: false,
            intents: false,
            merges: vec!["20261207T060000Z-5c1e9a0b7d2f".into()],
        }
    );
    let mut staged = sample("eventbridge/s3-catalog-build-ready.json");
    staged["detail"]["object"]["key"] =
        json!("staging/items/20261207T060000Z-5c1e9a0b7d2f/plan.json");
    assert_eq!(job_of(&staged).unwrap(), Job::catalogs(vec![]));
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

/// Puts `lines` at `key` and runs the catalog job on it; the report.
async fn index_lines(h: &Handler, store: &EmbeddedStore, key: &str, lines: &[Value]) -> Value {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    store.put_blob(key, Bytes::from(body)).await.unwrap();
    let out = h.run(Job::catalogs(vec![key.into()])).await.unwrap();
    out["catalogs"][0]["report"].clone()
}

fn item(id: &str, title: &str, price: f64) -> Value {
    json!({"item_id": id, "title": title, "category": "Home > Lamps", "price": price})
}

fn vector(idx: &ItemIndex, id: &str) -> Vec<f32> {
    idx.vector(idx.row(id).unwrap()).unwrap().to_vec()
}

#[tokio::test]
async fn a_new_catalog_version_embeds_only_the_items_whose_text_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (h, store) = handler(dir.path());
    let v1 = [
        item("a", "Ceramic table lamp", 49.0),
        item("b", "Brass floor lamp", 129.0),
        item("c", "Paper pendant shade", 19.0),
        item("d", "Clip-on reading light", 24.0),
    ];
    let first = index_lines(&h, &store, "catalog/v1.jsonl", &v1).await;
    assert_eq!(
        (first["reused"].as_u64(), first["embedded"].as_u64()),
        (Some(0), Some(4))
    );
    let old = ItemIndex::load_latest(store.as_ref())
        .await
        .unwrap()
        .unwrap();

    // a as it was; b retitled; c repriced only (the price is not in the embedded text);
    // d gone; e new; f a second listing of a's text under its own id.
    let v2 = [
        item("a", "Ceramic table lamp", 49.0),
        item("b", "Brass floor lamp with dimmer", 129.0),
        item("c", "Paper pendant shade", 15.0),
        item("e", "Linen lamp shade", 29.0),
        item("f", "Ceramic table lamp", 49.0),
    ];
    let second = index_lines(&h, &store, "catalog/v2.jsonl", &v2).await;
    assert_eq!(second["items"], 5);
    assert_eq!(second["reused"], 3, "a, c and f: {second}");
    assert_eq!(second["embedded"], 2, "b and e: {second}");
    assert_eq!(second["reused_from"], old.version());
    let new = ItemIndex::load_latest(store.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.version(), second["version"].as_str().unwrap());
    // Reused rows are the published ones, bit for bit; the repriced item's metadata is new.
    assert_eq!(vector(&new, "a"), vector(&old, "a"));
    assert_eq!(vector(&new, "f"), vector(&old, "a"));
    assert_eq!(vector(&new, "c"), vector(&old, "c"));
    assert_eq!(new.meta(new.row("c").unwrap()).unwrap().price, Some(15.0));
    assert_ne!(vector(&new, "b"), vector(&old, "b"));

    // The same catalog embedded from nothing gives the same index. Not bit for bit: the
    // int8 encoder quantises its activations with one scale per batch, so a text's vector
    // moves a little with the texts it is batched with (here 0.9997 at worst), in a full
    // build as much as in an incremental one.
    let fresh_dir = tempfile::tempdir().unwrap();
    let (fresh_h, fresh_store) = handler(fresh_dir.path());
    let full = index_lines(&fresh_h, &fresh_store, "catalog/v2.jsonl", &v2).await;
    assert_eq!(
        (full["reused"].as_u64(), full["embedded"].as_u64()),
        (Some(0), Some(4))
    );
    let full = ItemIndex::load_latest(fresh_store.as_ref())
        .await
        .unwrap()
        .unwrap();
    for id in ["a", "b", "c", "e", "f"] {
        let cos = shopmind_recs::dot(&vector(&new, id), &vector(&full, id));
        assert!(
            cos > 0.999,
            "{id}: cosine {cos} between incremental and full"
        );
    }

    // The same catalog again (a redelivered upload, or an export with nothing new): nothing
    // embedded, nothing published.
    let third = index_lines(&h, &store, "catalog/v3.jsonl", &v2).await;
    assert_eq!(third["unchanged"], true, "{third}");
    assert_eq!(
        (third["reused"].as_u64(), third["embedded"].as_u64()),
        (Some(5), Some(0))
    );
    assert_eq!(third["version"], second["version"]);
    let versions = store.list_blobs("indexes/items/v/").await.unwrap();
    let manifests = versions
        .iter()
        .filter(|k| k.ends_with("/manifest.json"))
        .count();
    assert_eq!(manifests, 2, "{versions:?}");
}

#[tokio::test]
async fn vectors_of_another_model_or_a_damaged_version_are_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (h, store) = handler(dir.path());
    let lines = [
        item("a", "Ceramic table lamp", 49.0),
        item("b", "Brass floor lamp", 129.0),
    ];
    let first = index_lines(&h, &store, "catalog/v1.jsonl", &lines).await;
    assert_eq!(first["embedded"], 2);
    let published = ItemIndex::load_latest(store.as_ref())
        .await
        .unwrap()
        .unwrap();

    // The same rows and text keys, recorded as another encoder's: a model switch re-embeds
    // everything (another model's vectors live in another space).
    let keys: Vec<TextKey> = published
        .items()
        .iter()
        .map(|m| TextKey::of(&format!("{}. Home > Lamps", m.title)))
        .collect();
    ItemIndex::new(
        "20990101T000000Z-othermodel",
        "another-encoder",
        published.dim(),
        published.items().to_vec(),
        published.matrix().to_vec(),
    )
    .unwrap()
    .with_text_keys(keys)
    .unwrap()
    .publish(store.as_ref(), 4_070_908_800)
    .await
    .unwrap();
    let switched = index_lines(&h, &store, "catalog/v2.jsonl", &lines).await;
    assert_eq!(
        (switched["reused"].as_u64(), switched["embedded"].as_u64()),
        (Some(0), Some(2))
    );

    // A version whose text keys do not match its manifest is not trusted, and not fatal.
    let version = switched["version"].as_str().unwrap();
    store
        .put_blob(
            &format!("indexes/items/v/{version}/text_keys.bin"),
            Bytes::from(vec![0u8; 32]),
        )
        .await
        .unwrap();
    let mut grown = lines.to_vec();
    grown.push(item("c", "Paper pendant shade", 19.0));
    let after_damage = index_lines(&h, &store, "catalog/v3.jsonl", &grown).await;
    assert_eq!(
        (
            after_damage["reused"].as_u64(),
            after_damage["embedded"].as_u64()
        ),
        (Some(0), Some(3)),
        "{after_damage}"
    );
    // And the index published before text keys existed (no text_keys.bin) is embedded anew.
    let no_keys = ItemIndex::new(
        "20990101T000001Z-nokeys",
        published.model(),
        published.dim(),
        published.items().to_vec(),
        published.matrix().to_vec(),
    )
    .unwrap();
    no_keys
        .publish(store.as_ref(), 4_070_908_801)
        .await
        .unwrap();
    let before_keys = index_lines(&h, &store, "catalog/v4.jsonl", &lines).await;
    assert_eq!(before_keys["embedded"], 2, "{before_keys}");
}

/// The shard queue as a list of the messages sent.
#[derive(Debug, Default)]
struct Captured(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl ShardQueue for Captured {
    async fn send(&self, bodies: &[String]) -> Result<(), shopmind_recs::RecsError> {
        self.0.lock().unwrap().extend(bodies.iter().cloned());
        Ok(())
    }
}

/// `events/sqs/index-shard-batch.json`'s record once per body, ids m0, m1, ….
fn sqs_batch(bodies: &[&str]) -> SqsEvent {
    let template = sample("sqs/index-shard-batch.json")["Records"][0].clone();
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut r = template.clone();
            r["messageId"] = json!(format!("m{i}"));
            r["body"] = json!(b);
            r
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// `events/eventbridge/s3-catalog-build-ready.json` for `key`.
fn created(key: &str) -> Value {
    let mut event = sample("eventbridge/s3-catalog-build-ready.json");
    event["detail"]["object"]["key"] = json!(key);
    event
}

#[tokio::test]
async fn a_large_catalog_fans_out_in_shards_and_the_last_one_in_publishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, store) = handler(dir.path());
    let queue = Arc::new(Captured::default());
    h.shards = Some(queue.clone());
    h.shard_texts = 2;
    let lines: Vec<Value> = [
        "Ceramic table lamp",
        "Brass floor lamp",
        "Paper pendant shade",
        "Clip-on reading light",
        "Linen lamp shade",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| item(&format!("i{i}"), t, 10.0 + i as f64))
    .collect();
    let planned = index_lines(&h, &store, "catalog/big.jsonl", &lines).await;
    assert_eq!(
        (planned["shards"].as_u64(), planned["published"].as_bool()),
        (Some(3), Some(false)),
        "{planned}"
    );
    assert!(ItemIndex::latest_version(store.as_ref())
        .await
        .unwrap()
        .is_none());
    let build = planned["version"].as_str().unwrap().to_owned();
    let sent = queue.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 3);

    // Shards in any order, one redelivered, one message that names no build: each record
    // succeeds or fails alone, and nothing is published before the last shard is in.
    let deadline = std::time::SystemTime::now() + std::time::Duration::from_secs(600);
    let margin = std::time::Duration::from_secs(1);
    // The sample's own message names a build that was never staged.
    let sample_batch = sample("sqs/index-shard-batch.json");
    let bogus = sample_batch["Records"][0]["body"].as_str().unwrap();
    let (response, _) = h
        .shard_batch(
            sqs_batch(&[&sent[2], &sent[2], bogus, "not json"]),
            deadline,
            margin,
        )
        .await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m2", "m3"]);
    let (response, _) = h
        .shard_batch(sqs_batch(&[&sent[0]]), deadline, margin)
        .await;
    assert!(response.batch_item_failures.is_empty());
    let ready = shopmind_recs::ready_key(&build);
    assert!(
        store.get_blob(&ready).await.unwrap().is_none(),
        "two of three shards in"
    );
    let (response, _) = h
        .shard_batch(sqs_batch(&[&sent[1]]), deadline, margin)
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert!(
        store.get_blob(&ready).await.unwrap().is_some(),
        "the last shard asks for the merge"
    );
    assert!(ItemIndex::latest_version(store.as_ref())
        .await
        .unwrap()
        .is_none());

    // The `ready` object's event merges and publishes; the staging is gone afterwards.
    let out = h.run(job_of(&created(&ready)).unwrap()).await.unwrap();
    assert_eq!(out["merged"][0]["published_now"], true, "{out}");
    assert_eq!(out["merged"][0]["latest"], true, "{out}");
    let merged = ItemIndex::load_latest(store.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(merged.version(), build);
    assert_eq!(merged.len(), 5);
    assert!(store
        .list_blobs(shopmind_recs::STAGING)
        .await
        .unwrap()
        .is_empty());

    // The same catalog embedded inline gives the same index (to the encoder's batch noise).
    let inline_dir = tempfile::tempdir().unwrap();
    let (inline_h, inline_store) = handler(inline_dir.path());
    index_lines(&inline_h, &inline_store, "catalog/big.jsonl", &lines).await;
    let inline = ItemIndex::load_latest(inline_store.as_ref())
        .await
        .unwrap()
        .unwrap();
    for m in inline.items() {
        let cos = shopmind_recs::dot(&vector(&merged, &m.item_id), &vector(&inline, &m.item_id));
        assert!(cos > 0.999, "{}: cosine {cos}", m.item_id);
        assert_eq!(merged.meta(merged.row(&m.item_id).unwrap()), Some(m));
    }

    // A second `ready` event and a late redelivery change nothing and fail nothing.
    let again = h.run(job_of(&created(&ready)).unwrap()).await.unwrap();
    assert_eq!(again["merged"][0]["published_now"], false, "{again}");
    let (response, _) = h
        .shard_batch(sqs_batch(&[&sent[1]]), deadline, margin)
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        ItemIndex::latest_version(store.as_ref())
            .await
            .unwrap()
            .as_deref(),
        Some(build.as_str())
    );

    // The next upload with one new item: below the shard size, so embedded inline, reusing
    // the merged version's vectors.
    let mut grown = lines.clone();
    grown.push(item("i5", "Rattan ceiling shade", 39.0));
    let next = index_lines(&h, &store, "catalog/next.jsonl", &grown).await;
    assert_eq!(
        (
            next["reused"].as_u64(),
            next["embedded"].as_u64(),
            next["shards"].as_u64()
        ),
        (Some(5), Some(1), Some(0)),
        "{next}"
    );
    assert_eq!(next["reused_from"], build.as_str());
}

#[test]
fn shard_settings_parse_with_clear_errors() {
    let cfg = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ShardConfig::from_lookup(move |k| {
            pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    };
    let default = cfg(&[]).unwrap();
    assert_eq!(
        (default.shard_texts, default.queue_url),
        (shopmind_recs::DEFAULT_SHARD_TEXTS, None)
    );
    let set = cfg(&[
        ("SHOPMIND_INDEX_SHARD_TEXTS", "20000"),
        (
            "SHOPMIND_INDEX_SHARD_QUEUE_URL",
            "https://sqs.example/123/shards",
        ),
    ])
    .unwrap();
    assert_eq!(set.shard_texts, 20_000);
    assert_eq!(
        set.queue_url.as_deref(),
        Some("https://sqs.example/123/shards")
    );
    for bad in ["0", "99", "many", "-5", "1e9"] {
        let err = cfg(&[("SHOPMIND_INDEX_SHARD_TEXTS", bad)]).unwrap_err();
        assert!(
            err.to_string().contains("SHOPMIND_INDEX_SHARD_TEXTS"),
            "{err}"
        );
    }
}
