//! The signals job over a bounded window of the date-partitioned archive
//! (`events/dt=YYYY-MM-DD/…`, written by the profile updater by event date).
//!
//! Each closed day is aggregated once into a compact partial, stored as an artifact named by
//! the day and a fingerprint of the day's archive objects: the pair and norm sums of the
//! sessions that started and ended inside the day, the day's popularity and trending sums
//! (kept apart from `now`, see [`DaySums`]), and the sessions that may continue across a
//! midnight. A run reuses every partial whose day is unchanged, rebuilds a day whose objects
//! changed (late or redelivered events), reads today raw, and merges the window oldest day
//! first. The result is the same as [`crate::build_signals`] over the window's events: the
//! tests compare the two exactly. Memory holds one day's events at a time plus the merged
//! tables, never the archive.
//!
//! A closed day's many small per-batch objects are compacted into one when its partial is
//! built, so later runs list one object per day.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use futures::future::try_join_all;
use serde::Serialize;
use sha2::{Digest, Sha256};
use shopmind_storage::BlobStore;

use crate::cooc::{
    add_to_basket, by_shopper, day_of, finish, pair_key, parse_line, sessionize, Basket, DaySums,
    IdMap, Interner, Mark, Relation, Session, Signals, SignalsConfig, Tally, TimedEvent, DAY,
};
use crate::error::RecsError;
use shopmind_artifacts as artifact;

/// The artifact kind of the daily partials: `indexes/signals-day/v/<date>-<fingerprint>/`.
pub const DAY_KIND: &str = "signals-day";
const MAGIC: &[u8; 4] = b"SMSD";
const FORMAT: u32 = 1;
const FILE: &str = "partial.bin";
/// Archive objects read at once within a day.
const READS_IN_FLIGHT: usize = 16;

/// The UTC date of a day number, as the archive's partitions name it.
pub fn date_of(day: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(day * DAY)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| "invalid".into())
}

/// The days a run covers: the last `window_days` UTC days, today (of `now`) included.
pub fn window_days(now: i64, cfg: &SignalsConfig) -> std::ops::RangeInclusive<i64> {
    let today = day_of(now);
    (today - i64::from(cfg.window_days.max(1)) + 1)..=today
}

pub(crate) fn day_prefix(day: i64) -> String {
    format!("events/dt={}/", date_of(day))
}

/// One day of the archive as read: its distinct events on that date, and the distinct raw
/// lines (for compaction, unreadable ones included: nothing is dropped from the archive).
#[derive(Debug, Default)]
pub(crate) struct DayEvents {
    pub(crate) events: Vec<TimedEvent>,
    pub(crate) unreadable: usize,
    /// Events whose time is on another date than their partition's; counted, not used.
    pub(crate) misfiled: usize,
    lines: Vec<Bytes>,
}

async fn read_day(
    blobs: &dyn BlobStore,
    day: i64,
    keys: &[String],
) -> Result<DayEvents, RecsError> {
    let mut bodies: Vec<Option<Bytes>> = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(READS_IN_FLIGHT) {
        bodies.extend(try_join_all(chunk.iter().map(|k| blobs.get_blob(k))).await?);
    }
    let mut out = DayEvents::default();
    let mut seen_ids = HashSet::new();
    let mut seen_bad = HashSet::new();
    for body in bodies.into_iter().flatten() {
        for (start, end) in line_spans(&body) {
            let line = body.slice(start..end);
            match parse_line(&line) {
                Some(ev) => {
                    if !seen_ids.insert(ev.event.event_id.clone()) {
                        continue;
                    }
                    out.lines.push(line);
                    if day_of(ev.at) == day {
                        out.events.push(ev);
                    } else {
                        out.misfiled += 1;
                    }
                }
                None => {
                    if seen_bad.insert(line.clone()) {
                        out.unreadable += 1;
                        out.lines.push(line);
                    }
                }
            }
        }
    }
    Ok(out)
}

fn line_spans(body: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut start = 0;
    body.split(|b| *b == b'\n').filter_map(move |l| {
        let span = (start, start + l.len());
        start += l.len() + 1;
        (!l.is_empty()).then_some(span)
    })
}

