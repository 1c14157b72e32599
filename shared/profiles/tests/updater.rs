//! The updater against both stores (embedded, and DynamoDB + S3 on the emulator).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::sync::Arc;

use shopmind_profiles::*;
use shopmind_storage::Store;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn event(id: &str, user: &str, kind: &str, item: &str, at: i64, category: &str) -> ValidEvent {
    BehaviourEvent::parse(&format!(
        r#"{{"event_id":"{id}","user_id":"{user}","type":"{kind}","item_id":"{item}","timestamp":"{}","category":"{category}","price":30}}"#,
        rfc3339(at)
    ))
    .unwrap()
}

fn updater(store: Arc<dyn Store>) -> ProfileUpdater {
    ProfileUpdater::new(
        store.clone(),
        store.clone(),
        store,
        UpdaterConfig::default(),
    )
}

/// Applies like SQS would: a retryable failure is delivered again.
async fn deliver(u: &ProfileUpdater, ev: &ValidEvent) -> Applied {
    for _ in 0..20 {
        match u.apply(ev).await {
            Ok(a) => return a,
            Err(e) if e.is_retryable() => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("event {} never applied", ev.event.event_id)
}

mod checks {
    use super::*;

    pub async fn redeliveries_change_nothing(store: Arc<dyn Store>) {
        let u = updater(store.clone());
        let t = now() - 3600;
        let batch: Vec<_> = (0..20)
            .map(|i| {
                event(
                    &format!("e{i}"),
                    "u1",
                    if i % 4 == 0 { "purchase" } else { "view" },
                    &format!("sku-{}", i % 7),
                    t + i,
                    "shoes",
                )
            })
            .collect();
        for ev in &batch {
            assert_eq!(deliver(&u, ev).await, Applied::Applied);
        }
        let once = store.get_profile("u1").await.unwrap().unwrap();
        // The whole batch again, then single events again across "batches".
        for ev in &batch {
            assert_eq!(deliver(&u, ev).await, Applied::Duplicate);
        }
        for ev in [&batch[3], &batch[11], &batch[3]] {
            assert_eq!(deliver(&u, ev).await, Applied::Duplicate);
        }
        let after = store.get_profile("u1").await.unwrap().unwrap();
        assert_eq!(
            after, once,
            "a duplicate must not change the profile, not even its version"
        );
        let p: Profile = serde_json::from_value(after.value).unwrap();
        assert_eq!(p.counts["view"], 15);
        assert_eq!(p.counts["purchase"], 5);
        assert_eq!(p.recent_items.len(), 7, "recent items are deduplicated");
        assert_eq!(
            p.purchased[0].item_id, "sku-2",
            "newest purchase first (e16 → sku-2)"
        );
    }

    pub async fn concurrent_invocations_lose_nothing(store: Arc<dyn Store>) {
        let u = Arc::new(updater(store.clone()));
        let t = now() - 600;
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let u = u.clone();
                tokio::spawn(async move {
                    for i in 0..200 {
                        let ev = event(
                            &format!("t{task}-{i}"),
                            "hot",
                            "view",
                            &format!("sku-{}", i % 30),
                            t + i,
                            "hats",
                        );
                        assert_eq!(deliver(&u, &ev).await, Applied::Applied);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let p: Profile =
            serde_json::from_value(store.get_profile("hot").await.unwrap().unwrap().value).unwrap();
        assert_eq!(p.counts["view"], 1600);
    }

    pub async fn decay_uses_event_time_not_arrival(store: Arc<dyn Store>) {
        let u = updater(store.clone());
        let day = 86_400;
        let t0 = now() - 60 * day;
        // Weights: view 1, purchase 5; half-life 30 d. Arriving out of order.
        let evs = [
            event("d2", "dec", "purchase", "a", t0 + 30 * day, "lamps"),
            event("d1", "dec", "view", "b", t0, "lamps"),
            event("d3", "dec", "view", "c", t0 + 60 * day, "lamps"),
        ];
        for ev in &evs {
            deliver(&u, ev).await;
        }
        let p: Profile =
            serde_json::from_value(store.get_profile("dec").await.unwrap().unwrap().value).unwrap();
        let lamps = p.affinities["category"]["lamps"];
        // Hand-computed at t0 + 60 d: 1·¼ + 5·½ + 1 = 3.75.
        let hl = 30.0 * day as f64;
        assert!(
            (lamps.value_at(t0 + 60 * day, hl) - 3.75).abs() < 1e-9,
            "{lamps:?}"
        );
        assert!(p.affinities["price_band"].contains_key("25_50"));
        assert_eq!(p.last_seen, Some(t0 + 60 * day));
        assert_eq!(p.recent_items[0].item_id, "c", "ordered by event time");
    }

    pub async fn identify_merges_once(store: Arc<dyn Store>) {
        let u = updater(store.clone());
        let t = now() - 100;
        for i in 0..3 {
            let anon = BehaviourEvent::parse(&format!(
                r#"{{"event_id":"a{i}","anonymous_id":"anon-7","type":"view","item_id":"sku-{i}","timestamp":"{}","brand":"acme"}}"#,
                rfc3339(t + i)
            ))
            .unwrap();
            deliver(&u, &anon).await;
        }
        deliver(
            &u,
            &event("k1", "user-7", "purchase", "sku-9", t + 5, "tools"),
        )
        .await;
        let identify = |id: &str| {
            BehaviourEvent::parse(&format!(
                r#"{{"event_id":"{id}","user_id":"user-7","anonymous_id":"anon-7","type":"identify","timestamp":"{}"}}"#,
                rfc3339(t + 10)
            ))
            .unwrap()
        };
        assert_eq!(deliver(&u, &identify("i1")).await, Applied::Applied);
        // Another identify for the same pair (a new login) does not merge again.
        assert_eq!(deliver(&u, &identify("i2")).await, Applied::Duplicate);
        let p: Profile =
            serde_json::from_value(store.get_profile("user-7").await.unwrap().unwrap().value)
                .unwrap();
        assert_eq!(p.counts["view"], 3);
        assert_eq!(p.counts["purchase"], 1);
        assert_eq!(p.counts["identify"], 1);
        assert_eq!(p.merged_from, ["anon-7"]);
        assert!(p.affinities["brand"].contains_key("acme"));
        assert_eq!(p.recent_items.len(), 4);
        assert_eq!(
            store.get_profile("anon-7").await.unwrap(),
            None,
            "the anonymous profile is folded in and removed"
        );
    }

    pub async fn old_and_future_events(store: Arc<dyn Store>) {
        let u = updater(store.clone());
        let old = event("o1", "tm", "view", "x", now() - 400 * 86_400, "c");
        assert_eq!(deliver(&u, &old).await, Applied::TooOld);
        assert_eq!(store.get_profile("tm").await.unwrap(), None);
        let future = event("f1", "tm", "view", "x", now() + 3600, "c");
        let err = u.apply(&future).await.unwrap_err();
        assert!(
            matches!(err, ProfileError::FromTheFuture { .. }) && !err.is_retryable(),
            "{err}"
        );
        let slight = event("f2", "tm", "view", "x", now() + 60, "c");
        assert_eq!(
            deliver(&u, &slight).await,
            Applied::Applied,
            "within the allowed skew"
        );
    }

    pub async fn archive_is_date_partitioned_jsonl(store: Arc<dyn Store>) {
        let u = updater(store.clone());
        let day1 = 1_795_824_000; // 2026-11-28T00:00:00Z
        let evs = vec![
            event("z1", "ar", "view", "x", day1 + 10, "c"),
            event("z2", "ar", "view", "y", day1 + 86_400 + 5, "c"),
            event("z3", "ar", "purchase", "y", day1 + 20, "c"),
        ];
        let keys = u.archive(&evs).await.unwrap();
        assert_eq!(keys.len(), 2);
        assert!(
            keys[0].starts_with("events/dt=2026-11-28/") && keys[0].ends_with(".jsonl"),
            "{keys:?}"
        );
        assert!(keys[1].starts_with("events/dt=2026-11-29/"));
        let body = store.get_blob(&keys[0]).await.unwrap().unwrap();
        let lines: Vec<BehaviourEvent> = std::str::from_utf8(&body)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines
                .iter()
                .map(|e| e.event_id.as_str())
                .collect::<Vec<_>>(),
            ["z1", "z3"]
        );
        // The same batch again writes the same objects, not new ones.
        assert_eq!(u.archive(&evs).await.unwrap(), keys);
        assert_eq!(store.list_blobs("events/").await.unwrap().len(), 2);
    }
}

macro_rules! both_backends {
    ($($check:ident),* $(,)?) => {
        mod embedded_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = shopmind_storage::embedded::EmbeddedStore::open(dir.path()).unwrap();
                    super::checks::$check(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod aws_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let store = shopmind_storage::conformance::emulator_store().await;
                    super::checks::$check(std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

both_backends!(
    redeliveries_change_nothing,
    concurrent_invocations_lose_nothing,
    decay_uses_event_time_not_arrival,
    identify_merges_once,
    old_and_future_events,
    archive_is_date_partitioned_jsonl,
);
