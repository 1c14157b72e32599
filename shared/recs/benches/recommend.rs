//! Request latency of the "for you" blend on synthetic catalogs, one thread, against a named
//! baseline measured in the same run: the same semantic source written the obvious way
//! (score every item into a vector, sort it all, take k). A second line compares the
//! semantic source itself: the exact f32 top-k against the int8-shortlist top-k the blend
//! uses, with the recall of the latter against the former.
//!
//! `cargo bench -p shopmind-recs --bench recommend` runs 10k, 100k and 1M items; without
//! `--bench` (as `cargo test --all-targets` runs it) it is a quick smoke pass on 10k.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use shopmind_profiles::{DecayedVector, Profile, SeenItem};
use shopmind_recs::{
    for_you, top_k, BlendConfig, ForYou, ItemIndex, ItemMeta, Neighbour, Relation, Scored, Signals,
    Snapshot,
};

const DIM: usize = 384;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f32(&mut self) -> f32 {
        (self.next() % 20_001) as f32 / 10_000.0 - 1.0
    }
}

fn catalog(n: usize, rng: &mut Rng) -> Snapshot {
    let cats = [
        "Women > Dresses",
        "Women > Shoes",
        "Home > Lamps",
        "Men > Shirts",
        "Garden",
    ];
    let meta: Vec<ItemMeta> = (0..n)
        .map(|i| ItemMeta {
            item_id: format!("item-{i}"),
            title: format!("Synthetic item number {i}"),
            category: cats[i % cats.len()].into(),
            brand: Some(format!("brand-{}", i % 97)),
            price: Some((i % 300) as f64),
            in_stock: i % 10 != 0,
            created_at: None,
        })
        .collect();
    let vectors: Vec<f32> = (0..n * DIM).map(|_| rng.f32()).collect();
    let items = ItemIndex::new("bench", "synthetic", DIM, meta, vectors).unwrap();
    let mut neighbours = BTreeMap::new();
    for i in 0..2000.min(n) {
        let list = (0..50)
            .map(|j| Neighbour {
                item_id: format!("item-{}", rng.next() as usize % n),
                score: 1.0 / (1.0 + j as f64),
                relation: Relation::CoView,
            })
            .collect();
        neighbours.insert(format!("item-{i}"), list);
    }
    let popular = (0..200)
        .map(|i| Scored {
            item_id: format!("item-{}", i * 7 % n),
            score: 200.0 - i as f64,
        })
        .collect();
    Snapshot {
        items: Some(Arc::new(items)),
        signals: Some(Arc::new(Signals {
            neighbours,
            popular,
            trending: BTreeMap::new(),
            events: 0,
            sessions: 0,
        })),
        signals_version: None,
    }
}

fn shopper(n: usize, rng: &mut Rng) -> Profile {
    let mut p = Profile::new("bench");
    p.recent_items = (0..20)
        .map(|i| SeenItem {
            item_id: format!("item-{}", (rng.next() as usize) % 2000.min(n)),
            at: 1000 - i,
        })
        .collect();
    p.purchased = p.recent_items[..5].to_vec();
    p.embedding = Some(DecayedVector {
        sum: (0..DIM).map(|_| rng.f32()).collect(),
        at: 1000,
    });
    p
}

/// The baseline: every score into a vector, a full sort, the first k.
fn naive_semantic(index: &ItemIndex, q: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut all: Vec<(usize, f32)> = index
        .matrix()
        .chunks_exact(DIM)
        .enumerate()
        .filter(|(r, _)| index.meta(*r).is_some_and(|m| m.in_stock))
        .map(|(r, v)| (r, v.iter().zip(q).map(|(a, b)| a * b).sum()))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1));
    all.truncate(k);
    all
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[(usize, usize)] = if full {
        &[(10_000, 300), (100_000, 200), (1_000_000, 30)]
    } else {
        &[(10_000, 5)]
    };
    let cfg = BlendConfig::default();
    println!("catalog   bytes/item  for_you p50     p99    | baseline semantic p50 | ratio | exact f32 top-k p50 | int8+rescore p50 | ratio | recall@pool");
    for &(n, iters) in sizes {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
        let snap = catalog(n, &mut rng);
        let index = snap.items.clone().unwrap();
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        let (mut exact_ms, mut quant_ms, mut found) = (Vec::new(), Vec::new(), 0usize);
        for _ in 0..iters {
            let p = shopper(n, &mut rng);
            let req = ForYou {
                profile: Some(&p),
                limit: 20,
                exclude_purchased: true,
                exclude_recent: true,
                ..ForYou::default()
            };
            let t = Instant::now();
            let r = for_you(&snap, &req, &cfg);
            ours.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(r.len(), 20);
            let q = p.embedding.as_ref().unwrap().unit().unwrap();
            let t = Instant::now();
            let b = naive_semantic(&index, &q, cfg.pool);
            base.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(b.len(), cfg.pool);
            let in_stock = |r: usize| index.meta(r).is_some_and(|m| m.in_stock);
            let t = Instant::now();
            let exact = top_k(index.matrix(), DIM, &q, cfg.pool, in_stock);
            exact_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let quick = index.nearest(&q, cfg.pool, in_stock);
            quant_ms.push(t.elapsed().as_secs_f64() * 1e3);
            found += quick
                .iter()
                .filter(|x| exact.iter().any(|e| e.0 == x.0))
                .count();
        }
        exact_ms.sort_by(f64::total_cmp);
        quant_ms.sort_by(f64::total_cmp);
        let (e50, q50) = (percentile(&exact_ms, 0.5), percentile(&quant_ms, 0.5));
        let recall = found as f64 / (iters * cfg.pool) as f64;
        ours.sort_by(f64::total_cmp);
        base.sort_by(f64::total_cmp);
        let (p50, p99, b50) = (
            percentile(&ours, 0.5),
            percentile(&ours, 0.99),
            percentile(&base, 0.5),
        );
        println!(
            "{n:>8}  {:>10}  {p50:>9.2} ms {p99:>7.2} ms | {b50:>17.2} ms | {:.2}x | {e50:>15.2} ms | {q50:>12.2} ms | {:.2}x | {recall:.4}",
            index.memory_bytes() / n,
            b50 / p50,
            e50 / q50
        );
    }
}
