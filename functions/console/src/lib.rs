//! The staff console: a small static app (copy review and the support inbox) and the one
//! JSON document that tells it how staff sign in. It calls the staff routes of the copywriter
//! and support functions with a bearer token: the local staff token, or on AWS the Cognito ID
//! token that API Gateway's JWT authoriser checks. Nothing here reads data; the assets are
//! public and every route they call is guarded where it is served.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

/// The function's name in logs and metrics.
pub const FUNCTION: &str = "console";

/// The console's routes, none authorised (the page and its code hold no data).
pub const ROUTES: [(&str, &str); 2] = [("GET", "/staff"), ("GET", "/staff/{asset}")];

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{name}: {why}")]
    Config { name: &'static str, why: String },
}

/// How staff sign in to the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum SignIn {
    /// `shopmind serve`: the staff token is typed in and kept in the tab's session storage.
    Token,
    /// On AWS: Cognito's hosted sign-in, authorization code with PKCE; the ID token (with the
    /// staff's `cognito:groups`) is the bearer API Gateway's JWT authoriser checks.
    Cognito {
        /// `https://<prefix>.auth.<region>.amazoncognito.com`
        domain: String,
        client_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleConfig {
    pub sign_in: SignIn,
}

impl ConsoleConfig {
    /// `SHOPMIND_CONSOLE_SIGN_IN` (`token`, the default, or `cognito`, which needs
    /// `SHOPMIND_COGNITO_DOMAIN` and `SHOPMIND_COGNITO_CLIENT_ID`).
    pub fn from_env() -> Result<Self, ConsoleError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConsoleError> {
        let mode = get("SHOPMIND_CONSOLE_SIGN_IN").unwrap_or_else(|| "token".into());
        let sign_in = match mode.trim() {
            "token" => SignIn::Token,
            "cognito" => {
                let domain = get("SHOPMIND_COGNITO_DOMAIN").unwrap_or_default();
                let domain = domain.trim().trim_end_matches('/').to_owned();
                // It goes into the Content-Security-Policy and a redirect: a bare https origin.
                let host = domain.strip_prefix("https://").unwrap_or("");
                if host.is_empty()
                    || !host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                {
                    return Err(ConsoleError::Config {
                        name: "SHOPMIND_COGNITO_DOMAIN",
                        why: format!("must be https://<host> with no path, got {domain:?}"),
                    });
                }
                let client_id = get("SHOPMIND_COGNITO_CLIENT_ID").unwrap_or_default();
                let client_id = client_id.trim().to_owned();
                if client_id.is_empty() || !client_id.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(ConsoleError::Config {
                        name: "SHOPMIND_COGNITO_CLIENT_ID",
                        why: "must be the user pool client's id (letters and digits)".into(),
                    });
                }
                SignIn::Cognito { domain, client_id }
            }
            other => {
                return Err(ConsoleError::Config {
                    name: "SHOPMIND_CONSOLE_SIGN_IN",
                    why: format!("must be `token` or `cognito`, got {other:?}"),
                })
            }
        };
        Ok(Self { sign_in })
    }

    /// Scripts and styles from this origin only; the token exchange may also reach Cognito.
    fn content_security_policy(&self) -> String {
        let connect = match &self.sign_in {
            SignIn::Token => "'self'".to_owned(),
            SignIn::Cognito { domain, .. } => format!("'self' {domain}"),
        };
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src {connect}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )
    }
}

/// `/staff` and its assets.
pub fn router(config: ConsoleConfig) -> Router {
    let csp = HeaderValue::from_str(&config.content_security_policy())
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    let settings = serde_json::to_string(&config).unwrap_or_else(|_| "{}".into());
    Router::new()
        .route(
            "/staff",
            get(move || async move { page(INDEX_HTML, "text/html; charset=utf-8", csp) }),
        )
        .route(
            "/staff/{asset}",
            get(
                move |axum::extract::Path(asset): axum::extract::Path<String>| async move {
                    asset_response(&asset, &settings)
                },
            ),
        )
}

fn page(body: &'static str, content_type: &'static str, csp: HeaderValue) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

fn asset_response(asset: &str, settings: &str) -> Response {
    let (content_type, body) = match asset {
        "app.js" => ("text/javascript; charset=utf-8", APP_JS.to_owned()),
        "app.css" => ("text/css; charset=utf-8", APP_CSS.to_owned()),
        "config.json" => ("application/json", settings.to_owned()),
        // `/staff/` and the page's own name.
        "" | "index.html" => return Redirect::permanent("/staff").into_response(),
        _ => {
            return shopmind_runtime::ApiError::not_found(format!("no console asset {asset:?}"))
                .into_response()
        }
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn get_path(app: Router, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let resp = app
            .oneshot(Request::builder().uri(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[tokio::test]
    async fn serves_the_page_its_assets_and_the_sign_in_settings() {
        let app = router(ConsoleConfig {
            sign_in: SignIn::Token,
        });
        let (status, headers, body) = get_path(app.clone(), "/staff").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("<html lang=\"en\">"), "{body}");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        // Every script and style the page names is one this router serves.
        for asset in ["app.js", "app.css"] {
            assert!(body.contains(&format!("/staff/{asset}")), "{asset}");
            let (status, _, text) = get_path(app.clone(), &format!("/staff/{asset}")).await;
            assert_eq!(status, StatusCode::OK);
            assert!(!text.is_empty());
        }
        let (_, _, settings) = get_path(app.clone(), "/staff/config.json").await;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&settings).unwrap(),
            serde_json::json!({ "sign_in": { "mode": "token" } })
        );
        assert_eq!(
            get_path(app.clone(), "/staff/../secrets").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get_path(app, "/staff/nothing.js").await.0,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn cognito_settings_are_checked_before_they_reach_a_header() {
        let ok = ConsoleConfig::from_lookup(env(&[
            ("SHOPMIND_CONSOLE_SIGN_IN", "cognito"),
            (
                "SHOPMIND_COGNITO_DOMAIN",
                "https://shop-staff.auth.eu-west-1.amazoncognito.com/",
            ),
            ("SHOPMIND_COGNITO_CLIENT_ID", "4abc123def"),
        ]))
        .unwrap();
        assert!(ok
            .content_security_policy()
            .contains("connect-src 'self' https://shop-staff.auth.eu-west-1.amazoncognito.com;"));
        for (domain, client) in [
            ("http://shop.auth.example", "4abc"),
            ("https://x.example; script-src *", "4abc"),
            ("https://shop.auth.example/path", "4abc"),
            ("https://shop.auth.example", ""),
            ("https://shop.auth.example", "a\"b"),
        ] {
            let got = ConsoleConfig::from_lookup(env(&[
                ("SHOPMIND_CONSOLE_SIGN_IN", "cognito"),
                ("SHOPMIND_COGNITO_DOMAIN", domain),
                ("SHOPMIND_COGNITO_CLIENT_ID", client),
            ]));
            assert!(got.is_err(), "{domain} {client}");
        }
        assert!(ConsoleConfig::from_lookup(env(&[("SHOPMIND_CONSOLE_SIGN_IN", "iam")])).is_err());
        assert_eq!(
            ConsoleConfig::from_lookup(env(&[])).unwrap().sign_in,
            SignIn::Token
        );
    }
}
