//! The windowed signals job (daily partials, `signals_over_window`) against the named
//! baseline, the full recompute as the job ran before (`read_archive` + `build_signals` over
//! every archived event), in the same run, on a synthetic archive in the embedded store:
//! 31 days (a 30-day window plus today), sessions of geometric length (mean 5 events, 30 s to
//! 5 min apart, half with session ids), shoppers drawn uniformly, items Zipf(1.05) over
//! 50,000 items, objects of 500 events per day as the profile updater's batches write them.
//!
//! Phases, each timed and with its own peak RSS (`VmHWM`, reset through
//! `/proc/self/clear_refs` before each):
//! 1. the full recompute (baseline);
//! 2. the windowed job's first run: every closed day aggregated, compacted and stored;
//! 3. the next run on an unchanged archive: every closed day's partial reused;
//! 4. a run after a late batch landed on one closed day: that day rebuilt;
//! 5. the next day's run: yesterday built, the window moved on;
//! 6. the SQL mode on the unchanged archive: the statement Athena would run, run by DuckDB
//!    over the same files in a separate process (`infra/scripts/duckdb_signals.py`; one
//!    machine standing in for Athena's cluster: its time is not Athena's), then the
//!    indexer's part of that mode, reading the result and making the lists, with its own
//!    peak RSS. Its lists are asserted equal to the window's.
//!
//! `cargo bench -p shopmind-recs --bench signals_window` runs 1M events;
//! `SHOPMIND_BENCH_SIGNALS_EVENTS=10000000` sets the size. Without `--bench` (as
//! `cargo test --all-targets` runs it) it is a smoke pass on 20,000 events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use bytes::Bytes;
use shopmind_profiles::EventType;
use shopmind_recs::{
    archive_object, build_signals, date_of, read_archive, signals_from_sql_result,
    signals_over_window, signals_sql, SignalsConfig, TimedEvent,
};
use shopmind_storage::{embedded::EmbeddedStore, BlobStore};

const DAY: i64 = 86_400;
const FIRST_DAY: i64 = 20_400;
const DAYS: i64 = 31;
const ITEMS: usize = 50_000;
const PER_OBJECT: usize = 500;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf(s) over `n` ranks by inverse CDF.
struct Zipf(Vec<f64>);
impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Self(cdf)
    }
    fn draw(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.0.partition_point(|c| *c < u).min(self.0.len() - 1)
    }
}

/// Writes about `events` events over the 31 days, up to `now` on the last; the count.
/// Writes the archive; the events and bytes written.
async fn write_archive(
    blobs: &dyn BlobStore,
    events: usize,
    now: i64,
    seed: u64,
) -> (usize, usize) {
    let mut rng = Rng(seed);
    let zipf = Zipf::new(ITEMS, 1.05);
    let shoppers = (events / 20).max(10) as u64;
    let kinds = [
        (70, EventType::View),
        (15, EventType::AddToCart),
        (7, EventType::Purchase),
        (5, EventType::Search),
        (3, EventType::Review),
    ];
    let span = now - FIRST_DAY * DAY;
    let mut all: Vec<TimedEvent> = Vec::with_capacity(events + 100);
    let mut n = 0usize;
    while all.len() < events {
        let user = rng.below(shoppers);
        let sid = user.is_multiple_of(2).then(|| format!("s-{n}"));
        let mut at = FIRST_DAY * DAY + rng.below(span as u64) as i64;
        loop {
            let roll = rng.below(100);
            let mut acc = 0;
            let kind = kinds
                .iter()
                .find(|(p, _)| {
                    acc += p;
                    roll < acc
                })
                .map_or(EventType::View, |k| k.1);
            let mut ev = TimedEvent::on_item(
                format!("e{n}"),
                format!("u{user}"),
                kind,
                format!("item-{}", zipf.draw(&mut rng)),
                at.min(now),
            );
            ev.event.session_id = sid.clone();
            all.push(ev);
            n += 1;
            at += 30 + rng.below(270) as i64;
            if rng.below(5) == 0 {
                break;
            }
        }
    }
    all.sort_by_key(|e| e.at);
    let (mut written, mut bytes) = (0, 0);
    let mut start = 0;
    while start < all.len() {
        let day = all[start].at.div_euclid(DAY);
        let end = all[start..]
            .iter()
            .position(|e| e.at.div_euclid(DAY) != day)
            .map_or(all.len(), |p| start + p);
        for (k, chunk) in all[start..end].chunks(PER_OBJECT).enumerate() {
            let body = archive_object(chunk).unwrap();
            bytes += body.len();
            blobs
                .put_blob(
                    &format!("events/dt={}/batch-{k:06}.jsonl", date_of(day)),
                    Bytes::from(body),
                )
                .await
                .unwrap();
            written += chunk.len();
        }
        start = end;
    }
    (written, bytes)
}

