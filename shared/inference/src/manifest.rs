//! `manifest.json`: what a model directory holds and how to check it.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{InferenceError, Result};

pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Model id reported to callers, e.g. `all-minilm-l6-v2-int8`.
    pub name: String,
    pub version: String,
    pub kind: ModelKind,
    pub files: Vec<ManifestFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<EncoderSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<crate::generator::GeneratorSpec>,
    /// Thresholds that depend on this model's similarity scale, measured for it.
    #[serde(default, skip_serializing_if = "Calibration::is_empty")]
    pub calibration: Calibration,
    /// Free-form provenance (package, license); informational only.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub source: serde_json::Value,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Encoder,
    Classifier,
    Generator,
}

/// Per-model thresholds: cosine scales differ between encoders (MiniLM's unrelated pairs sit
/// near 0.1, USE's near 0.2), so a threshold tuned for one is wrong for another.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    /// Support: below this cosine for the best hit, the help centre has no answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_found_similarity: Option<f32>,
    /// Support: a message at least this close to one of a handoff intent's examples hands
    /// off even when an article is closer ("…refund by Friday or I take legal action").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_example_similarity: Option<f32>,
}

impl Calibration {
    pub fn is_empty(&self) -> bool {
        self.not_found_similarity.is_none() && self.handoff_example_similarity.is_none()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    pub path: String,
    pub sha256: String,
    #[serde(default)]
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    Mean,
    Cls,
    /// The graph pools itself: its output is `[batch, dimension]`.
    Graph,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EncoderSpec {
    pub pooling: Pooling,
    pub normalize: bool,
    /// Tokens per input including special tokens; longer inputs are truncated.
    pub max_length: usize,
    pub dimension: usize,
    #[serde(default = "default_model_file")]
    pub model_file: String,
    #[serde(default = "default_tokenizer_file")]
    pub tokenizer_file: String,
}

fn default_model_file() -> String {
    "model.onnx".into()
}
fn default_tokenizer_file() -> String {
    "tokenizer.json".into()
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(InferenceError::ManifestMissing { path })
            }
            Err(e) => return Err(InferenceError::io(path)(e)),
        };
        Self::parse(&bytes, &path)
    }

    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| InferenceError::ManifestInvalid {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        manifest.validate(path)?;
        Ok(manifest)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let invalid = |reason: String| InferenceError::ManifestInvalid {
            path: path.to_owned(),
            reason,
        };
        for f in &self.files {
            // A manifest may come from S3; never let it name a file outside its directory.
            let p = Path::new(&f.path);
            if f.path.is_empty()
                || p.is_absolute()
                || p.components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(invalid(format!(
                    "file path {:?} is not a plain relative path",
                    f.path
                )));
            }
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(format!(
                    "sha256 of {} is not 64 hex digits",
                    f.path
                )));
            }
        }
        if self.kind == ModelKind::Encoder {
            let spec = self
                .encoder
                .as_ref()
                .ok_or_else(|| invalid("an encoder manifest needs an `encoder` section".into()))?;
            for needed in [&spec.model_file, &spec.tokenizer_file] {
                if !self.files.iter().any(|f| &f.path == needed) {
                    return Err(invalid(format!("{needed} is not listed in `files`")));
                }
            }
            if spec.max_length < 3 || spec.dimension == 0 {
                return Err(invalid("max_length must be ≥ 3 and dimension > 0".into()));
            }
            let c = &self.calibration;
            for (name, t) in [
                ("not_found_similarity", c.not_found_similarity),
                ("handoff_example_similarity", c.handoff_example_similarity),
            ] {
                if t.is_some_and(|t| !(-1.0..=1.0).contains(&t)) {
                    return Err(invalid(format!(
                        "calibration.{name} {t:?} is not a cosine in [-1, 1]"
                    )));
                }
            }
        }
        if self.kind == ModelKind::Generator {
            let spec = self.generator.as_ref().ok_or_else(|| {
                invalid("a generator manifest needs a `generator` section".into())
            })?;
            for needed in ["model.onnx", "tokenizer.json", "generation.json"] {
                if !self.files.iter().any(|f| f.path == needed) {
                    return Err(invalid(format!("{needed} is not listed in `files`")));
                }
            }
            if spec.layers == 0 || spec.kv_heads == 0 || spec.head_dim == 0 || spec.vocab == 0 {
                return Err(invalid(
                    "generator layers, kv_heads, head_dim and vocab must be > 0".into(),
                ));
            }
        }
        Ok(())
    }

    /// Checks every listed file in `dir` against its sha256.
    pub fn verify_dir(&self, dir: &Path) -> Result<()> {
        for f in &self.files {
            verify_file(&dir.join(&f.path), f)?;
        }
        Ok(())
    }
}

/// Checks one file against its manifest entry.
pub fn verify_file(path: &Path, entry: &ManifestFile) -> Result<()> {
    let actual = match sha256_file(path) {
        Ok(h) => h,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(InferenceError::ModelFileMissing {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(InferenceError::io(path)(e)),
    };
    if !actual.eq_ignore_ascii_case(&entry.sha256) {
        return Err(InferenceError::ChecksumMismatch {
            file: entry.path.clone(),
            expected: entry.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A model directory whose manifest was read and whose files were verified.
#[derive(Debug, Clone)]
pub struct VerifiedModel {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl VerifiedModel {
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = Manifest::read(dir)?;
        manifest.verify_dir(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            manifest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_json(file_path: &str, sha: &str) -> String {
        format!(
            r#"{{"name":"m","version":"1","kind":"encoder","files":[{{"path":"{file_path}","sha256":"{sha}"}},{{"path":"tokenizer.json","sha256":"{sha}"}}],
               "encoder":{{"pooling":"mean","normalize":true,"max_length":16,"dimension":4}}}}"#
        )
    }

    #[test]
    fn rejects_paths_that_escape_the_model_dir() {
        let sha = "0".repeat(64);
        for bad in ["../model.onnx", "/etc/passwd", "a/../../b"] {
            let err = Manifest::parse(manifest_json(bad, &sha).as_bytes(), Path::new("m.json"))
                .unwrap_err();
            assert!(
                matches!(err, InferenceError::ManifestInvalid { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn encoder_manifest_must_list_its_model_file() {
        let sha = "0".repeat(64);
        let err = Manifest::parse(manifest_json("other.onnx", &sha).as_bytes(), Path::new("m"))
            .unwrap_err();
        assert!(
            err.to_string().contains("model.onnx is not listed"),
            "{err}"
        );
    }

    #[test]
    fn sha256_matches_the_published_test_vector() {
        // FIPS 180-2 test vector for "abc".
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let entry = ManifestFile {
            path: "abc".into(),
            sha256: "0".repeat(64),
            bytes: None,
        };
        assert!(matches!(
            verify_file(&p, &entry),
            Err(InferenceError::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            verify_file(&dir.path().join("nope"), &entry),
            Err(InferenceError::ModelFileMissing { .. })
        ));
    }
}
