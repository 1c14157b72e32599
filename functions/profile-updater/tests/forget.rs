//! `DELETE /v1/users/{user_id}/data` through the router behind the staff guard, on the
//! embedded store and on DynamoDB in the emulator: the shopper's profile, conversations and
//! idempotency records go, another shopper's stay, a second call removes nothing more, and
//! callers without the token are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use profile_updater::{router, ForgetState};
use serde_json::{json, Value};
use shopmind_runtime::{staff_only, StaffAuth};
use shopmind_storage::{ClaimOutcome, ConversationMeta, IdempotencyClaim, Store};
use tower::ServiceExt;

const TOKEN: &str = "forget-test-token-0123";

async fn seed(store: &dyn Store, user: &str, tag: &str) {
    store
        .put_profile(user, &json!({"counts": {"view": 1}}), None)
        .await
        .unwrap();
    let now = shopmind_storage::now_secs();
    for i in 0..2 {
        store
            .create_conversation(&ConversationMeta {
                id: format!("c_{tag}{i}"),
                owner: user.into(),
                created_at: now,
                expires_at: now + 3600,
                handoff: None,
            })
            .await
            .unwrap();
    }
    for i in 0..3 {
        let claim = IdempotencyClaim {
            key: shopmind_profiles::idempotency_key(user, &format!("e{i}")),
            payload_hash: "h".into(),
            now_ms: now * 1000,
            in_progress_until: now * 1000 + 60_000,
            expires_at: now + 3600,
        };
        assert!(matches!(
            store.claim(&claim).await.unwrap(),
            ClaimOutcome::Acquired
        ));
    }
}

async fn delete(app: &axum::Router, user: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method("DELETE")
        .uri(format!("/v1/users/{user}/data"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn forgets_one_shopper_and_nobody_else(store: Arc<dyn Store>, tag: &str) {
    // The other shopper's id starts with the first one's and a ':' (ids may hold ':').
    let (u1, u2) = (format!("{tag}-u1"), format!("{tag}-u1:x"));
    seed(store.as_ref(), &u1, &format!("{tag}a")).await;
    seed(store.as_ref(), &u2, &format!("{tag}b")).await;
    let app = staff_only(
        router(ForgetState {
            profiles: store.clone(),
            conversations: store.clone(),
            idempotency: store.clone(),
        }),
        StaffAuth::local(Some(TOKEN)).unwrap(),
    );
    assert_eq!(delete(&app, &u1, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        delete(&app, &u1, Some("not-the-token-012345")).await.0,
        StatusCode::FORBIDDEN
    );
    assert!(
        store.get_profile(&u1).await.unwrap().is_some(),
        "refusals remove nothing"
    );

    let (status, v) = delete(&app, &u1, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (
            &v["profile"],
            &v["conversations"],
            &v["idempotency_records"]
        ),
        (&json!(true), &json!(2), &json!(3)),
        "{v}"
    );
    assert!(v["retained"][0].as_str().unwrap().contains("events/"));
    assert!(store.get_profile(&u1).await.unwrap().is_none());
    assert!(store
        .get_conversation(&format!("c_{tag}a0"))
        .await
        .unwrap()
        .is_none());
    let key = shopmind_profiles::idempotency_key(&u1, "e0");
    assert!(store.get_idempotency(&key).await.unwrap().is_none());

    // The other shopper is untouched.
    assert!(store.get_profile(&u2).await.unwrap().is_some());
    assert!(store
        .get_conversation(&format!("c_{tag}b1"))
        .await
        .unwrap()
        .is_some());
    let key = shopmind_profiles::idempotency_key(&u2, "e2");
    assert!(store.get_idempotency(&key).await.unwrap().is_some());

    // Again: nothing more to remove, and it says so.
    let (status, v) = delete(&app, &u1, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            &v["profile"],
            &v["conversations"],
            &v["idempotency_records"]
        ),
        (&json!(false), &json!(0), &json!(0))
    );
}

#[tokio::test]
async fn embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(shopmind_storage::embedded::EmbeddedStore::open(dir.path()).unwrap());
    forgets_one_shopper_and_nobody_else(store, "emb").await;
}

#[tokio::test]
async fn dynamodb_in_the_emulator() {
    let deployment = shopmind_e2e::EmulatorDeployment::create("fg").await;
    forgets_one_shopper_and_nobody_else(Arc::new(deployment.store), "ddb").await;
}
