//! The blend, filters, MMR and reasons on a small catalog whose answers can be read off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use shopmind_profiles::{DecayedVector, Profile, SeenItem};
use shopmind_recs::{
    for_you, for_you_candidates, similar, BlendConfig, ForYou, ItemIndex, ItemMeta, Neighbour,
    Relation, Scored, Signals, Snapshot, Source, Theta,
};

/// Items on a 4-d "topic" axis: dresses (d*), shoes (s*), lamps (l*).
fn snapshot() -> Snapshot {
    let rows: [(&str, &str, [f32; 4], bool); 7] = [
        ("d1", "Women > Dresses", [1.0, 0.0, 0.0, 0.0], true),
        ("d2", "Women > Dresses", [0.99, 0.1, 0.0, 0.0], true),
        ("d3", "Women > Dresses", [0.98, 0.0, 0.15, 0.0], true),
        ("d4", "Women > Dresses", [0.9, 0.0, 0.0, 0.1], false), // out of stock
        ("s1", "Women > Shoes", [0.2, 1.0, 0.0, 0.0], true),
        ("l1", "Home > Lamps", [0.0, 0.0, 1.0, 0.0], true),
        ("l2", "Home > Lamps", [0.0, 0.0, 0.9, 0.3], true),
    ];
    let meta = rows
        .iter()
        .map(|(id, cat, _, stock)| ItemMeta {
            item_id: (*id).into(),
            title: format!("Title {id}"),
            category: (*cat).into(),
            brand: None,
            price: None,
            in_stock: *stock,
            created_at: None,
        })
        .collect();
    let vectors = rows.iter().flat_map(|r| r.2).collect();
    let items = ItemIndex::new("v1", "m", 4, meta, vectors).unwrap();
    let n = |id: &str, score: f64, relation| Neighbour {
        item_id: id.into(),
        score,
        relation,
    };
    let mut neighbours = BTreeMap::new();
    neighbours.insert(
        "d1".into(),
        vec![
            n("s1", 0.9, Relation::CoPurchase),
            n("l2", 0.2, Relation::CoView),
        ],
    );
    let sc = |id: &str, score: f64| Scored {
        item_id: id.into(),
        score,
    };
    let mut trending = BTreeMap::new();
    trending.insert("Home".into(), vec![sc("l2", 3.0), sc("l1", 1.0)]);
    let signals = Signals {
        neighbours,
        popular: vec![
            sc("d4", 100.0),
            sc("l1", 50.0),
            sc("d2", 40.0),
            sc("s1", 10.0),
        ],
        trending,
        events: 0,
        sessions: 0,
    };
    Snapshot {
        items: Some(Arc::new(items)),
        signals: Some(Arc::new(signals)),
        signals_version: Some("s1".into()),
    }
}

fn shopper() -> Profile {
    let mut p = Profile::new("u1");
    p.recent_items = vec![SeenItem {
        item_id: "d1".into(),
        at: 10,
    }];
    p.embedding = Some(DecayedVector {
        sum: vec![1.0, 0.0, 0.0, 0.0],
        at: 10,
    });
    p
}

fn ids(r: &[shopmind_recs::Recommendation]) -> Vec<&str> {
    r.iter().map(|x| x.item_id.as_str()).collect()
}

#[test]
fn cold_start_is_popular_items_in_stock_with_reasons() {
    let snap = snapshot();
    let req = ForYou {
        limit: 3,
        ..ForYou::default()
    };
    let cfg = BlendConfig {
        mmr_lambda: 1.0,
        ..BlendConfig::default()
    };
    let r = for_you(&snap, &req, &cfg);
    // d4 is the most popular but out of stock.
    assert_eq!(ids(&r), ["l1", "d2", "s1"]);
    assert_eq!(r[0].reasons[0].text, "popular in Home");
    assert!(r
        .iter()
        .all(|x| x.reasons.iter().any(|y| y.source == Source::Popularity)));
}

#[test]
fn a_known_shopper_gets_semantic_and_bought_together_items_and_not_what_they_saw() {
    let snap = snapshot();
    let profile = shopper();
    let req = ForYou {
        profile: Some(&profile),
        limit: 4,
        exclude_recent: true,
        exclude_purchased: true,
        ..ForYou::default()
    };
    let r = for_you(&snap, &req, &BlendConfig::default());
    let got = ids(&r);
    assert!(!got.contains(&"d1"), "recently viewed is excluded: {got:?}");
    assert!(!got.contains(&"d4"), "out of stock: {got:?}");
    let s1 = r
        .iter()
        .find(|x| x.item_id == "s1")
        .expect("bought together with d1");
    assert!(s1
        .reasons
        .iter()
        .any(|x| x.text == "often bought together with 'Title d1'"
            && x.item_id.as_deref() == Some("d1")));
    let d2 = r.iter().find(|x| x.item_id == "d2").unwrap();
    assert_eq!(d2.reasons[0].text, "similar to 'Title d1' you viewed");
    assert!(r.iter().all(|x| !x.reasons.is_empty()));

    // Without the exclusion, the viewed item may come back.
    let keep = ForYou {
        exclude_recent: false,
        ..req.clone()
    };
    assert!(ids(&for_you(&snap, &keep, &BlendConfig::default())).contains(&"d1"));
}

