//! R(u, i) = Σ θ_k · s_k(u, i): candidates from every source, each source's scores scaled to
//! [0, 1], blended with configurable weights, filtered, diversified with MMR, and explained.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use shopmind_profiles::Profile;

use crate::cooc::{top_category, Relation};
use crate::index::ItemIndex;
use crate::live::Snapshot;
use crate::topk::dot;

/// θ: how much each source counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Theta {
    pub semantic: f64,
    pub collaborative: f64,
    pub popularity: f64,
    pub context: f64,
}

impl Theta {
    /// The weights in a candidate's slot order.
    fn weights(&self) -> [f64; 4] {
        [
            self.semantic,
            self.collaborative,
            self.popularity,
            self.context,
        ]
    }
}

/// Σ θ_k · s_k / max_k over the sources that scored anything in the pool.
fn blend(s: &[f64; 4], max: &[f64; 4], th: &[f64; 4]) -> f64 {
    (0..4)
        .filter(|k| max[*k] > 0.0)
        .map(|k| th[k] * s[k] / max[k])
        .sum()
}

impl Default for Theta {
    fn default() -> Self {
        Self {
            semantic: 0.35,
            collaborative: 0.45,
            popularity: 0.10,
            context: 0.50,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BlendConfig {
    pub theta: Theta,
    /// MMR trade-off: 1 ranks by relevance alone, lower values favour variety.
    pub mmr_lambda: f64,
    /// Candidates taken from each source.
    pub pool: usize,
    /// Recent and purchased items whose neighbours are candidates.
    pub seeds: usize,
    /// How fast a seed's weight falls with its recency rank r: 1 / (1 + decay · r).
    pub seed_decay: f64,
}

impl Default for BlendConfig {
    fn default() -> Self {
        Self {
            theta: Theta::default(),
            mmr_lambda: 0.8,
            pool: 200,
            seeds: 20,
            seed_decay: 0.2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Semantic,
    Collaborative,
    Popularity,
    Context,
    /// The catalog itself, newest first across categories: tops up a list the other sources
    /// leave short (a new shop, a narrow filter). Never blended, so it has no θ.
    Catalog,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub source: Source,
    pub text: String,
    /// The item the reason points at ("similar to X"), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub item_id: String,
    pub title: String,
    pub score: f64,
    pub reasons: Vec<Reason>,
}

/// What a "for you" request asks for.
#[derive(Debug, Clone, Default)]
pub struct ForYou<'a> {
    pub profile: Option<&'a Profile>,
    pub limit: usize,
    /// A category path prefix (`Women > Dresses`).
    pub category: Option<&'a str>,
    /// Free text and its embedding.
    pub context: Option<(&'a str, &'a [f32])>,
    pub exclude_purchased: bool,
    pub exclude_recent: bool,
    /// Rows never to return (the offline evaluation's training items).
    pub exclude_rows: Option<&'a HashSet<usize>>,
}

#[derive(Debug, Default)]
struct Candidate {
    s: [f64; 4],
    reasons: [Option<Reason>; 4],
}

/// A blended source's place in a candidate's scores; the catalog fill has none.
fn slot(s: Source) -> Option<usize> {
    match s {
        Source::Semantic => Some(0),
        Source::Collaborative => Some(1),
        Source::Popularity => Some(2),
        Source::Context => Some(3),
        Source::Catalog => None,
    }
}

fn quote(text: &str) -> String {
    let t: String = text.chars().take(60).collect();
    if t.len() < text.len() {
        format!("'{}…'", t.trim_end())
    } else {
        format!("'{t}'")
    }
}

struct Pool<'a> {
    index: &'a ItemIndex,
    cands: HashMap<usize, Candidate>,
}

impl<'a> Pool<'a> {
    fn offer(&mut self, row: usize, source: Source, score: f64, reason: impl FnOnce() -> Reason) {
        let Some(k) = slot(source) else { return };
        if score <= 0.0 || !score.is_finite() {
            return;
        }
        let c = self.cands.entry(row).or_default();
        if score > c.s[k] || c.reasons[k].is_none() {
            c.reasons[k] = Some(reason());
        }
        c.s[k] = c.s[k].max(score);
    }

    fn add_sum(
        &mut self,
        row: usize,
        source: Source,
        score: f64,
        best: bool,
        reason: impl FnOnce() -> Reason,
    ) {
        let Some(k) = slot(source) else { return };
        let c = self.cands.entry(row).or_default();
        c.s[k] += score;
        if best || c.reasons[k].is_none() {
            c.reasons[k] = Some(reason());
        }
    }

    /// Each source's highest score over the pool: sources are scaled to [0, 1] by it.
    fn maxima(&self) -> [f64; 4] {
        let mut max = [0.0f64; 4];
        for c in self.cands.values() {
            for (m, s) in max.iter_mut().zip(c.s) {
                *m = m.max(s);
            }
        }
        max
    }

    /// Scales each source to [0, 1], blends, ranks, and re-ranks with MMR.
    fn finish(self, theta: &Theta, lambda: f64, limit: usize) -> Vec<Recommendation> {
        let index = self.index;
        let max = self.maxima();
        let th = theta.weights();
        let mut ranked: Vec<(usize, f64, Candidate)> = self
            .cands
            .into_iter()
            .map(|(row, c)| (row, blend(&c.s, &max, &th), c))
            .filter(|(_, b, _)| *b > 0.0)
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let order = mmr(index, &ranked, lambda, limit);
        let mut out = Vec::with_capacity(order.len());
        for i in order {
            let (row, blended, c) = &ranked[i];
            let Some(meta) = index.meta(*row) else {
                continue;
            };
            let mut why: Vec<(f64, Reason)> = (0..4)
                .filter_map(|k| {
                    let r = c.reasons[k].clone()?;
                    (max[k] > 0.0 && c.s[k] > 0.0).then(|| (th[k] * c.s[k] / max[k], r))
                })
                .collect();
            why.sort_by(|a, b| b.0.total_cmp(&a.0));
            why.truncate(2);
            out.push(Recommendation {
                item_id: meta.item_id.clone(),
                title: meta.title.clone(),
                score: *blended,
                reasons: why.into_iter().map(|(_, r)| r).collect(),
            });
        }
        out
    }
}

/// Maximal marginal relevance over the ranked candidates: each pick maximises
/// λ · relevance − (1 − λ) · (highest cosine to an item already picked).
fn mmr(
    index: &ItemIndex,
    ranked: &[(usize, f64, Candidate)],
    lambda: f64,
    limit: usize,
) -> Vec<usize> {
    if lambda >= 1.0 || ranked.is_empty() {
        return (0..ranked.len().min(limit)).collect();
    }
    let top = ranked[0].1.max(f64::MIN_POSITIVE);
    // Re-ranking only reorders the head; the tail cannot reach the list.
    let window = ranked.len().min(limit.saturating_mul(5).max(limit));
    let mut max_sim = vec![f64::NEG_INFINITY; window];
    let mut picked = Vec::with_capacity(limit);
    let mut used = vec![false; window];
    while picked.len() < limit.min(window) {
        let mut best: Option<(usize, f64)> = None;
        for i in 0..window {
            if used[i] {
                continue;
            }
            let redundancy = if picked.is_empty() {
                0.0
            } else {
                max_sim[i].max(0.0)
            };
            let v = lambda * ranked[i].1 / top - (1.0 - lambda) * redundancy;
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((i, v));
            }
        }
        let Some((i, _)) = best else { break };
        used[i] = true;
        picked.push(i);
        if let Some(vi) = index.vector(ranked[i].0) {
            for j in 0..window {
                if !used[j] {
                    if let Some(vj) = index.vector(ranked[j].0) {
                        max_sim[j] = max_sim[j].max(f64::from(dot(vi, vj)));
                    }
                }
            }
        }
    }
    picked
}

fn relation_text(r: Relation) -> &'static str {
    match r {
        Relation::CoPurchase => "often bought together with",
        Relation::CoCart => "often in a cart with",
        Relation::CoView => "often viewed with",
    }
}

/// The weighted mean of the seeds' item vectors, unit length; `None` without seeds.
fn seed_direction(index: &ItemIndex, seeds: &[(usize, f64, &'static str)]) -> Option<Vec<f32>> {
    let mut sum = vec![0f32; index.dim()];
    for (row, w, _) in seeds {
        let Some(v) = index.vector(*row) else {
            continue;
        };
        for (s, x) in sum.iter_mut().zip(v) {
            *s += *w as f32 * x;
        }
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm > 1e-6).then(|| sum.iter().map(|x| x / norm).collect())
}

/// What a request rules out: its excluded rows, out-of-stock items, other categories.
struct Filter<'a> {
    index: &'a ItemIndex,
    excluded: HashSet<usize>,
    category: Option<&'a str>,
}

impl Filter<'_> {
    fn allows(&self, row: usize) -> bool {
        !self.excluded.contains(&row)
            && self.index.meta(row).is_some_and(|m| {
                m.in_stock
                    && self
                        .category
                        .is_none_or(|c| m.category.starts_with(c.trim()))
            })
    }
}

/// "For you": semantic (profile embedding), collaborative (neighbours of recent and purchased
/// items), popularity (trending in the asked category, else popular), and context. With no
/// profile this is the cold-start path: popularity and context. Whatever they leave short of
/// `limit` is topped up from the catalog (newest first, across categories).
pub fn for_you(snap: &Snapshot, req: &ForYou<'_>, cfg: &BlendConfig) -> Vec<Recommendation> {
    let Some((pool, filter)) = gather(snap, req, cfg) else {
        return Vec::new();
    };
    let mut out = pool.finish(&cfg.theta, cfg.mmr_lambda, req.limit);
    fill_from_catalog(filter.index, |row| filter.allows(row), &mut out, req.limit);
    out
}

/// A "for you" request's candidates with every source's score, before blending: offline
/// tuning gathers them once per shopper and ranks them under many θ.
pub struct Candidates<'a>(Pool<'a>);

