//! Hybrid retrieval over the knowledge-base chunks: every chunk is scored by its cosine with
//! the query (unit embeddings) plus `lexical_weight` × its BM25 score relative to the best
//! BM25 score for this query, and the cosine of the best hit decides whether the knowledge
//! base has the answer at all.
//!
//! Why a weighted sum and not reciprocal-rank fusion: BM25 ranks every chunk sharing any
//! term (for Chinese, any character), and RRF gives the first of those a full rank's credit
//! however weak the match; on the development help centre that put an unrelated same-language
//! article above the right one for 3 of 5 Chinese questions. A relative BM25 score keeps the
//! lexical signal where it is strong (a product or brand name) and lets weak overlaps fade.
//!
//! The shopper's locale is a preference, not a filter: with a multilingual encoder a Chinese
//! question finds an English article, and an article written in the shopper's language wins
//! a close call (`locale_bonus` on its score).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shopmind_artifacts as artifact;
use shopmind_storage::BlobStore;

use crate::bm25::Bm25;
use crate::error::SupportError;
use crate::kb::Chunk;
use crate::translate::{kb_language, Language};

/// The artifact kind of knowledge-base indexes (`indexes/kb/…`).
pub const KB_KIND: &str = "kb";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrieveConfig {
    /// Weight of the relative BM25 score (0..1) beside the cosine.
    pub lexical_weight: f32,
    /// Added to the score of chunks in the shopper's locale.
    pub locale_bonus: f32,
    /// Below this cosine for the best hit the answer is "not found in the knowledge base".
    pub min_similarity: f32,
    /// Hits returned.
    pub top: usize,
}

