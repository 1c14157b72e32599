//! Every route through `oneshot`, on the embedded store, with an index built by the real
//! encoder from a small catalog.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use recommend::{router, RecommendConfig, RecommendState};
use serde_json::{json, Value};
use shopmind_inference::{InferenceConfig, LazyEncoder};
use shopmind_profiles::{Profile, SeenItem};
use shopmind_recs::{
    build_signals, parse_catalog, ItemIndex, ItemMeta, LiveIndexes, SignalsConfig, TimedEvent,
};
use shopmind_storage::embedded::EmbeddedStore;
use shopmind_storage::ProfileStore;
use tower::ServiceExt;

const CATALOG: &str = r#"{"item_id":"dress-linen","title":"Linen summer dress","category":"Women > Dresses","description":"Light sleeveless dress for hot days","price":59}
{"item_id":"dress-wrap","title":"Floral wrap dress","category":"Women > Dresses","description":"Flowing midi dress with a floral print","price":69}
{"item_id":"dress-sold","title":"Silk evening dress","category":"Women > Dresses","in_stock":false,"price":180}
{"item_id":"sandal","title":"Leather sandals","category":"Women > Shoes","description":"Flat sandals for summer","price":45}
{"item_id":"lamp-desk","title":"LED desk lamp","category":"Home > Lamps","description":"Adjustable reading light with warm white LEDs","price":35}
{"item_id":"lamp-floor","title":"Arc floor lamp","category":"Home > Lamps","description":"Tall lamp that lights a reading corner","price":120}
"#;

fn models_dir() -> PathBuf {
    std::env::var_os("SHOPMIND_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

fn lazy_encoder() -> Arc<LazyEncoder> {
    let dir = models_dir().to_string_lossy().into_owned();
    let cfg =
        InferenceConfig::from_lookup(move |k| (k == "SHOPMIND_MODELS_DIR").then(|| dir.clone()))
            .unwrap();
    Arc::new(LazyEncoder::new(cfg))
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<EmbeddedStore>,
    encoder: Arc<LazyEncoder>,
}

impl Fixture {
    fn empty() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        Self {
            _dir: dir,
            store,
            encoder: lazy_encoder(),
        }
    }

    /// Embeds the catalog with its own encoder (so the app's stays unloaded) and publishes
    /// the index and signals in which the sandals are bought with the linen dress.
    async fn with_index(version: &str) -> Self {
        let f = Self::empty();
        f.publish(version).await;
        let t = |s: &str| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .unwrap()
                .unix_timestamp()
        };
        let ev = |id: &str, user: &str, item: &str, at: &str| TimedEvent {
            event: serde_json::from_value(
                json!({"event_id": id, "user_id": user, "type": "purchase",
                "item_id": item, "timestamp": at, "session_id": format!("s-{user}")}),
            )
            .unwrap(),
            at: t(at),
        };
        let events = vec![
            ev("1", "a", "dress-linen", "2026-11-01T10:00:00Z"),
            ev("2", "a", "sandal", "2026-11-01T10:01:00Z"),
            ev("3", "b", "dress-linen", "2026-11-02T10:00:00Z"),
            ev("4", "b", "sandal", "2026-11-02T10:01:00Z"),
            ev("5", "c", "lamp-desk", "2026-11-03T10:00:00Z"),
        ];
        let signals = build_signals(
            &events,
            &|_| None,
            t("2026-11-04T00:00:00Z"),
            &SignalsConfig::default(),
        );
        signals.publish(f.store.as_ref(), 1).await.unwrap();
        f
    }

    async fn publish(&self, version: &str) {
        let parsed = parse_catalog(CATALOG);
        assert!(parsed.bad.is_empty());
        let texts: Vec<String> = parsed.items.iter().map(|i| i.text()).collect();
        let encoder = lazy_encoder().get().await.unwrap();
        let vectors: Vec<f32> = encoder
            .embed(&texts)
            .unwrap()
            .into_iter()
            .flat_map(|e| e.vector)
            .collect();
        let meta: Vec<ItemMeta> = parsed.items.iter().map(ItemMeta::from).collect();
        ItemIndex::new(
            version,
            encoder.model_id(),
            encoder.dimension(),
            meta,
            vectors,
        )
        .unwrap()
        .publish(self.store.as_ref(), 1)
        .await
        .unwrap();
    }

    fn app(&self, refresh: Duration) -> axum::Router {
        let config = RecommendConfig {
            refresh,
            ..RecommendConfig::default()
        };
        let state = RecommendState {
            profiles: self.store.clone(),
            indexes: Arc::new(LiveIndexes::new(self.store.clone(), refresh)),
            encoder: self.encoder.clone(),
            config: Arc::new(config),
            shoppers: Arc::new(shoppers()),
        };
        shopmind_runtime::finish_router(router(state), 64 * 1024)
    }
}

const SHOP_SECRET: &[u8] = b"test-shop-secret-test-shop-secret";

fn shoppers() -> shopmind_runtime::ShopperAuth {
    shopmind_runtime::ShopperAuth::default().with_shop_secret(SHOP_SECRET)
}

