//! SQS batches with partial batch failure: each record succeeds or fails on its own, and the
//! records still unprocessed when the Lambda deadline nears are reported as failures so SQS
//! delivers them again (the event source mapping must enable `ReportBatchItemFailures`).

use std::future::Future;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

use crate::telemetry::Metrics;

/// Whether a Lambda payload is an SQS batch.
pub fn is_sqs_event(payload: &serde_json::Value) -> bool {
    payload["Records"]
        .as_array()
        .and_then(|r| r.first())
        .is_some_and(|r| r["eventSource"] == "aws:sqs")
}

/// Outcome of one batch, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    pub succeeded: usize,
    pub failed: Vec<String>,
    /// Records not attempted because the deadline was near (also in `failed`).
    pub deferred: usize,
}

/// Runs `handle` on each record in order. A record without a message id cannot be reported
/// and so fails the whole batch (SQS then retries all of it), which is the only safe answer.
pub async fn process_batch<F, Fut, E>(
    event: SqsEvent,
    deadline: SystemTime,
    margin: Duration,
    mut handle: F,
) -> (SqsBatchResponse, BatchReport)
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut report = BatchReport::default();
    let mut failures = Vec::new();
    let total = event.records.len();
    for (i, record) in event.records.into_iter().enumerate() {
        let id = record.message_id.clone().unwrap_or_default();
        if report.deferred == 0 {
            let remaining = deadline
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            if remaining < margin {
                report.deferred = total - i;
                tracing::warn!(
                    deferred = report.deferred,
                    remaining_ms = remaining.as_millis() as u64,
                    "deadline near: returning the rest of the batch to SQS"
                );
            }
        }
        if report.deferred > 0 {
            failures.push(id.clone());
            report.failed.push(id);
            continue;
        }
        match handle(record).await {
            Ok(()) => report.succeeded += 1,
            Err(e) => {
                tracing::warn!(message_id = %id, error = %e, "record failed");
                failures.push(id.clone());
                report.failed.push(id);
            }
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|item_identifier| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = item_identifier;
            f
        })
        .collect();
    (response, report)
}

/// The Lambda deadline from the invocation context (milliseconds since the epoch).
pub fn deadline_of(ctx: &lambda_runtime::Context) -> SystemTime {
    deadline_from_header(ctx.deadline, SystemTime::now())
}

/// Deadlines before this (2001-09-09) are not epoch times.
const EPOCH_MS_FLOOR: u64 = 1_000_000_000_000;

/// Reads `Lambda-Runtime-Deadline-Ms`. Lambda sends an epoch time; `cargo lambda watch` sends
/// its 600,000 ms timeout as is, which read as an epoch time lies in 1970 and would make every
/// batch look out of time. A value too small to be an epoch time counts from `now`.
pub fn deadline_from_header(deadline_ms: u64, now: SystemTime) -> SystemTime {
    if deadline_ms < EPOCH_MS_FLOOR {
        now + Duration::from_millis(deadline_ms)
    } else {
        SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms)
    }
}

/// The counters a batch handler keeps besides the SQS response, for the metrics line.
pub trait Tally {
    fn record(&self, metrics: &mut Metrics);
}

/// One invocation of a function that takes SQS batches and direct invokes: an SQS payload goes
/// to `batch` (its outcome and tally become metrics, its response the answer), anything else to
/// `direct`. Both get the invocation's deadline.
pub async fn batch_or_direct<B, BF, D, DF, T>(
    event: lambda_runtime::LambdaEvent<serde_json::Value>,
    metrics: &mut Metrics,
    batch: B,
    direct: D,
) -> Result<serde_json::Value, lambda_runtime::Error>
where
    B: FnOnce(SqsEvent, SystemTime) -> BF,
    BF: Future<Output = (SqsBatchResponse, BatchReport, T)>,
    D: FnOnce(serde_json::Value, SystemTime) -> DF,
    DF: Future<Output = serde_json::Value>,
    T: Tally,
{
    let deadline = deadline_of(&event.context);
    if !is_sqs_event(&event.payload) {
        return Ok(direct(event.payload, deadline).await);
    }
    let records: SqsEvent = serde_json::from_value(event.payload)?;
    let (response, report, tally) = batch(records, deadline).await;
    record_batch_metrics(metrics, &report);
    tally.record(metrics);
    Ok(serde_json::to_value(response)?)
}

/// Records the batch outcome as metrics.
fn record_batch_metrics(metrics: &mut Metrics, report: &BatchReport) {
    metrics.count("records_succeeded", report.succeeded as f64);
    metrics.count("records_failed", report.failed.len() as f64);
    metrics.count("records_deferred", report.deferred as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_deadline_is_read_as_one() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_845_600_000);
        let at = deadline_from_header(1_795_845_630_000, now);
        assert_eq!(at.duration_since(now).ok(), Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_timeout_sent_as_the_deadline_counts_from_now() {
        // What `cargo lambda watch` 1.9 sends on every invocation.
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_845_600_000);
        let at = deadline_from_header(600_000, now);
        assert_eq!(at.duration_since(now).ok(), Some(Duration::from_secs(600)));
    }
}