impl Default for RetrieveConfig {
    fn default() -> Self {
        Self {
            lexical_weight: 0.1,
            locale_bonus: 0.05,
            min_similarity: 0.35,
            top: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Index into [`KbIndex::chunks`].
    pub chunk: usize,
    /// What the hits are ordered by: cosine + lexical + locale terms.
    pub score: f32,
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
    /// The language most chunks are written in, found once per index (every message asks).
    #[serde(skip)]
    language: Option<Language>,
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
            language: kb_language(&chunks),
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
            language: kb_language(&chunks),
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

    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The language most of the chunks are written in ([`kb_language`]).
    pub fn language(&self) -> Option<Language> {
        self.language
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

    /// Searches every chunk, preferring those of `locale`. `query_vector` is the query's
    /// embedding from the same encoder.
    pub fn search(
        &self,
        query: &str,
        query_vector: &[f32],
        locale: Option<&str>,
        cfg: &RetrieveConfig,
    ) -> Retrieved {
        self.search_readings(&[(query, query_vector)], locale, cfg)
    }

    /// [`Self::search`] with several readings of one question (the shopper's words and their
    /// translation into the help centre's language): each chunk scores by its best reading,
    /// and its cosine is that reading's.
    pub fn search_readings(
        &self,
        readings: &[(&str, &[f32])],
        locale: Option<&str>,
        cfg: &RetrieveConfig,
    ) -> Retrieved {
        let none = Retrieved {
            hits: Vec::new(),
            confidence: 0.0,
            found: false,
        };
        let readings: Vec<(&str, &[f32])> = readings
            .iter()
            .copied()
            .filter(|(_, v)| v.len() == self.dim)
            .collect();
        if readings.is_empty() || self.chunks.is_empty() {
            return none;
        }
        // Per chunk: (score without the locale term, cosine, BM25 rank) of its best reading.
        let mut best = vec![(f32::NEG_INFINITY, 0.0f32, None); self.chunks.len()];
        for (query, vector) in readings {
            let mut q = vector.to_vec();
            shopmind_inference::l2_normalize(&mut q);
            let lexical = self.bm25.search(query, self.chunks.len());
            let best_lexical = lexical.iter().map(|(_, s)| *s).fold(0.0f32, f32::max);
            let mut bm25 = vec![(0.0f32, None); self.chunks.len()];
            for (rank, (i, s)) in lexical.iter().enumerate() {
                if let Some(slot) = bm25.get_mut(*i) {
                    *slot = (s / best_lexical.max(f32::MIN_POSITIVE), Some(rank + 1));
                }
            }
            for (i, slot) in best.iter_mut().enumerate() {
                let cos = crate::dot(&self.vectors[i * self.dim..(i + 1) * self.dim], &q);
                let score = cos + cfg.lexical_weight * bm25[i].0;
                if score > slot.0 {
                    *slot = (score, cos, bm25[i].1);
                }
            }
        }
        let cosines: Vec<f32> = best.iter().map(|b| b.1).collect();
        let mut hits: Vec<Hit> = best
            .iter()
            .enumerate()
            .map(|(i, &(score, cos, bm25_rank))| {
                let bonus = if locale.is_some_and(|l| self.chunks[i].locale == l) {
                    cfg.locale_bonus
                } else {
                    0.0
                };
                Hit {
                    chunk: i,
                    score: score + bonus,
                    similarity: cos,
                    dense_rank: None,
                    bm25_rank,
                }
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| b.similarity.total_cmp(&a.similarity))
                .then_with(|| a.chunk.cmp(&b.chunk))
        });
        // Each returned hit's place by cosine alone (ties in chunk order), counted for the
        // few returned rather than sorting every chunk a second time.
        hits.truncate(cfg.top);
        for h in &mut hits {
            let (c, i) = (h.similarity, h.chunk);
            let ahead = cosines
                .iter()
                .enumerate()
                .filter(|&(j, &x)| x > c || (x == c && j < i))
                .count();
            h.dense_rank = Some(ahead + 1);
        }
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

    fn articles(idx: &KbIndex, r: &Retrieved) -> Vec<String> {
        r.hits
            .iter()
            .map(|h| idx.chunks()[h.chunk].article_id.clone())
            .collect()
    }

    #[test]
    fn hits_are_ordered_by_cosine_plus_relative_bm25_plus_locale() {
        let idx = index();
        // Query [1, 0, 0.2] normalised; cosines by hand: returns and returns-zh 0.9746,
        // warranty 0.7452, shipping 0.1083.
        let q = [1.0, 0.0, 0.2];
        let dense_only = RetrieveConfig {
            lexical_weight: 0.0,
            ..RetrieveConfig::default()
        };
        let r = idx.search("refund warranty defects", &q, Some("en"), &dense_only);
        assert_eq!(articles(&idx, &r), ["returns", "returns-zh", "warranty"]);
        assert!((r.hits[0].score - (0.9746 + 0.05)).abs() < 1e-3);
        assert!(
            (r.hits[1].score - 0.9746).abs() < 1e-3,
            "no bonus outside the locale"
        );
        // BM25's best (warranty: two query terms) gets the whole lexical weight.
        let lexical = RetrieveConfig {
            lexical_weight: 1.0,
            ..RetrieveConfig::default()
        };
        let r = idx.search("refund warranty defects", &q, Some("en"), &lexical);
        assert_eq!(articles(&idx, &r)[0], "warranty");
        assert!((r.hits[0].score - (0.7452 + 1.0 + 0.05)).abs() < 1e-3);
        assert_eq!(r.hits[0].bm25_rank, Some(1));
        assert_eq!(r.hits[0].dense_rank, Some(3));
        // Confidence is the best hit's cosine, not its score.
        assert!((r.confidence - 0.7452).abs() < 1e-3 && r.found);
    }

    #[test]
    fn each_chunk_scores_by_its_best_reading_of_the_question() {
        let idx = index();
        let cfg = RetrieveConfig {
            lexical_weight: 0.5,
            locale_bonus: 0.0,
            ..RetrieveConfig::default()
        };
        // The shopper's words sit between returns and shipping ([0.5, 0.5, 0] normalised:
        // cosine 0.7809 to both) and share no term with any English chunk; their
        // translation points at shipping (cosine 0.9939) and matches its words.
        let shopper = [0.5, 0.5, 0.0];
        let translated = [0.0, 1.0, 0.0];
        let alone = idx.search("包裹", &shopper, None, &cfg);
        let both = idx.search_readings(
            &[("包裹", &shopper), ("parcels courier", &translated)],
            None,
            &cfg,
        );
        assert_eq!(articles(&idx, &both)[0], "shipping");
        // Shipping: its cosine is the translation's, its score adds the whole lexical weight.
        assert!((both.hits[0].similarity - 0.9939).abs() < 1e-3, "{both:?}");
        assert!((both.hits[0].score - (0.9939 + 0.5)).abs() < 1e-3);
        assert_eq!(both.hits[0].bm25_rank, Some(1));
        // Returns keeps the better of its two readings (the shopper's 0.7809, not 0.1104).
        let returns = both
            .hits
            .iter()
            .find(|h| idx.chunks()[h.chunk].article_id == "returns")
            .unwrap();
        assert!((returns.similarity - 0.7809).abs() < 1e-3, "{both:?}");
        // One reading is exactly the plain search; a reading of the wrong size is ignored.
        assert_eq!(
            idx.search_readings(&[("包裹", &shopper), ("x", &[1.0])], None, &cfg),
            alone
        );
        assert!(!idx.search_readings(&[], None, &cfg).found);
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
        // Three English chunks and one Chinese: English, found again on load.
        assert_eq!(back.language().map(|l| l.tag), Some("en"));
        assert_eq!(back.language(), idx.language());
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
    fn the_locale_is_preferred_not_filtered_and_the_not_found_threshold() {
        let idx = index();
        let cfg = RetrieveConfig::default();
        let r = idx.search("退货", &[1.0, 0.0, 0.0], Some("zh-CN"), &cfg);
        assert_eq!(articles(&idx, &r)[..2], ["returns-zh", "returns"]);
        // The same question in English prefers the English article.
        let r = idx.search("returns", &[1.0, 0.0, 0.0], Some("en"), &cfg);
        assert_eq!(articles(&idx, &r)[..2], ["returns", "returns-zh"]);
        // A query pointing away from every chunk: hits exist but nothing is "found".
        let r = idx.search("gift cards", &[0.0, 0.0, -1.0], Some("en"), &cfg);
        assert!(!r.found && r.confidence < cfg.min_similarity);
        assert!(!idx.search("x", &[1.0], None, &cfg).found);
        assert!(KbIndex::new(vec![chunk("a", "en", "x")], 3, vec![1.0]).is_err());
    }
}
