//! Resolves a model reference (local directory or `s3://bucket/prefix`) to a verified local
//! directory. S3 downloads land in a cache directory, atomically, verified against the
//! manifest, and are reused by warm invocations and later processes.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::OnceCell;

use crate::error::{InferenceError, Result};
use crate::manifest::{verify_file, Manifest, VerifiedModel, MANIFEST_FILE};

/// Where a model lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelRef {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl FromStr for ModelRef {
    type Err = InferenceError;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let prefix = prefix.trim_matches('/');
            let plain = Path::new(prefix)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
            if bucket.is_empty() || prefix.is_empty() || !plain {
                return Err(InferenceError::BadModelRef(s.to_owned()));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        if s.is_empty() || s.contains("://") {
            return Err(InferenceError::BadModelRef(s.to_owned()));
        }
        Ok(Self::Local(PathBuf::from(s)))
    }
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(p) => write!(f, "{}", p.display()),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A remote object store models are downloaded from.
pub trait ObjectSource: Send + Sync + std::fmt::Debug {
    /// Writes the object to `dest` (which the caller renames into place) and returns its size.
    fn fetch_to<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        dest: &'a Path,
    ) -> BoxFuture<'a, Result<u64>>;
}

/// Amazon S3 (or anything that speaks its API, such as the local emulator).
#[derive(Debug, Clone)]
pub struct S3Source {
    client: aws_sdk_s3::Client,
    ranged_above: u64,
    ranges: u64,
}

/// Objects above this size download as parallel byte ranges: one S3 connection gives roughly
/// 90 MB/s from a Lambda, and a 1.55 GiB generator is most of a cold start.
pub const RANGED_ABOVE: u64 = 64 << 20;
/// Concurrent range requests for one large object.
pub const RANGES: u64 = 8;

impl S3Source {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self {
            client,
            ranged_above: RANGED_ABOVE,
            ranges: RANGES,
        }
    }

    /// Objects larger than `above` bytes download as `ranges` concurrent byte ranges.
    pub fn with_ranges(mut self, above: u64, ranges: u64) -> Self {
        self.ranged_above = above;
        self.ranges = ranges.max(1);
        self
    }

    /// A client from the standard AWS configuration chain; `AWS_ENDPOINT_URL` is honoured and
    /// switches to path-style addressing, which emulators need.
    pub async fn from_env() -> Self {
        let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3 = aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(path_style)
            .build();
        Self::new(aws_sdk_s3::Client::from_conf(s3))
    }
}

impl S3Source {
    fn store_err(bucket: &str, key: &str, reason: String) -> InferenceError {
        InferenceError::ObjectStore {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            reason,
        }
    }

    /// A failed request: `ObjectMissing` when S3 said so, else the service's own words.
    fn request_err(
        bucket: &str,
        key: &str,
        missing: bool,
        service: &(dyn std::error::Error + 'static),
    ) -> InferenceError {
        if missing {
            return InferenceError::ObjectMissing {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            };
        }
        Self::store_err(
            bucket,
            key,
            aws_sdk_s3::error::DisplayErrorContext(service).to_string(),
        )
    }

    /// GETs `key` (or the byte range `range`, inclusive) and writes the body to `file` (at
    /// `path`) from its current position.
    async fn get_into(
        &self,
        bucket: &str,
        key: &str,
        range: Option<(u64, u64)>,
        file: &mut tokio::fs::File,
        path: &Path,
    ) -> Result<u64> {
        let mut req = self.client.get_object().bucket(bucket).key(key);
        if let Some((first, last)) = range {
            req = req.range(format!("bytes={first}-{last}"));
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let service = e.into_service_error();
                let missing = service.is_no_such_key();
                return Err(Self::request_err(bucket, key, missing, &service));
            }
        };
        let mut body = resp.body;
        let mut written = 0u64;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| Self::store_err(bucket, key, e.to_string()))?
        {
            file.write_all(&chunk)
                .await
                .map_err(InferenceError::io(path))?;
            written += chunk.len() as u64;
        }
        if let Some((first, last)) = range {
            if written != last - first + 1 {
                return Err(Self::store_err(
                    bucket,
                    key,
                    format!("range {first}-{last} returned {written} bytes"),
                ));
            }
        }
        Ok(written)
    }

    async fn object_size(&self, bucket: &str, key: &str) -> Result<Option<u64>> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(h) => Ok(h.content_length().and_then(|n| u64::try_from(n).ok())),
            Err(e) => {
                let service = e.into_service_error();
                let missing = service.is_not_found();
                Err(Self::request_err(bucket, key, missing, &service))
            }
        }
    }
}

