//! Staff-only routes (copy generation and review, data deletion): behind API Gateway the
//! route's IAM authorization checks the caller's SigV4 signature and this layer refuses any
//! request that arrives without an IAM identity (a route deployed without the authorizer);
//! locally a configured bearer token stands in for IAM.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use lambda_http::RequestExt;

use crate::error::ApiError;

/// Who may call staff routes.
#[derive(Debug, Clone)]
pub enum StaffAuth {
    /// On Lambda: API Gateway authorised the caller with IAM.
    Iam,
    /// Locally: `Authorization: Bearer <token>`.
    Token(Arc<str>),
    /// Locally without a token configured: staff routes are closed.
    Closed,
}

impl StaffAuth {
    /// `SHOPMIND_STAFF_TOKEN` for the local server: at least 16 characters, or closed.
    pub fn local(token: Option<&str>) -> Result<Self, String> {
        match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(Self::Closed),
            Some(t) if t.len() < 16 => {
                Err("SHOPMIND_STAFF_TOKEN must be at least 16 characters".into())
            }
            Some(t) => Ok(Self::Token(Arc::from(t))),
        }
    }
}

/// The authenticated caller, for audit trails: an IAM ARN, or `local-token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffIdentity(pub String);

/// Puts every route of `router` behind `auth`.
pub fn staff_only(router: Router, auth: StaffAuth) -> Router {
    router.layer(axum::middleware::from_fn_with_state(auth, check))
}

async fn check(State(auth): State<StaffAuth>, mut req: Request, next: Next) -> Response {
    let identity = match &auth {
        StaffAuth::Iam => req
            .extensions()
            .request_context_ref()
            .and_then(|c| c.authorizer())
            .and_then(|a| a.iam.as_ref())
            .map(|iam| {
                iam.user_arn
                    .clone()
                    .or_else(|| iam.caller_id.clone())
                    .unwrap_or_else(|| "iam".into())
            })
            .ok_or_else(|| ApiError::forbidden("staff routes need IAM authorization")),
        StaffAuth::Token(expected) => {
            let given = crate::http::bearer_token(req.headers());
            match given {
                None => Err(ApiError::unauthorized(
                    "staff routes need `Authorization: Bearer <SHOPMIND_STAFF_TOKEN>`",
                )),
                Some(g) if same(g, expected) => Ok("local-token".to_owned()),
                Some(_) => Err(ApiError::forbidden("the staff token is not valid")),
            }
        }
        StaffAuth::Closed => Err(ApiError::forbidden(
            "staff routes are closed: set SHOPMIND_STAFF_TOKEN to open them locally",
        )),
    };
    match identity {
        Ok(id) => {
            req.extensions_mut().insert(StaffIdentity(id));
            next.run(req).await
        }
        Err(e) => {
            let mut resp = e.into_response();
            if resp.status() == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            resp
        }
    }
}

/// Compares in time that depends on the lengths only, not on where the strings differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app(auth: StaffAuth) -> Router {
        staff_only(
            Router::new().route(
                "/x",
                get(|axum::Extension(id): axum::Extension<StaffIdentity>| async move { id.0 }),
            ),
            auth,
        )
    }

    async fn call(app: Router, bearer: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::builder().uri("/x");
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn token_closed_and_iam_refusals() {
        let token = StaffAuth::local(Some("0123456789abcdef")).unwrap();
        assert_eq!(
            call(app(token.clone()), Some("0123456789abcdef")).await,
            (StatusCode::OK, "local-token".into())
        );
        let (status, body) = call(app(token.clone()), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("\"unauthorized\""), "{body}");
        assert_eq!(
            call(app(token), Some("0123456789abcdeX")).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            call(app(StaffAuth::Closed), Some("anything")).await.0,
            StatusCode::FORBIDDEN
        );
        // No API Gateway context with an IAM identity: refused.
        assert_eq!(
            call(app(StaffAuth::Iam), None).await.0,
            StatusCode::FORBIDDEN
        );
        assert!(StaffAuth::local(Some("short")).is_err());
        assert!(matches!(StaffAuth::local(Some(" ")), Ok(StaffAuth::Closed)));
    }

    #[tokio::test]
    async fn the_scheme_is_case_insensitive() {
        // `bearer …` was refused with 401 before (issue 21 finding 6).
        let token = StaffAuth::local(Some("0123456789abcdef")).unwrap();
        for header in ["bearer 0123456789abcdef", "BEARER 0123456789abcdef"] {
            let req = Request::builder()
                .uri("/x")
                .header("authorization", header)
                .body(Body::empty())
                .unwrap();
            let resp = app(token.clone()).oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{header}");
        }
    }
}
