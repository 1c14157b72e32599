//! Intents: a catalog of labelled example questions (configuration in S3, one JSON file),
//! a linear head trained on their embeddings, and an out-of-scope outcome below a confidence.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shopmind_artifacts as artifact;
use shopmind_storage::BlobStore;

use crate::error::SupportError;
use crate::head::{train, LinearHead, TrainConfig};

/// The artifact kind of trained intent models (`indexes/intents/…`).
pub const INTENTS_KIND: &str = "intents";

/// The label returned when no intent is confident enough.
pub const OUT_OF_SCOPE: &str = "out_of_scope";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentSpec {
    pub name: String,
    /// Questions of this intent go to a human whatever the knowledge base says.
    #[serde(default)]
    pub handoff: bool,
    pub examples: Vec<String>,
}

/// `{"intents": [{"name": …, "handoff": false, "examples": […]}]}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentCatalog {
    pub intents: Vec<IntentSpec>,
}

/// One labelled example, flattened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemplar {
    pub intent: String,
    pub text: String,
}

impl IntentCatalog {
    pub fn parse(bytes: &[u8]) -> Result<Self, SupportError> {
        let c: Self = serde_json::from_slice(bytes)
            .map_err(|e| SupportError::Invalid(format!("intent catalog: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    /// Builds a catalog from labelled rows (e.g. a CSV of text, intent).
    pub fn from_exemplars(rows: &[Exemplar], handoff: &HashSet<String>) -> Self {
        let mut by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for r in rows {
            by.entry(&r.intent).or_default().push(r.text.clone());
        }
        Self {
            intents: by
                .into_iter()
                .map(|(name, examples)| IntentSpec {
                    handoff: handoff.contains(name),
                    name: name.to_owned(),
                    examples,
                })
                .collect(),
        }
    }

    pub fn validate(&self) -> Result<(), SupportError> {
        let bad = |why: String| Err(SupportError::Invalid(format!("intent catalog: {why}")));
        if self.intents.len() < 2 {
            return bad("needs at least two intents".into());
        }
        let mut names = HashSet::new();
        for i in &self.intents {
            if i.name.trim().is_empty() || i.name == OUT_OF_SCOPE {
                return bad(format!("intent name {:?} is not allowed", i.name));
            }
            if !names.insert(i.name.as_str()) {
                return bad(format!("intent {:?} appears twice", i.name));
            }
            if i.examples.iter().all(|e| e.trim().is_empty()) {
                return bad(format!("intent {:?} has no examples", i.name));
            }
        }
        Ok(())
    }

    /// Every non-empty example, in catalog order.
    pub fn exemplars(&self) -> Vec<Exemplar> {
        self.intents
            .iter()
            .flat_map(|i| {
                i.examples
                    .iter()
                    .filter(|e| !e.trim().is_empty())
                    .map(|e| Exemplar {
                        intent: i.name.clone(),
                        text: e.clone(),
                    })
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentPrediction {
    pub name: String,
    pub confidence: f32,
    pub out_of_scope: bool,
    pub handoff: bool,
    /// For a handoff intent: the message's best cosine with that intent's own examples
    /// (None for models trained before they were kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemplar_similarity: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentModel {
    pub head: LinearHead,
    pub handoff: Vec<String>,
    /// Below this probability the question is out of scope.
    pub min_confidence: f32,
    /// Unit embeddings of the handoff intents' examples, by intent: a softmax over a few
    /// intents is confident about anything, so a handoff also needs the message to be close
    /// to what the shop said such a message looks like.
    #[serde(default)]
    pub handoff_examples: Vec<(String, Vec<f32>)>,
}

impl IntentModel {
    /// Trains on `catalog`'s exemplars; `vectors` holds their embeddings in
    /// [`IntentCatalog::exemplars`] order.
    pub fn train(
        catalog: &IntentCatalog,
        vectors: &[f32],
        dim: usize,
        cfg: &TrainConfig,
        min_confidence: f32,
    ) -> Result<Self, SupportError> {
        catalog.validate()?;
        let labels: Vec<String> = catalog.intents.iter().map(|i| i.name.clone()).collect();
        let index: std::collections::HashMap<&str, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let y: Vec<usize> = catalog
            .exemplars()
            .iter()
            .filter_map(|e| index.get(e.intent.as_str()).copied())
            .collect();
        let head = train(vectors, dim, &y, labels, cfg)?;
        let handoff_examples = catalog
            .exemplars()
            .iter()
            .zip(vectors.chunks_exact(dim))
            .filter(|(e, _)| {
                catalog
                    .intents
                    .iter()
                    .any(|i| i.handoff && i.name == e.intent)
            })
            .map(|(e, v)| {
                let mut v = v.to_vec();
                shopmind_inference::l2_normalize(&mut v);
                (e.intent.clone(), v)
            })
            .collect();
        Ok(Self {
            handoff_examples,
            head,
            handoff: catalog
                .intents
                .iter()
                .filter(|i| i.handoff)
                .map(|i| i.name.clone())
                .collect(),
            min_confidence,
        })
    }

    /// Writes this model as a new `intents` version and moves `LATEST` to it.
    pub async fn publish(
        &self,
        blobs: &dyn BlobStore,
        created_at: i64,
    ) -> Result<String, SupportError> {
        let body = serde_json::to_vec(self).map_err(|e| SupportError::Invalid(e.to_string()))?;
        let version = artifact::version_name(created_at, &artifact::sha256_hex(&body));
        let meta =
            serde_json::json!({ "intents": self.head.labels.len(), "dimension": self.head.dim });
        artifact::publish(
            blobs,
            INTENTS_KIND,
            &version,
            created_at,
            vec![("model.json".into(), Bytes::from(body))],
            meta,
        )
        .await?;
        Ok(version)
    }

    pub async fn load(blobs: &dyn BlobStore, version: &str) -> Result<Self, SupportError> {
        let (_, mut files) = artifact::load(blobs, INTENTS_KIND, version).await?;
        let body = artifact::take_file(&mut files, "model.json")?;
        let m: Self = serde_json::from_slice(&body).map_err(|e| {
            SupportError::Artifact(artifact::ArtifactError::Corrupt {
                what: format!("intents {version}"),
                reason: e.to_string(),
            })
        })?;
        m.head.validate()?;
        Ok(m)
    }

    pub async fn latest_version(blobs: &dyn BlobStore) -> Result<Option<String>, SupportError> {
        Ok(artifact::latest(blobs, INTENTS_KIND).await?)
    }

    pub fn classify(&self, vector: &[f32]) -> IntentPrediction {
        match self.head.predict(vector) {
            Some((name, p)) if p >= self.min_confidence => {
                let handoff = self.handoff.iter().any(|h| h == name);
                // Only a handoff prediction needs the examples (and the normalised copy).
                let exemplar_similarity = handoff
                    .then(|| {
                        let mut q = vector.to_vec();
                        shopmind_inference::l2_normalize(&mut q);
                        self.handoff_examples
                            .iter()
                            .filter(|(intent, v)| intent == name && v.len() == q.len())
                            .map(|(_, v)| crate::dot(v, &q))
                            .reduce(f32::max)
                    })
                    .flatten();
                IntentPrediction {
                    handoff,
                    name: name.to_owned(),
                    confidence: p,
                    out_of_scope: false,
                    exemplar_similarity,
                }
            }
            other => IntentPrediction {
                name: OUT_OF_SCOPE.into(),
                confidence: other.map_or(0.0, |(_, p)| p),
                out_of_scope: true,
                handoff: false,
                exemplar_similarity: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogs_are_validated() {
        let ok = br#"{"intents":[{"name":"refund","examples":["money back?"]},{"name":"human","handoff":true,"examples":["agent please"]}]}"#;
        let c = IntentCatalog::parse(ok).unwrap();
        assert_eq!(c.exemplars().len(), 2);
        for bad in [
            &br#"{"intents":[{"name":"a","examples":["x"]}]}"#[..],
            br#"{"intents":[{"name":"a","examples":["x"]},{"name":"a","examples":["y"]}]}"#,
            br#"{"intents":[{"name":"a","examples":["x"]},{"name":"b","examples":[" "]}]}"#,
            br#"{"intents":[{"name":"a","examples":["x"]},{"name":"out_of_scope","examples":["y"]}]}"#,
            br#"{"intents":[{"name":"a","examples":["x"],"colour":1},{"name":"b","examples":["y"]}]}"#,
        ] {
            assert!(IntentCatalog::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn classifies_flags_handoff_and_says_out_of_scope() {
        let c = IntentCatalog::parse(
            br#"{"intents":[{"name":"refund","examples":["a","b"]},{"name":"human","handoff":true,"examples":["c","d"]}]}"#,
        )
        .unwrap();
        // Hand-made 2-d embeddings: refund along x, human along y.
        let vectors = [1.0, 0.1, 0.95, -0.1, 0.1, 1.0, -0.1, 0.95];
        let m = IntentModel::train(&c, &vectors, 2, &TrainConfig::default(), 0.6).unwrap();
        let p = m.classify(&[1.0, 0.0]);
        assert_eq!(
            (p.name.as_str(), p.handoff, p.out_of_scope),
            ("refund", false, false)
        );
        let p = m.classify(&[0.0, 1.0]);
        assert_eq!((p.name.as_str(), p.handoff), ("human", true));
        // Halfway between the two: neither is confident.
        let p = m.classify(&[std::f32::consts::FRAC_1_SQRT_2; 2]);
        assert!(p.out_of_scope && p.name == OUT_OF_SCOPE, "{p:?}");
        assert!(m.classify(&[1.0]).out_of_scope);
    }
}
