//! Collaborative signals from the behaviour-event archive: item-item co-occurrence within a
//! shopper's session, cosine-normalised so popular items do not swamp everything; decayed
//! popularity; and trending items per category.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shopmind_profiles::{BehaviourEvent, EventType};
use shopmind_storage::BlobStore;

use crate::error::RecsError;
use shopmind_artifacts as artifact;

pub const KIND: &str = "signals";

/// How two items were seen together: the weaker of the two interactions in the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    CoView,
    CoCart,
    CoPurchase,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    pub item_id: String,
    pub score: f64,
    pub relation: Relation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub item_id: String,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SignalsConfig {
    /// Interaction weights: view, add_to_cart, purchase, review.
    pub view: f64,
    pub cart: f64,
    pub purchase: f64,
    pub review: f64,
    /// Without a `session_id`, a gap longer than this starts a new session.
    pub session_gap_secs: i64,
    /// Neighbours kept per item.
    pub top_m: usize,
    /// Pairs seen in fewer sessions are dropped as noise.
    pub min_sessions: u32,
    pub popularity_half_life_secs: f64,
    pub trending_half_life_secs: f64,
    /// Items kept per list (popular, trending per category).
    pub list_len: usize,
    /// Neighbours from EASE^R item weights instead of cosine (see `ease`), when at most
    /// `ease_max_items` items have behaviour; `None` keeps cosine. The value is λ relative to
    /// the mean of the Gram matrix's diagonal (an item's mean interaction mass), so one
    /// setting carries across shops of different sizes.
    pub ease_lambda: Option<f64>,
    pub ease_max_items: usize,
}

impl Default for SignalsConfig {
    fn default() -> Self {
        Self {
            view: 1.0,
            cart: 3.0,
            purchase: 5.0,
            review: 4.0,
            session_gap_secs: 30 * 60,
            top_m: 50,
            min_sessions: 1,
            popularity_half_life_secs: 14.0 * 86_400.0,
            trending_half_life_secs: 86_400.0,
            list_len: 200,
            ease_lambda: None,
            ease_max_items: 5_000,
        }
    }
}