impl ObjectSource for S3Source {
    fn fetch_to<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        dest: &'a Path,
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let size = self.object_size(bucket, key).await?;
            let mut file = tokio::fs::File::create(dest)
                .await
                .map_err(InferenceError::io(dest))?;
            let written = match size {
                Some(size) if size > self.ranged_above => {
                    file.set_len(size).await.map_err(InferenceError::io(dest))?;
                    let part = size.div_ceil(self.ranges);
                    let ranges = (0..self.ranges)
                        .map(|i| (i * part, ((i + 1) * part).min(size) - 1))
                        .filter(|(first, last)| first <= last);
                    let mut tasks = tokio::task::JoinSet::new();
                    for (first, last) in ranges {
                        let (me, bucket, key) = (self.clone(), bucket.to_owned(), key.to_owned());
                        let dest = dest.to_owned();
                        tasks.spawn(async move {
                            let mut f = tokio::fs::OpenOptions::new()
                                .write(true)
                                .open(&dest)
                                .await
                                .map_err(InferenceError::io(&dest))?;
                            f.seek(std::io::SeekFrom::Start(first))
                                .await
                                .map_err(InferenceError::io(&dest))?;
                            let n = me
                                .get_into(&bucket, &key, Some((first, last)), &mut f, &dest)
                                .await?;
                            f.flush().await.map_err(InferenceError::io(&dest))?;
                            Ok::<u64, InferenceError>(n)
                        });
                    }
                    let mut total = 0;
                    while let Some(done) = tasks.join_next().await {
                        total += done.map_err(|e| {
                            Self::store_err(bucket, key, format!("range task failed: {e}"))
                        })??;
                    }
                    total
                }
                _ => self.get_into(bucket, key, None, &mut file, dest).await?,
            };
            file.sync_all().await.map_err(InferenceError::io(dest))?;
            Ok(written)
        })
    }
}

type Cell = Arc<OnceCell<VerifiedModel>>;

/// Resolves model references once per process; concurrent callers share one download.
#[derive(Debug)]
pub struct ModelStore {
    source: Option<Arc<dyn ObjectSource>>,
    cache_dir: PathBuf,
    resolved: Mutex<HashMap<ModelRef, Cell>>,
}

impl ModelStore {
    /// A store that only serves local directories.
    pub fn local_only() -> Self {
        Self {
            source: None,
            cache_dir: PathBuf::new(),
            resolved: Mutex::default(),
        }
    }

    /// A store that downloads `s3://` references through `source` into `cache_dir`.
    pub fn new(source: Arc<dyn ObjectSource>, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            source: Some(source),
            cache_dir: cache_dir.into(),
            resolved: Mutex::default(),
        }
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Returns the verified local directory of `model`, downloading it first if needed.
    pub async fn resolve(&self, model: &ModelRef) -> Result<VerifiedModel> {
        let cell = {
            let mut map = self
                .resolved
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            map.entry(model.clone()).or_default().clone()
        };
        // A failed attempt leaves the cell empty, so the next caller tries again.
        cell.get_or_try_init(|| self.resolve_uncached(model))
            .await
            .cloned()
    }

