//! The indexer's signals build (co-occurrence, popularity, trending) on synthetic sessions,
//! one thread: the EASE^R item model (`SHOPMIND_SIGNALS_ITEM_MODEL=ease`, a dense n×n inverse)
//! against the named baseline measured in the same run, the default cosine neighbours, at
//! item counts up to the EASE cap (`SHOPMIND_SIGNALS_EASE_MAX_ITEMS`, 5,000); past the cap
//! the build is cosine whatever the setting, so the larger catalogs time cosine alone.
//!
//! `cargo bench -p shopmind-recs --bench signals` runs 1k, 2.5k and 5k items with EASE and
//! 100k items with cosine; without `--bench` (as `cargo test --all-targets` runs it) it is a
//! quick smoke pass on 300 items.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use shopmind_profiles::EventType;
use shopmind_recs::{build_signals, SignalsConfig, TimedEvent};

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// `users` shoppers, each one session of 2–12 events on items drawn with a popularity skew
/// (the square of a uniform draw), so some pairs recur and most items have few events.
fn events(items: usize, users: usize) -> Vec<TimedEvent> {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ items as u64);
    let kinds = [
        EventType::View,
        EventType::View,
        EventType::AddToCart,
        EventType::Purchase,
    ];
    let mut out = Vec::new();
    for u in 0..users {
        for k in 0..2 + rng.below(11) {
            let a = rng.below(items);
            let item = a * rng.below(items) / items;
            out.push(TimedEvent::on_item(
                format!("e-{u}-{k}"),
                format!("u-{u}"),
                kinds[rng.below(kinds.len())],
                format!("item-{item}"),
                1_795_000_000 + (u * 60 + k * 10) as i64,
            ));
        }
    }
    out
}

fn seconds(evs: &[TimedEvent], cfg: &SignalsConfig) -> (f64, usize) {
    let t = Instant::now();
    let s = build_signals(evs, &|_| None, 1_796_000_000, cfg);
    (t.elapsed().as_secs_f64(), s.neighbours.len())
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let ease_sizes: &[usize] = if full { &[1_000, 2_500, 5_000] } else { &[300] };
    // 1M items (14M events) is left out: the build passed 16 GB of memory there (issue 19).
    let cosine_only: &[usize] = if full { &[100_000] } else { &[] };
    let cosine = SignalsConfig::default();
    let ease = SignalsConfig {
        ease_lambda: Some(10.0),
        ..SignalsConfig::default()
    };
    println!("items      events  | cosine (baseline) | EASE^R        | EASE / cosine | items with neighbours (cosine, EASE)");
    for &n in ease_sizes {
        let evs = events(n, n * 4);
        let (c, cn) = seconds(&evs, &cosine);
        let (e, en) = seconds(&evs, &ease);
        println!(
            "{n:>9} {:>10}  | {c:>14.2} s  | {e:>10.2} s  | {:>12.1}x | {cn}, {en}",
            evs.len(),
            e / c
        );
    }
    for &n in cosine_only {
        let evs = events(n, n * 2);
        let (c, cn) = seconds(&evs, &cosine);
        println!(
            "{n:>9} {:>10}  | {c:>14.2} s  | past the cap  |              | {cn}",
            evs.len()
        );
    }
}