impl SignalsConfig {
    /// The defaults with the item model from the environment (read once at start):
    ///
    /// | variable | default | meaning |
    /// | --- | --- | --- |
    /// | `SHOPMIND_SIGNALS_ITEM_MODEL` | `cosine` | `cosine` or `ease` (EASE^R item weights) |
    /// | `SHOPMIND_SIGNALS_EASE_LAMBDA` | `10` | EASE's λ relative to the mean Gram diagonal |
    /// | `SHOPMIND_SIGNALS_EASE_MAX_ITEMS` | `5000` | above this many items with behaviour, cosine |
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, RecsError> {
        let d = Self::default();
        let value = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let number = |name: &str, default: f64, lo: f64, hi: f64| match value(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && (lo..=hi).contains(x))
                .ok_or_else(|| {
                    RecsError::Config(format!("{name}={v:?}: expected a number from {lo} to {hi}"))
                }),
        };
        let lambda = number("SHOPMIND_SIGNALS_EASE_LAMBDA", 10.0, 1e-6, 1e6)?;
        let ease_lambda = match value("SHOPMIND_SIGNALS_ITEM_MODEL").as_deref() {
            None | Some("cosine") => None,
            Some("ease") => Some(lambda),
            Some(other) => {
                return Err(RecsError::Config(format!(
                    "SHOPMIND_SIGNALS_ITEM_MODEL={other:?}: expected cosine or ease"
                )))
            }
        };
        Ok(Self {
            ease_lambda,
            ease_max_items: number(
                "SHOPMIND_SIGNALS_EASE_MAX_ITEMS",
                d.ease_max_items as f64,
                2.0,
                20_000.0,
            )? as usize,
            ..d
        })
    }

    fn weight(&self, kind: EventType) -> Option<(f64, Relation)> {
        match kind {
            EventType::View => Some((self.view, Relation::CoView)),
            EventType::AddToCart => Some((self.cart, Relation::CoCart)),
            EventType::Purchase => Some((self.purchase, Relation::CoPurchase)),
            EventType::Review => Some((self.review, Relation::CoPurchase)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// Item → its strongest neighbours, best first.
    pub neighbours: BTreeMap<String, Vec<Neighbour>>,
    /// Decayed popularity, best first.
    pub popular: Vec<Scored>,
    /// Top-level category → items trending in it (short half-life), best first.
    pub trending: BTreeMap<String, Vec<Scored>>,
    pub events: usize,
    pub sessions: usize,
}

/// An archived event with its time parsed (unparseable ones are skipped by the reader).
#[derive(Debug, Clone)]
pub struct TimedEvent {
    pub event: BehaviourEvent,
    pub at: i64,
}

impl TimedEvent {
    /// A signed-in shopper's event on one item, nothing else known (replayed interactions).
    pub fn on_item(event_id: String, user: String, kind: EventType, item: String, at: i64) -> Self {
        Self {
            event: BehaviourEvent {
                event_id,
                user_id: Some(user),
                anonymous_id: None,
                kind,
                item_id: Some(item),
                query: None,
                timestamp: String::new(),
                value: None,
                session_id: None,
                category: None,
                brand: None,
                price: None,
            },
            at,
        }
    }
}

fn decay(dt: i64, half_life: f64) -> f64 {
    0.5f64.powf(dt.max(0) as f64 / half_life)
}

/// The top-level category of a path (`Women > Dresses` → `Women`).
pub fn top_category(path: &str) -> &str {
    path.split('>').next().unwrap_or("").trim()
}

/// Builds the signals. `category_of` gives an item's category path (from the item index);
/// items it does not know still co-occur, but trend in no category.
pub fn build_signals(
    events: &[TimedEvent],
    category_of: &dyn Fn(&str) -> Option<String>,
    now: i64,
    cfg: &SignalsConfig,
) -> Signals {
    // Sessions: (shopper, session) → item → (strongest weight, its relation).
    let mut by_shopper: BTreeMap<&str, Vec<&TimedEvent>> = BTreeMap::new();
    for ev in events {
        let who = ev
            .event
            .user_id
            .as_deref()
            .or(ev.event.anonymous_id.as_deref())
            .unwrap_or("");
        by_shopper.entry(who).or_default().push(ev);
    }
    let mut sessions: Vec<HashMap<&str, (f64, Relation)>> = Vec::new();
    let mut popular: HashMap<&str, f64> = HashMap::new();
    let mut trending: HashMap<&str, f64> = HashMap::new();
    for (_, mut evs) in by_shopper {
        evs.sort_by_key(|e| e.at);
        let mut current: HashMap<&str, (f64, Relation)> = HashMap::new();
        let mut last: Option<(Option<&str>, i64)> = None;
        for ev in evs {
            let Some(item) = ev.event.item_id.as_deref() else {
                continue;
            };
            let Some((w, rel)) = cfg.weight(ev.event.kind) else {
                continue;
            };
            let sid = ev.event.session_id.as_deref();
            if let Some((last_sid, last_at)) = last {
                let new_session = match (sid, last_sid) {
                    (Some(a), Some(b)) => a != b,
                    _ => ev.at - last_at > cfg.session_gap_secs,
                };
                if new_session && !current.is_empty() {
                    sessions.push(std::mem::take(&mut current));
                }
            }
            last = Some((sid, ev.at));
            let e = current.entry(item).or_insert((0.0, rel));
            if w > e.0 {
                *e = (w, rel);
            }
            *popular.entry(item).or_default() +=
                w * decay(now - ev.at, cfg.popularity_half_life_secs);
            *trending.entry(item).or_default() +=
                w * decay(now - ev.at, cfg.trending_half_life_secs);
        }
        if !current.is_empty() {
            sessions.push(current);
        }
    }

    // Cosine over sessions: items are vectors indexed by session, valued by their weight.
    let mut norm: HashMap<&str, f64> = HashMap::new();
    let mut pair: HashMap<(&str, &str), (f64, u32, Relation)> = HashMap::new();
    for s in &sessions {
        let mut items: Vec<(&str, f64, Relation)> = s.iter().map(|(k, v)| (*k, v.0, v.1)).collect();
        items.sort_by(|a, b| a.0.cmp(b.0));
        for (i, a) in items.iter().enumerate() {
            *norm.entry(a.0).or_default() += a.1 * a.1;
            for b in &items[i + 1..] {
                let e = pair.entry((a.0, b.0)).or_insert((0.0, 0, Relation::CoView));
                e.0 += a.1 * b.1;
                e.1 += 1;
                e.2 = e.2.max(a.2.min(b.2));
            }
        }
    }
    let ease = match cfg.ease_lambda {
        None => None,
        Some(_) if norm.len() < 2 => None,
        Some(_) if norm.len() > cfg.ease_max_items => {
            tracing::warn!(
                items = norm.len(),
                cap = cfg.ease_max_items,
                "more items with events than SHOPMIND_SIGNALS_EASE_MAX_ITEMS: cosine neighbours instead of EASE"
            );
            None
        }
        Some(lambda) => {
            let e = ease_neighbours(&norm, &pair, lambda);
            if e.is_none() {
                tracing::warn!(
                    items = norm.len(),
                    "the EASE system could not be solved (not positive definite): cosine neighbours instead"
                );
            }
            e
        }
    };
    let mut neighbours = match ease {
        Some(e) => e,
        None => cosine_neighbours(&norm, pair, cfg.min_sessions),
    };
    for list in neighbours.values_mut() {
        list.sort_by(|x, y| {
            y.score
                .total_cmp(&x.score)
                .then_with(|| x.item_id.cmp(&y.item_id))
        });
        list.truncate(cfg.top_m);
    }

    let ranked = |m: &HashMap<&str, f64>| -> Vec<Scored> {
        let mut v: Vec<Scored> = m
            .iter()
            .map(|(k, s)| Scored {
                item_id: (*k).to_owned(),
                score: *s,
            })
            .collect();
        v.sort_by(|x, y| {
            y.score
                .total_cmp(&x.score)
                .then_with(|| x.item_id.cmp(&y.item_id))
        });
        v
    };
    let mut popular = ranked(&popular);
    popular.truncate(cfg.list_len);
    let mut by_category: BTreeMap<String, Vec<Scored>> = BTreeMap::new();
    for s in ranked(&trending) {
        if let Some(path) = category_of(&s.item_id) {
            let top = top_category(&path);
            if !top.is_empty() {
                let list = by_category.entry(top.to_owned()).or_default();
                if list.len() < cfg.list_len {
                    list.push(s);
                }
            }
        }
    }
    Signals {
        neighbours,
        popular,
        trending: by_category,
        events: events.len(),
        sessions: sessions.len(),
    }
}

/// Item-item cosine over session vectors, for pairs seen in at least `min_sessions` sessions.
fn cosine_neighbours(
    norm: &HashMap<&str, f64>,
    pair: HashMap<(&str, &str), (f64, u32, Relation)>,
    min_sessions: u32,
) -> BTreeMap<String, Vec<Neighbour>> {
    let mut neighbours: BTreeMap<String, Vec<Neighbour>> = BTreeMap::new();
    for ((a, b), (dotp, n, rel)) in pair {
        if n < min_sessions {
            continue;
        }
        let denom =
            (norm.get(a).copied().unwrap_or(0.0) * norm.get(b).copied().unwrap_or(0.0)).sqrt();
        if denom <= 0.0 {
            continue;
        }
        let score = dotp / denom;
        for (x, y) in [(a, b), (b, a)] {
            neighbours.entry(x.to_owned()).or_default().push(Neighbour {
                item_id: y.to_owned(),
                score,
                relation: rel,
            });
        }
    }
    neighbours
}

/// Every item's EASE^R neighbours (positive weights only; the caller keeps the top m).
/// `None` when the Gram matrix is not invertible with this λ.
fn ease_neighbours(
    norm: &HashMap<&str, f64>,
    pair: &HashMap<(&str, &str), (f64, u32, Relation)>,
    lambda: f64,
) -> Option<BTreeMap<String, Vec<Neighbour>>> {
    let mut items: Vec<&str> = norm.keys().copied().collect();
    items.sort_unstable();
    let pos: HashMap<&str, usize> = items.iter().enumerate().map(|(k, i)| (*i, k)).collect();
    let n = items.len();
    let mut g = vec![0.0; n * n];
    for (item, sq) in norm {
        let k = pos[item];
        g[k * n + k] = *sq;
    }
    for ((a, b), (dotp, _, _)) in pair {
        let (i, j) = (pos[a], pos[b]);
        g[i * n + j] = *dotp;
        g[j * n + i] = *dotp;
    }
    let mean_diag = norm.values().sum::<f64>() / n as f64;
    let started = std::time::Instant::now();
    let b = crate::ease::weights(g, n, lambda * mean_diag)?;
    tracing::info!(
        items = n,
        lambda = lambda * mean_diag,
        ms = started.elapsed().as_millis() as u64,
        "EASE item weights"
    );
    let relation = |x: &str, y: &str| {
        let key = if x < y { (x, y) } else { (y, x) };
        pair.get(&key).map_or(Relation::CoView, |p| p.2)
    };
    let mut out = BTreeMap::new();
    for (j, from) in items.iter().enumerate() {
        let list: Vec<Neighbour> = (0..n)
            .filter(|i| b[j * n + i] > 0.0)
            .map(|i| Neighbour {
                item_id: items[i].to_owned(),
                score: b[j * n + i],
                relation: relation(from, items[i]),
            })
            .collect();
        if !list.is_empty() {
            out.insert((*from).to_owned(), list);
        }
    }
    Some(out)
}

/// Reads every archived event under `events/` once (the archive may hold a redelivered
/// batch twice; `event_id` decides). Returns the events and how many lines were unreadable.
pub async fn read_archive(blobs: &dyn BlobStore) -> Result<(Vec<TimedEvent>, usize), RecsError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut bad = 0usize;
    for key in blobs.list_blobs("events/").await? {
        let Some(body) = blobs.get_blob(&key).await? else {
            continue; // deleted between list and get
        };
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let parsed = serde_json::from_slice::<BehaviourEvent>(line)
                .ok()
                .and_then(|ev| {
                    let at = time::OffsetDateTime::parse(
                        &ev.timestamp,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .ok()?
                    .unix_timestamp();
                    Some(TimedEvent { event: ev, at })
                });
            match parsed {
                Some(ev) if seen.insert(ev.event.event_id.clone()) => out.push(ev),
                Some(_) => {}
                None => bad += 1,
            }
        }
    }
    Ok((out, bad))
}

impl Signals {
    pub async fn publish(
        &self,
        blobs: &dyn BlobStore,
        created_at: i64,
    ) -> Result<artifact::ArtifactManifest, RecsError> {
        let body = serde_json::to_vec(self).map_err(|e| RecsError::Invalid(e.to_string()))?;
        let version = artifact::version_name(created_at, &artifact::sha256_hex(&body));
        let meta = serde_json::json!({
            "items_with_neighbours": self.neighbours.len(), "events": self.events,
            "sessions": self.sessions,
        });
        artifact::publish(
            blobs,
            KIND,
            &version,
            created_at,
            vec![("signals.json".into(), Bytes::from(body))],
            meta,
        )
        .await
        .map_err(RecsError::from)
    }

    pub async fn load(blobs: &dyn BlobStore, version: &str) -> Result<Self, RecsError> {
        let (_, mut files) = artifact::load(blobs, KIND, version).await?;
        let body = artifact::take_file(&mut files, "signals.json")?;
        serde_json::from_slice(&body).map_err(|e| RecsError::Corrupt {
            what: format!("signals {version}"),
            reason: e.to_string(),
        })
    }

    pub async fn latest_version(blobs: &dyn BlobStore) -> Result<Option<String>, RecsError> {
        Ok(artifact::latest(blobs, KIND).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, user: &str, kind: EventType, item: &str, at: i64) -> TimedEvent {
        TimedEvent::on_item(id.into(), user.into(), kind, item.into(), at)
    }

    /// Three sessions, computed by hand with weights view 1, purchase 5:
    ///   u1: A view, B view            u2: A buy, B buy, C view        u3: C view, A view
    ///   |A|² = 1 + 25 + 1 = 27, |B|² = 1 + 25 = 26, |C|² = 1 + 1 = 2
    ///   A·B = 1·1 + 5·5 = 26 → 26/√(27·26) = 0.98131
    ///   A·C = 5·1 + 1·1 = 6  →  6/√(27·2)  = 0.81650
    ///   B·C = 5·1 = 5        →  5/√(26·2)  = 0.69338
    /// (plus u1's late, separate session with C alone, which the assertions account for).
    #[test]
    fn cosine_cooccurrence_matches_a_hand_computed_example() {
        use EventType::{Purchase, View};
        let events = vec![
            ev("1", "u1", View, "A", 100),
            ev("2", "u1", View, "B", 110),
            ev("3", "u2", Purchase, "A", 100),
            ev("4", "u2", Purchase, "B", 120),
            ev("5", "u2", View, "C", 130),
            ev("6", "u3", View, "C", 100),
            ev("7", "u3", View, "A", 140),
            // u1 again, hours later: a new session with only one item, so no pairs.
            ev("8", "u1", View, "C", 100 + 5 * 3600),
        ];
        let s = build_signals(&events, &|_| None, 200, &SignalsConfig::default());
        let score = |a: &str, b: &str| {
            s.neighbours[a]
                .iter()
                .find(|n| n.item_id == b)
                .map(|n| n.score)
                .unwrap_or(f64::NAN)
        };
        // u1's late view of C is its own session and adds to |C|²: 1 + 1 + 1 = 3.
        assert!((score("A", "B") - 26.0 / (27.0f64 * 26.0).sqrt()).abs() < 1e-9);
        assert!((score("A", "C") - 6.0 / (27.0f64 * 3.0).sqrt()).abs() < 1e-9);
        assert!((score("B", "C") - 5.0 / (26.0f64 * 3.0).sqrt()).abs() < 1e-9);
        assert_eq!(score("A", "B"), score("B", "A"));
        assert_eq!(s.sessions, 4);
        // Relations: A and B were bought together once; C was only ever viewed.
        let rel = |a: &str, b: &str| {
            s.neighbours[a]
                .iter()
                .find(|n| n.item_id == b)
                .map(|n| n.relation)
        };
        assert_eq!(rel("A", "B"), Some(Relation::CoPurchase));
        assert_eq!(rel("A", "C"), Some(Relation::CoView));
        // Neighbours best first.
        assert_eq!(s.neighbours["A"][0].item_id, "B");
    }

    /// EASE^R neighbours against numpy (`ease::tests` has the same X): five one-session
    /// shoppers over items a–d, X = [[1,1,0,0],[0,1,1,0],[1,1,1,0],[0,0,1,1],[1,0,0,1]].
    /// Mean Gram diagonal (3+3+3+2)/4 = 2.75, so relative λ 0.5/2.75 is λ = 0.5, where numpy
    /// gives B[a] = [0, 0.54054, -0.27737, 0.45161]: a's neighbours are b then d, never c.
    #[test]
    fn ease_neighbours_match_numpy_and_fall_back_to_cosine_past_the_cap() {
        let x = [
            [1, 1, 0, 0],
            [0, 1, 1, 0],
            [1, 1, 1, 0],
            [0, 0, 1, 1],
            [1, 0, 0, 1],
        ];
        let names = ["a", "b", "c", "d"];
        let mut events = Vec::new();
        for (u, row) in x.iter().enumerate() {
            for (i, v) in row.iter().enumerate() {
                if *v == 1 {
                    let id = format!("{u}-{i}");
                    events.push(ev(&id, &format!("u{u}"), EventType::View, names[i], 100));
                }
            }
        }
        let cfg = SignalsConfig {
            ease_lambda: Some(0.5 / 2.75),
            ..SignalsConfig::default()
        };
        let s = build_signals(&events, &|_| None, 200, &cfg);
        let a: Vec<(&str, f64)> = s.neighbours["a"]
            .iter()
            .map(|n| (n.item_id.as_str(), n.score))
            .collect();
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!((a[0].0, a[1].0), ("b", "d"));
        assert!((a[0].1 - 0.5405405405405405).abs() < 1e-9, "{a:?}");
        assert!((a[1].1 - 0.4516129032258064).abs() < 1e-9, "{a:?}");
        // B is not symmetric: b's weight for a is 0.72993.
        let b_a = s.neighbours["b"].iter().find(|n| n.item_id == "a").unwrap();
        assert!((b_a.score - 0.72992700729927).abs() < 1e-9);

        // Over the item cap the job keeps cosine: a and c co-occur once, so c is listed.
        let capped = SignalsConfig {
            ease_max_items: 3,
            ..cfg
        };
        let s = build_signals(&events, &|_| None, 200, &capped);
        assert!(s.neighbours["a"].iter().any(|n| n.item_id == "c"));
    }

    #[test]
    fn item_model_settings_parse_with_clear_errors() {
        let env = |pairs: Vec<(&'static str, &'static str)>| {
            move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_owned())
        };
        let d = SignalsConfig::from_lookup(env(vec![])).unwrap();
        assert_eq!(d, SignalsConfig::default());
        let e = SignalsConfig::from_lookup(env(vec![
            ("SHOPMIND_SIGNALS_ITEM_MODEL", "ease"),
            ("SHOPMIND_SIGNALS_EASE_LAMBDA", "3"),
            ("SHOPMIND_SIGNALS_EASE_MAX_ITEMS", "800"),
        ]))
        .unwrap();
        assert_eq!((e.ease_lambda, e.ease_max_items), (Some(3.0), 800));
        for bad in [
            ("SHOPMIND_SIGNALS_ITEM_MODEL", "als"),
            ("SHOPMIND_SIGNALS_EASE_LAMBDA", "-1"),
            ("SHOPMIND_SIGNALS_EASE_MAX_ITEMS", "lots"),
        ] {
            let err = SignalsConfig::from_lookup(env(vec![bad]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(bad.0) && err.contains(bad.1), "{err}");
        }
    }

    #[test]
    fn popularity_decays_from_the_event_time_and_trending_groups_by_top_category() {
        use EventType::{Purchase, View};
        let day = 86_400;
        let now = 100 * day;
        let events = vec![
            // Old purchases of X: 5 · 2^-(28/14) = 1.25 each → 2.5 in all.
            ev("1", "a", Purchase, "X", now - 28 * day),
            ev("2", "b", Purchase, "X", now - 28 * day),
            // Two fresh views of Y: 2.0.
            ev("3", "c", View, "Y", now),
            ev("4", "d", View, "Y", now),
        ];
        let cat = |id: &str| {
            Some(
                if id == "X" {
                    "Home > Lamps"
                } else {
                    "Home > Rugs"
                }
                .to_owned(),
            )
        };
        let s = build_signals(&events, &cat, now, &SignalsConfig::default());
        assert_eq!(s.popular[0].item_id, "X");
        assert!((s.popular[0].score - 2.5).abs() < 1e-9);
        assert!((s.popular[1].score - 2.0).abs() < 1e-9);
        // With a one-day half-life, the month-old purchases are nearly gone.
        assert_eq!(s.trending["Home"][0].item_id, "Y");
        assert!(s.neighbours.is_empty(), "no shopper saw two items");
    }
}
