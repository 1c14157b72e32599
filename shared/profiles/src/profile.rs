//! The shopper profile and how one event changes it.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::config::UpdaterConfig;
use crate::event::{EventType, ValidEvent};

/// A score that halves every half-life, anchored at the latest event time it has seen. Adding
/// in any order gives Σ wᵢ · 2^(−(t_ref − tᵢ)/h): events that arrive late decay from their own
/// time, not from their arrival.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Decayed {
    pub score: f64,
    /// Unix seconds the score is anchored at.
    pub at: i64,
}

fn factor(dt_secs: i64, half_life_secs: f64) -> f64 {
    0.5f64.powf(dt_secs as f64 / half_life_secs)
}

impl Decayed {
    pub fn add(&mut self, weight: f64, at: i64, half_life_secs: f64) {
        if self.score == 0.0 && self.at == 0 {
            *self = Self { score: weight, at };
        } else if at >= self.at {
            self.score = self.score * factor(at - self.at, half_life_secs) + weight;
            self.at = at;
        } else {
            self.score += weight * factor(self.at - at, half_life_secs);
        }
    }

    /// The score as of `now` (never negative: removals only take away what was added).
    pub fn value_at(&self, now: i64, half_life_secs: f64) -> f64 {
        (self.score * factor(now - self.at, half_life_secs)).max(0.0)
    }
}

/// A decayed weighted sum of vectors, normalised when read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecayedVector {
    pub sum: Vec<f32>,
    pub at: i64,
}

impl DecayedVector {
    pub fn add(&mut self, v: &[f32], weight: f64, at: i64, half_life_secs: f64) {
        if self.sum.is_empty() {
            self.sum = v.iter().map(|x| (f64::from(*x) * weight) as f32).collect();
            self.at = at;
            return;
        }
        if self.sum.len() != v.len() {
            // Vectors from two models are not comparable. The newer one is from the model in
            // use (an encoder switch re-embeds the catalog), so it starts the profile afresh;
            // an older one is dropped. Keeping the old vector instead would freeze every
            // profile on the retired model, whose queries no index answers any more.
            if at >= self.at {
                self.sum = v.iter().map(|x| (f64::from(*x) * weight) as f32).collect();
                self.at = at;
            }
            return;
        }
        let (old, new) = if at >= self.at {
            let f = factor(at - self.at, half_life_secs);
            self.at = at;
            (f, weight)
        } else {
            (1.0, weight * factor(self.at - at, half_life_secs))
        };
        for (s, x) in self.sum.iter_mut().zip(v) {
            *s = (f64::from(*s) * old + f64::from(*x) * new) as f32;
        }
    }

    /// The unit-length direction, if any.
    pub fn unit(&self) -> Option<Vec<f32>> {
        let norm = self.sum.iter().map(|x| x * x).sum::<f32>().sqrt();
        (norm > 1e-9).then(|| self.sum.iter().map(|x| x / norm).collect())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeenItem {
    pub item_id: String,
    pub at: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub profile_id: String,
    /// Events applied, by type.
    pub counts: BTreeMap<String, u64>,
    /// `category` / `brand` / `price_band` → value → decayed score.
    pub affinities: BTreeMap<String, BTreeMap<String, Decayed>>,
    /// Newest first, one entry per item.
    pub recent_items: Vec<SeenItem>,
    /// Newest first, one entry per item.
    pub purchased: Vec<SeenItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<DecayedVector>,
    pub last_seen: Option<i64>,
    /// The latest applied event ids, written with the profile so a redelivery is recognised
    /// atomically with the update it would repeat.
    pub applied_events: VecDeque<String>,
    /// Anonymous profiles merged in (each merges once).
    pub merged_from: Vec<String>,
}

/// A price band label for affinities.
pub fn price_band(price: f64) -> &'static str {
    match price {
        p if p < 10.0 => "under_10",
        p if p < 25.0 => "10_25",
        p if p < 50.0 => "25_50",
        p if p < 100.0 => "50_100",
        p if p < 250.0 => "100_250",
        _ => "250_plus",
    }
}

fn remember(list: &mut Vec<SeenItem>, item_id: &str, at: i64, limit: usize) {
    if let Some(existing) = list.iter_mut().find(|s| s.item_id == item_id) {
        existing.at = existing.at.max(at);
    } else {
        list.push(SeenItem {
            item_id: item_id.to_owned(),
            at,
        });
    }
    list.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.item_id.cmp(&b.item_id)));
    list.truncate(limit);
}

impl Profile {
    pub fn new(profile_id: &str) -> Self {
        Self {
            profile_id: profile_id.to_owned(),
            ..Self::default()
        }
    }

    pub fn has_applied(&self, event_id: &str) -> bool {
        self.applied_events.iter().any(|e| e == event_id)
    }

