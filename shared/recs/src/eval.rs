//! Offline evaluation on files `infra/eval/movielens.py` prepares: every method ranks all
//! items for every test user (training items excluded) and is scored by the same code.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use shopmind_inference::Encoder;
use shopmind_profiles::{DecayedVector, EventType, Profile, SeenItem};

use crate::blend::{for_you, BlendConfig, ForYou, Theta};
use crate::cooc::{build_signals, SignalsConfig, TimedEvent};
use crate::error::RecsError;
use crate::index::{ItemIndex, ItemMeta};
use crate::live::Snapshot;

pub const K: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct MethodResult {
    pub method: String,
    pub ndcg: f64,
    pub recall: f64,
    pub hit_rate: f64,
    pub coverage: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub split: serde_json::Value,
    pub users_evaluated: usize,
    pub results: Vec<MethodResult>,
}

fn read_tsv(path: &Path) -> Result<Vec<Vec<String>>, RecsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RecsError::Invalid(format!("{}: {e}", path.display())))?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect())
}

/// Scores one user's ranked list against their held-out items.
fn score(list: &[usize], truth: &HashSet<usize>) -> (f64, f64, f64) {
    let mut dcg = 0.0;
    let mut hits = 0usize;
    for (rank, r) in list.iter().take(K).enumerate() {
        if truth.contains(r) {
            hits += 1;
            dcg += 1.0 / ((rank + 2) as f64).log2();
        }
    }
    let idcg: f64 = (0..truth.len().min(K))
        .map(|r| 1.0 / ((r + 2) as f64).log2())
        .sum();
    let ndcg = if idcg > 0.0 { dcg / idcg } else { 0.0 };
    (
        ndcg,
        hits as f64 / truth.len() as f64,
        f64::from(u8::from(hits > 0)),
    )
}

struct Tally {
    method: String,
    sums: (f64, f64, f64),
    shown: HashSet<usize>,
}

impl Tally {
    fn new(method: &str) -> Self {
        Self {
            method: method.into(),
            sums: (0.0, 0.0, 0.0),
            shown: HashSet::new(),
        }
    }
    fn add(&mut self, list: &[usize], truth: &HashSet<usize>) {
        let (n, r, h) = score(list, truth);
        self.sums.0 += n;
        self.sums.1 += r;
        self.sums.2 += h;
        self.shown.extend(list.iter().take(K));
    }
    fn finish(self, users: usize, items: usize) -> MethodResult {
        let u = users.max(1) as f64;
        MethodResult {
            method: self.method,
            ndcg: self.sums.0 / u,
            recall: self.sums.1 / u,
            hit_rate: self.sums.2 / u,
            coverage: self.shown.len() as f64 / items.max(1) as f64,
        }
    }
}