async fn sorted_keys(blobs: &dyn BlobStore, prefix: &str) -> Result<Vec<String>, RecsError> {
    let mut keys = blobs.list_blobs(prefix).await?;
    keys.sort_unstable();
    Ok(keys)
}

/// The window's events as the full recompute reads them: each day's distinct events on its
/// date, oldest day first, and the count of unreadable lines.
pub async fn read_window(
    blobs: &dyn BlobStore,
    days: std::ops::RangeInclusive<i64>,
) -> Result<(Vec<TimedEvent>, usize), RecsError> {
    let (mut events, mut bad) = (Vec::new(), 0);
    for day in days {
        let keys = sorted_keys(blobs, &day_prefix(day)).await?;
        let read = read_day(blobs, day, &keys).await?;
        events.extend(read.events);
        bad += read.unreadable;
    }
    Ok((events, bad))
}

/// A session that may continue across a midnight: the shopper's first session of the day
/// (`head`) when it starts close enough after midnight to join the day before's last, and the
/// last one (`tail`) when it ends close enough before the next. The merge decides.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fragment {
    shopper: String,
    head: bool,
    tail: bool,
    session: Session,
}

/// One day's aggregate, in the day's own item ids.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DayPartial {
    day: i64,
    events: usize,
    unreadable: usize,
    misfiled: usize,
    names: Vec<String>,
    /// The sessions wholly inside the day: how many, their norms and pairs in key order
    /// (lists, not maps: the merge reads each entry once).
    sessions: usize,
    norm: Vec<(u32, f64)>,
    pairs: Vec<PairEntry>,
    sums: DaySums,
    fragments: Vec<Fragment>,
}

type PairEntry = ((u32, u32), (f64, u32, Relation));

impl SignalsConfig {
    /// The longest gap across which an event with this session id could continue a session.
    fn reach(&self, sid: &Option<String>) -> i64 {
        match sid {
            Some(_) => self.session_max_secs,
            None => self.session_gap_secs.min(self.session_max_secs),
        }
    }

    /// Daily partials join sessions across one midnight only.
    pub(crate) fn check_window(&self) -> Result<(), RecsError> {
        if !(0..DAY).contains(&self.session_max_secs) || self.session_gap_secs < 0 {
            return Err(RecsError::Config(format!(
                "the windowed signals job needs sessions shorter than a day (session_max_secs {}, session_gap_secs {})",
                self.session_max_secs, self.session_gap_secs
            )));
        }
        Ok(())
    }

    /// What a stored partial depends on besides its day's objects.
    fn partial_inputs(&self) -> String {
        format!(
            "{FORMAT}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.view.to_bits(),
            self.cart.to_bits(),
            self.purchase.to_bits(),
            self.review.to_bits(),
            self.session_gap_secs,
            self.session_max_secs,
            self.popularity_half_life_secs.to_bits(),
            self.trending_half_life_secs.to_bits()
        )
    }
}

impl DayPartial {
    /// Aggregates one day's events (all on `day`). `now` matters only for today's events
    /// after it; a closed day's partial does not depend on it.
    pub(crate) fn build(day: i64, read: &DayEvents, now: i64, cfg: &SignalsConfig) -> Self {
        let mut names = Interner::default();
        let mut tally = Tally::default();
        let mut sums = DaySums::default();
        let mut fragments = Vec::new();
        let (start, end) = (day * DAY, (day + 1) * DAY);
        for (shopper, evs) in by_shopper(&read.events) {
            let sessions = sessionize(&evs, &mut names, cfg, |item, w, at| {
                sums.add(day, item, w, at, now, cfg)
            });
            let last = sessions.len().saturating_sub(1);
            for (i, s) in sessions.into_iter().enumerate() {
                // The smallest possible gap to an event of the day before (its last second is
                // start - 1) or after (end at the earliest).
                let head = i == 0 && s.first.at - start < cfg.reach(&s.first.sid);
                let tail = i == last && end - s.last.at <= cfg.reach(&s.last.sid);
                if head || tail {
                    fragments.push(Fragment {
                        shopper: shopper.to_owned(),
                        head,
                        tail,
                        session: s,
                    });
                } else {
                    tally.add(&s.items);
                }
            }
        }
        let mut norm: Vec<(u32, f64)> = tally.norm.into_iter().collect();
        norm.sort_unstable_by_key(|e| e.0);
        let mut pairs: Vec<PairEntry> = tally.pair.into_iter().collect();
        pairs.sort_unstable_by_key(|e| e.0);
        Self {
            day,
            events: read.events.len(),
            unreadable: read.unreadable,
            misfiled: read.misfiled,
            names: names.names,
            sessions: tally.sessions,
            norm,
            pairs,
            sums,
            fragments,
        }
    }
}

