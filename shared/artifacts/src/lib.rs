//! Versioned, immutable artifacts (indexes, trained heads) in the blob store:
//!
//! ```text
//! indexes/<kind>/v/<version>/<file>...      the data files, written first
//! indexes/<kind>/v/<version>/manifest.json  their sizes and sha256, written after them
//! indexes/<kind>/LATEST                     {"version": ...}, moved last
//! ```
//!
//! A reader follows the pointer, reads the manifest and checks every file against it, so a
//! half-written version is never visible and a damaged one is refused, never half-used.

mod live;
pub use live::Live;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shopmind_storage::BlobStore;

/// What can go wrong reading or writing an artifact.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error(transparent)]
    Storage(#[from] shopmind_storage::StorageError),
    /// A file that does not match its manifest, or a manifest that does not parse.
    #[error("{what} is corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    /// Versions are immutable: publishing one that exists is refused.
    #[error("version {0} already exists; versions are immutable")]
    VersionExists(String),
    /// A kind, version or file name that is not a plain name.
    #[error("{0}")]
    Invalid(String),
}

pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactFile {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactManifest {
    pub format: u32,
    pub kind: String,
    pub version: String,
    /// Unix seconds.
    pub created_at: i64,
    pub files: Vec<ArtifactFile>,
    /// Kind-specific facts (model, dimension, counts).
    #[serde(default)]
    pub meta: serde_json::Value,
}

/// The `LATEST` pointer's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    pub version: String,
}

fn check_segment(what: &str, s: &str) -> Result<(), ArtifactError> {
    let ok = !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(ArtifactError::Invalid(format!(
            "{what} {s:?} must be 1-100 characters of A-Z, a-z, 0-9, '-', '_', '.'"
        )))
    }
}

pub fn pointer_key(kind: &str) -> String {
    format!("indexes/{kind}/LATEST")
}

fn version_prefix(kind: &str, version: &str) -> String {
    format!("indexes/{kind}/v/{version}/")
}

/// A sortable, unique version name: the UTC time, then a hash of the content.
pub fn version_name(created_at: i64, content_hash: &str) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(created_at)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        &content_hash[..content_hash.len().min(12)]
    )
}

/// Whether two [`version_name`]s carry the same content hash (whatever their times).
pub fn same_content(a: &str, b: &str) -> bool {
    let hash = |v: &str| v.split_once("Z-").map(|(_, h)| h.to_owned());
    matches!((hash(a), hash(b)), (Some(x), Some(y)) if !x.is_empty() && x == y)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Writes the files, then the manifest, then moves the pointer. Refuses a version that exists.
pub async fn publish(
    blobs: &dyn BlobStore,
    kind: &str,
    version: &str,
    created_at: i64,
    files: Vec<(String, Bytes)>,
    meta: serde_json::Value,
) -> Result<ArtifactManifest, ArtifactError> {
    let manifest = write_version(blobs, kind, version, created_at, files, meta).await?;
    move_pointer(blobs, kind, version).await?;
    Ok(manifest)
}

/// Points `LATEST` at `version` unless it names a newer one already (names sort by time);
/// whether it moved. For a build that finishes after a later one was published (a fanned-out
/// catalog whose last shard came in after the next upload's index), so readers never go back.
/// Not atomic: two publishers racing within one read-and-write may still interleave.
pub async fn move_pointer_unless_newer(
    blobs: &dyn BlobStore,
    kind: &str,
    version: &str,
) -> Result<bool, ArtifactError> {
    if latest(blobs, kind)
        .await?
        .is_some_and(|current| current.as_str() > version)
    {
        return Ok(false);
    }
    move_pointer(blobs, kind, version).await?;
    Ok(true)
}

/// Writes the files, then the manifest, and leaves the pointer alone. Refuses a version that
/// exists.
pub async fn write_version(
    blobs: &dyn BlobStore,
    kind: &str,
    version: &str,
    created_at: i64,
    files: Vec<(String, Bytes)>,
    meta: serde_json::Value,
) -> Result<ArtifactManifest, ArtifactError> {
    check_segment("kind", kind)?;
    check_segment("version", version)?;
    let prefix = version_prefix(kind, version);
    let manifest_key = format!("{prefix}manifest.json");
    if blobs.get_blob(&manifest_key).await?.is_some() {
        return Err(ArtifactError::VersionExists(version.to_owned()));
    }
    let mut listed = Vec::with_capacity(files.len());
    for (name, body) in files {
        check_segment("file name", &name)?;
        listed.push(ArtifactFile {
            name: name.clone(),
            bytes: body.len() as u64,
            sha256: sha256_hex(&body),
        });
        blobs.put_blob(&format!("{prefix}{name}"), body).await?;
    }
    let manifest = ArtifactManifest {
        format: FORMAT,
        kind: kind.to_owned(),
        version: version.to_owned(),
        created_at,
        files: listed,
        meta,
    };
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| ArtifactError::Corrupt {
        what: manifest_key.clone(),
        reason: e.to_string(),
    })?;
    blobs.put_blob(&manifest_key, Bytes::from(body)).await?;
    Ok(manifest)
}

