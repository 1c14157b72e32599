//! Offline evaluation on files `infra/eval/movielens.py` prepares. For each split (per user by
//! time, and one global cut) the hybrid's θ, seed count and seed decay are chosen on the
//! split's validation slice, carved from its training side; then every method, the peers'
//! lists included, ranks all items for every test user (training items excluded) and is
//! scored by the same code, over all test items and over the cold-item slice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use shopmind_inference::Encoder;
use shopmind_profiles::{DecayedVector, EventType, Profile, SeenItem};

use crate::blend::{for_you, for_you_candidates, BlendConfig, ForYou, Theta};
use crate::cooc::{build_signals, SignalsConfig, TimedEvent};
use crate::error::RecsError;
use crate::index::{ItemIndex, ItemMeta};
use crate::live::Snapshot;

pub const K: usize = 10;
/// The splits `movielens.py` writes, in the order they are reported.
pub const SPLITS: [&str; 2] = ["per-user", "global"];
const SEMANTIC_GRID: [f64; 6] = [0.0, 0.02, 0.05, 0.1, 0.2, 0.35];
const POPULARITY_GRID: [f64; 6] = [0.0, 0.02, 0.05, 0.1, 0.2, 0.4];
const SEEDS_GRID: [usize; 2] = [20, 50];
/// The co-occurrence neighbours: cosine (`None`) or EASE^R with this relative λ.
const ITEM_MODEL_GRID: [Option<f64>; 4] = [None, Some(3.0), Some(10.0), Some(30.0)];
const SEED_DECAY_GRID: [f64; 3] = [0.05, 0.2, 0.5];
const MMR_GRID: [f64; 3] = [1.0, 0.9, 0.8];

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Scores {
    pub ndcg: f64,
    pub recall: f64,
    pub hit_rate: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MethodResult {
    pub method: String,
    /// Hyper-parameters chosen on the validation slice, as the method's own words.
    pub params: String,
    pub all: Scores,
    /// The standard error of the mean NDCG@10 over users.
    pub ndcg_se: f64,
    pub coverage: f64,
    /// The cold-item slice: test items with few training interactions, ranked among the
    /// cold items only.
    pub cold: Scores,
    /// `movielens.py`'s own NDCG@10 of a peer's list: an independent check of this code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ndcg_python: Option<f64>,
}

/// What the validation slice chose for the hybrid.
#[derive(Debug, Clone, Serialize)]
pub struct Learned {
    pub semantic: f64,
    pub collaborative: f64,
    pub popularity: f64,
    pub seeds: usize,
    pub seed_decay: f64,
    pub mmr_lambda: f64,
    /// EASE^R's λ when its neighbours won over cosine.
    pub ease_lambda: Option<f64>,
    pub validation_ndcg: f64,
    /// The shipped defaults' NDCG@10 on the same validation slice.
    pub default_validation_ndcg: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SplitReport {
    pub split: String,
    pub description: String,
    pub users_evaluated: usize,
    pub cold_users: usize,
    pub cold_items: usize,
    pub learned: Learned,
    pub results: Vec<MethodResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub prepared: serde_json::Value,
    pub splits: Vec<SplitReport>,
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

fn read_json(path: &Path) -> Result<serde_json::Value, RecsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RecsError::Invalid(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| RecsError::Invalid(format!("{}: {e}", path.display())))
}

/// Scores one user's ranked list against their held-out items.
fn score(list: &[usize], truth: &HashSet<usize>) -> Scores {
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
    Scores {
        ndcg: if idcg > 0.0 { dcg / idcg } else { 0.0 },
        recall: hits as f64 / truth.len().max(1) as f64,
        hit_rate: f64::from(u8::from(hits > 0)),
    }
}

#[derive(Default)]
struct Tally {
    sums: Scores,
    /// Σ NDCG², for the standard error.
    ndcg_sq: f64,
    users: usize,
    shown: HashSet<usize>,
}

impl Tally {
    fn add(&mut self, list: &[usize], truth: &HashSet<usize>) {
        let s = score(list, truth);
        self.sums.ndcg += s.ndcg;
        self.ndcg_sq += s.ndcg * s.ndcg;
        self.sums.recall += s.recall;
        self.sums.hit_rate += s.hit_rate;
        self.users += 1;
        self.shown.extend(list.iter().take(K));
    }
    fn ndcg_se(&self) -> f64 {
        standard_error(self.sums.ndcg, self.ndcg_sq, self.users)
    }
    fn mean(&self) -> Scores {
        let u = self.users.max(1) as f64;
        Scores {
            ndcg: self.sums.ndcg / u,
            recall: self.sums.recall / u,
            hit_rate: self.sums.hit_rate / u,
        }
    }
}

/// One side of a split: training histories as the product would hold them, and the truth.
struct Side {
    snap: Snapshot,
    index: Arc<ItemIndex>,
    /// Per user, (time, row) in time order.
    train: BTreeMap<String, Vec<(i64, usize)>>,
    truth: BTreeMap<String, HashSet<usize>>,
}

impl Side {
    fn load(dir: &Path, index: Arc<ItemIndex>, ease: Option<f64>) -> Result<Self, RecsError> {
        let mut train: BTreeMap<String, Vec<(i64, usize)>> = BTreeMap::new();
        let mut events = Vec::new();
        for (n, r) in read_tsv(&dir.join("train.tsv"))?.into_iter().enumerate() {
            let (Some(row), Some(at)) = (
                r.get(1).and_then(|i| index.row(i)),
                r.get(2).and_then(|t| t.parse::<i64>().ok()),
            ) else {
                continue;
            };
            train.entry(r[0].clone()).or_default().push((at, row));
            events.push(TimedEvent::on_item(
                n.to_string(),
                r[0].clone(),
                EventType::View,
                r[1].clone(),
                at,
            ));
        }
        for h in train.values_mut() {
            h.sort_unstable();
        }
        let last = events.iter().map(|e| e.at).max().unwrap_or(0);
        // Ratings are not sessions: a user's whole history is one basket here.
        let cfg = SignalsConfig {
            session_gap_secs: i64::MAX / 4,
            session_max_secs: i64::MAX / 4,
            top_m: 100,
            list_len: index.len(),
            popularity_half_life_secs: 365.0 * 86_400.0,
            ease_lambda: ease,
            ..SignalsConfig::default()
        };
        let signals = build_signals(&events, &|_| None, last, &cfg);
        let mut truth: BTreeMap<String, HashSet<usize>> = BTreeMap::new();
        for r in read_tsv(&dir.join("test.tsv"))? {
            if let Some(row) = r.get(1).and_then(|i| index.row(i)) {
                if train.contains_key(&r[0]) {
                    truth.entry(r[0].clone()).or_default().insert(row);
                }
            }
        }
        Ok(Self {
            snap: Snapshot {
                items: Some(index.clone()),
                signals: Some(Arc::new(signals)),
                signals_version: None,
            },
            index,
            train,
            truth,
        })
    }

    /// The profile the profile-updater would hold for `user`, and the rows they have seen.
    fn profile(&self, user: &str) -> (Profile, HashSet<usize>) {
        let history = self.train.get(user).map(Vec::as_slice).unwrap_or(&[]);
        let half_life = 30.0 * 86_400.0;
        let mut profile = Profile::new(user);
        let mut emb = DecayedVector::default();
        for (at, row) in history {
            if let Some(v) = self.index.vector(*row) {
                emb.add(v, 1.0, *at, half_life);
            }
        }
        profile.embedding = Some(emb);
        let mut recent: Vec<SeenItem> = Vec::new();
        let mut listed = HashSet::new();
        for (at, row) in history.iter().rev() {
            if recent.len() >= 50 {
                break;
            }
            if listed.insert(*row) {
                recent.push(SeenItem {
                    item_id: self
                        .index
                        .meta(*row)
                        .map(|m| m.item_id.clone())
                        .unwrap_or_default(),
                    at: *at,
                });
            }
        }
        profile.recent_items = recent;
        (profile, history.iter().map(|h| h.1).collect())
    }
}

/// A user's top K, their training items excluded.
fn top_k_for<'a>(profile: &'a Profile, seen: &'a HashSet<usize>) -> ForYou<'a> {
    ForYou {
        profile: Some(profile),
        limit: K,
        exclude_rows: Some(seen),
        ..ForYou::default()
    }
}

fn blend_config(l: &Learned) -> BlendConfig {
    BlendConfig {
        theta: Theta {
            semantic: l.semantic,
            collaborative: l.collaborative,
            popularity: l.popularity,
            context: 0.0,
        },
        mmr_lambda: l.mmr_lambda,
        seeds: l.seeds,
        seed_decay: l.seed_decay,
        ..BlendConfig::default()
    }
}

fn list(side: &Side, req: &ForYou<'_>, cfg: &BlendConfig) -> Vec<usize> {
    for_you(&side.snap, req, cfg)
        .iter()
        .filter_map(|r| side.index.row(&r.item_id))
        .collect()
}

/// Mean NDCG@10 of `cfg` over the side's test users, on both cores.
fn mean_ndcg(side: &Side, cfg: &BlendConfig) -> f64 {
    let users: Vec<&String> = side.truth.keys().collect();
    let (x, y) = parallel(&users, |chunk| {
        let mut t = Tally::default();
        for u in chunk {
            let (profile, seen) = side.profile(u);
            let req = top_k_for(&profile, &seen);
            t.add(&list(side, &req, cfg), &side.truth[*u]);
        }
        t.sums.ndcg
    });
    (x + y) / users.len().max(1) as f64
}

/// Runs `f` over halves of `items` on two threads; the two results, first half first.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> R + Sync) -> (R, R) {
    let (a, b) = items.split_at(items.len() / 2);
    std::thread::scope(|s| {
        let h = s.spawn(|| f(b));
        let x = f(a);
        (x, h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
    })
}

/// The standard error of a mean from its sum and sum of squares over `n` values.
fn standard_error(sum: f64, sq: f64, n: usize) -> f64 {
    if n < 2 {
        return 0.0;
    }
    let n = n as f64;
    let var = ((sq - sum * sum / n) / (n - 1.0)).max(0.0);
    (var / n).sqrt()
}

/// Element-wise sum of two equally long vectors of sums.
fn add(x: Vec<f64>, y: Vec<f64>) -> Vec<f64> {
    x.iter().zip(&y).map(|(p, q)| p + q).collect()
}

/// The item model, θ, seeds, seed decay and MMR chosen by NDCG@10 on the validation slice.
fn learn(
    dir: &Path,
    index: &Arc<ItemIndex>,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<Learned, RecsError> {
    let mut best: Option<(Learned, Side)> = None;
    // The shipped defaults' figure, on the cosine signals the grid builds anyway.
    let mut shipped = None;
    for ease in ITEM_MODEL_GRID {
        progress(&format!("validation signals, EASE λ {ease:?}"), 0, 1);
        let val = Side::load(dir, index.clone(), ease)?;
        if ease.is_none() {
            shipped = Some(mean_ndcg(&val, &BlendConfig::default()));
        }
        let mut l = grid(&val, progress);
        l.ease_lambda = ease;
        if best
            .as_ref()
            .is_none_or(|b| l.validation_ndcg > b.0.validation_ndcg)
        {
            best = Some((l, val));
        }
    }
    let (Some((mut learned, val)), Some(shipped)) = (best, shipped) else {
        return Err(RecsError::Invalid(
            "the item-model grid must include cosine".into(),
        ));
    };
    learned.default_validation_ndcg = shipped;
    for lambda in MMR_GRID.iter().skip(1) {
        progress("validation MMR", 0, 1);
        let v = mean_ndcg(
            &val,
            &BlendConfig {
                mmr_lambda: *lambda,
                ..blend_config(&learned)
            },
        );
        if v > learned.validation_ndcg {
            learned.validation_ndcg = v;
            learned.mmr_lambda = *lambda;
        }
    }
    Ok(learned)
}

/// θ, seeds and seed decay by NDCG@10 on `val` (no MMR: one gathering ranks every θ).
fn grid(val: &Side, progress: &mut dyn FnMut(&str, usize, usize)) -> Learned {
    let seeds: Vec<(usize, f64)> = SEEDS_GRID
        .iter()
        .flat_map(|s| SEED_DECAY_GRID.iter().map(move |d| (*s, *d)))
        .collect();
    let thetas: Vec<Theta> = SEMANTIC_GRID
        .iter()
        .flat_map(|s| {
            POPULARITY_GRID.iter().map(move |p| Theta {
                semantic: *s,
                collaborative: 1.0,
                popularity: *p,
                context: 0.0,
            })
        })
        .collect();
    let users: Vec<&String> = val.truth.keys().collect();
    progress("validation grid", 0, seeds.len() * thetas.len());
    let (x, y) = parallel(&users, |chunk| {
        let mut sums = vec![0.0; seeds.len() * thetas.len()];
        for u in chunk {
            let (profile, seen) = val.profile(u);
            let req = top_k_for(&profile, &seen);
            for (a, (n, decay)) in seeds.iter().enumerate() {
                let cfg = BlendConfig {
                    seeds: *n,
                    seed_decay: *decay,
                    ..BlendConfig::default()
                };
                let Some(c) = for_you_candidates(&val.snap, &req, &cfg) else {
                    continue;
                };
                for (b, theta) in thetas.iter().enumerate() {
                    sums[a * thetas.len() + b] += score(&c.rank(theta, K), &val.truth[*u]).ndcg;
                }
            }
        }
        sums
    });
    let sums = add(x, y);
    let (best, best_sum) = sums
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |acc, (i, s)| {
            if *s > acc.1 {
                (i, *s)
            } else {
                acc
            }
        });
    let (n, decay) = seeds[best / thetas.len()];
    let theta = thetas[best % thetas.len()];
    Learned {
        semantic: theta.semantic,
        collaborative: theta.collaborative,
        popularity: theta.popularity,
        seeds: n,
        seed_decay: decay,
        mmr_lambda: 1.0,
        ease_lambda: None,
        validation_ndcg: best_sum / users.len().max(1) as f64,
        default_validation_ndcg: 0.0,
    }
}

/// Everything `movielens.py` prepared for one split, scored.
fn evaluate_split(
    dir: &Path,
    name: &str,
    index: &Arc<ItemIndex>,
    prepared: &serde_json::Value,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<SplitReport, RecsError> {
    let learned = learn(&dir.join("val"), index, progress)?;
    progress(&format!("{name}: test signals"), 0, 1);
    let test = Side::load(dir, index.clone(), learned.ease_lambda)?;
    // The shipped defaults use cosine neighbours; so does the ablation of EASE.
    let cosine = match learned.ease_lambda {
        Some(_) => Some(Side::load(dir, index.clone(), None)?),
        None => None,
    };
    let cold: HashSet<usize> = read_tsv(&dir.join("cold.tsv"))?
        .iter()
        .filter_map(|r| r.first().and_then(|i| index.row(i)))
        .collect();
    let warm: HashSet<usize> = (0..index.len()).filter(|r| !cold.contains(r)).collect();

    let chosen = blend_config(&learned);
    let without = |f: fn(&mut Theta)| {
        let mut c = chosen.clone();
        f(&mut c.theta);
        c
    };
    let only = |s, c, p| BlendConfig {
        theta: Theta {
            semantic: s,
            collaborative: c,
            popularity: p,
            context: 0.0,
        },
        mmr_lambda: 1.0,
        ..chosen.clone()
    };
    let learned_text = format!(
        "θ {}/{}/{}, seeds {}, decay {}, MMR λ {}, {}",
        learned.semantic,
        learned.collaborative,
        learned.popularity,
        learned.seeds,
        learned.seed_decay,
        learned.mmr_lambda,
        learned
            .ease_lambda
            .map_or("cosine neighbours".to_owned(), |l| format!(
                "EASE λ {l} × mean diagonal"
            ))
    );
    let mut methods: Vec<(String, String, BlendConfig)> = vec![
        (
            "hybrid, learned on validation".into(),
            learned_text,
            chosen.clone(),
        ),
        (
            "  − semantic".into(),
            String::new(),
            without(|t| t.semantic = 0.0),
        ),
        (
            "  − co-occurrence".into(),
            String::new(),
            without(|t| t.collaborative = 0.0),
        ),
        (
            "  − popularity".into(),
            String::new(),
            without(|t| t.popularity = 0.0),
        ),
        ("semantic alone".into(), String::new(), only(1.0, 0.0, 0.0)),
        (
            "co-occurrence alone".into(),
            String::new(),
            only(0.0, 1.0, 0.0),
        ),
    ];
    // Run on the cosine signals: the shipped defaults, and EASE's ablation when it won.
    let on_cosine = methods.len();
    if cosine.is_some() {
        methods.push((
            "  cosine neighbours instead of EASE".into(),
            String::new(),
            chosen.clone(),
        ));
    }
    methods.push((
        "hybrid as shipped".into(),
        "θ 0.35/0.45/0.10, seeds 20, decay 0.2, MMR λ 0.8, cosine neighbours".into(),
        BlendConfig::default(),
    ));
    let side_of = |m: usize| match &cosine {
        Some(c) if m >= on_cosine => c,
        _ => &test,
    };

    let users: Vec<&String> = test.truth.keys().collect();
    let cold_users = users
        .iter()
        .filter(|u| test.truth[**u].iter().any(|r| cold.contains(r)))
        .count();
    progress(&format!("{name}: ranking"), 0, users.len());
    let per_method = methods.len();
    // Per method: all (ndcg, recall, hit), cold (ndcg, recall, hit), Σ ndcg²; and what was shown.
    let ((xs, xshown), (ys, yshown)) = parallel(&users, |chunk| {
        let mut out = vec![0.0; per_method * 7];
        let mut shown: Vec<HashSet<usize>> = vec![HashSet::new(); per_method];
        for u in chunk {
            let (profile, seen) = test.profile(u);
            let truth = &test.truth[*u];
            let cold_truth: HashSet<usize> = truth.intersection(&cold).copied().collect();
            let mut not_cold = seen.clone();
            not_cold.extend(&warm);
            for (m, (_, _, cfg)) in methods.iter().enumerate() {
                let side = side_of(m);
                let req = top_k_for(&profile, &seen);
                let l = list(side, &req, cfg);
                let s = score(&l, truth);
                shown[m].extend(l);
                out[m * 7] += s.ndcg;
                out[m * 7 + 6] += s.ndcg * s.ndcg;
                out[m * 7 + 1] += s.recall;
                out[m * 7 + 2] += s.hit_rate;
                if !cold_truth.is_empty() {
                    let req = ForYou {
                        exclude_rows: Some(&not_cold),
                        ..req
                    };
                    let s = score(&list(side, &req, cfg), &cold_truth);
                    out[m * 7 + 3] += s.ndcg;
                    out[m * 7 + 4] += s.recall;
                    out[m * 7 + 5] += s.hit_rate;
                }
            }
        }
        (out, shown)
    });
    let sums = add(xs, ys);
    let shown: Vec<HashSet<usize>> = xshown
        .into_iter()
        .zip(yshown)
        .map(|(mut a, b)| {
            a.extend(b);
            a
        })
        .collect();
    let n_users = users.len().max(1) as f64;
    let n_cold = cold_users.max(1) as f64;
    let mut results: Vec<MethodResult> = methods
        .iter()
        .enumerate()
        .map(|(m, (method, params, _))| MethodResult {
            method: method.clone(),
            params: params.clone(),
            all: Scores {
                ndcg: sums[m * 7] / n_users,
                recall: sums[m * 7 + 1] / n_users,
                hit_rate: sums[m * 7 + 2] / n_users,
            },
            ndcg_se: standard_error(sums[m * 7], sums[m * 7 + 6], users.len()),
            coverage: shown[m].len() as f64 / index.len().max(1) as f64,
            cold: Scores {
                ndcg: sums[m * 7 + 3] / n_cold,
                recall: sums[m * 7 + 4] / n_cold,
                hit_rate: sums[m * 7 + 5] / n_cold,
            },
            ndcg_python: None,
        })
        .collect();
    results.extend(peers(dir, &test, &cold, prepared)?);
    Ok(SplitReport {
        split: name.into(),
        description: prepared["split"].as_str().unwrap_or_default().into(),
        users_evaluated: users.len(),
        cold_users,
        cold_items: cold.len(),
        learned,
        results,
    })
}

/// The peers' lists from `peers.tsv` / `peers_cold.tsv` (method, user, items…), scored here.
fn peers(
    dir: &Path,
    test: &Side,
    cold: &HashSet<usize>,
    prepared: &serde_json::Value,
) -> Result<Vec<MethodResult>, RecsError> {
    let mut all: BTreeMap<String, (Tally, Tally)> = BTreeMap::new();
    let seen_of: HashMap<&str, HashSet<usize>> = test
        .train
        .iter()
        .map(|(u, h)| (u.as_str(), h.iter().map(|x| x.1).collect()))
        .collect();
    let nothing = HashSet::new();
    for (file, is_cold) in [("peers.tsv", false), ("peers_cold.tsv", true)] {
        for r in read_tsv(&dir.join(file))? {
            let (Some(method), Some(user)) = (r.first(), r.get(1)) else {
                continue;
            };
            let Some(truth) = test.truth.get(user) else {
                continue;
            };
            let seen = seen_of.get(user.as_str()).unwrap_or(&nothing);
            let list: Vec<usize> = r[2..]
                .iter()
                .filter_map(|i| test.index.row(i))
                .filter(|r| !seen.contains(r))
                .take(K)
                .collect();
            let t = all.entry(method.clone()).or_default();
            if is_cold {
                let cold_truth: HashSet<usize> = truth.intersection(cold).copied().collect();
                if !cold_truth.is_empty() {
                    t.1.add(&list, &cold_truth);
                }
            } else {
                t.0.add(&list, truth);
            }
        }
    }
    let described: HashMap<&str, &serde_json::Value> = prepared["peers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p["method"].as_str()?, p)))
                .collect()
        })
        .unwrap_or_default();
    // Users a peer wrote no list for count as misses.
    let users = test.truth.len().max(1) as f64;
    Ok(all
        .into_iter()
        .map(|(method, (full, cold_t))| {
            let p = described.get(method.as_str());
            let mut s = full.mean();
            let f = full.users as f64 / users;
            s = Scores {
                ndcg: s.ndcg * f,
                recall: s.recall * f,
                hit_rate: s.hit_rate * f,
            };
            MethodResult {
                params: p
                    .map(|p| p["params"].to_string())
                    .filter(|s| s != "{}")
                    .unwrap_or_default(),
                ndcg_python: p.and_then(|p| p["test_ndcg_python"].as_f64()),
                method: format!("{method} (peer)"),
                all: s,
                ndcg_se: full.ndcg_se(),
                coverage: full.shown.len() as f64 / test.index.len().max(1) as f64,
                cold: cold_t.mean(),
            }
        })
        .collect())
}

/// Embeds the items once and evaluates every split `movielens.py` prepared under `dir`.
pub fn evaluate(
    dir: &Path,
    encoder: Arc<Encoder>,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<EvalReport, RecsError> {
    let prepared = read_json(&dir.join("prepared.json"))?;
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
    let index = Arc::new(ItemIndex::new(
        "eval",
        encoder.model_id(),
        encoder.dimension(),
        meta,
        vectors,
    )?);
    let mut splits = Vec::new();
    for name in SPLITS {
        splits.push(evaluate_split(
            &dir.join(name),
            name,
            &index,
            &prepared["splits"][name],
            progress,
        )?);
    }
    Ok(EvalReport { prepared, splits })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NDCG by hand: hits at ranks 1 and 3 of 2 relevant items:
    /// DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) = 1.63093.
    #[test]
    fn metrics_match_hand_computed_values() {
        let truth: HashSet<usize> = [7, 9].into_iter().collect();
        let s = score(&[7, 1, 9, 4], &truth);
        assert!((s.ndcg - 1.5 / (1.0 + 1.0 / 3f64.log2())).abs() < 1e-12);
        assert_eq!((s.recall, s.hit_rate), (1.0, 1.0));
        // Two users scoring 0 and 1: sample variance 0.5, standard error √(0.5 / 2) = 0.5.
        assert!((standard_error(1.0, 1.0, 2) - 0.5).abs() < 1e-12);
        assert_eq!(standard_error(0.3, 0.09, 1), 0.0);
        let miss = score(&[1, 2, 3], &truth);
        assert_eq!((miss.ndcg, miss.recall, miss.hit_rate), (0.0, 0.0, 0.0));
    }
}