/// The offline θ search ranks gathered candidates itself; what it ranks must be what the
/// storefront would get with those weights (before the catalog top-up).
#[test]
fn candidates_ranked_under_any_theta_match_for_you_without_mmr() {
    let snap = snapshot();
    let profile = shopper();
    let req = ForYou {
        profile: Some(&profile),
        limit: 5,
        exclude_recent: true,
        ..ForYou::default()
    };
    let gathered = for_you_candidates(&snap, &req, &BlendConfig::default()).unwrap();
    let index = snap.items.as_deref().unwrap();
    let thetas = [
        (0.35, 0.45, 0.1),
        (1.0, 0.0, 0.0),
        (0.0, 1.0, 0.0),
        (0.0, 0.0, 1.0),
        (0.05, 1.0, 0.4),
    ];
    let mut orders = Vec::new();
    for (s, c, p) in thetas {
        let theta = Theta {
            semantic: s,
            collaborative: c,
            popularity: p,
            context: 0.0,
        };
        let ranked: Vec<String> = gathered
            .rank(&theta, req.limit)
            .into_iter()
            .map(|r| index.meta(r).unwrap().item_id.clone())
            .collect();
        assert!(!ranked.is_empty());
        let cfg = BlendConfig {
            theta,
            mmr_lambda: 1.0,
            ..BlendConfig::default()
        };
        let served = for_you(&snap, &req, &cfg);
        assert_eq!(ids(&served)[..ranked.len()], ranked, "θ {s}/{c}/{p}");
        orders.push(ranked);
    }
    // The weights matter: semantic alone and popularity alone disagree.
    assert_ne!(orders[1], orders[3]);
}

#[test]
fn a_shopper_seen_before_the_items_were_indexed_gets_neighbours_of_what_they_saw() {
    // Events that arrive before their items are indexed leave the profile without an
    // embedding; the seeds still say what the shopper looked at.
    let snap = snapshot();
    let mut profile = shopper();
    profile.embedding = None;
    profile.recent_items = vec![SeenItem {
        item_id: "l1".into(),
        at: 10,
    }];
    let req = ForYou {
        profile: Some(&profile),
        limit: 2,
        exclude_recent: true,
        ..ForYou::default()
    };
    let cfg = BlendConfig {
        mmr_lambda: 1.0,
        ..BlendConfig::default()
    };
    let r = for_you(&snap, &req, &cfg);
    // l2 is l1's nearest item (cosine 0.95); trending in Home adds to it.
    assert_eq!(r[0].item_id, "l2", "{r:?}");
    assert!(r[0]
        .reasons
        .iter()
        .any(|x| x.text == "similar to 'Title l1' you viewed"));
}

#[test]
fn category_filter_and_trending_in_that_category() {
    let snap = snapshot();
    let profile = shopper();
    let req = ForYou {
        profile: Some(&profile),
        limit: 10,
        category: Some("Home > Lamps"),
        ..ForYou::default()
    };
    let r = for_you(&snap, &req, &BlendConfig::default());
    assert_eq!(ids(&r).len(), 2);
    assert!(ids(&r).iter().all(|id| id.starts_with('l')));
    assert!(r
        .iter()
        .any(|x| x.reasons.iter().any(|y| y.text == "trending in Home")));
}

#[test]
fn mmr_trades_relevance_for_variety() {
    let snap = snapshot();
    let mut profile = shopper();
    profile.recent_items.clear();
    let req = ForYou {
        profile: Some(&profile),
        limit: 3,
        ..ForYou::default()
    };
    let only_semantic = |lambda| BlendConfig {
        theta: shopmind_recs::Theta {
            semantic: 1.0,
            collaborative: 0.0,
            popularity: 0.0,
            context: 0.0,
        },
        mmr_lambda: lambda,
        ..BlendConfig::default()
    };
    // Relevance alone: the three dresses (near duplicates of each other).
    let plain = for_you(&snap, &req, &only_semantic(1.0));
    assert_eq!(ids(&plain), ["d1", "d2", "d3"]);
    assert_eq!(plain[0].reasons[0].text, "matches what you searched for");
    // With λ = 0.3 the second pick is the one least like d1 among the relevant ones.
    let diverse = for_you(&snap, &req, &only_semantic(0.3));
    assert_eq!(diverse[0].item_id, "d1");
    assert_ne!(ids(&diverse)[..2], ["d1", "d2"]);
}

