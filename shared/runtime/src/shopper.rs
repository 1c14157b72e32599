//! Shopper identity at the edge: a shopper route's `Authorization: Bearer <token>` is verified
//! once, before any handler runs, and the handler sees a [`Shopper`] or nothing.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
pub use shopmind_identity::{IdentityError, Shopper, ShopperAuth, GUEST_PREFIX};

use crate::error::ApiError;

/// Verifies the bearer token of every request to `router`. A genuine token puts its
/// [`Shopper`] in the request's extensions (`Option<Extension<Shopper>>` in a handler); no
/// `Authorization` header leaves none; a token that is forged, expired or for someone else
/// is 401 — never served as if no token had been sent.
pub fn shopper_identity(router: Router, auth: Arc<ShopperAuth>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(auth, verify))
}

async fn verify(State(auth): State<Arc<ShopperAuth>>, mut req: Request, next: Next) -> Response {
    if !req.headers().contains_key(header::AUTHORIZATION) {
        return next.run(req).await;
    }
    let verdict = match crate::http::bearer_token(req.headers()) {
        None => Err("send the shopper's token as `Authorization: Bearer <token>`".to_owned()),
        Some(token) => auth
            .verify(token, shopmind_storage::now_secs())
            .map_err(|e| match e {
                IdentityError::Expired => "the shopper token has expired; get a new one".into(),
                other => other.to_string(),
            }),
    };
    match verdict {
        Ok(shopper) => {
            req.extensions_mut().insert(shopper);
            next.run(req).await
        }
        Err(message) => {
            tracing::info!(reason = %message, "shopper token refused");
            let mut resp = ApiError::unauthorized(message).into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            resp
        }
    }
}