impl std::fmt::Debug for Candidates<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidates")
            .field("len", &self.0.cands.len())
            .finish()
    }
}

impl Candidates<'_> {
    /// The top `limit` rows under `theta`: the order [`for_you`] gives with `mmr_lambda` 1,
    /// before the catalog top-up.
    pub fn rank(&self, theta: &Theta, limit: usize) -> Vec<usize> {
        let max = self.0.maxima();
        let th = theta.weights();
        let mut ranked: Vec<(usize, f64)> = self
            .0
            .cands
            .iter()
            .map(|(row, c)| (*row, blend(&c.s, &max, &th)))
            .filter(|(_, b)| *b > 0.0)
            .collect();
        let order = |a: &(usize, f64), b: &(usize, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if ranked.len() > limit && limit > 0 {
            ranked.select_nth_unstable_by(limit - 1, order);
            ranked.truncate(limit);
        }
        ranked.sort_by(order);
        ranked.truncate(limit);
        ranked.into_iter().map(|(row, _)| row).collect()
    }
}

/// The candidates [`for_you`] would blend; `None` without an item index.
pub fn for_you_candidates<'a>(
    snap: &'a Snapshot,
    req: &ForYou<'_>,
    cfg: &BlendConfig,
) -> Option<Candidates<'a>> {
    gather(snap, req, cfg).map(|(pool, _)| Candidates(pool))
}