#[test]
fn context_text_steers_the_list_and_says_so() {
    let snap = snapshot();
    let lamp = [0.0f32, 0.0, 1.0, 0.0];
    let req = ForYou {
        limit: 2,
        context: Some(("reading lamp", &lamp)),
        ..ForYou::default()
    };
    let r = for_you(&snap, &req, &BlendConfig::default());
    assert_eq!(r[0].item_id, "l1");
    assert_eq!(r[0].reasons[0].text, "matches 'reading lamp'");
}

#[test]
fn similar_items_exclude_the_item_itself_and_unknown_items_are_none() {
    let snap = snapshot();
    let r = similar(&snap, "d1", 3, &BlendConfig::default()).unwrap();
    assert!(!ids(&r).contains(&"d1"));
    assert!(!ids(&r).contains(&"d4"), "out of stock");
    let s1 = r
        .iter()
        .find(|x| x.item_id == "s1")
        .expect("bought together");
    assert_eq!(s1.reasons[0].text, "often bought together with 'Title d1'");
    assert!(similar(&snap, "nope", 3, &BlendConfig::default()).is_none());
}

/// The same catalog as a shop that has just opened: added dates, no behaviour yet.
fn new_shop() -> Snapshot {
    let day = |d: i64| Some(20_454 * 86_400 + d * 86_400); // 2026-01-01 + d days
    let added = [
        ("d1", day(0)),
        ("d2", day(59)),
        ("d3", None),
        ("d4", day(90)),
        ("s1", day(31)),
        ("l1", day(45)),
        ("l2", None),
    ];
    let full = snapshot();
    let index = full.items.as_deref().unwrap();
    let meta = index
        .items()
        .iter()
        .zip(added)
        .map(|(m, (id, at))| {
            assert_eq!(m.item_id, id);
            ItemMeta {
                created_at: at,
                ..m.clone()
            }
        })
        .collect();
    let items = ItemIndex::new("v1", "m", 4, meta, index.matrix().to_vec()).unwrap();
    Snapshot {
        items: Some(Arc::new(items)),
        signals: None,
        signals_version: None,
    }
}

#[test]
fn a_new_shop_shows_its_newest_items_in_stock_across_categories() {
    let snap = new_shop();
    let cfg = BlendConfig {
        mmr_lambda: 1.0,
        ..BlendConfig::default()
    };
    let req = ForYou {
        limit: 4,
        ..ForYou::default()
    };
    let r = for_you(&snap, &req, &cfg);
    // Newest: d4 (out of stock), d2, l1, s1, d1, then the undated d3, l2 in catalog order;
    // taken one top-level category at a time: Women d4, Home l1, Women d2, Home l2, Women s1.
    assert_eq!(ids(&r), ["l1", "d2", "l2", "s1"]);
    let why: Vec<_> = r.iter().map(|x| x.reasons[0].text.as_str()).collect();
    assert_eq!(
        why,
        [
            "new in Home",
            "new in Women",
            "from our Home range",
            "new in Women"
        ]
    );
    assert!(r
        .iter()
        .all(|x| x.reasons.len() == 1 && x.reasons[0].source == Source::Catalog));

    let home = ForYou {
        category: Some("Home"),
        limit: 5,
        ..ForYou::default()
    };
    assert_eq!(ids(&for_you(&snap, &home, &cfg)), ["l1", "l2"]);
}

#[test]
fn a_short_list_is_topped_up_after_the_ranked_items_without_repeats() {
    let snap = snapshot();
    let cfg = BlendConfig {
        mmr_lambda: 1.0,
        ..BlendConfig::default()
    };
    let req = ForYou {
        limit: 10,
        ..ForYou::default()
    };
    let r = for_you(&snap, &req, &cfg);
    // Popular and in stock: l1, d2, s1; then the rest of the in-stock range, undated, in
    // catalog order one category at a time (Women d1, Home l2, Women d3).
    assert_eq!(ids(&r), ["l1", "d2", "s1", "d1", "l2", "d3"]);
    assert!(r[..3]
        .iter()
        .all(|x| x.reasons[0].source == Source::Popularity && x.score > 0.0));
    assert!(r[3..]
        .iter()
        .all(|x| x.reasons[0].source == Source::Catalog && x.score == 0.0));
}
