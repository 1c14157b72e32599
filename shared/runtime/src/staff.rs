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
    /// On Lambda: API Gateway authorised the caller with IAM (machine callers, staff API) or
    /// with a Cognito JWT (people, console API) whose `cognito:groups` include this group.
    IamOrGroup(Arc<str>),
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

impl StaffIdentity {
    /// Who the audit trail names: the caller [`staff_only`] let in, or `unknown` on a route
    /// mounted without it.
    pub fn name_of(identity: Option<axum::Extension<StaffIdentity>>) -> String {
        identity.map_or_else(|| "unknown".into(), |axum::Extension(id)| id.0)
    }
}

/// Puts every route of `router` behind `auth`.
pub fn staff_only(router: Router, auth: StaffAuth) -> Router {
    router.layer(axum::middleware::from_fn_with_state(auth, check))
}

async fn check(State(auth): State<StaffAuth>, mut req: Request, next: Next) -> Response {
    let identity = match &auth {
        StaffAuth::Iam => iam_caller(&req)
            .ok_or_else(|| ApiError::forbidden("staff routes need IAM authorization")),
        StaffAuth::IamOrGroup(group) => match (iam_caller(&req), jwt_claims(&req)) {
            (Some(arn), _) => Ok(arn),
            (None, Some(claims)) => staff_member(claims, group),
            (None, None) => Err(ApiError::forbidden(
                "staff routes need IAM authorization or a staff sign-in",
            )),
        },
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

fn iam_caller(req: &Request) -> Option<String> {
    let iam = req
        .extensions()
        .request_context_ref()?
        .authorizer()?
        .iam
        .as_ref()?;
    Some(
        iam.user_arn
            .clone()
            .or_else(|| iam.caller_id.clone())
            .unwrap_or_else(|| "iam".into()),
    )
}

fn jwt_claims(req: &Request) -> Option<&std::collections::HashMap<String, String>> {
    let jwt = req
        .extensions()
        .request_context_ref()?
        .authorizer()?
        .jwt
        .as_ref()?;
    Some(&jwt.claims)
}

/// API Gateway checked the token's signature, issuer, audience and expiry; what is left is
/// whether this person is in the group the route needs. HTTP APIs hand list claims over as
/// one string, `[copy-editors support-agents]`.
fn staff_member(
    claims: &std::collections::HashMap<String, String>,
    group: &str,
) -> Result<String, ApiError> {
    let groups = claims.get("cognito:groups").map_or("", String::as_str);
    let member = groups
        .trim_matches(|c| c == '[' || c == ']')
        .split(|c: char| c == ',' || c.is_whitespace())
        .any(|g| g.trim_matches('"') == group);
    if !member {
        return Err(ApiError::forbidden(format!(
            "this route needs the `{group}` staff group"
        )));
    }
    let who = ["cognito:username", "username", "email", "sub"]
        .iter()
        .find_map(|k| claims.get(*k).filter(|v| !v.is_empty()))
        .map_or("unknown", String::as_str);
    Ok(format!("cognito:{who}"))
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

    fn with_claims(claims: &[(&str, &str)]) -> Request {
        let mut req = Request::builder().uri("/x").body(Body::empty()).unwrap();
        let ctx: lambda_http::request::RequestContext = serde_json::from_value(serde_json::json!({
            "accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
            "requestId": "r", "routeKey": "GET /x", "stage": "$default", "time": "t",
            "timeEpoch": 0,
            "http": { "method": "GET", "path": "/x", "protocol": "HTTP/1.1",
                      "sourceIp": "203.0.113.9", "userAgent": "t" },
            "authorizer": { "jwt": {
                "claims": claims.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                    .collect::<serde_json::Map<_, _>>(),
                "scopes": null } }
        }))
        .unwrap();
        req.extensions_mut().insert(ctx);
        req
    }

    #[tokio::test]
    async fn a_signed_in_person_needs_the_routes_group() {
        let auth = StaffAuth::IamOrGroup(Arc::from("support-agents"));
        let agent = with_claims(&[
            ("cognito:groups", "[copy-editors support-agents]"),
            ("cognito:username", "ana"),
        ]);
        let resp = app(auth.clone()).oneshot(agent).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"cognito:ana");
        // Signed in, but an editor only (or no groups at all, as a shopper pool's token has).
        for claims in [
            vec![
                ("cognito:groups", "[copy-editors]"),
                ("cognito:username", "bo"),
            ],
            vec![("cognito:groups", "[support-agents-trainee]")],
            vec![("sub", "1234")],
        ] {
            let resp = app(auth.clone())
                .oneshot(with_claims(&claims))
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{claims:?}");
        }
        // No authoriser context at all (a direct invoke, a shopper's bearer): refused.
        assert_eq!(
            call(app(auth), Some("a-shopper-token")).await.0,
            StatusCode::FORBIDDEN
        );
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
