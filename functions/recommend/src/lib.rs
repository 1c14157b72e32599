//! The recommend function's HTTP surface:
//!
//! - `GET /v1/users/{user_id}/recommendations?limit=&category=&context=&exclude_purchased=&exclude_recent=`
//! - `GET /v1/items/{item_id}/similar?limit=`
//!
//! No model is needed at request time unless `context` is given; then the encoder loads on
//! first use. An unknown shopper takes the cold-start path (popular + context), never a 404.
//! The list is personal only when the call carries the shopper's own token
//! (`Authorization: Bearer`); without one it is the cold-start list; another shopper's
//! token is 403.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Extension;
use axum::Router;
use serde::{Deserialize, Serialize};
use shopmind_inference::LazyEncoder;
use shopmind_profiles::Profile;
use shopmind_recs::{for_you, similar, BlendConfig, ForYou, LiveIndexes, Recommendation, Theta};
use shopmind_runtime::{ApiError, Query, Shopper, ShopperAuth};
use shopmind_storage::ProfileStore;

pub const FUNCTION: &str = "recommend";

#[derive(Debug, thiserror::Error)]
pub enum RecommendError {
    #[error("{name}={value:?}: {why}")]
    Config {
        name: &'static str,
        value: String,
        why: &'static str,
    },
}

/// Settings from the environment, read once at cold start:
///
/// | variable | default |
/// | --- | --- |
/// | `SHOPMIND_RECS_THETA_SEMANTIC` / `_COLLABORATIVE` / `_POPULARITY` / `_CONTEXT` | 0.35 / 0.45 / 0.10 / 0.50 |
/// | `SHOPMIND_RECS_MMR_LAMBDA` (0–1; 1 = no diversification) | 0.8 |
/// | `SHOPMIND_RECS_POOL` (candidates per source) | 200 |
/// | `SHOPMIND_RECS_SEEDS` (recent and bought items whose neighbours are candidates) | 20 |
/// | `SHOPMIND_RECS_SEED_DECAY` (a seed of recency rank r weighs 1 / (1 + decay · r)) | 0.2 |
/// | `SHOPMIND_RECS_DEFAULT_LIMIT` / `SHOPMIND_RECS_MAX_LIMIT` | 10 / 100 |
/// | `SHOPMIND_INDEX_REFRESH_SECS` (how often the `LATEST` pointers are read) | 60 |
#[derive(Debug, Clone, PartialEq)]
pub struct RecommendConfig {
    pub blend: BlendConfig,
    pub default_limit: usize,
    pub max_limit: usize,
    pub refresh: Duration,
}

impl Default for RecommendConfig {
    fn default() -> Self {
        Self {
            blend: BlendConfig::default(),
            default_limit: 10,
            max_limit: 100,
            refresh: Duration::from_secs(60),
        }
    }
}

impl RecommendConfig {
    pub fn from_env() -> Result<Self, RecommendError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, RecommendError> {
        let d = Self::default();
        let num = |name: &'static str, default: f64, lo: f64, hi: f64| {
            shopmind_runtime::number_setting(get(name), default, lo, hi).map_err(|value| {
                RecommendError::Config {
                    name,
                    value,
                    why: "must be a number in the documented range",
                }
            })
        };
        let t = d.blend.theta;
        let theta = Theta {
            semantic: num("SHOPMIND_RECS_THETA_SEMANTIC", t.semantic, 0.0, 100.0)?,
            collaborative: num(
                "SHOPMIND_RECS_THETA_COLLABORATIVE",
                t.collaborative,
                0.0,
                100.0,
            )?,
            popularity: num("SHOPMIND_RECS_THETA_POPULARITY", t.popularity, 0.0, 100.0)?,
            context: num("SHOPMIND_RECS_THETA_CONTEXT", t.context, 0.0, 100.0)?,
        };
        let max_limit = num("SHOPMIND_RECS_MAX_LIMIT", d.max_limit as f64, 1.0, 1000.0)? as usize;
        let default_limit = num(
            "SHOPMIND_RECS_DEFAULT_LIMIT",
            d.default_limit as f64,
            1.0,
            1000.0,
        )? as usize;
        if default_limit > max_limit {
            return Err(RecommendError::Config {
                name: "SHOPMIND_RECS_DEFAULT_LIMIT",
                value: default_limit.to_string(),
                why: "must not exceed SHOPMIND_RECS_MAX_LIMIT",
            });
        }
        Ok(Self {
            blend: BlendConfig {
                theta,
                mmr_lambda: num("SHOPMIND_RECS_MMR_LAMBDA", d.blend.mmr_lambda, 0.0, 1.0)?,
                pool: num("SHOPMIND_RECS_POOL", d.blend.pool as f64, 1.0, 100_000.0)? as usize,
                seeds: num("SHOPMIND_RECS_SEEDS", d.blend.seeds as f64, 1.0, 1000.0)? as usize,
                seed_decay: num("SHOPMIND_RECS_SEED_DECAY", d.blend.seed_decay, 0.0, 100.0)?,
            },
            default_limit,
            max_limit,
            refresh: Duration::from_secs_f64(num(
                "SHOPMIND_INDEX_REFRESH_SECS",
                d.refresh.as_secs_f64(),
                0.0,
                86_400.0,
            )?),
        })
    }
}