/// The window's partials merged oldest day first.
struct WindowMerge<'c> {
    cfg: &'c SignalsConfig,
    now: i64,
    names: Interner,
    tally: Tally,
    popular: IdMap<f64>,
    trending: IdMap<f64>,
    /// Shopper → the session still open at the end of the last day merged.
    open: BTreeMap<String, Session>,
    events: usize,
    last_day: Option<i64>,
}

impl<'c> WindowMerge<'c> {
    fn new(cfg: &'c SignalsConfig, now: i64) -> Self {
        Self {
            cfg,
            now,
            names: Interner::default(),
            tally: Tally::default(),
            popular: IdMap::default(),
            trending: IdMap::default(),
            open: BTreeMap::new(),
            events: 0,
            last_day: None,
        }
    }

    fn add(&mut self, p: &DayPartial) -> Result<(), RecsError> {
        if self.last_day.is_some_and(|d| d >= p.day) {
            return Err(RecsError::Invalid(format!(
                "partials must be merged oldest day first ({} after {:?})",
                date_of(p.day),
                self.last_day.map(date_of)
            )));
        }
        self.last_day = Some(p.day);
        let ids: Vec<u32> = p.names.iter().map(|n| self.names.id(n)).collect();
        let id = |local: u32| ids[local as usize];
        for (item, v) in &p.norm {
            *self.tally.norm.entry(id(*item)).or_default() += v;
        }
        for ((a, b), (dot, n, rel)) in &p.pairs {
            self.tally
                .add_pair(pair_key(id(*a), id(*b)), *dot, *n, *rel);
        }
        self.tally.sessions += p.sessions;
        p.sums.decay_into(
            p.day,
            self.now,
            self.cfg,
            id,
            &mut self.popular,
            &mut self.trending,
        );
        self.events += p.events;

        // Sessions open at the day before's end continue only into this day's heads.
        let mut before = std::mem::take(&mut self.open);
        for f in &p.fragments {
            let mut s = Session {
                first: f.session.first.clone(),
                last: f.session.last.clone(),
                items: f
                    .session
                    .items
                    .iter()
                    .map(|(item, v)| (id(*item), *v))
                    .collect(),
            };
            if let Some(mut prev) = before.remove(&f.shopper) {
                if f.head && self.cfg.continues(&prev.last, &s.first) {
                    for (item, (w, rel)) in s.items {
                        add_to_basket(&mut prev.items, item, w, rel);
                    }
                    prev.last = s.last;
                    s = prev;
                } else {
                    self.tally.add(&prev.items);
                }
            }
            if f.tail {
                self.open.insert(f.shopper.clone(), s);
            } else {
                self.tally.add(&s.items);
            }
        }
        for prev in before.into_values() {
            self.tally.add(&prev.items);
        }
        Ok(())
    }

    fn finish(mut self, category_of: &dyn Fn(&str) -> Option<String>) -> Signals {
        for s in std::mem::take(&mut self.open).into_values() {
            self.tally.add(&s.items);
        }
        finish(
            &self.names.names,
            self.tally,
            &self.popular,
            &self.trending,
            self.events,
            category_of,
            self.cfg,
        )
    }
}

/// What the windowed run did, for the job's report.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct WindowStats {
    pub window_days: u32,
    /// The window's first and last dates (UTC), today last.
    pub from: String,
    pub to: String,
    /// Closed days whose stored partial was reused / rebuilt from the archive.
    pub days_reused: usize,
    pub days_rebuilt: usize,
    /// Archive objects merged into one per closed day.
    pub objects_compacted: usize,
    pub unreadable_lines: usize,
    pub misfiled_events: usize,
}