/// Points readers at `version` (also how an operator rolls back).
pub async fn move_pointer(
    blobs: &dyn BlobStore,
    kind: &str,
    version: &str,
) -> Result<(), ArtifactError> {
    let body = serde_json::to_vec(&Pointer {
        version: version.to_owned(),
    })
    .map_err(|e| ArtifactError::Invalid(e.to_string()))?;
    blobs
        .put_blob(&pointer_key(kind), Bytes::from(body))
        .await?;
    Ok(())
}

/// The version `LATEST` names, if any.
pub async fn latest(blobs: &dyn BlobStore, kind: &str) -> Result<Option<String>, ArtifactError> {
    let key = pointer_key(kind);
    let Some(body) = blobs.get_blob(&key).await? else {
        return Ok(None);
    };
    let p: Pointer = serde_json::from_slice(&body).map_err(|e| ArtifactError::Corrupt {
        what: key.clone(),
        reason: e.to_string(),
    })?;
    check_segment("version", &p.version)?;
    Ok(Some(p.version))
}

/// Reads a version's manifest and every file, each checked against its size and sha256.
pub async fn load(
    blobs: &dyn BlobStore,
    kind: &str,
    version: &str,
) -> Result<(ArtifactManifest, Vec<(String, Bytes)>), ArtifactError> {
    load_files(blobs, kind, version, |_| true).await
}

/// [`load`], reading (and checking) only the files `wanted` names: a reader that needs one
/// small file of a large artifact does not download the rest.
pub async fn load_files(
    blobs: &dyn BlobStore,
    kind: &str,
    version: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<(ArtifactManifest, Vec<(String, Bytes)>), ArtifactError> {
    check_segment("version", version)?;
    let prefix = version_prefix(kind, version);
    let manifest_key = format!("{prefix}manifest.json");
    let corrupt = |what: &str, reason: String| ArtifactError::Corrupt {
        what: what.to_owned(),
        reason,
    };
    let body = blobs
        .get_blob(&manifest_key)
        .await?
        .ok_or_else(|| corrupt(&manifest_key, "the manifest is missing".into()))?;
    let manifest: ArtifactManifest =
        serde_json::from_slice(&body).map_err(|e| corrupt(&manifest_key, e.to_string()))?;
    if manifest.format != FORMAT || manifest.kind != kind || manifest.version != version {
        return Err(corrupt(
            &manifest_key,
            format!(
                "describes format {} kind {} version {}",
                manifest.format, manifest.kind, manifest.version
            ),
        ));
    }
    // The files download at once, each hashed as its parts arrive (or, on a backend that
    // does not stream, on the blocking pool as soon as it is in), so a large index's
    // transfers overlap one another and its verification.
    let (prefix, corrupt) = (&prefix, &corrupt);
    let files = manifest
        .files
        .iter()
        .filter(|f| wanted(&f.name))
        .map(|f| async move {
            let key = format!("{prefix}{}", f.name);
            let (data, hash) = blobs
                .get_blob_sha256(&key)
                .await?
                .ok_or_else(|| corrupt(&key, "missing".into()))?;
            let hash = hex::encode(hash);
            if data.len() as u64 != f.bytes || hash != f.sha256 {
                return Err(corrupt(
                    &key,
                    format!(
                        "{} bytes with a different sha256 than the manifest's {} bytes",
                        data.len(),
                        f.bytes
                    ),
                ));
            }
            Ok((f.name.clone(), data))
        });
    let files = futures::future::try_join_all(files).await?;
    Ok((manifest, files))
}

pub fn take_file(files: &mut Vec<(String, Bytes)>, name: &str) -> Result<Bytes, ArtifactError> {
    let i = files
        .iter()
        .position(|(n, _)| n == name)
        .ok_or_else(|| ArtifactError::Corrupt {
            what: name.to_owned(),
            reason: "not listed in the manifest".into(),
        })?;
    Ok(files.swap_remove(i).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_sort_by_time_and_compare_by_content() {
        // 1796655861 is 2026-12-07T15:04:21Z (`date -u -d @1796655861`).
        let a = version_name(1_796_655_861, "ee3d9ccf4937aa");
        assert_eq!(a, "20261207T150421Z-ee3d9ccf4937");
        let later = version_name(1_796_659_461, "ee3d9ccf4937aa");
        assert!(later > a);
        assert!(same_content(&a, &later));
        assert!(!same_content(
            &a,
            &version_name(1_796_655_861, "ee3d9ccf4938")
        ));
        // Names without a content hash are never "the same".
        assert!(!same_content("v1", "v1"));
        assert!(!same_content("20261207T150421Z-", "20261207T150421Z-"));
    }
}