#[derive(Debug, Clone)]
pub struct RecommendState {
    pub profiles: Arc<dyn ProfileStore>,
    pub indexes: Arc<LiveIndexes>,
    pub encoder: Arc<LazyEncoder>,
    pub config: Arc<RecommendConfig>,
    /// Verifies shopper tokens: a personal list needs the shopper's own.
    pub shoppers: Arc<ShopperAuth>,
}

/// Every route this function serves (method, path), as the router builds them; checked
/// against `infra/openapi.yaml` and the template by `infra/scripts/check_template.py`.
pub const ROUTES: [(&str, &str); 2] = [
    ("GET", "/v1/users/{user_id}/recommendations"),
    ("GET", "/v1/items/{item_id}/similar"),
];

pub fn router(state: RecommendState) -> Router {
    let shoppers = state.shoppers.clone();
    let routes = Router::new()
        .route(ROUTES[0].1, get(for_user))
        .route(ROUTES[1].1, get(similar_items))
        .with_state(state);
    shopmind_runtime::shopper_identity(routes, shoppers)
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForUserQuery {
    limit: Option<i64>,
    category: Option<String>,
    context: Option<String>,
    #[serde(default = "default_true")]
    exclude_purchased: bool,
    #[serde(default = "default_true")]
    exclude_recent: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimilarQuery {
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct RecommendResponse {
    pub items: Vec<Recommendation>,
    /// The item index version the answer came from.
    pub index_version: String,
    /// True when the list comes from no profile: the shopper has none yet, or the call
    /// carried no token of theirs (popular + context only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<bool>,
    /// Whether the list used the shopper's history: only with the shopper's own token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personalised: Option<bool>,
}

const MAX_CONTEXT_CHARS: usize = 500;

fn limit_of(raw: Option<i64>, cfg: &RecommendConfig) -> Result<usize, ApiError> {
    match raw {
        None => Ok(cfg.default_limit),
        Some(n) if n >= 1 && n as u64 <= cfg.max_limit as u64 => Ok(n as usize),
        Some(n) => Err(ApiError::unprocessable(format!(
            "limit {n} must be between 1 and {}",
            cfg.max_limit
        ))),
    }
}

async fn snapshot(state: &RecommendState) -> Result<Arc<shopmind_recs::Snapshot>, ApiError> {
    let snap = state
        .indexes
        .current()
        .await
        .map_err(|e| ApiError::unavailable("the item index", e))?;
    if snap.items.is_none() {
        return Err(ApiError::unavailable(
            "the item index",
            "no version has been published yet (run the indexer on a catalog)",
        ));
    }
    Ok(snap)
}

/// The context's embedding; the item index must come from the same encoder (an encoder
/// switch without re-indexing would otherwise match nothing, silently).
async fn embed_context(
    state: &RecommendState,
    text: &str,
    index_dim: Option<usize>,
) -> Result<Vec<f32>, ApiError> {
    let encoder = state
        .encoder
        .get()
        .await
        .map_err(|e| ApiError::unavailable("the context encoder", e))?;
    if let Some(dim) = index_dim.filter(|d| *d != encoder.dimension()) {
        return Err(ApiError::unavailable(
            "the item index",
            format!(
                "it holds {dim}-dimension vectors but the encoder {} gives {}: re-index the \
                 catalog with this encoder",
                encoder.model_id(),
                encoder.dimension()
            ),
        ));
    }
    let t = text.to_owned();
    let mut out = tokio::task::spawn_blocking(move || encoder.embed(&[t]))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    out.pop()
        .map(|e| e.vector)
        .ok_or_else(|| ApiError::internal("the encoder returned no embedding"))
}

async fn for_user(
    State(state): State<RecommendState>,
    shopper: Option<Extension<Shopper>>,
    Path(user_id): Path<String>,
    Query(q): Query<ForUserQuery>,
) -> Result<axum::Json<RecommendResponse>, ApiError> {
    // The rule every route and the forget route share.
    shopmind_storage::check_id("user_id", &user_id).map_err(ApiError::unprocessable)?;
    // History reasons ("similar to X you bought") would tell anyone who knows a user id what
    // that shopper bought: a personal list needs the shopper's own token; without one the
    // list is the one a new shopper gets.
    let personal = match &shopper {
        Some(Extension(s)) if s.id == user_id => true,
        Some(_) => return Err(ApiError::forbidden("the token is for another shopper")),
        None => false,
    };
    let limit = limit_of(q.limit, &state.config)?;
    let context = q
        .context
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if let Some(c) = context {
        if c.chars().count() > MAX_CONTEXT_CHARS {
            return Err(ApiError::unprocessable(format!(
                "context has more than {MAX_CONTEXT_CHARS} characters"
            )));
        }
    }
    let snap = snapshot(&state).await?;
    let profile: Option<Profile> =
        match personal {
            false => None,
            true => match state.profiles.get_profile(&user_id).await {
                Ok(Some(v)) => Some(serde_json::from_value(v.value).map_err(|e| {
                    ApiError::internal(format!("stored profile is unreadable: {e}"))
                })?),
                Ok(None) => None,
                Err(e) => return Err(ApiError::unavailable("the profile store", e)),
            },
        };
    let context_vec = match context {
        Some(c) => Some(embed_context(&state, c, snap.items.as_deref().map(|i| i.dim())).await?),
        None => None,
    };
    let req = ForYou {
        profile: profile.as_ref(),
        limit,
        category: q.category.as_deref().filter(|c| !c.trim().is_empty()),
        context: context.zip(context_vec.as_deref()),
        exclude_purchased: q.exclude_purchased,
        exclude_recent: q.exclude_recent,
        exclude_rows: None,
    };
    let items = for_you(&snap, &req, &state.config.blend);
    tracing::info!(
        results = items.len(),
        cold_start = profile.is_none(),
        with_context = context.is_some(),
        "recommendations"
    );
    Ok(axum::Json(RecommendResponse {
        items,
        index_version: snap
            .items
            .as_ref()
            .map(|i| i.version().to_owned())
            .unwrap_or_default(),
        cold_start: Some(profile.is_none()),
        personalised: Some(personal),
    }))
}

async fn similar_items(
    State(state): State<RecommendState>,
    Path(item_id): Path<String>,
    Query(q): Query<SimilarQuery>,
) -> Result<axum::Json<RecommendResponse>, ApiError> {
    // The catalog's own rule (which allows `|`); an unknown item is simply 404.
    shopmind_recs::check_item_id(&item_id).map_err(ApiError::unprocessable)?;
    let limit = limit_of(q.limit, &state.config)?;
    let snap = snapshot(&state).await?;
    let items = similar(&snap, &item_id, limit, &state.config.blend)
        .ok_or_else(|| ApiError::not_found(format!("item {item_id:?} is not in the item index")))?;
    Ok(axum::Json(RecommendResponse {
        items,
        index_version: snap
            .items
            .as_ref()
            .map(|i| i.version().to_owned())
            .unwrap_or_default(),
        cold_start: None,
        personalised: None,
    }))
}
