//! The batch: which product × channel × locale jobs are due, and handing them to a queue in
//! batches of ten with the failed entries retried.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::draft::Freshness;
use crate::error::{CopyError, Result};
use crate::product::{Channel, CopyRequest, Locale, Product};
use crate::service::CopyService;

/// What the batch writes for every product.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSpec {
    pub channels: Vec<Channel>,
    pub locales: Vec<Locale>,
    pub tone: Option<String>,
    pub variants: Option<usize>,
}

impl Default for BatchSpec {
    fn default() -> Self {
        Self {
            channels: vec![Channel::PdpDescription],
            locales: vec![Locale::En],
            tone: None,
            variants: None,
        }
    }
}

impl BatchSpec {
    /// `pdp_description,sms` and `en,zh-CN` lists, as the environment and CLI give them.
    pub fn parse(channels: &str, locales: &str) -> Result<Self> {
        let split = |s: &str| {
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let channels = split(channels)
            .iter()
            .map(|c| Channel::parse(c))
            .collect::<Result<Vec<_>>>()?;
        let locales = split(locales)
            .iter()
            .map(|l| Locale::parse(l))
            .collect::<Result<Vec<_>>>()?;
        if channels.is_empty() || locales.is_empty() {
            return Err(CopyError::Config(
                "the batch needs at least one channel and one locale".into(),
            ));
        }
        Ok(Self {
            channels,
            locales,
            ..Self::default()
        })
    }

    pub fn jobs(&self, products: &[Product]) -> Vec<CopyRequest> {
        let mut out = Vec::new();
        for p in products {
            for &channel in &self.channels {
                for &locale in &self.locales {
                    out.push(CopyRequest {
                        product: p.clone(),
                        channel,
                        locale,
                        tone: self.tone.clone(),
                        audience: None,
                        max_chars: None,
                        variants: self.variants,
                    });
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DueTally {
    pub missing: usize,
    pub stale: usize,
    pub current: usize,
    /// Approved or edited: never regenerated.
    pub kept: usize,
    /// Products that fail the request checks (named in the log).
    pub invalid: usize,
}

/// The jobs whose draft is missing or stale.
pub async fn due(
    service: &CopyService,
    jobs: Vec<CopyRequest>,
) -> Result<(Vec<CopyRequest>, DueTally)> {
    let mut tally = DueTally::default();
    let mut out = Vec::new();
    for job in jobs {
        if let Err(e) = job.check() {
            tracing::warn!(product = %job.product.id, error = %e, "product skipped");
            tally.invalid += 1;
            continue;
        }
        match service.freshness(&job).await? {
            Freshness::Missing => tally.missing += 1,
            Freshness::Stale => tally.stale += 1,
            Freshness::Current => {
                tally.current += 1;
                continue;
            }
            Freshness::Final => {
                tally.kept += 1;
                continue;
            }
        }
        out.push(job);
    }
    Ok((out, tally))
}

/// A queue that takes up to ten messages at once (SQS `SendMessageBatch`).
#[async_trait]
pub trait JobQueue: Send + Sync + std::fmt::Debug {
    /// Sends `(id, body)` entries; returns the ids of the entries that failed.
    async fn send_batch(&self, entries: &[(String, String)]) -> Result<Vec<String>>;
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EnqueueReport {
    pub sent: usize,
    pub retried: usize,
    /// Entry ids still failing after every attempt.
    pub failed: Vec<String>,
}

/// Sends every job, ten at a time; entries that fail (throttling, a whole call failing) are
/// sent again up to `attempts` times with a doubling pause.
pub async fn enqueue(
    queue: &dyn JobQueue,
    jobs: &[CopyRequest],
    attempts: usize,
    pause: Duration,
) -> Result<EnqueueReport> {
    let mut report = EnqueueReport::default();
    let bodies: Vec<(String, String)> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| {
            serde_json::to_string(j)
                .map(|b| (format!("j{i}"), b))
                .map_err(|e| CopyError::Queue(e.to_string()))
        })
        .collect::<Result<_>>()?;
    for chunk in bodies.chunks(10) {
        let mut pending: Vec<(String, String)> = chunk.to_vec();
        let mut wait = pause;
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                report.retried += pending.len();
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            let failed = match queue.send_batch(&pending).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, entries = pending.len(), "batch send failed");
                    pending.iter().map(|(id, _)| id.clone()).collect()
                }
            };
            report.sent += pending.len() - failed.len();
            pending.retain(|(id, _)| failed.contains(id));
            if pending.is_empty() {
                break;
            }
        }
        report.failed.extend(pending.into_iter().map(|(id, _)| id));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Fails the first entry of every call once, and one whole call.
    #[derive(Debug)]
    struct Flaky {
        seen: Mutex<Vec<String>>,
        calls: Mutex<usize>,
        received: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl JobQueue for Flaky {
        async fn send_batch(&self, entries: &[(String, String)]) -> Result<Vec<String>> {
            assert!(entries.len() <= 10);
            let call = {
                let mut c = self.calls.lock().unwrap();
                *c += 1;
                *c
            };
            if call == 2 {
                return Err(CopyError::Queue("throttled".into()));
            }
            let mut seen = self.seen.lock().unwrap();
            let mut failed = Vec::new();
            for (i, (id, _)) in entries.iter().enumerate() {
                if i == 0 && !seen.contains(id) {
                    seen.push(id.clone());
                    failed.push(id.clone());
                } else {
                    self.received.lock().unwrap().push(id.clone());
                }
            }
            Ok(failed)
        }
    }

    fn jobs(n: usize) -> Vec<CopyRequest> {
        let products: Vec<Product> = (0..n)
            .map(|i| {
                serde_json::from_value(serde_json::json!({"id": format!("p{i}"), "title": "T"}))
                    .unwrap()
            })
            .collect();
        BatchSpec::default().jobs(&products)
    }

    #[tokio::test]
    async fn failed_entries_are_retried_until_all_arrive() {
        let q = Flaky {
            seen: Mutex::default(),
            calls: Mutex::default(),
            received: Mutex::default(),
        };
        let report = enqueue(&q, &jobs(23), 4, Duration::from_millis(1))
            .await
            .unwrap();
        assert_eq!(report.sent, 23);
        assert!(report.failed.is_empty());
        let mut got = q.received.lock().unwrap().clone();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 23, "every job exactly once");
        assert!(report.retried >= 3);
    }

    #[tokio::test]
    async fn entries_that_keep_failing_are_reported() {
        #[derive(Debug)]
        struct Down;
        #[async_trait]
        impl JobQueue for Down {
            async fn send_batch(&self, _: &[(String, String)]) -> Result<Vec<String>> {
                Err(CopyError::Queue("no such queue".into()))
            }
        }
        let report = enqueue(&Down, &jobs(12), 2, Duration::from_millis(1))
            .await
            .unwrap();
        assert_eq!(report.sent, 0);
        assert_eq!(report.failed.len(), 12);
    }

    #[test]
    fn spec_parsing() {
        let s = BatchSpec::parse("sms, push", "en,zh-CN").unwrap();
        assert_eq!(s.channels, vec![Channel::Sms, Channel::Push]);
        assert_eq!(s.jobs(&[]).len(), 0);
        assert!(BatchSpec::parse("fax", "en").is_err());
        assert!(BatchSpec::parse("", "en").is_err());
    }
}
