//! Hybrid retrieval over the knowledge-base chunks: BM25 and dense (cosine over unit
//! embeddings) each rank candidates, reciprocal-rank fusion merges the two lists
//! (score = Σ 1/(k + rank), k = 60 as in Cormack et al.), and the dense similarity of the best
//! fused hit decides whether the knowledge base has the answer at all.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shopmind_artifacts as artifact;
use shopmind_storage::BlobStore;

use crate::bm25::Bm25;
use crate::error::SupportError;
use crate::kb::Chunk;

/// The artifact kind of knowledge-base indexes (`indexes/kb/…`).
pub const KB_KIND: &str = "kb";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrieveConfig {
    /// Candidates taken from each ranker before fusion.
    pub candidates: usize,
    pub rrf_k: f32,
    /// Below this cosine for the best hit the answer is "not found in the knowledge base".
    pub min_similarity: f32,
    /// Hits returned.
    pub top: usize,
}

impl Default for RetrieveConfig {
    fn default() -> Self {
        Self {
            candidates: 20,
            rrf_k: 60.0,
            min_similarity: 0.35,
            top: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Index into [`KbIndex::chunks`].
    pub chunk: usize,
    pub rrf: f32,
    /// Cosine of the query and the chunk.
    pub similarity: f32,
    /// 1-based ranks in each list (None when the ranker did not return the chunk).
    pub dense_rank: Option<usize>,
    pub bm25_rank: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retrieved {
    pub hits: Vec<Hit>,
    /// The best hit's cosine (0 when nothing matched).
    pub confidence: f32,
    /// Whether `confidence` reaches the threshold.
    pub found: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KbIndex {
    chunks: Vec<Chunk>,
    dim: usize,
    #[serde(skip)]
    vectors: Vec<f32>,
    bm25: Bm25,
}

impl KbIndex {
    /// `vectors` holds one embedding of `dim` values per chunk (normalised here).
    pub fn new(
        chunks: Vec<Chunk>,
        dim: usize,
        mut vectors: Vec<f32>,
    ) -> Result<Self, SupportError> {
        if dim == 0 || vectors.len() != chunks.len() * dim {
            return Err(SupportError::Invalid(format!(
                "{} values for {} chunks of dimension {dim}",
                vectors.len(),
                chunks.len()
            )));
        }
        if vectors.iter().any(|x| !x.is_finite()) {
            return Err(SupportError::Invalid("non-finite embedding value".into()));
        }
        for row in vectors.chunks_exact_mut(dim) {
            shopmind_inference::l2_normalize(row);
        }
        let texts: Vec<String> = chunks.iter().map(Chunk::indexed_text).collect();
        let bm25 = Bm25::build(&texts);
        Ok(Self {
            chunks,
            dim,
            vectors,
            bm25,
        })
    }

    /// Writes this index as a new `kb` version (chunks, vectors, the BM25 postings) and moves
    /// `LATEST` to it. The version name comes from the time and the content.
    pub async fn publish(
        &self,
        blobs: &dyn BlobStore,
        created_at: i64,
        model: &str,
    ) -> Result<String, SupportError> {
        let mut chunks = Vec::new();
        for c in &self.chunks {
            serde_json::to_writer(&mut chunks, c)
                .map_err(|e| SupportError::Invalid(e.to_string()))?;
            chunks.push(b'\n');
        }
        let mut vectors = Vec::with_capacity(self.vectors.len() * 4);
        for x in &self.vectors {
            vectors.extend_from_slice(&x.to_le_bytes());
        }
        let bm25 =
            serde_json::to_vec(&self.bm25).map_err(|e| SupportError::Invalid(e.to_string()))?;
        let mut all = chunks.clone();
        all.extend_from_slice(&vectors);
        let version = artifact::version_name(created_at, &artifact::sha256_hex(&all));
        let meta = serde_json::json!({
            "model": model, "dimension": self.dim, "chunks": self.chunks.len(),
            "articles": self.chunks.iter().map(|c| c.article_id.as_str()).collect::<std::collections::HashSet<_>>().len(),
        });
        artifact::publish(
            blobs,
            KB_KIND,
            &version,
            created_at,
            vec![
                ("chunks.jsonl".into(), Bytes::from(chunks)),
                ("vectors.f32".into(), Bytes::from(vectors)),
                ("bm25.json".into(), Bytes::from(bm25)),
            ],
            meta,
        )
        .await?;
        Ok(version)
    }

    /// Loads and verifies one version.
    pub async fn load(blobs: &dyn BlobStore, version: &str) -> Result<Self, SupportError> {
        let (manifest, mut files) = artifact::load(blobs, KB_KIND, version).await?;
        let corrupt = |reason: String| {
            SupportError::Artifact(artifact::ArtifactError::Corrupt {
                what: format!("kb {version}"),
                reason,
            })
        };
        let dim = manifest.meta["dimension"]
            .as_u64()
            .ok_or_else(|| corrupt("no dimension in the manifest".into()))?
            as usize;
        let text = artifact::take_file(&mut files, "chunks.jsonl")?;
        let chunks: Vec<Chunk> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(serde_json::from_slice)
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt(e.to_string()))?;
        let raw = artifact::take_file(&mut files, "vectors.f32")?;
        let vectors: Vec<f32> = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let bm25: Bm25 = serde_json::from_slice(&artifact::take_file(&mut files, "bm25.json")?)
            .map_err(|e| corrupt(e.to_string()))?;
        if dim == 0 || vectors.len() != chunks.len() * dim || bm25.len() != chunks.len() {
            return Err(corrupt(format!(
                "{} chunks, {} values of dimension {dim}, {} BM25 documents",
                chunks.len(),
                vectors.len(),
                bm25.len()
            )));
        }
        Ok(Self {
            chunks,
            dim,
            vectors,
            bm25,
        })
    }

    /// The version `LATEST` points at, if any.
    pub async fn latest_version(blobs: &dyn BlobStore) -> Result<Option<String>, SupportError> {
        Ok(artifact::latest(blobs, KB_KIND).await?)
    }

    /// Whether any article is written in `locale`.
    pub fn has_locale(&self, locale: &str) -> bool {
        self.chunks.iter().any(|c| c.locale == locale)
    }

    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    fn in_locale(&self, i: usize, locale: Option<&str>) -> bool {
        locale.is_none_or(|l| self.chunks[i].locale == l)
    }

    /// The `k` chunks of `locale` nearest `query` (a unit vector), with their cosines.
    pub fn dense_ranking(
        &self,
        query: &[f32],
        locale: Option<&str>,
        k: usize,
    ) -> Vec<(usize, f32)> {
        if query.len() != self.dim {
            return Vec::new();
        }
        let mut dense: Vec<(usize, f32)> = (0..self.chunks.len())
            .filter(|&i| self.in_locale(i, locale))
            .map(|i| {
                (
                    i,
                    crate::dot(&self.vectors[i * self.dim..(i + 1) * self.dim], query),
                )
            })
            .collect();
        dense.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        dense.truncate(k);
        dense
    }

    /// The `k` best chunks of `locale` by BM25 (only chunks sharing a term with the query).
    pub fn lexical_ranking(&self, query: &str, locale: Option<&str>, k: usize) -> Vec<usize> {
        self.bm25
            .search(query, self.chunks.len())
            .into_iter()
            .map(|(i, _)| i)
            .filter(|&i| self.in_locale(i, locale))
            .take(k)
            .collect()
    }

    /// Searches chunks of `locale` (all chunks when None). `query_vector` is the query's
    /// embedding from the same encoder.
    pub fn search(
        &self,
        query: &str,
        query_vector: &[f32],
        locale: Option<&str>,
        cfg: &RetrieveConfig,
    ) -> Retrieved {
        let none = Retrieved {
            hits: Vec::new(),
            confidence: 0.0,
            found: false,
        };
        if query_vector.len() != self.dim || self.chunks.is_empty() {
            return none;
        }
        let mut q = query_vector.to_vec();
        shopmind_inference::l2_normalize(&mut q);
        let similarity = |i: usize| crate::dot(&self.vectors[i * self.dim..(i + 1) * self.dim], &q);
        let dense = self.dense_ranking(&q, locale, cfg.candidates);
        let lexical = self.lexical_ranking(query, locale, cfg.candidates);

        let mut fused: std::collections::HashMap<usize, Hit> = std::collections::HashMap::new();
        for (rank, (i, s)) in dense.iter().enumerate() {
            let h = fused.entry(*i).or_insert(Hit {
                chunk: *i,
                rrf: 0.0,
                similarity: *s,
                dense_rank: None,
                bm25_rank: None,
            });
            h.rrf += 1.0 / (cfg.rrf_k + rank as f32 + 1.0);
            h.dense_rank = Some(rank + 1);
        }
        for (rank, i) in lexical.iter().enumerate() {
            let h = fused.entry(*i).or_insert_with(|| Hit {
                chunk: *i,
                rrf: 0.0,
                similarity: similarity(*i),
                dense_rank: None,
                bm25_rank: None,
            });
            h.rrf += 1.0 / (cfg.rrf_k + rank as f32 + 1.0);
            h.bm25_rank = Some(rank + 1);
        }
        let mut hits: Vec<Hit> = fused.into_values().collect();
        hits.sort_by(|a, b| {
            b.rrf
                .total_cmp(&a.rrf)
                .then_with(|| b.similarity.total_cmp(&a.similarity))
                .then_with(|| a.chunk.cmp(&b.chunk))
        });
        hits.truncate(cfg.top);
        let confidence = hits.first().map_or(0.0, |h| h.similarity.max(0.0));
        Retrieved {
            found: !hits.is_empty() && confidence >= cfg.min_similarity,
            confidence,
            hits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &str, locale: &str, text: &str) -> Chunk {
        Chunk {
            article_id: id.into(),
            seq: 0,
            title: id.into(),
            heading: String::new(),
            url: None,
            locale: locale.into(),
            text: text.into(),
        }
    }

    fn index() -> KbIndex {
        // 3-d "embeddings" chosen by hand so each ranker's order is known.
        let chunks = vec![
            chunk(
                "returns",
                "en",
                "return an item within 30 days for a refund",
            ),
            chunk("shipping", "en", "parcels ship in 2 days by courier"),
            chunk("warranty", "en", "the warranty covers defects for 2 years"),
            chunk("returns-zh", "zh-CN", "退货 三十天"),
        ];
        let vectors = vec![
            0.9, 0.1, 0.0, //
            0.1, 0.9, 0.0, //
            0.6, 0.0, 0.8, //
            0.9, 0.1, 0.0,
        ];
        KbIndex::new(chunks, 3, vectors).unwrap()
    }

    #[test]
    fn fusion_follows_reciprocal_ranks() {
        let idx = index();
        let cfg = RetrieveConfig {
            top: 3,
            ..RetrieveConfig::default()
        };
        // Dense order: returns (cos≈0.99), warranty, shipping. BM25 order: warranty ("defects",
        // "warranty"), then returns ("refund"); shipping has no query term.
        let r = idx.search(
            "refund warranty defects",
            &[1.0, 0.0, 0.2],
            Some("en"),
            &cfg,
        );
        let order: Vec<&str> = r
            .hits
            .iter()
            .map(|h| idx.chunks()[h.chunk].article_id.as_str())
            .collect();
        // returns: 1/61 + 1/62; warranty: 1/62 + 1/61 — a tie, broken by similarity (returns).
        assert_eq!(order, ["returns", "warranty", "shipping"]);
        let (a, b) = (&r.hits[0], &r.hits[1]);
        assert!((a.rrf - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-6);
        assert!((b.rrf - a.rrf).abs() < 1e-6);
        assert_eq!((a.dense_rank, a.bm25_rank), (Some(1), Some(2)));
        assert_eq!(r.hits[2].bm25_rank, None);
        assert!(r.found && r.confidence > 0.9);
    }

    #[tokio::test]
    async fn publish_and_load_round_trip_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = shopmind_storage::embedded::EmbeddedStore::open(dir.path()).unwrap();
        let idx = index();
        let v = idx
            .publish(&store, 1_795_845_600, "test-model")
            .await
            .unwrap();
        assert_eq!(
            KbIndex::latest_version(&store).await.unwrap(),
            Some(v.clone())
        );
        let back = KbIndex::load(&store, &v).await.unwrap();
        assert_eq!(back.chunks(), idx.chunks());
        let q = [1.0, 0.0, 0.2];
        let cfg = RetrieveConfig::default();
        assert_eq!(
            back.search("refund", &q, None, &cfg),
            idx.search("refund", &q, None, &cfg)
        );
        // Versions are immutable; a damaged file is refused.
        assert!(idx
            .publish(&store, 1_795_845_600, "test-model")
            .await
            .is_err());
        store
            .put_blob(
                &format!("indexes/kb/v/{v}/bm25.json"),
                bytes::Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();
        assert!(matches!(
            KbIndex::load(&store, &v).await,
            Err(SupportError::Artifact(_))
        ));
    }

    #[test]
    fn locale_filter_and_the_not_found_threshold() {
        let idx = index();
        let cfg = RetrieveConfig::default();
        let r = idx.search("退货", &[1.0, 0.0, 0.0], Some("zh-CN"), &cfg);
        assert_eq!(r.hits.len(), 1);
        assert_eq!(idx.chunks()[r.hits[0].chunk].article_id, "returns-zh");
        // A query pointing away from every chunk: hits exist but nothing is "found".
        let r = idx.search("gift cards", &[0.0, 0.0, -1.0], Some("en"), &cfg);
        assert!(!r.found && r.confidence < cfg.min_similarity);
        assert!(!idx.search("x", &[1.0], None, &cfg).found);
        assert!(KbIndex::new(vec![chunk("a", "en", "x")], 3, vec![1.0]).is_err());
    }
}
