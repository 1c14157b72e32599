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
    /// Even with the same `session_id`, a gap longer than this starts a new session (a tab
    /// left open overnight is a new visit). Under a day, so the windowed job's daily
    /// partials only ever join sessions across one midnight.
    pub session_max_secs: i64,
    /// The windowed signals job reads the last this many UTC days (today included).
    pub window_days: u32,
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
            session_max_secs: 8 * 3600,
            window_days: 30,
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
    /// | `SHOPMIND_SIGNALS_WINDOW_DAYS` | `30` | UTC days of events the signals job reads (1–3650) |
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
            window_days: match value("SHOPMIND_SIGNALS_WINDOW_DAYS") {
                None => d.window_days,
                Some(v) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=3650).contains(n))
                    .ok_or_else(|| {
                        RecsError::Config(format!(
                            "SHOPMIND_SIGNALS_WINDOW_DAYS={v:?}: expected whole days from 1 to 3650"
                        ))
                    })?,
            },
            ..d
        })
    }

    pub(crate) fn weight(&self, kind: EventType) -> Option<(f64, Relation)> {
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

pub(crate) const DAY: i64 = 86_400;

/// The UTC day (days since 1970-01-01) an instant falls on.
pub(crate) fn day_of(at: i64) -> i64 {
    at.div_euclid(DAY)
}

/// The top-level category of a path (`Women > Dresses` → `Women`).
pub fn top_category(path: &str) -> &str {
    path.split('>').next().unwrap_or("").trim()
}

/// A multiply-rotate hash (rustc's FxHash) for the tables keyed by dense item ids: several
/// times faster than SipHash on integer keys, and the ids are assigned in order, never chosen
/// by a caller, so there is nothing to flood.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

pub(crate) type IdMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<IdHasher>>;
pub(crate) type PairMap<V> = HashMap<(u32, u32), V, std::hash::BuildHasherDefault<IdHasher>>;

/// Item names as dense ids, so co-occurrence tables hold numbers, not strings.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: HashMap<String, u32>,
    pub(crate) names: Vec<String>,
}

impl Interner {
    pub(crate) fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.to_owned(), id);
        self.names.push(name.to_owned());
        id
    }
}

/// Where a session starts or ends: the event's time and session id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mark {
    pub(crate) at: i64,
    pub(crate) sid: Option<String>,
}

/// A session's items: item → (strongest weight, its relation).
pub(crate) type Basket = IdMap<(f64, Relation)>;