fn token(user: &str) -> String {
    shoppers()
        .issue_shopper(user, shopmind_storage::now_secs(), Duration::from_secs(600))
        .unwrap()
}

/// A GET as the storefront makes it: a shopper's own list with that shopper's token.
async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let user = uri
        .strip_prefix("/v1/users/")
        .and_then(|rest| rest.split('/').next())
        .map(token);
    get_as(app, uri, user.as_deref()).await
}

async fn get_as(app: &axum::Router, uri: &str, bearer: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::get(uri);
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn before_any_index_the_answer_is_503_with_a_json_error() {
    let f = Fixture::empty();
    let (status, body) = get(&f.app(Duration::ZERO), "/v1/users/u1/recommendations").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("item index"),
        "{body}"
    );
}

#[tokio::test]
async fn a_context_against_an_index_of_another_encoder_is_503_not_an_empty_list() {
    let f = Fixture::empty();
    let parsed = parse_catalog(CATALOG);
    let meta: Vec<ItemMeta> = parsed.items.iter().map(ItemMeta::from).collect();
    // 2-dimension vectors, as if built by a retired encoder.
    let vectors: Vec<f32> = meta.iter().flat_map(|_| [1.0, 0.0]).collect();
    ItemIndex::new("old", "retired-encoder", 2, meta, vectors)
        .unwrap()
        .publish(f.store.as_ref(), 1)
        .await
        .unwrap();
    let app = f.app(Duration::ZERO);
    let (status, body) = get(
        &app,
        "/v1/users/u1/recommendations?context=a%20reading%20lamp",
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("item index"),
        "{body}"
    );
    // Without a context no model is involved and the index still serves.
    let (status, body) = get(&app, "/v1/users/u1/recommendations").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_unknown_shopper_gets_the_cold_start_path_without_loading_a_model() {
    let f = Fixture::with_index("v1").await;
    let app = f.app(Duration::from_secs(60));
    let (status, body) = get(&app, "/v1/users/new-shopper/recommendations?limit=3").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cold_start"], true);
    assert_eq!(body["index_version"], "v1");
    let got = ids(&body);
    assert_eq!(got.len(), 3);
    // Bought as often as the linen dress, each time a minute later: popularity decays from
    // the event's own time, so the sandals lead by a hair.
    assert_eq!(got[..2], ["sandal", "dress-linen"]);
    assert!(!got.contains(&"dress-sold".to_owned()), "out of stock");
    for item in body["items"].as_array().unwrap() {
        assert!(!item["reasons"].as_array().unwrap().is_empty(), "{item}");
    }
    assert!(f.encoder.loaded().is_none(), "no context, no model");
}

#[tokio::test]
async fn a_new_shop_with_no_behaviour_yet_still_gives_its_first_shopper_a_list() {
    // Only the item index: no events, so no signals. This answered `{"items": []}`.
    let f = Fixture::empty();
    let meta: Vec<ItemMeta> = parse_catalog(CATALOG)
        .items
        .iter()
        .map(ItemMeta::from)
        .collect();
    let vectors: Vec<f32> = (0..meta.len())
        .flat_map(|i| [i as f32 + 1.0, 1.0])
        .collect();
    ItemIndex::new("v1", "m", 2, meta, vectors)
        .unwrap()
        .publish(f.store.as_ref(), 1)
        .await
        .unwrap();
    let app = f.app(Duration::from_secs(60));
    let (status, body) = get(&app, "/v1/users/first-shopper/recommendations?limit=4").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cold_start"], true);
    // Catalog order, one top-level category at a time; the sold-out dress is skipped.
    assert_eq!(
        ids(&body),
        ["dress-linen", "lamp-desk", "dress-wrap", "lamp-floor"]
    );
    for item in body["items"].as_array().unwrap() {
        assert_eq!(item["reasons"][0]["source"], "catalog", "{item}");
    }
    assert_eq!(
        body["items"][1]["reasons"][0]["text"],
        "from our Home range"
    );
}

#[tokio::test]
async fn a_known_shopper_gets_bought_together_items_and_filters_apply() {
    let f = Fixture::with_index("v1").await;
    let mut p = Profile::new("u1");
    p.purchased = vec![SeenItem {
        item_id: "dress-linen".into(),
        at: 1,
    }];
    f.store
        .put_profile("u1", &serde_json::to_value(&p).unwrap(), None)
        .await
        .unwrap();
    let app = f.app(Duration::from_secs(60));

    let (status, body) = get(&app, "/v1/users/u1/recommendations?limit=5").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cold_start"], false);
    let got = ids(&body);
    assert!(
        !got.contains(&"dress-linen".to_owned()),
        "purchased items are excluded: {got:?}"
    );
    assert_eq!(
        got[0], "sandal",
        "bought together with the linen dress: {body}"
    );
    assert_eq!(
        body["items"][0]["reasons"][0]["text"],
        "often bought together with 'Linen summer dress'"
    );

    let (_, body) = get(&app, "/v1/users/u1/recommendations?exclude_purchased=false").await;
    assert!(ids(&body).contains(&"dress-linen".to_owned()));

    let (_, body) = get(&app, "/v1/users/u1/recommendations?category=Home").await;
    let got = ids(&body);
    assert!(
        !got.is_empty() && got.iter().all(|i| i.starts_with("lamp")),
        "{got:?}"
    );
}

#[tokio::test]
async fn context_text_loads_the_encoder_and_steers_the_list() {
    let f = Fixture::with_index("v1").await;
    let app = f.app(Duration::from_secs(60));
    let (status, body) =
        get(&app, "/v1/users/u2/recommendations?limit=2&context=something%20to%20light%20my%20reading%20corner").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(ids(&body).iter().all(|i| i.starts_with("lamp")), "{body}");
    let reasons = body["items"][0]["reasons"].to_string();
    assert!(
        reasons.contains("matches 'something to light my reading corner'"),
        "{reasons}"
    );
    assert!(f.encoder.loaded().is_some());
}

#[tokio::test]
async fn bad_limits_and_unknown_parameters_are_422() {
    let f = Fixture::with_index("v1").await;
    let app = f.app(Duration::from_secs(60));
    for uri in [
        "/v1/users/u1/recommendations?limit=0",
        "/v1/users/u1/recommendations?limit=101",
        "/v1/users/u1/recommendations?limit=ten",
        "/v1/users/u1/recommendations?limt=5",
        "/v1/items/sandal/similar?limit=-1",
        // A shopper id the forget route would refuse is refused here too.
        "/v1/users/forget-me%7Cx/recommendations",
        "/v1/users/u%011/recommendations",
    ] {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {body}");
        assert!(body["error"]["code"].is_string(), "{uri}: {body}");
    }
}

#[tokio::test]
async fn similar_items_and_unknown_items() {
    let f = Fixture::with_index("v1").await;
    let app = f.app(Duration::from_secs(60));
    let (status, body) = get(&app, "/v1/items/lamp-desk/similar?limit=3").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = ids(&body);
    assert_eq!(got[0], "lamp-floor", "{body}");
    assert!(!got.contains(&"lamp-desk".to_owned()));
    assert_eq!(
        body["items"][0]["reasons"][0]["text"],
        "similar to 'LED desk lamp'"
    );

    let (status, body) = get(&app, "/v1/items/no-such-item/similar").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn a_new_index_version_is_served_without_a_restart() {
    let f = Fixture::with_index("v1").await;
    let app = f.app(Duration::ZERO);
    let (_, body) = get(&app, "/v1/items/sandal/similar").await;
    assert_eq!(body["index_version"], "v1");
    f.publish("v2").await;
    let (_, body) = get(&app, "/v1/items/sandal/similar").await;
    assert_eq!(body["index_version"], "v2");
}

/// Issue 21 finding 1: anyone who knew a user id could read that shopper's list, whose
/// reasons ("similar to … you bought") tell their history. Only their own token does now.
#[tokio::test]
async fn a_personal_list_needs_the_shoppers_own_token() {
    let f = Fixture::with_index("v1").await;
    let bought = Profile {
        purchased: vec![SeenItem {
            item_id: "dress-linen".into(),
            at: 1_795_845_600,
        }],
        ..Profile::default()
    };
    f.store
        .put_profile("u1", &serde_json::to_value(&bought).unwrap(), None)
        .await
        .unwrap();
    let app = f.app(Duration::ZERO);
    let uri = "/v1/users/u1/recommendations?limit=5";
    // A reason that points at, or names, the item u1 bought.
    let history = |v: &Value| {
        v["items"].as_array().into_iter().flatten().any(|item| {
            item["reasons"].as_array().into_iter().flatten().any(|r| {
                r["item"] == "dress-linen"
                    || r["text"]
                        .as_str()
                        .unwrap_or("")
                        .contains("Linen summer dress")
            })
        })
    };
    let (status, own) = get_as(&app, uri, Some(&token("u1"))).await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(
        (own["personalised"].clone(), own["cold_start"].clone()),
        (json!(true), json!(false))
    );
    assert!(history(&own), "the owner's list uses their purchase: {own}");
    // No token: the list a new shopper gets, with nothing from u1's history.
    let (status, anon) = get_as(&app, uri, None).await;
    assert_eq!(status, StatusCode::OK, "{anon}");
    assert_eq!(
        (anon["personalised"].clone(), anon["cold_start"].clone()),
        (json!(false), json!(true))
    );
    assert!(!history(&anon), "{anon}");
    // Another shopper's genuine token: 403; a forged or expired one: 401.
    let (status, v) = get_as(&app, uri, Some(&token("u2"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let forged = shopmind_runtime::ShopperAuth::default()
        .with_shop_secret(b"not-the-shop-secret-not-the-shop")
        .issue_shopper("u1", shopmind_storage::now_secs(), Duration::from_secs(600))
        .unwrap();
    let expired = shoppers()
        .issue_shopper(
            "u1",
            shopmind_storage::now_secs() - 7200,
            Duration::from_secs(60),
        )
        .unwrap();
    for bad in [forged, expired] {
        let (status, v) = get_as(&app, uri, Some(&bad)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
        assert!(!history(&v), "{v}");
    }
}