    /// Applies one event. `vector` is the item's or the query's embedding, when known.
    pub fn apply(&mut self, ev: &ValidEvent, vector: Option<&[f32]>, cfg: &UpdaterConfig) {
        let e = &ev.event;
        let hl = cfg.half_life_secs();
        *self.counts.entry(e.kind.as_str().to_owned()).or_default() += 1;
        self.last_seen = Some(self.last_seen.map_or(ev.at, |t| t.max(ev.at)));
        let weight = cfg.weight(e.kind, e.value);
        if weight != 0.0 {
            let mut bump = |dimension: &str, key: &str| {
                self.affinities
                    .entry(dimension.to_owned())
                    .or_default()
                    .entry(key.to_owned())
                    .or_default()
                    .add(weight, ev.at, hl);
            };
            if let Some(c) = &e.category {
                bump("category", c);
            }
            if let Some(b) = &e.brand {
                bump("brand", b);
            }
            if let Some(p) = e.price {
                bump("price_band", price_band(p));
            }
        }
        if let Some(item) = &e.item_id {
            if matches!(
                e.kind,
                EventType::View | EventType::AddToCart | EventType::Purchase | EventType::Review
            ) {
                remember(&mut self.recent_items, item, ev.at, cfg.recent_limit);
            }
            if e.kind == EventType::Purchase {
                remember(&mut self.purchased, item, ev.at, cfg.purchased_limit);
            }
        }
        if let Some(v) = vector {
            let w = if e.kind == EventType::Search {
                cfg.weights.search
            } else {
                weight
            };
            if w > 0.0 {
                self.embedding
                    .get_or_insert_with(DecayedVector::default)
                    .add(v, w, ev.at, hl);
            }
        }
        self.applied_events.push_back(e.event_id.clone());
        while self.applied_events.len() > cfg.applied_window {
            self.applied_events.pop_front();
        }
    }

    /// Folds an anonymous profile into this one (after an identify).
    pub fn merge(&mut self, anon: &Profile, cfg: &UpdaterConfig) {
        let hl = cfg.half_life_secs();
        for (k, n) in &anon.counts {
            *self.counts.entry(k.clone()).or_default() += n;
        }
        for (dim, scores) in &anon.affinities {
            let mine = self.affinities.entry(dim.clone()).or_default();
            for (key, d) in scores {
                mine.entry(key.clone()).or_default().add(d.score, d.at, hl);
            }
        }
        for s in &anon.recent_items {
            remember(&mut self.recent_items, &s.item_id, s.at, cfg.recent_limit);
        }
        for s in &anon.purchased {
            remember(&mut self.purchased, &s.item_id, s.at, cfg.purchased_limit);
        }
        if let Some(v) = &anon.embedding {
            if !v.sum.is_empty() {
                self.embedding
                    .get_or_insert_with(DecayedVector::default)
                    .add(&v.sum, 1.0, v.at, hl);
            }
        }
        self.last_seen = match (self.last_seen, anon.last_seen) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.merged_from.push(anon.profile_id.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn decay_follows_the_half_life_whatever_the_arrival_order() {
        let hl = 7.0 * DAY as f64;
        let t0 = 1_700_000_000;
        // Hand-computed: weights 1 at t0, 2 at t0 + 7 d, 4 at t0 + 14 d, read at t0 + 14 d:
        // 1·¼ + 2·½ + 4 = 5.25.
        let events = [(1.0, t0), (2.0, t0 + 7 * DAY), (4.0, t0 + 14 * DAY)];
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
            let mut d = Decayed::default();
            for i in order {
                d.add(events[i].0, events[i].1, hl);
            }
            assert!(
                (d.value_at(t0 + 14 * DAY, hl) - 5.25).abs() < 1e-9,
                "{order:?}: {d:?}"
            );
            // One more half-life later everything has halved.
            assert!((d.value_at(t0 + 21 * DAY, hl) - 2.625).abs() < 1e-9);
        }
    }

    #[test]
    fn price_bands() {
        assert_eq!(price_band(9.99), "under_10");
        assert_eq!(price_band(10.0), "10_25");
        assert_eq!(price_band(1000.0), "250_plus");
    }

    #[test]
    fn a_vector_from_another_encoder_restarts_the_profile_when_newer() {
        let hl = 7.0 * DAY as f64;
        let t0 = 1_700_000_000;
        let mut d = DecayedVector::default();
        d.add(&[1.0, 0.0, 0.0], 1.0, t0, hl); // the retired 3-d encoder
        d.add(&[0.0, 1.0], 2.0, t0 - DAY, hl); // older, other model: dropped
        assert_eq!((d.sum.clone(), d.at), (vec![1.0, 0.0, 0.0], t0));
        d.add(&[0.0, 1.0], 2.0, t0 + DAY, hl); // newer: the profile follows the new encoder
        assert_eq!((d.sum.clone(), d.at), (vec![0.0, 2.0], t0 + DAY));
        d.add(&[1.0, 0.0], 1.0, t0 + DAY, hl); // and now accumulates as usual
        assert_eq!(d.sum, vec![1.0, 2.0]);
    }
}
