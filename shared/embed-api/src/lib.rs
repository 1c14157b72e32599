//! `GET /healthz` and `POST /v1/embeddings`: the encoder over HTTP.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use shopmind_inference::{InferenceError, LazyEncoder};
use shopmind_runtime::{ApiError, Json};

/// Request limits, from `SHOPMIND_EMBED_MAX_TEXTS` (default 128) and
/// `SHOPMIND_EMBED_MAX_CHARS` (default 8192 characters per text).
#[derive(Debug, Clone, Copy)]
pub struct EmbedLimits {
    pub max_texts: usize,
    pub max_chars: usize,
}

impl Default for EmbedLimits {
    fn default() -> Self {
        Self {
            max_texts: 128,
            max_chars: 8192,
        }
    }
}

impl EmbedLimits {
    pub fn from_env() -> Result<Self, EmbedApiError> {
        let d = Self::default();
        Ok(Self {
            max_texts: env_count("SHOPMIND_EMBED_MAX_TEXTS", d.max_texts)?,
            max_chars: env_count("SHOPMIND_EMBED_MAX_CHARS", d.max_chars)?,
        })
    }
}

fn env_count(name: &'static str, default: usize) -> Result<usize, EmbedApiError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(EmbedApiError::Config { name, value: v }),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedApiError {
    #[error("`texts` must hold at least one text")]
    NoTexts,
    #[error("texts[{index}] is empty")]
    EmptyText { index: usize },
    #[error("{count} texts in one request; at most {max} are accepted")]
    TooManyTexts { count: usize, max: usize },
    #[error("texts[{index}] has {chars} characters; at most {max} are accepted")]
    TextTooLong {
        index: usize,
        chars: usize,
        max: usize,
    },
    #[error(transparent)]
    Model(#[from] InferenceError),
    #[error("{name}={value:?} must be a positive whole number")]
    Config { name: &'static str, value: String },
}

impl From<EmbedApiError> for ApiError {
    fn from(e: EmbedApiError) -> Self {
        use EmbedApiError as E;
        match e {
            E::NoTexts | E::EmptyText { .. } => ApiError::unprocessable(e.to_string()),
            E::TooManyTexts { .. } | E::TextTooLong { .. } => {
                ApiError::payload_too_large(e.to_string())
            }
            E::Model(InferenceError::Tokenize(_) | InferenceError::Run(_)) => ApiError::internal(e),
            E::Model(_) => ApiError::unavailable("the embedding model", e),
            E::Config { .. } => ApiError::internal(e),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EmbedState {
    pub encoder: Arc<LazyEncoder>,
    pub limits: EmbedLimits,
}

pub fn router(state: EmbedState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/embeddings", post(embeddings))
        .with_state(state)
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    encoder_loaded: bool,
}

async fn healthz(State(state): State<EmbedState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        encoder_loaded: state.encoder.loaded().is_some(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    pub texts: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EmbedResponse {
    pub model: String,
    pub dimension: usize,
    pub data: Vec<EmbeddingItem>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EmbeddingItem {
    pub index: usize,
    pub embedding: Vec<f32>,
    pub tokens: usize,
    pub truncated: bool,
}

fn validate(req: &EmbedRequest, limits: &EmbedLimits) -> Result<(), EmbedApiError> {
    if req.texts.is_empty() {
        return Err(EmbedApiError::NoTexts);
    }
    if req.texts.len() > limits.max_texts {
        return Err(EmbedApiError::TooManyTexts {
            count: req.texts.len(),
            max: limits.max_texts,
        });
    }
    for (index, text) in req.texts.iter().enumerate() {
        if text.trim().is_empty() {
            return Err(EmbedApiError::EmptyText { index });
        }
        let chars = text.chars().count();
        if chars > limits.max_chars {
            return Err(EmbedApiError::TextTooLong {
                index,
                chars,
                max: limits.max_chars,
            });
        }
    }
    Ok(())
}

async fn embeddings(
    State(state): State<EmbedState>,
    Json(req): Json<EmbedRequest>,
) -> Result<Json<EmbedResponse>, ApiError> {
    validate(&req, &state.limits)?;
    let encoder = state.encoder.get().await.map_err(EmbedApiError::from)?;
    let texts = req.texts;
    let enc = encoder.clone();
    let embedded = tokio::task::spawn_blocking(move || enc.embed(&texts))
        .await
        .map_err(ApiError::internal)?
        .map_err(EmbedApiError::from)?;
    Ok(Json(EmbedResponse {
        model: encoder.model_id().to_owned(),
        dimension: encoder.dimension(),
        data: embedded
            .into_iter()
            .enumerate()
            .map(|(index, e)| EmbeddingItem {
                index,
                embedding: e.vector,
                tokens: e.tokens,
                truncated: e.truncated,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(texts: &[&str]) -> EmbedRequest {
        EmbedRequest {
            texts: texts.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn validation_names_the_offending_text() {
        let limits = EmbedLimits {
            max_texts: 2,
            max_chars: 5,
        };
        assert!(matches!(
            validate(&req(&[]), &limits),
            Err(EmbedApiError::NoTexts)
        ));
        assert!(matches!(
            validate(&req(&["ok", "  "]), &limits),
            Err(EmbedApiError::EmptyText { index: 1 })
        ));
        assert!(matches!(
            validate(&req(&["a", "b", "c"]), &limits),
            Err(EmbedApiError::TooManyTexts { count: 3, max: 2 })
        ));
        // Characters, not bytes: five CJK characters are fine.
        assert!(validate(&req(&["你好世界啊"]), &limits).is_ok());
        assert!(matches!(
            validate(&req(&["abcdef"]), &limits),
            Err(EmbedApiError::TextTooLong {
                index: 0,
                chars: 6,
                max: 5
            })
        ));
    }
}