/// The first event with the strongest weight decides an item's relation in the session.
pub(crate) fn add_to_basket(basket: &mut Basket, item: u32, w: f64, rel: Relation) {
    let e = basket.entry(item).or_insert((0.0, rel));
    if w > e.0 {
        *e = (w, rel);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Session {
    pub(crate) first: Mark,
    pub(crate) last: Mark,
    pub(crate) items: Basket,
}

impl SignalsConfig {
    /// Whether an event at `next` continues the session whose last event was `prev`: the
    /// same session id (or, when either has none, a gap of at most `session_gap_secs`), and
    /// never across a gap longer than `session_max_secs`.
    pub(crate) fn continues(&self, prev: &Mark, next: &Mark) -> bool {
        let gap = next.at - prev.at;
        gap <= self.session_max_secs
            && match (&next.sid, &prev.sid) {
                (Some(a), Some(b)) => a == b,
                _ => gap <= self.session_gap_secs,
            }
    }
}

/// One shopper's events, sorted by time then event id, cut into sessions; `on_event` sees
/// every weighted event on an item (for popularity).
pub(crate) fn sessionize(
    evs: &[&TimedEvent],
    names: &mut Interner,
    cfg: &SignalsConfig,
    mut on_event: impl FnMut(u32, f64, i64),
) -> Vec<Session> {
    let mut out = Vec::new();
    let mut current: Option<Session> = None;
    for ev in evs {
        let Some(item) = ev.event.item_id.as_deref() else {
            continue;
        };
        let Some((w, rel)) = cfg.weight(ev.event.kind) else {
            continue;
        };
        let item = names.id(item);
        on_event(item, w, ev.at);
        let mark = Mark {
            at: ev.at,
            sid: ev.event.session_id.clone(),
        };
        match current.as_mut() {
            Some(s) if cfg.continues(&s.last, &mark) => s.last = mark,
            _ => {
                out.extend(current.take());
                current = Some(Session {
                    first: mark.clone(),
                    last: mark,
                    items: Basket::default(),
                });
            }
        }
        if let Some(s) = current.as_mut() {
            add_to_basket(&mut s.items, item, w, rel);
        }
    }
    out.extend(current);
    out
}

/// The events grouped by shopper (signed-in id, else anonymous id), each shopper's sorted by
/// time then event id, so the result does not depend on the order the archive was read in.
pub(crate) fn by_shopper(events: &[TimedEvent]) -> BTreeMap<&str, Vec<&TimedEvent>> {
    let mut out: BTreeMap<&str, Vec<&TimedEvent>> = BTreeMap::new();
    for ev in events {
        let who = ev
            .event
            .user_id
            .as_deref()
            .or(ev.event.anonymous_id.as_deref())
            .unwrap_or("");
        out.entry(who).or_default().push(ev);
    }
    for evs in out.values_mut() {
        evs.sort_by(|a, b| {
            a.at.cmp(&b.at)
                .then_with(|| a.event.event_id.cmp(&b.event.event_id))
        });
    }
    out
}

/// Pair statistics over sessions: items are vectors indexed by session, valued by weight.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Tally {
    /// Item → Σ weight² over its sessions.
    pub(crate) norm: IdMap<f64>,
    /// (smaller id, larger id) → (Σ weight products, sessions together, strongest relation).
    pub(crate) pair: PairMap<(f64, u32, Relation)>,
    pub(crate) sessions: usize,
}

pub(crate) fn pair_key(a: u32, b: u32) -> (u32, u32) {
    if a < b {
        (a, b)
    } else {
        (b, a)
    }
}

impl Tally {
    pub(crate) fn add(&mut self, basket: &Basket) {
        self.sessions += 1;
        let items: Vec<(u32, f64, Relation)> = basket.iter().map(|(k, v)| (*k, v.0, v.1)).collect();
        for (i, a) in items.iter().enumerate() {
            *self.norm.entry(a.0).or_default() += a.1 * a.1;
            for b in &items[i + 1..] {
                self.add_pair(pair_key(a.0, b.0), a.1 * b.1, 1, a.2.min(b.2));
            }
        }
    }

    pub(crate) fn add_pair(&mut self, key: (u32, u32), dot: f64, n: u32, rel: Relation) {
        let e = self.pair.entry(key).or_insert((0.0, 0, Relation::CoView));
        e.0 += dot;
        e.1 += n;
        e.2 = e.2.max(rel);
    }
}

/// A day's decayed sums, kept apart from `now`: an event at `at` on day d adds
/// w·2^((min(at, now) − start of d)/h), and the day's sum is scaled by 2^(−(now − start of d)/h)
/// when lists are made. That is w·2^(−(now − at)/h) (no decay for events after `now`), with a
/// closed day's part fixed, so it can be stored once and reused by every later run.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct DaySums {
    pub(crate) popular: IdMap<f64>,
    pub(crate) trending: IdMap<f64>,
}

impl DaySums {
    pub(crate) fn add(
        &mut self,
        day: i64,
        item: u32,
        w: f64,
        at: i64,
        now: i64,
        cfg: &SignalsConfig,
    ) {
        let since = (at.min(now) - day * DAY) as f64;
        *self.popular.entry(item).or_default() +=
            w * (since / cfg.popularity_half_life_secs).exp2();
        *self.trending.entry(item).or_default() += w * (since / cfg.trending_half_life_secs).exp2();
    }