fn partial_version(day: i64, keys: &[String], cfg: &SignalsConfig) -> String {
    let mut h = Sha256::new();
    h.update(cfg.partial_inputs().as_bytes());
    for k in keys {
        h.update(b"\n");
        h.update(k.as_bytes());
    }
    format!("{}-{}", date_of(day), &hex::encode(h.finalize())[..16])
}

async fn load_partial(
    blobs: &dyn BlobStore,
    version: &str,
) -> Result<Option<DayPartial>, RecsError> {
    let prefix = format!("indexes/{DAY_KIND}/v/{version}/");
    // Listing, not reading: S3 answers a read of a missing key with 403 without ListBucket.
    if !blobs
        .list_blobs(&prefix)
        .await?
        .iter()
        .any(|k| k.ends_with("/manifest.json"))
    {
        return Ok(None);
    }
    let loaded = artifact::load(blobs, DAY_KIND, version)
        .await
        .map_err(RecsError::from)
        .and_then(|(_, mut files)| Ok(artifact::take_file(&mut files, FILE)?))
        .and_then(|body| decode(&body));
    match loaded {
        Ok(p) => Ok(Some(p)),
        Err(RecsError::Storage(e)) => Err(RecsError::Storage(e)),
        Err(e) => {
            tracing::warn!(version, error = %e, "unusable daily partial; rebuilding the day");
            Ok(None)
        }
    }
}

/// Writes the day's distinct lines as one object and deletes the ones read; its key.
async fn compact(
    blobs: &dyn BlobStore,
    day: i64,
    keys: &[String],
    lines: &[Bytes],
) -> Result<String, RecsError> {
    let mut sorted: Vec<&Bytes> = lines.iter().collect();
    sorted.sort_unstable();
    let mut body = Vec::with_capacity(sorted.iter().map(|l| l.len() + 1).sum());
    for l in sorted {
        body.extend_from_slice(l);
        body.push(b'\n');
    }
    let key = format!(
        "{}compacted-{}.jsonl",
        day_prefix(day),
        &artifact::sha256_hex(&body)[..32]
    );
    blobs.put_blob(&key, Bytes::from(body)).await?;
    for k in keys.iter().filter(|k| **k != key) {
        blobs.delete_blob(k).await?;
    }
    Ok(key)
}