    async fn resolve_uncached(&self, model: &ModelRef) -> Result<VerifiedModel> {
        match model {
            ModelRef::Local(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || VerifiedModel::open(&dir))
                    .await
                    .map_err(|e| InferenceError::Run(format!("verification task failed: {e}")))?
            }
            ModelRef::S3 { bucket, prefix } => {
                let source = self.source.as_ref().ok_or_else(|| {
                    InferenceError::BadModelRef(format!(
                        "{model}: this model store has no S3 access configured"
                    ))
                })?;
                self.download(source.as_ref(), bucket, prefix).await
            }
        }
    }

    async fn download(
        &self,
        source: &dyn ObjectSource,
        bucket: &str,
        prefix: &str,
    ) -> Result<VerifiedModel> {
        let dir = self.cache_dir.join(bucket).join(prefix);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(InferenceError::io(&dir))?;

        let manifest_tmp = temp_path(&dir, MANIFEST_FILE);
        source
            .fetch_to(bucket, &format!("{prefix}/{MANIFEST_FILE}"), &manifest_tmp)
            .await
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&manifest_tmp);
            })?;
        let bytes = tokio::fs::read(&manifest_tmp)
            .await
            .map_err(InferenceError::io(&manifest_tmp))?;
        let manifest = Manifest::parse(&bytes, &manifest_tmp).inspect_err(|_| {
            let _ = std::fs::remove_file(&manifest_tmp);
        })?;

        let mut fetched = 0usize;
        for entry in &manifest.files {
            let dest = dir.join(&entry.path);
            if let Some(parent) = dest.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(InferenceError::io(parent))?;
            }
            if verify_blocking(&dest, entry).await.is_ok() {
                continue; // cached by an earlier process and still intact
            }
            let tmp = temp_path(&dir, &entry.path);
            let key = format!("{prefix}/{}", entry.path);
            let checked = async {
                source.fetch_to(bucket, &key, &tmp).await?;
                verify_blocking(&tmp, entry).await
            }
            .await;
            if let Err(e) = checked {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
            tokio::fs::rename(&tmp, &dest)
                .await
                .map_err(InferenceError::io(&dest))?;
            fetched += 1;
        }
        // The manifest goes last: a directory with a manifest is complete.
        tokio::fs::rename(&manifest_tmp, dir.join(MANIFEST_FILE))
            .await
            .map_err(InferenceError::io(&dir))?;
        tracing::info!(
            model = %manifest.name,
            files_fetched = fetched,
            files_cached = manifest.files.len() - fetched,
            dir = %dir.display(),
            "model ready"
        );
        Ok(VerifiedModel { dir, manifest })
    }
}

async fn verify_blocking(path: &Path, entry: &crate::manifest::ManifestFile) -> Result<()> {
    let (path, entry) = (path.to_owned(), entry.clone());
    tokio::task::spawn_blocking(move || verify_file(&path, &entry))
        .await
        .map_err(|e| InferenceError::Run(format!("verification task failed: {e}")))?
}

/// A unique sibling path for a download in progress (renamed into place when verified).
fn temp_path(dir: &Path, name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let flat = name.replace('/', "_");
    dir.join(format!(
        ".{flat}.{}.{}.part",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_refs() {
        assert_eq!(
            "s3://models/minilm/1.0.0/".parse::<ModelRef>().unwrap(),
            ModelRef::S3 {
                bucket: "models".into(),
                prefix: "minilm/1.0.0".into()
            }
        );
        assert_eq!(
            "models/minilm".parse::<ModelRef>().unwrap(),
            ModelRef::Local("models/minilm".into())
        );
        for bad in ["s3://bucket", "s3:///x", "s3://b/../x", "http://x/y", ""] {
            assert!(
                matches!(bad.parse::<ModelRef>(), Err(InferenceError::BadModelRef(_))),
                "{bad}"
            );
        }
    }
}
