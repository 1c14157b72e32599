//! The signals query on Amazon Athena: start it, wait for it, read its CSV result from the
//! artifacts bucket. The statement is `shopmind_recs::signals_sql`; the Glue table, the
//! workgroup (results location, scan cutoff) and the permissions are in the template.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};
use shopmind_recs::{RecsError, SqlEngine, SqlResult, SqlStats};
use shopmind_storage::BlobStore;

use crate::IndexerError;

/// `SHOPMIND_SIGNALS_ENGINE`: where the signals job aggregates the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineConfig {
    /// `window` (default): in the indexer, from daily partials.
    Window,
    /// `athena`: one Athena query over the archive's Glue table.
    Athena(AthenaConfig),
}

/// The Athena mode's settings (read once at cold start):
///
/// | variable | default | meaning |
/// | --- | --- | --- |
/// | `SHOPMIND_ATHENA_WORKGROUP` | (required) | the workgroup the query runs in |
/// | `SHOPMIND_ATHENA_DATABASE` | (required) | the Glue database of the archive's table |
/// | `SHOPMIND_ATHENA_TABLE` | `events` | the archive's table |
/// | `SHOPMIND_ATHENA_OUTPUT` | (required) | `s3://<the artifacts bucket>/<prefix>/` for results |
/// | `SHOPMIND_ATHENA_TIMEOUT_SECS` | `600` | how long the job waits for the query (10–840) |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AthenaConfig {
    pub workgroup: String,
    pub database: String,
    pub table: String,
    /// Bucket and key prefix of `SHOPMIND_ATHENA_OUTPUT`.
    pub bucket: String,
    pub prefix: String,
    pub timeout: Duration,
}

impl EngineConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, IndexerError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        match get("SHOPMIND_SIGNALS_ENGINE").as_deref() {
            None | Some("window") => return Ok(Self::Window),
            Some("athena") => {}
            Some(other) => {
                return Err(IndexerError::Config(format!(
                    "SHOPMIND_SIGNALS_ENGINE={other:?}: expected \"window\" or \"athena\""
                )))
            }
        }
        let required = |k: &str| {
            get(k).ok_or_else(|| {
                IndexerError::Config(format!(
                    "{k} is required with SHOPMIND_SIGNALS_ENGINE=athena"
                ))
            })
        };
        let output = required("SHOPMIND_ATHENA_OUTPUT")?;
        let (bucket, prefix) = s3_uri(&output).ok_or_else(|| {
            IndexerError::Config(format!(
                "SHOPMIND_ATHENA_OUTPUT={output:?}: expected s3://<bucket>/<prefix>/"
            ))
        })?;
        let timeout = match get("SHOPMIND_ATHENA_TIMEOUT_SECS") {
            None => 600,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|s| (10..=840).contains(s))
                .ok_or_else(|| {
                    IndexerError::Config(format!(
                        "SHOPMIND_ATHENA_TIMEOUT_SECS={v:?}: expected whole seconds from 10 to 840 (inside Lambda's 15 minutes)"
                    ))
                })?,
        };
        Ok(Self::Athena(AthenaConfig {
            workgroup: required("SHOPMIND_ATHENA_WORKGROUP")?,
            database: required("SHOPMIND_ATHENA_DATABASE")?,
            table: get("SHOPMIND_ATHENA_TABLE").unwrap_or_else(|| "events".into()),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            timeout: Duration::from_secs(timeout),
        }))
    }
}

/// `s3://bucket/key` → (bucket, key).
fn s3_uri(uri: &str) -> Option<(&str, &str)> {
    let (bucket, key) = uri.strip_prefix("s3://")?.split_once('/')?;
    (!bucket.is_empty()).then_some((bucket, key))
}

/// Runs the signals query on Athena; its result is read through the artifacts store, so the
/// results location must be in that store's bucket.
#[derive(Debug, Clone)]
pub struct AthenaSql {
    pub client: aws_sdk_athena::Client,
    pub blobs: Arc<dyn BlobStore>,
    pub config: AthenaConfig,
}