/// A closed day's partial: the stored one when the day's objects are unchanged, else built
/// from the archive (then compacted and stored). `None` for a day without events.
async fn closed_day(
    blobs: &dyn BlobStore,
    day: i64,
    now: i64,
    cfg: &SignalsConfig,
    stats: &mut WindowStats,
    used: &mut HashSet<String>,
) -> Result<Option<DayPartial>, RecsError> {
    let keys = sorted_keys(blobs, &day_prefix(day)).await?;
    if keys.is_empty() {
        return Ok(None);
    }
    let mut version = partial_version(day, &keys, cfg);
    if let Some(p) = load_partial(blobs, &version).await? {
        stats.days_reused += 1;
        used.insert(version);
        return Ok(Some(p));
    }
    let read = read_day(blobs, day, &keys).await?;
    let partial = DayPartial::build(day, &read, now, cfg);
    if keys.len() > 1 {
        // A failed compaction costs only a rebuild next run: the partial is then stored
        // under the objects it was read from.
        match compact(blobs, day, &keys, &read.lines).await {
            Ok(key) => {
                stats.objects_compacted += keys.len();
                version = partial_version(day, &[key], cfg);
            }
            Err(e) => tracing::warn!(day = date_of(day), error = %e, "compaction failed"),
        }
    }
    let meta = serde_json::json!({
        "date": date_of(day), "events": partial.events, "fragments": partial.fragments.len(),
    });
    match artifact::write_version(
        blobs,
        DAY_KIND,
        &version,
        now,
        vec![(FILE.into(), Bytes::from(encode(&partial)))],
        meta,
    )
    .await
    {
        Ok(_) | Err(artifact::ArtifactError::VersionExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    stats.days_rebuilt += 1;
    used.insert(version);
    Ok(Some(partial))
}

/// Deletes the stored partials this run did not use (superseded, or out of the window).
async fn prune(blobs: &dyn BlobStore, used: &HashSet<String>) -> Result<usize, RecsError> {
    let prefix = format!("indexes/{DAY_KIND}/v/");
    let mut deleted = 0;
    for key in blobs.list_blobs(&prefix).await? {
        let version = key[prefix.len()..].split('/').next().unwrap_or("");
        if !used.contains(version) {
            blobs.delete_blob(&key).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// The signals over the last `cfg.window_days` UTC days, today included, from stored daily
/// partials and today's raw events.
pub async fn signals_over_window(
    blobs: &dyn BlobStore,
    category_of: &(dyn Fn(&str) -> Option<String> + Sync),
    now: i64,
    cfg: &SignalsConfig,
) -> Result<(Signals, WindowStats), RecsError> {
    cfg.check_window()?;
    let (first, today) = window_days(now, cfg).into_inner();
    let mut stats = WindowStats {
        window_days: cfg.window_days,
        from: date_of(first),
        to: date_of(today),
        ..WindowStats::default()
    };
    let mut used = HashSet::new();
    let mut merge = WindowMerge::new(cfg, now);
    // Where the time goes, for the log: reading or building partials, merging, the lists.
    let (mut t_load, mut t_merge) = (0.0, 0.0);
    for day in first..today {
        let t = std::time::Instant::now();
        let got = closed_day(blobs, day, now, cfg, &mut stats, &mut used).await?;
        t_load += t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        if let Some(p) = got {
            stats.unreadable_lines += p.unreadable;
            stats.misfiled_events += p.misfiled;
            merge.add(&p)?;
        }
        t_merge += t.elapsed().as_secs_f64();
    }
    let keys = sorted_keys(blobs, &day_prefix(today)).await?;
    let read = read_day(blobs, today, &keys).await?;
    let partial = DayPartial::build(today, &read, now, cfg);
    stats.unreadable_lines += partial.unreadable;
    stats.misfiled_events += partial.misfiled;
    merge.add(&partial)?;
    let pruned = prune(blobs, &used).await?;
    tracing::info!(
        days_reused = stats.days_reused,
        days_rebuilt = stats.days_rebuilt,
        objects_compacted = stats.objects_compacted,
        pruned,
        "signals window merged"
    );
    let t = std::time::Instant::now();
    let out = merge.finish(category_of);
    tracing::info!(
        load_ms = (t_load * 1e3) as u64,
        merge_ms = (t_merge * 1e3) as u64,
        finish_ms = t.elapsed().as_millis() as u64,
        "signals window timings"
    );
    Ok((out, stats))
}

// ---- the partial's binary form: little-endian, every map written in key order ----

fn relation_code(r: Relation) -> u8 {
    match r {
        Relation::CoView => 0,
        Relation::CoCart => 1,
        Relation::CoPurchase => 2,
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: usize) {
        self.0.extend_from_slice(&(v as u32).to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn mark(&mut self, m: &Mark) {
        self.i64(m.at);
        match &m.sid {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    fn scores(&mut self, m: &IdMap<f64>) {
        let mut v: Vec<_> = m.iter().collect();
        v.sort_unstable_by_key(|e| *e.0);
        self.u32(v.len());
        for (k, s) in v {
            self.u32(*k as usize);
            self.f64(*s);
        }
    }
    fn basket(&mut self, b: &Basket) {
        let mut v: Vec<_> = b.iter().collect();
        v.sort_unstable_by_key(|e| *e.0);
        self.u32(v.len());
        for (k, (w, rel)) in v {
            self.u32(*k as usize);
            self.f64(*w);
            self.u8(relation_code(*rel));
        }
    }
}

fn encode(p: &DayPartial) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.0.extend_from_slice(MAGIC);
    w.u32(FORMAT as usize);
    w.i64(p.day);
    for n in [p.events, p.unreadable, p.misfiled, p.sessions] {
        w.i64(n as i64);
    }
    w.u32(p.names.len());
    for n in &p.names {
        w.str(n);
    }
    w.scores(&p.sums.popular);
    w.scores(&p.sums.trending);
    w.u32(p.norm.len());
    for (item, v) in &p.norm {
        w.u32(*item as usize);
        w.f64(*v);
    }
    w.i64(p.pairs.len() as i64);
    for ((a, b), (dot, n, rel)) in &p.pairs {
        w.u32(*a as usize);
        w.u32(*b as usize);
        w.f64(*dot);
        w.u32(*n as usize);
        w.u8(relation_code(*rel));
    }
    w.u32(p.fragments.len());
    for f in &p.fragments {
        w.str(&f.shopper);
        w.u8(u8::from(f.head) | u8::from(f.tail) << 1);
        w.mark(&f.session.first);
        w.mark(&f.session.last);
        w.basket(&f.session.items);
    }
    w.0
}

struct Reader<'a> {
    b: &'a [u8],
    names: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.b.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn i64(&mut self) -> Result<i64, String> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_le_bytes(a))
    }
    fn count(&mut self) -> Result<usize, String> {
        usize::try_from(self.i64()?).map_err(|_| "negative count".to_owned())
    }
    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_bits(self.i64()? as u64))
    }
    fn item(&mut self) -> Result<u32, String> {
        let id = self.u32()?;
        if id as usize >= self.names {
            return Err(format!("item id {id} past the {} names", self.names));
        }
        Ok(id)
    }
    fn str(&mut self) -> Result<String, String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| e.to_string())
    }
    fn relation(&mut self) -> Result<Relation, String> {
        match self.u8()? {
            0 => Ok(Relation::CoView),
            1 => Ok(Relation::CoCart),
            2 => Ok(Relation::CoPurchase),
            other => Err(format!("relation code {other}")),
        }
    }
    fn mark(&mut self) -> Result<Mark, String> {
        let at = self.i64()?;
        let sid = match self.u8()? {
            0 => None,
            1 => Some(self.str()?),
            other => return Err(format!("session-id flag {other}")),
        };
        Ok(Mark { at, sid })
    }
    fn scores(&mut self) -> Result<IdMap<f64>, String> {
        let n = self.u32()? as usize;
        (0..n).map(|_| Ok((self.item()?, self.f64()?))).collect()
    }
    fn basket(&mut self) -> Result<Basket, String> {
        let n = self.u32()? as usize;
        (0..n)
            .map(|_| Ok((self.item()?, (self.f64()?, self.relation()?))))
            .collect()
    }
}

fn decode(body: &[u8]) -> Result<DayPartial, RecsError> {
    let parse = || -> Result<DayPartial, String> {
        let mut r = Reader { b: body, names: 0 };
        if r.take(4)? != MAGIC || r.u32()? != FORMAT {
            return Err(format!("not a format-{FORMAT} daily partial"));
        }
        let day = r.i64()?;
        let (events, unreadable, misfiled, sessions) =
            (r.count()?, r.count()?, r.count()?, r.count()?);
        let n = r.u32()? as usize;
        let names = (0..n).map(|_| r.str()).collect::<Result<Vec<_>, _>>()?;
        r.names = names.len();
        let popular = r.scores()?;
        let trending = r.scores()?;
        let n = r.u32()? as usize;
        let norm = (0..n)
            .map(|_| Ok((r.item()?, r.f64()?)))
            .collect::<Result<Vec<_>, String>>()?;
        let n = r.count()?;
        let mut pairs = Vec::with_capacity(n.min(body.len() / 21));
        for _ in 0..n {
            let key = (r.item()?, r.item()?);
            pairs.push((key, (r.f64()?, r.u32()?, r.relation()?)));
        }
        let n = r.u32()? as usize;
        let mut fragments = Vec::with_capacity(n.min(body.len()));
        for _ in 0..n {
            let shopper = r.str()?;
            let flags = r.u8()?;
            fragments.push(Fragment {
                shopper,
                head: flags & 1 != 0,
                tail: flags & 2 != 0,
                session: Session {
                    first: r.mark()?,
                    last: r.mark()?,
                    items: r.basket()?,
                },
            });
        }
        if !r.b.is_empty() {
            return Err(format!("{} bytes past the end", r.b.len()));
        }
        Ok(DayPartial {
            day,
            events,
            unreadable,
            misfiled,
            names,
            sessions,
            norm,
            pairs,
            sums: DaySums { popular, trending },
            fragments,
        })
    };
    parse().map_err(|reason| RecsError::Corrupt {
        what: "daily signals partial".into(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive_fixture::{archive, category, misfiled, write, DAY0};
    use crate::cooc::{build_signals, read_archive};
    use shopmind_profiles::EventType;
    use shopmind_storage::embedded::EmbeddedStore;

    async fn full_recompute(blobs: &dyn BlobStore, now: i64, cfg: &SignalsConfig) -> Signals {
        let (events, _) = read_window(blobs, window_days(now, cfg)).await.unwrap();
        build_signals(&events, &category, now, cfg)
    }

    #[tokio::test]
    async fn the_window_from_daily_partials_equals_the_full_recompute_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = EmbeddedStore::open(dir.path()).unwrap();
        let days = 6;
        let events = archive(0x9E37_79B9_7F4A_7C15, days);
        write(&blobs, &events, "a").await;
        // Mid-afternoon of the last day: today's events after `now` count undecayed.
        let now = (DAY0 + days - 1) * DAY + 15 * 3600;
        for cfg in [
            SignalsConfig {
                window_days: days as u32,
                ..SignalsConfig::default()
            },
            SignalsConfig {
                window_days: 4,
                ..SignalsConfig::default()
            },
            SignalsConfig {
                window_days: days as u32,
                ease_lambda: Some(0.5),
                ..SignalsConfig::default()
            },
        ] {
            let (windowed, stats) = signals_over_window(&blobs, &category, now, &cfg)
                .await
                .unwrap();
            let full = full_recompute(&blobs, now, &cfg).await;
            assert!(full.sessions > 50 && !full.neighbours.is_empty());
            assert_eq!(windowed, full, "window {}", cfg.window_days);
            assert_eq!(stats.window_days, cfg.window_days);
        }

        // With the window over the whole archive and nothing misfiled, the unbounded reader
        // of before sees the same events (it keeps the misfiled one, so drop it first).
        let cfg = SignalsConfig {
            window_days: days as u32,
            ..SignalsConfig::default()
        };
        let (all, bad) = read_archive(&blobs).await.unwrap();
        assert_eq!(bad, 1);
        let wrong = &events[misfiled(&events)].event.event_id;
        assert_eq!(all.iter().filter(|e| e.event.event_id == *wrong).count(), 1);
        let on_date: Vec<TimedEvent> = all
            .into_iter()
            .filter(|e| e.event.event_id != *wrong)
            .collect();
        let (windowed, stats) = signals_over_window(&blobs, &category, now, &cfg)
            .await
            .unwrap();
        assert_eq!(windowed, build_signals(&on_date, &category, now, &cfg));
        assert_eq!((stats.misfiled_events, stats.unreadable_lines), (1, 1));
    }

    #[tokio::test]
    async fn closed_days_are_built_once_compacted_and_rebuilt_alone_embedded() {
        let dir = tempfile::tempdir().unwrap();
        incremental_runs(&EmbeddedStore::open(dir.path()).unwrap()).await;
    }

    /// The same on the emulator's S3: listing, deleting, and a partial found by listing.
    #[tokio::test]
    async fn closed_days_are_built_once_compacted_and_rebuilt_alone_emulator() {
        incremental_runs(&shopmind_storage::conformance::emulator_store().await).await;
    }

    async fn incremental_runs(blobs: &dyn BlobStore) {
        let days = 5;
        let events = archive(0xDEAD_BEEF_1234_5678, days);
        write(blobs, &events, "a").await;
        let now = (DAY0 + days - 1) * DAY + 10 * 3600;
        let cfg = SignalsConfig {
            window_days: days as u32,
            ..SignalsConfig::default()
        };
        let (first, s1) = signals_over_window(blobs, &category, now, &cfg)
            .await
            .unwrap();
        assert_eq!((s1.days_reused, s1.days_rebuilt), (0, 4));
        assert!(s1.objects_compacted >= 8, "{s1:?}");
        for day in DAY0..DAY0 + days - 1 {
            let keys = blobs.list_blobs(&day_prefix(day)).await.unwrap();
            assert_eq!(keys.len(), 1, "{keys:?}");
            assert!(keys[0].contains("/compacted-"));
        }
        // Today is never compacted: it is still being written.
        assert!(
            blobs
                .list_blobs(&day_prefix(DAY0 + days - 1))
                .await
                .unwrap()
                .len()
                > 1
        );
        // Compaction kept every line: the unreadable one too.
        let (_, bad) = read_archive(blobs).await.unwrap();
        assert_eq!(bad, 1);

        // An unchanged archive: every closed day reused, the same signals.
        let (again, s2) = signals_over_window(blobs, &category, now, &cfg)
            .await
            .unwrap();
        assert_eq!(
            (s2.days_reused, s2.days_rebuilt, s2.objects_compacted),
            (4, 0, 0)
        );
        assert_eq!(again, first);

        // A late batch for day 2 (one new event, one redelivered): only that day is rebuilt.
        let late_day = DAY0 + 1;
        let mut late = TimedEvent::on_item(
            "late-1".into(),
            "u-late".into(),
            EventType::Purchase,
            "i1".into(),
            late_day * DAY + 23 * 3600 + 50 * 60,
        );
        late.event.session_id = Some("s-late".into());
        let again_ev = events.iter().find(|e| day_of(e.at) == late_day).unwrap();
        let body = crate::cooc::archive_object([&late, again_ev]).unwrap();
        blobs
            .put_blob(
                &format!("{}late.jsonl", day_prefix(late_day)),
                Bytes::from(body),
            )
            .await
            .unwrap();
        let (after, s3) = signals_over_window(blobs, &category, now, &cfg)
            .await
            .unwrap();
        assert_eq!((s3.days_reused, s3.days_rebuilt), (3, 1));
        assert_eq!(after, full_recompute(blobs, now, &cfg).await);
        assert_eq!(after.events, first.events + 1);

        // A day later with a three-day window: the days that left it are not read, and their
        // partials (and the superseded one) are deleted.
        let narrow = SignalsConfig {
            window_days: 3,
            ..cfg
        };
        let later = now + DAY;
        let (_, s4) = signals_over_window(blobs, &category, later, &narrow)
            .await
            .unwrap();
        assert_eq!(s4.from, date_of(DAY0 + days - 2));
        let stored: HashSet<String> = blobs
            .list_blobs(&format!("indexes/{DAY_KIND}/v/"))
            .await
            .unwrap()
            .into_iter()
            .filter_map(|k| k.split('/').nth(3).map(|v| v[..10].to_owned()))
            .collect();
        let expect: HashSet<String> = [DAY0 + days - 2, DAY0 + days - 1]
            .into_iter()
            .map(date_of)
            .collect();
        assert_eq!(stored, expect);
    }

    #[test]
    fn partials_round_trip_and_damage_is_reported() {
        let events = archive(7, 3);
        let day = DAY0 + 1;
        let read = DayEvents {
            events: events.into_iter().filter(|e| day_of(e.at) == day).collect(),
            ..DayEvents::default()
        };
        let p = DayPartial::build(day, &read, (day + 1) * DAY, &SignalsConfig::default());
        assert!(!p.fragments.is_empty() && !p.pairs.is_empty());
        let body = encode(&p);
        assert_eq!(decode(&body).unwrap(), p);
        assert_eq!(encode(&decode(&body).unwrap()), body, "one byte form");
        for bad in [
            &body[..body.len() - 3],
            &body[1..],
            &[body.as_slice(), b"x"].concat(),
        ] {
            assert!(matches!(decode(bad), Err(RecsError::Corrupt { .. })));
        }
    }

    #[tokio::test]
    async fn sessions_longer_than_a_day_are_refused_for_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = EmbeddedStore::open(dir.path()).unwrap();
        let cfg = SignalsConfig {
            session_max_secs: 2 * DAY,
            ..SignalsConfig::default()
        };
        let err = signals_over_window(&blobs, &category, DAY0 * DAY, &cfg)
            .await
            .unwrap_err();
        assert!(matches!(err, RecsError::Config(m) if m.contains("shorter than a day")));
    }
}
