//! The SQS worker's deadline handling, called directly: records it cannot start in time and
//! jobs the deadline cuts short come back as batch item failures and store nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::SqsEvent;
use copywriter::Worker;
use shopmind_copy::{CopyService, CopyWriter, ModelProvider, TextModel};
use shopmind_inference::{ChatMessage, FinishReason, GenerateOptions, Generation};
use shopmind_storage::embedded::EmbeddedStore;
use shopmind_storage::{DraftKey, DraftStore};

/// A model whose every generation is cut by the time budget.
#[derive(Debug)]
struct AlwaysCut;

impl TextModel for AlwaysCut {
    fn id(&self) -> &str {
        "always-cut"
    }
    fn complete(
        &self,
        prompts: &[Vec<ChatMessage>],
        _: &GenerateOptions,
    ) -> shopmind_copy::Result<Vec<Generation>> {
        Ok(prompts
            .iter()
            .map(|_| Generation {
                text: "Linen summer dress, airy midi cut".into(),
                tokens: Vec::new(),
                prompt_tokens: 0,
                finish: FinishReason::TimeBudget,
                timing: Default::default(),
            })
            .collect())
    }
}

#[derive(Debug)]
struct Provide;

#[async_trait::async_trait]
impl ModelProvider for Provide {
    async fn model(&self) -> Result<Arc<dyn TextModel>, String> {
        Ok(Arc::new(AlwaysCut))
    }
}

fn batch() -> SqsEvent {
    let raw = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events/sqs/copy-jobs-batch.json"),
    )
    .unwrap();
    serde_json::from_str(&raw).unwrap()
}

fn worker(dir: &std::path::Path) -> (Worker, Arc<EmbeddedStore>) {
    let store = Arc::new(EmbeddedStore::open(dir).unwrap());
    let service = CopyService::new(
        store.clone(),
        Arc::new(CopyWriter::default()),
        Arc::new(Provide),
    );
    (
        Worker {
            service,
            margin: Duration::from_secs(2),
        },
        store,
    )
}

#[tokio::test]
async fn near_the_deadline_nothing_starts_and_everything_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    let (worker, store) = worker(dir.path());
    let (response, report, tally) = worker
        .sqs(batch(), SystemTime::now() + Duration::from_secs(1))
        .await;
    assert_eq!(response.batch_item_failures.len(), 3);
    assert_eq!((report.deferred, report.succeeded), (3, 0));
    assert_eq!(tally.created, 0);
    let key = DraftKey::new("dress-linen", "sms", "en");
    assert!(store.get_draft(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn a_job_cut_by_the_deadline_is_retried_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (worker, store) = worker(dir.path());
    let (response, report, _) = worker
        .sqs(batch(), SystemTime::now() + Duration::from_secs(600))
        .await;
    // Both good jobs were cut, the truncated one is malformed: all three come back.
    assert_eq!(response.batch_item_failures.len(), 3, "{report:?}");
    assert_eq!(report.deferred, 0);
    let key = DraftKey::new("dress-linen", "pdp_description", "en");
    assert!(store.get_draft(&key).await.unwrap().is_none());
}