impl AthenaSql {
    /// The engine over the data bucket `store_bucket` (`SHOPMIND_BUCKET`), which `blobs`
    /// reads. The result is read through `blobs`, so a results location in another bucket is
    /// refused here, at cold start, rather than as a missing result on every run.
    pub fn new(
        client: aws_sdk_athena::Client,
        blobs: Arc<dyn BlobStore>,
        store_bucket: &str,
        config: AthenaConfig,
    ) -> Result<Self, IndexerError> {
        if config.bucket != store_bucket {
            return Err(IndexerError::Config(format!(
                "SHOPMIND_ATHENA_OUTPUT is in bucket {:?}, not the data bucket {store_bucket:?} (SHOPMIND_BUCKET) the indexer reads results from",
                config.bucket
            )));
        }
        Ok(Self {
            client,
            blobs,
            config,
        })
    }
}

fn query_error(what: &str, e: impl std::fmt::Display) -> RecsError {
    RecsError::Query(format!("{what}: {e}"))
}

#[async_trait]
impl SqlEngine for AthenaSql {
    fn table(&self) -> &str {
        &self.config.table
    }

    async fn query(&self, sql: &str) -> Result<SqlResult, RecsError> {
        let c = &self.config;
        let started = self
            .client
            .start_query_execution()
            .query_string(sql)
            .work_group(&c.workgroup)
            .query_execution_context(
                QueryExecutionContext::builder()
                    .database(&c.database)
                    .build(),
            )
            .result_configuration(
                ResultConfiguration::builder()
                    .output_location(format!("s3://{}/{}", c.bucket, c.prefix))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                query_error(
                    "starting the Athena query",
                    aws_sdk_athena::error::DisplayErrorContext(e),
                )
            })?;
        let id = started
            .query_execution_id
            .ok_or_else(|| RecsError::Query("Athena returned no query id".into()))?;
        tracing::info!(query_id = %id, workgroup = %c.workgroup, "signals query started");
        let deadline = tokio::time::Instant::now() + c.timeout;
        // Athena queries take seconds to minutes: poll from 0.25 s, doubling to 5 s.
        let mut wait = Duration::from_millis(250);
        let execution = loop {
            let got = self
                .client
                .get_query_execution()
                .query_execution_id(&id)
                .send()
                .await
                .map_err(|e| {
                    query_error(
                        "polling the Athena query",
                        aws_sdk_athena::error::DisplayErrorContext(e),
                    )
                })?;
            let execution = got
                .query_execution
                .ok_or_else(|| RecsError::Query(format!("Athena query {id}: no execution")))?;
            let status = execution.status.as_ref();
            match status.and_then(|s| s.state.as_ref()) {
                Some(QueryExecutionState::Succeeded) => break execution,
                Some(state @ (QueryExecutionState::Failed | QueryExecutionState::Cancelled)) => {
                    let reason = status
                        .and_then(|s| s.state_change_reason.as_deref())
                        .unwrap_or("no reason given");
                    return Err(RecsError::Query(format!(
                        "Athena query {id} {}: {reason}",
                        state.as_str()
                    )));
                }
                _ => {}
            }
            if tokio::time::Instant::now() + wait > deadline {
                // Stop it, so a query nobody waits for does not go on scanning at cost.
                if let Err(e) = self
                    .client
                    .stop_query_execution()
                    .query_execution_id(&id)
                    .send()
                    .await
                {
                    tracing::warn!(query_id = %id, error = %aws_sdk_athena::error::DisplayErrorContext(e), "could not stop the timed-out query");
                }
                return Err(RecsError::Query(format!(
                    "Athena query {id} did not finish within {} s (SHOPMIND_ATHENA_TIMEOUT_SECS); stopped",
                    c.timeout.as_secs_f64()
                )));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        };
        let location = execution
            .result_configuration
            .and_then(|r| r.output_location)
            .ok_or_else(|| RecsError::Query(format!("Athena query {id}: no result location")))?;
        let key = match s3_uri(&location) {
            Some((bucket, key)) if bucket == c.bucket => key.to_owned(),
            _ => {
                return Err(RecsError::Query(format!(
                    "Athena query {id} wrote its result to {location}, outside s3://{}/ (the workgroup's result location must be SHOPMIND_ATHENA_OUTPUT's)",
                    c.bucket
                )))
            }
        };
        let csv = self.blobs.get_blob(&key).await?.ok_or_else(|| {
            RecsError::Query(format!("Athena query {id}: no result at {location}"))
        })?;
        let stats = execution.statistics;
        Ok(SqlResult {
            stats: SqlStats {
                query_id: id,
                bytes_scanned: stats.as_ref().and_then(|s| s.data_scanned_in_bytes),
                engine_ms: stats
                    .as_ref()
                    .and_then(|s| s.engine_execution_time_in_millis),
                result_bytes: csv.len(),
            },
            csv,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<EngineConfig, IndexerError> {
        EngineConfig::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn results_outside_the_data_bucket_are_refused_at_cold_start() {
        let EngineConfig::Athena(config) = parse(&[
            ("SHOPMIND_SIGNALS_ENGINE", "athena"),
            ("SHOPMIND_ATHENA_WORKGROUP", "wg"),
            ("SHOPMIND_ATHENA_DATABASE", "db"),
            ("SHOPMIND_ATHENA_OUTPUT", "s3://results-bucket/athena/"),
        ])
        .unwrap() else {
            panic!("athena expected")
        };
        let client = aws_sdk_athena::Client::from_conf(
            aws_sdk_athena::Config::builder()
                .behavior_version_latest()
                .region(aws_sdk_athena::config::Region::new("us-east-1"))
                .build(),
        );
        let dir = tempfile::tempdir().unwrap();
        let blobs: Arc<dyn BlobStore> =
            Arc::new(shopmind_storage::embedded::EmbeddedStore::open(dir.path()).unwrap());
        let e = AthenaSql::new(client.clone(), blobs.clone(), "data-bucket", config.clone())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"results-bucket\", not the data bucket \"data-bucket\""),
            "{e}"
        );
        assert!(AthenaSql::new(client, blobs, "results-bucket", config).is_ok());
    }

    #[test]
    fn the_engine_is_the_window_unless_athena_is_configured_in_full() {
        assert_eq!(parse(&[]).unwrap(), EngineConfig::Window);
        assert_eq!(
            parse(&[("SHOPMIND_SIGNALS_ENGINE", " window ")]).unwrap(),
            EngineConfig::Window
        );
        let full = [
            ("SHOPMIND_SIGNALS_ENGINE", "athena"),
            ("SHOPMIND_ATHENA_WORKGROUP", "wg"),
            ("SHOPMIND_ATHENA_DATABASE", "db"),
            ("SHOPMIND_ATHENA_OUTPUT", "s3://bucket-1/athena/results/"),
        ];
        assert_eq!(
            parse(&full).unwrap(),
            EngineConfig::Athena(AthenaConfig {
                workgroup: "wg".into(),
                database: "db".into(),
                table: "events".into(),
                bucket: "bucket-1".into(),
                prefix: "athena/results/".into(),
                timeout: Duration::from_secs(600),
            })
        );
        for (drop, says) in [
            (
                "SHOPMIND_ATHENA_WORKGROUP",
                "SHOPMIND_ATHENA_WORKGROUP is required",
            ),
            (
                "SHOPMIND_ATHENA_DATABASE",
                "SHOPMIND_ATHENA_DATABASE is required",
            ),
            (
                "SHOPMIND_ATHENA_OUTPUT",
                "SHOPMIND_ATHENA_OUTPUT is required",
            ),
        ] {
            let vars: Vec<_> = full.iter().copied().filter(|(k, _)| *k != drop).collect();
            let e = parse(&vars).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        for (k, v, says) in [
            (
                "SHOPMIND_SIGNALS_ENGINE",
                "spark",
                "expected \"window\" or \"athena\"",
            ),
            ("SHOPMIND_ATHENA_OUTPUT", "bucket/prefix", "expected s3://"),
            ("SHOPMIND_ATHENA_OUTPUT", "s3:///prefix", "expected s3://"),
            ("SHOPMIND_ATHENA_TIMEOUT_SECS", "900", "10 to 840"),
            ("SHOPMIND_ATHENA_TIMEOUT_SECS", "ten", "10 to 840"),
        ] {
            let mut vars: Vec<_> = full.iter().copied().filter(|(n, _)| *n != k).collect();
            vars.push((k, v));
            let e = parse(&vars).unwrap_err().to_string();
            assert!(e.contains(says), "{k}={v}: {e}");
        }
    }
}