    /// Adds this day's sums, decayed to `now`, into the running scores (`id` maps this
    /// day's item ids to the scores' ids). Days must come oldest first, so every path that
    /// builds the same window adds the same numbers in the same order.
    pub(crate) fn decay_into(
        &self,
        day: i64,
        now: i64,
        cfg: &SignalsConfig,
        id: impl Fn(u32) -> u32,
        popular: &mut IdMap<f64>,
        trending: &mut IdMap<f64>,
    ) {
        let age = (now - day * DAY) as f64;
        let p = (-age / cfg.popularity_half_life_secs).exp2();
        let t = (-age / cfg.trending_half_life_secs).exp2();
        for (item, s) in &self.popular {
            *popular.entry(id(*item)).or_default() += s * p;
        }
        for (item, s) in &self.trending {
            *trending.entry(id(*item)).or_default() += s * t;
        }
    }
}

/// Builds the signals from every event given, in one pass (the full recompute; the windowed
/// job in [`crate::window`] builds the same from daily partials). `category_of` gives an
/// item's category path (from the item index); items it does not know still co-occur, but
/// trend in no category.
pub fn build_signals(
    events: &[TimedEvent],
    category_of: &dyn Fn(&str) -> Option<String>,
    now: i64,
    cfg: &SignalsConfig,
) -> Signals {
    let mut names = Interner::default();
    let mut tally = Tally::default();
    let mut days: BTreeMap<i64, DaySums> = BTreeMap::new();
    for evs in by_shopper(events).values() {
        let sessions = sessionize(evs, &mut names, cfg, |item, w, at| {
            let day = day_of(at);
            days.entry(day).or_default().add(day, item, w, at, now, cfg);
        });
        for s in &sessions {
            tally.add(&s.items);
        }
    }
    let (mut popular, mut trending) = (IdMap::default(), IdMap::default());
    for (day, sums) in &days {
        sums.decay_into(*day, now, cfg, |i| i, &mut popular, &mut trending);
    }
    finish(
        &names.names,
        tally,
        &popular,
        &trending,
        events.len(),
        category_of,
        cfg,
    )
}

