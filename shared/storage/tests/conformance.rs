//! One conformance suite, run against both backends: the embedded store, and DynamoDB + S3
//! through the real AWS SDK against the emulator that `infra/scripts/test.sh` starts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use bytes::Bytes;
use serde_json::json;
use shopmind_storage::embedded::EmbeddedStore;
use shopmind_storage::*;

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod embedded_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::EmbeddedStore::open(dir.path()).unwrap();
                    shopmind_storage::conformance::$check(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod aws_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    shopmind_storage::conformance::$check(std::sync::Arc::new(shopmind_storage::conformance::emulator_store().await)).await;
                }
            )*
        }
    };
}

shopmind_storage::for_each_conformance_check!(conformance);

#[tokio::test]
async fn embedded_store_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        s.put_profile("u", &json!({"a": 1}), None).await.unwrap();
        s.put_blob("k/v", Bytes::from_static(b"kept"))
            .await
            .unwrap();
    }
    let s = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(s.get_profile("u").await.unwrap().unwrap().version, 1);
    assert_eq!(
        s.get_blob("k/v").await.unwrap().unwrap(),
        Bytes::from_static(b"kept")
    );
    assert!(matches!(
        s.get_blob("../etc/passwd").await,
        Err(StorageError::InvalidKey(_))
    ));
}