fn gather<'a, 'r>(
    snap: &'a Snapshot,
    req: &ForYou<'r>,
    cfg: &BlendConfig,
) -> Option<(Pool<'a>, Filter<'r>)>
where
    'a: 'r,
{
    let index = snap.items.as_deref()?;
    let mut excluded: HashSet<usize> = req.exclude_rows.cloned().unwrap_or_default();
    let mut seeds: Vec<(usize, f64, &'static str)> = Vec::new();
    let weight = |rank: usize| 1.0 / (1.0 + rank as f64 * cfg.seed_decay);
    if let Some(p) = req.profile {
        for (rank, s) in p.purchased.iter().enumerate() {
            if let Some(r) = index.row(&s.item_id) {
                if req.exclude_purchased {
                    excluded.insert(r);
                }
                if rank < cfg.seeds {
                    seeds.push((r, weight(rank), "you bought"));
                }
            }
        }
        for (rank, s) in p.recent_items.iter().enumerate() {
            if let Some(r) = index.row(&s.item_id) {
                if req.exclude_recent {
                    excluded.insert(r);
                }
                if rank < cfg.seeds && !seeds.iter().any(|x| x.0 == r) {
                    seeds.push((r, weight(rank), "you viewed"));
                }
            }
        }
    }
    let filter = Filter {
        index,
        excluded,
        category: req.category,
    };
    let allowed = |row: usize| filter.allows(row);
    let title = |row: usize| index.meta(row).map(|m| m.title.clone()).unwrap_or_default();
    let id = |row: usize| index.meta(row).map(|m| m.item_id.clone());
    let mut pool = Pool {
        index,
        cands: HashMap::new(),
    };

    // Semantic: the profile's direction against every item. A profile whose events came
    // before their items were indexed has no direction yet; its seeds' vectors stand in.
    let direction = req
        .profile
        .and_then(|p| p.embedding.as_ref())
        .and_then(|e| e.unit())
        .or_else(|| seed_direction(index, &seeds));
    if let Some(u) = direction {
        for (row, s) in index.nearest(&u, cfg.pool, allowed) {
            pool.offer(row, Source::Semantic, f64::from(s), || {
                // Explain with the seed the item is closest to.
                let v = index.vector(row).unwrap_or(&[]);
                let near = seeds
                    .iter()
                    .filter_map(|(r, _, how)| index.vector(*r).map(|sv| (*r, dot(sv, v), *how)))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                match near {
                    Some((r, _, how)) => Reason {
                        source: Source::Semantic,
                        text: format!("similar to {} {how}", quote(&title(r))),
                        item_id: id(r),
                    },
                    None => Reason {
                        source: Source::Semantic,
                        text: "matches what you searched for".into(),
                        item_id: None,
                    },
                }
            });
        }
    }

    // Collaborative: neighbours of the seeds, summed, weighted by how recent the seed is.
    if let Some(signals) = snap.signals.as_deref() {
        let mut best: HashMap<usize, f64> = HashMap::new();
        for (seed, w, _) in &seeds {
            let Some(list) = index
                .meta(*seed)
                .and_then(|m| signals.neighbours.get(&m.item_id))
            else {
                continue;
            };
            for n in list {
                let Some(row) = index.row(&n.item_id) else {
                    continue;
                };
                if !allowed(row) {
                    continue;
                }
                let contribution = w * n.score;
                let b = best.entry(row).or_insert(0.0);
                let is_best = contribution > *b;
                *b = b.max(contribution);
                pool.add_sum(row, Source::Collaborative, contribution, is_best, || {
                    Reason {
                        source: Source::Collaborative,
                        text: format!("{} {}", relation_text(n.relation), quote(&title(*seed))),
                        item_id: id(*seed),
                    }
                });
            }
        }

        // Popularity: trending in the asked category, else popular overall.
        let trending = req.category.and_then(|c| {
            signals
                .trending
                .get(top_category(c))
                .map(|l| (l, top_category(c)))
        });
        let (list, label) = match trending {
            Some((l, c)) => (l, format!("trending in {c}")),
            None => (&signals.popular, String::new()),
        };
        let mut taken = 0;
        for s in list {
            if taken >= cfg.pool {
                break;
            }
            let Some(row) = index.row(&s.item_id) else {
                continue;
            };
            if !allowed(row) {
                continue;
            }
            taken += 1;
            pool.offer(row, Source::Popularity, s.score, || {
                let text = if label.is_empty() {
                    let cat = index
                        .meta(row)
                        .map(|m| top_category(&m.category).to_owned())
                        .unwrap_or_default();
                    if cat.is_empty() {
                        "popular right now".to_owned()
                    } else {
                        format!("popular in {cat}")
                    }
                } else {
                    label.clone()
                };
                Reason {
                    source: Source::Popularity,
                    text,
                    item_id: None,
                }
            });
        }
    }

    // Context: the text the storefront sent with the request.
    if let Some((text, v)) = req.context {
        for (row, s) in index.nearest(v, cfg.pool, allowed) {
            pool.offer(row, Source::Context, f64::from(s), || Reason {
                source: Source::Context,
                text: format!("matches {}", quote(text)),
                item_id: None,
            });
        }
    }
    Some((pool, filter))
}

/// Tops `out` up to `limit` from [`ItemIndex::showcase`] (newest first, one category at a
/// time), after everything ranked: a shop with no behaviour yet, or a filter that leaves
/// few candidates, still gets a full list, each item saying it is simply from the range.
fn fill_from_catalog(
    index: &ItemIndex,
    allowed: impl Fn(usize) -> bool,
    out: &mut Vec<Recommendation>,
    limit: usize,
) {
    if out.len() >= limit {
        return;
    }
    let listed: HashSet<String> = out.iter().map(|r| r.item_id.clone()).collect();
    for row in index.showcase() {
        if out.len() >= limit {
            break;
        }
        let Some(meta) = index.meta(row) else {
            continue;
        };
        if !allowed(row) || listed.contains(&meta.item_id) {
            continue;
        }
        let aisle = top_category(&meta.category);
        let text = match (meta.created_at.is_some(), aisle.is_empty()) {
            (true, false) => format!("new in {aisle}"),
            (true, true) => "new in the shop".to_owned(),
            (false, false) => format!("from our {aisle} range"),
            (false, true) => "from our range".to_owned(),
        };
        out.push(Recommendation {
            item_id: meta.item_id.clone(),
            title: meta.title.clone(),
            score: 0.0,
            reasons: vec![Reason {
                source: Source::Catalog,
                text,
                item_id: None,
            }],
        });
    }
}

/// "Similar items": nearest by embedding, blended with the item's co-occurrence neighbours.
/// `None` when the item is not in the index.
pub fn similar(
    snap: &Snapshot,
    item_id: &str,
    limit: usize,
    cfg: &BlendConfig,
) -> Option<Vec<Recommendation>> {
    let index = snap.items.as_deref()?;
    let row = index.row(item_id)?;
    let v = index.vector(row)?;
    let name = quote(&index.meta(row).map(|m| m.title.clone()).unwrap_or_default());
    let allowed = |r: usize| r != row && index.meta(r).is_some_and(|m| m.in_stock);
    let mut pool = Pool {
        index,
        cands: HashMap::new(),
    };
    for (r, s) in index.nearest(v, cfg.pool, allowed) {
        pool.offer(r, Source::Semantic, f64::from(s), || Reason {
            source: Source::Semantic,
            text: format!("similar to {name}"),
            item_id: Some(item_id.to_owned()),
        });
    }
    if let Some(list) = snap
        .signals
        .as_deref()
        .and_then(|s| s.neighbours.get(item_id))
    {
        for n in list {
            let Some(r) = index.row(&n.item_id) else {
                continue;
            };
            if allowed(r) {
                pool.offer(r, Source::Collaborative, n.score, || Reason {
                    source: Source::Collaborative,
                    text: format!("{} {name}", relation_text(n.relation)),
                    item_id: Some(item_id.to_owned()),
                });
            }
        }
    }
    Some(pool.finish(&cfg.theta, cfg.mmr_lambda, limit))
}