/// The neighbour lists and ranked lists from the tallies, however they were gathered.
pub(crate) fn finish(
    names: &[String],
    tally: Tally,
    popular: &IdMap<f64>,
    trending: &IdMap<f64>,
    events: usize,
    category_of: &dyn Fn(&str) -> Option<String>,
    cfg: &SignalsConfig,
) -> Signals {
    let Tally {
        norm,
        pair,
        sessions,
    } = tally;
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
            let e = ease_neighbours(names, &norm, &pair, lambda);
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
        None => cosine_neighbours(names, &norm, pair, cfg.min_sessions, cfg.top_m),
    };
    for list in neighbours.values_mut() {
        list.sort_by(|x, y| {
            y.score
                .total_cmp(&x.score)
                .then_with(|| x.item_id.cmp(&y.item_id))
        });
        list.truncate(cfg.top_m);
    }

    let ranked = |m: &IdMap<f64>| -> Vec<Scored> {
        let mut v: Vec<Scored> = m
            .iter()
            .map(|(k, s)| Scored {
                item_id: names[*k as usize].clone(),
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
    let mut popular = ranked(popular);
    popular.truncate(cfg.list_len);
    let mut by_category: BTreeMap<String, Vec<Scored>> = BTreeMap::new();
    for s in ranked(trending) {
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
        events,
        sessions,
    }
}

/// Item-item cosine over session vectors, for pairs seen in at least `min_sessions` sessions;
/// each item's best `top_m`, best first. Lists are built on ids and only the kept entries get
/// their names, since most pairs of a large window are cut.
fn cosine_neighbours(
    names: &[String],
    norm: &IdMap<f64>,
    pair: PairMap<(f64, u32, Relation)>,
    min_sessions: u32,
    top_m: usize,
) -> BTreeMap<String, Vec<Neighbour>> {
    let mut lists: Vec<Vec<(u32, f64, Relation)>> = vec![Vec::new(); names.len()];
    for ((a, b), (dotp, n, rel)) in pair {
        if n < min_sessions {
            continue;
        }
        let denom =
            (norm.get(&a).copied().unwrap_or(0.0) * norm.get(&b).copied().unwrap_or(0.0)).sqrt();
        if denom <= 0.0 {
            continue;
        }
        let score = dotp / denom;
        lists[a as usize].push((b, score, rel));
        lists[b as usize].push((a, score, rel));
    }
    let best_first = |x: &(u32, f64, Relation), y: &(u32, f64, Relation)| {
        y.1.total_cmp(&x.1)
            .then_with(|| names[x.0 as usize].cmp(&names[y.0 as usize]))
    };
    let mut out = BTreeMap::new();
    for (item, mut list) in lists.into_iter().enumerate() {
        if list.is_empty() {
            continue;
        }
        if top_m > 0 && list.len() > top_m {
            list.select_nth_unstable_by(top_m - 1, best_first);
        }
        list.truncate(top_m);
        list.sort_by(best_first);
        out.insert(
            names[item].clone(),
            list.into_iter()
                .map(|(other, score, relation)| Neighbour {
                    item_id: names[other as usize].clone(),
                    score,
                    relation,
                })
                .collect(),
        );
    }
    out
}

/// Every item's EASE^R neighbours (positive weights only; the caller keeps the top m).
/// `None` when the Gram matrix is not invertible with this λ.
fn ease_neighbours(
    names: &[String],
    norm: &IdMap<f64>,
    pair: &PairMap<(f64, u32, Relation)>,
    lambda: f64,
) -> Option<BTreeMap<String, Vec<Neighbour>>> {
    // Rows in name order, so the matrix (and its sums) never depend on hash order.
    let mut items: Vec<u32> = norm.keys().copied().collect();
    items.sort_unstable_by(|a, b| names[*a as usize].cmp(&names[*b as usize]));
    let pos: IdMap<usize> = items.iter().enumerate().map(|(k, i)| (*i, k)).collect();
    let n = items.len();
    let mut g = vec![0.0; n * n];
    for (k, item) in items.iter().enumerate() {
        g[k * n + k] = norm[item];
    }
    for ((a, b), (dotp, _, _)) in pair {
        let (i, j) = (pos[a], pos[b]);
        g[i * n + j] = *dotp;
        g[j * n + i] = *dotp;
    }
    let mean_diag = (0..n).map(|k| g[k * n + k]).sum::<f64>() / n as f64;
    let started = std::time::Instant::now();
    let b = crate::ease::weights(g, n, lambda * mean_diag)?;
    tracing::info!(
        items = n,
        lambda = lambda * mean_diag,
        ms = started.elapsed().as_millis() as u64,
        "EASE item weights"
    );
    let relation = |x: u32, y: u32| pair.get(&pair_key(x, y)).map_or(Relation::CoView, |p| p.2);
    let mut out = BTreeMap::new();
    for (j, from) in items.iter().enumerate() {
        let list: Vec<Neighbour> = (0..n)
            .filter(|i| b[j * n + i] > 0.0)
            .map(|i| Neighbour {
                item_id: names[items[i] as usize].clone(),
                score: b[j * n + i],
                relation: relation(*from, items[i]),
            })
            .collect();
        if !list.is_empty() {
            out.insert(names[*from as usize].clone(), list);
        }
    }
    Some(out)
}

impl TimedEvent {
    /// The event as an archive line (JSON, `timestamp` written from `at` in RFC 3339): what
    /// [`read_archive`] and the windowed job read back.
    pub fn archive_line(&self) -> Result<Vec<u8>, RecsError> {
        let mut e = self.event.clone();
        e.timestamp = time::OffsetDateTime::from_unix_timestamp(self.at)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .ok_or_else(|| RecsError::Invalid(format!("no RFC 3339 time for {}", self.at)))?;
        serde_json::to_vec(&e).map_err(|e| RecsError::Invalid(e.to_string()))
    }
}

/// Events as one archive object, as the profile updater writes a batch: a line each, each
/// ending in a newline.
pub fn archive_object<'a>(
    events: impl IntoIterator<Item = &'a TimedEvent>,
) -> Result<Vec<u8>, RecsError> {
    let mut body = Vec::new();
    for ev in events {
        body.extend(ev.archive_line()?);
        body.push(b'\n');
    }
    Ok(body)
}

/// One archive line as an event with its time, or `None` when it does not parse.
pub(crate) fn parse_line(line: &[u8]) -> Option<TimedEvent> {
    let ev = serde_json::from_slice::<BehaviourEvent>(line).ok()?;
    let at = time::OffsetDateTime::parse(
        &ev.timestamp,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?
    .unix_timestamp();
    Some(TimedEvent { event: ev, at })
}

/// Reads every archived event under `events/` once, whatever its date (the archive may hold
/// a redelivered batch twice; `event_id` decides). Returns the events and how many lines were
/// unreadable. The unbounded read the windowed job replaced ([`crate::window`]); kept for
/// tools and as the benchmarks' baseline.
pub async fn read_archive(blobs: &dyn BlobStore) -> Result<(Vec<TimedEvent>, usize), RecsError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut bad = 0usize;
    for key in blobs.list_blobs("events/").await? {
        let Some(body) = blobs.get_blob(&key).await? else {
            continue; // deleted between list and get
        };
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match parse_line(line) {
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

    /// Kept lists are the first `top_m` of the whole list, which is best first with ties
    /// broken by name; many ties here, as shoppers repeat the same two-item sessions.
    #[test]
    fn neighbour_lists_keep_the_best_top_m_with_ties_by_name() {
        let mut events = Vec::new();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for u in 0..400 {
            for k in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let item = format!("i{:02}", x % 30);
                events.push(ev(
                    &format!("{u}-{k}"),
                    &format!("u{u}"),
                    EventType::View,
                    &item,
                    100 + k,
                ));
            }
        }
        let all = build_signals(
            &events,
            &|_| None,
            200,
            &SignalsConfig {
                top_m: 1000,
                ..SignalsConfig::default()
            },
        );
        let cut = build_signals(
            &events,
            &|_| None,
            200,
            &SignalsConfig {
                top_m: 4,
                ..SignalsConfig::default()
            },
        );
        let mut ties = 0;
        for (item, list) in &all.neighbours {
            for w in list.windows(2) {
                assert!(
                    w[0].score > w[1].score
                        || (w[0].score == w[1].score && w[0].item_id < w[1].item_id)
                );
                ties += usize::from(w[0].score == w[1].score);
            }
            assert_eq!(cut.neighbours[item], list[..list.len().min(4)], "{item}");
        }
        assert!(ties > 10, "the case needs ties: {ties}");
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
            ("SHOPMIND_SIGNALS_WINDOW_DAYS", "7"),
        ]))
        .unwrap();
        assert_eq!((e.ease_lambda, e.ease_max_items), (Some(3.0), 800));
        assert_eq!(e.window_days, 7);
        for bad in [
            ("SHOPMIND_SIGNALS_ITEM_MODEL", "als"),
            ("SHOPMIND_SIGNALS_EASE_LAMBDA", "-1"),
            ("SHOPMIND_SIGNALS_EASE_MAX_ITEMS", "lots"),
            ("SHOPMIND_SIGNALS_WINDOW_DAYS", "2.5"),
            ("SHOPMIND_SIGNALS_WINDOW_DAYS", "0"),
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