/// Runs every method on the prepared directory. `progress(done, total)` per 500 users.
pub fn evaluate(
    dir: &Path,
    encoder: Arc<Encoder>,
    extra: Option<Theta>,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<EvalReport, RecsError> {
    let split: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("split.json")).map_err(|e| {
            RecsError::Invalid(format!("{}: {e}", dir.join("split.json").display()))
        })?,
    )
    .map_err(|e| RecsError::Invalid(e.to_string()))?;
    let items = read_tsv(&dir.join("items.tsv"))?;
    let texts: Vec<String> = items
        .iter()
        .map(|r| r.get(1).cloned().unwrap_or_default())
        .collect();
    let mut vectors = Vec::with_capacity(texts.len() * encoder.dimension());
    for (n, chunk) in texts.chunks(512).enumerate() {
        for e in encoder
            .embed(chunk)
            .map_err(|e| RecsError::Embed(e.to_string()))?
        {
            vectors.extend(e.vector);
        }
        progress(
            "embedding items",
            ((n + 1) * 512).min(texts.len()),
            texts.len(),
        );
    }
    let meta: Vec<ItemMeta> = items
        .iter()
        .map(|r| ItemMeta {
            item_id: r[0].clone(),
            title: r.get(1).cloned().unwrap_or_default(),
            category: String::new(),
            brand: None,
            price: None,
            in_stock: true,
            created_at: None,
        })
        .collect();
    let index = ItemIndex::new(
        "eval",
        encoder.model_id(),
        encoder.dimension(),
        meta,
        vectors,
    )?;

    // Training interactions, per user in time order, as events for the signals job.
    let mut train: BTreeMap<String, Vec<(i64, usize)>> = BTreeMap::new();
    let mut events = Vec::new();
    for (n, r) in read_tsv(&dir.join("train.tsv"))?.into_iter().enumerate() {
        let (Some(row), Some(at)) = (
            index.row(&r[1]),
            r.get(2).and_then(|t| t.parse::<i64>().ok()),
        ) else {
            continue;
        };
        train.entry(r[0].clone()).or_default().push((at, row));
        events.push(TimedEvent {
            event: shopmind_profiles::BehaviourEvent {
                event_id: n.to_string(),
                user_id: Some(r[0].clone()),
                anonymous_id: None,
                kind: EventType::View,
                item_id: Some(r[1].clone()),
                query: None,
                timestamp: String::new(),
                value: None,
                session_id: None,
                category: None,
                brand: None,
                price: None,
            },
            at,
        });
    }
    let last = events.iter().map(|e| e.at).max().unwrap_or(0);
    // Ratings are not sessions: a user's whole history is one basket here.
    let signals_cfg = SignalsConfig {
        session_gap_secs: i64::MAX / 4,
        top_m: 100,
        list_len: index.len(),
        popularity_half_life_secs: 365.0 * 86_400.0,
        ..SignalsConfig::default()
    };
    progress("co-occurrence", 0, 1);
    let signals = build_signals(&events, &|_| None, last, &signals_cfg);
    let snap = Snapshot {
        items: Some(Arc::new(index)),
        signals: Some(Arc::new(signals)),
        signals_version: None,
    };
    let index = snap
        .items
        .clone()
        .ok_or_else(|| RecsError::Invalid("no index".into()))?;

    let mut test: HashMap<String, HashSet<usize>> = HashMap::new();
    for r in read_tsv(&dir.join("test.tsv"))? {
        if let Some(row) = index.row(&r[1]) {
            test.entry(r[0].clone()).or_default().insert(row);
        }
    }
    let mut als: HashMap<String, Vec<usize>> = HashMap::new();
    for r in read_tsv(&dir.join("als.tsv"))? {
        als.insert(
            r[0].clone(),
            r[1..].iter().filter_map(|i| index.row(i)).collect(),
        );
    }

    let theta = |s, c, p| Theta {
        semantic: s,
        collaborative: c,
        popularity: p,
        context: 0.0,
    };
    let base = BlendConfig::default();
    let mut methods: Vec<(String, BlendConfig)> = vec![
        (
            "popularity".into(),
            BlendConfig {
                theta: theta(0.0, 0.0, 1.0),
                mmr_lambda: 1.0,
                ..base.clone()
            },
        ),
        (
            "co-occurrence".into(),
            BlendConfig {
                theta: theta(0.0, 1.0, 0.0),
                mmr_lambda: 1.0,
                ..base.clone()
            },
        ),
        (
            "semantic".into(),
            BlendConfig {
                theta: theta(1.0, 0.0, 0.0),
                mmr_lambda: 1.0,
                ..base.clone()
            },
        ),
        (
            "hybrid (default θ, no MMR)".into(),
            BlendConfig {
                mmr_lambda: 1.0,
                ..base.clone()
            },
        ),
        ("hybrid (default θ, MMR λ=0.8)".into(), base.clone()),
    ];
    if let Some(t) = extra {
        let name = format!(
            "hybrid (θ = {}/{}/{}, no MMR)",
            t.semantic, t.collaborative, t.popularity
        );
        methods.push((
            name,
            BlendConfig {
                theta: t,
                mmr_lambda: 1.0,
                ..base.clone()
            },
        ));
    }
    let mut tallies: Vec<Tally> = methods.iter().map(|(m, _)| Tally::new(m)).collect();
    let mut peer = Tally::new("implicit ALS (peer)");
    let half_life = 30.0 * 86_400.0;
    let users: Vec<(&String, &HashSet<usize>)> = {
        let mut u: Vec<_> = test
            .iter()
            .filter(|(u, _)| train.contains_key(*u))
            .collect();
        u.sort_by(|a, b| a.0.cmp(b.0));
        u
    };
    for (n, (user, truth)) in users.iter().enumerate() {
        let history = &train[*user];
        let seen: HashSet<usize> = history.iter().map(|h| h.1).collect();
        let mut profile = Profile::new(user);
        let mut emb = DecayedVector::default();
        for (at, row) in history {
            if let Some(v) = index.vector(*row) {
                emb.add(v, 1.0, *at, half_life);
            }
        }
        profile.embedding = Some(emb);
        let mut recent: Vec<SeenItem> = Vec::new();
        for (at, row) in history.iter().rev() {
            if recent.len() >= 50 {
                break;
            }
            let id = index
                .meta(*row)
                .map(|m| m.item_id.clone())
                .unwrap_or_default();
            if !recent.iter().any(|s| s.item_id == id) {
                recent.push(SeenItem {
                    item_id: id,
                    at: *at,
                });
            }
        }
        profile.recent_items = recent;
        let req = ForYou {
            profile: Some(&profile),
            limit: K,
            exclude_rows: Some(&seen),
            ..ForYou::default()
        };
        for ((_, cfg), tally) in methods.iter().zip(&mut tallies) {
            let list: Vec<usize> = for_you(&snap, &req, cfg)
                .iter()
                .filter_map(|r| index.row(&r.item_id))
                .collect();
            tally.add(&list, truth);
        }
        let peer_list: Vec<usize> = als
            .get(*user)
            .map(|l| {
                l.iter()
                    .filter(|r| !seen.contains(r))
                    .take(K)
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        peer.add(&peer_list, truth);
        if (n + 1) % 500 == 0 || n + 1 == users.len() {
            progress("ranking", n + 1, users.len());
        }
    }
    let n_items = index.len();
    let mut results: Vec<MethodResult> = tallies
        .into_iter()
        .map(|t| t.finish(users.len(), n_items))
        .collect();
    results.push(peer.finish(users.len(), n_items));
    Ok(EvalReport {
        split,
        users_evaluated: users.len(),
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NDCG by hand: hits at ranks 1 and 3 of 2 relevant items:
    /// DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) = 1.63093.
    #[test]
    fn metrics_match_hand_computed_values() {
        let truth: HashSet<usize> = [7, 9].into_iter().collect();
        let (ndcg, recall, hit) = score(&[7, 1, 9, 4], &truth);
        assert!((ndcg - 1.5 / (1.0 + 1.0 / 3f64.log2())).abs() < 1e-12);
        assert_eq!((recall, hit), (1.0, 1.0));
        assert_eq!(score(&[1, 2, 3], &truth), (0.0, 0.0, 0.0));
    }
}