fn reset_peak() {
    // "5" resets the peak resident set size (Linux 4.0+).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The SQL mode's indexer part alone in this process (so its peak RSS is its own): reads the
/// result at `path`, makes the lists, prints the time and peak.
fn sql_result_child(path: &str) {
    let t = Instant::now();
    let body = std::fs::read(path).unwrap();
    let cfg = SignalsConfig {
        window_days: DAYS as u32,
        ..SignalsConfig::default()
    };
    let signals = signals_from_sql_result(&body, &|_| None, &cfg).unwrap();
    drop(body);
    println!(
        "items={} secs={:.3} peak_rss_mb={:.0}",
        signals.neighbours.len(),
        t.elapsed().as_secs_f64(),
        peak_mb()
    );
}

fn main() {
    if let Ok(path) = std::env::var("SHOPMIND_BENCH_SQL_RESULT") {
        return sql_result_child(&path);
    }
    let full = std::env::args().any(|a| a == "--bench");
    let events: usize = std::env::var("SHOPMIND_BENCH_SIGNALS_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 1_000_000 } else { 20_000 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let blobs = EmbeddedStore::open(dir.path()).unwrap();
        let now = (FIRST_DAY + DAYS - 1) * DAY + 14 * 3600;
        let t = Instant::now();
        let (written, bytes) = write_archive(&blobs, events, now, 0x5EED ^ events as u64).await;
        println!(
            "archive: {written} events ({:.0} MB of JSON lines) over {DAYS} days in objects of {PER_OBJECT}, written in {:.1} s",
            bytes as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
        let cfg = SignalsConfig {
            window_days: DAYS as u32,
            ..SignalsConfig::default()
        };
        let cat = |_: &str| None;

        let mut rows = Vec::new();
        reset_peak();
        let t = Instant::now();
        let (all, _) = read_archive(&blobs).await.unwrap();
        let baseline = build_signals(&all, &cat, now, &cfg);
        drop(all);
        let base_s = t.elapsed().as_secs_f64();
        rows.push((
            "full recompute (baseline)".into(),
            base_s,
            peak_mb(),
            format!("{} sessions", baseline.sessions),
        ));

        type Row = (String, f64, f64, String);
        let run = |rows: &mut Vec<Row>, label: &str, secs: f64, stats: shopmind_recs::WindowStats| {
            rows.push((
                label.to_owned(),
                secs,
                peak_mb(),
                format!(
                    "{} reused, {} rebuilt, {} objects compacted",
                    stats.days_reused, stats.days_rebuilt, stats.objects_compacted
                ),
            ));
        };
        reset_peak();
        let t = Instant::now();
        let (first, stats) = signals_over_window(&blobs, &cat, now, &cfg).await.unwrap();
        run(&mut rows, "windowed, first run", t.elapsed().as_secs_f64(), stats);
        assert_eq!(first, baseline, "the window must equal the full recompute");
        drop(baseline);

        reset_peak();
        let t = Instant::now();
        let (again, stats) = signals_over_window(&blobs, &cat, now, &cfg).await.unwrap();
        run(&mut rows, "windowed, unchanged", t.elapsed().as_secs_f64(), stats);
        assert_eq!(again, first);
        drop(first);

        let sql = signals_sql("shopmind.events", now, &cfg).unwrap();
        let duck = shopmind_e2e::duckdb_signals(&dir.path().join("blobs"), &sql);
        rows.push((
            "SQL mode: the statement in DuckDB (Athena's stand-in)".into(),
            duck.secs,
            duck.peak_rss_mb,
            format!("result {:.1} MB", duck.csv.len() as f64 / 1e6),
        ));
        let work = tempfile::tempdir().unwrap();
        let result = work.path().join("result.csv");
        std::fs::write(&result, &duck.csv).unwrap();
        // Timed in a process of its own: this one holds what the earlier phases left.
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .env("SHOPMIND_BENCH_SQL_RESULT", &result)
            .output()
            .unwrap();
        assert!(child.status.success(), "{}", String::from_utf8_lossy(&child.stderr));
        let report = String::from_utf8_lossy(&child.stdout);
        let field = |name: &str| {
            report
                .split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        rows.push((
            "SQL mode: the indexer's part (result → lists, own process)".into(),
            field("secs="),
            field("peak_rss_mb="),
            "—".into(),
        ));
        let by_sql = signals_from_sql_result(&duck.csv, &cat, &cfg).unwrap();
        drop(duck);
        assert_eq!(by_sql.neighbours, again.neighbours, "the SQL mode must equal the window");
        assert_eq!((by_sql.events, by_sql.sessions), (again.events, again.sessions));
        drop((again, by_sql));

        // A late batch on day 10: 200 events of shoppers already seen that day.
        let late_day = FIRST_DAY + 10;
        let late: Vec<TimedEvent> = (0..200)
            .map(|k| {
                TimedEvent::on_item(
                    format!("late-{k}"),
                    format!("u{k}"),
                    EventType::View,
                    format!("item-{}", k % 50),
                    late_day * DAY + 12 * 3600 + k,
                )
            })
            .collect();
        blobs
            .put_blob(
                &format!("events/dt={}/late.jsonl", date_of(late_day)),
                Bytes::from(archive_object(&late).unwrap()),
            )
            .await
            .unwrap();
        reset_peak();
        let t = Instant::now();
        let (_, stats) = signals_over_window(&blobs, &cat, now, &cfg).await.unwrap();
        run(&mut rows, "windowed, one closed day changed", t.elapsed().as_secs_f64(), stats);

        reset_peak();
        let t = Instant::now();
        let (_, stats) = signals_over_window(&blobs, &cat, now + DAY, &cfg)
            .await
            .unwrap();
        run(&mut rows, "windowed, next day", t.elapsed().as_secs_f64(), stats);

        println!("| run | wall | peak RSS | full / this | partials |");
        println!("| --- | --- | --- | --- | --- |");
        for (label, secs, mb, note) in rows {
            println!(
                "| {label} | {secs:.2} s | {mb:.0} MB | {:.1}× | {note} |",
                base_s / secs
            );
        }
    });
}
