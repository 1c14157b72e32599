//! Who the shopper is. A shopper route never takes a user id from the caller's say-so: it
//! takes it from a short-lived token the shop signed, verified here.
//!
//! Three kinds of token, all JWS compact JWTs (`header.claims.signature`):
//! - **from the shop's identity provider**, signed with a key in the shop's JWKS (RS256,
//!   RS384, RS512, PS256, ES256, ES384 or EdDSA), with the configured issuer and audience;
//! - **from the shop's backend**, HS256 with a secret it shares with Shopmind, for shops
//!   without an identity provider (issuer and audience checked when configured);
//! - **guest**, HS256 with Shopmind's own session secret, issued by [`ShopperAuth::issue_guest`]
//!   to a shopper who is not signed in; its subject is `guest_` and 32 hex digits.
//!
//! Every token needs `sub` and `exp`; `nbf` is honoured; 30 s of clock skew is allowed.
//! The caller passes `now`, so expiry is tested without waiting.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Issuer of the guest tokens Shopmind signs.
pub const GUEST_ISSUER: &str = "shopmind:guest";
/// What every guest subject starts with; shop user ids may not.
pub const GUEST_PREFIX: &str = "guest_";
/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 30;
/// Longest token looked at; a JWT with a few claims is well under 2 KB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Shortest secret accepted for HS256 (RFC 7518 §3.2: at least the hash's 256 bits).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{name}: {why}")]
    Config { name: &'static str, why: String },
    /// The token is malformed, forged, for someone else's audience, or from an unknown key.
    #[error("the shopper token is not valid: {0}")]
    Invalid(String),
    #[error("the shopper token has expired")]
    Expired,
    #[error("guest sessions are off: SHOPMIND_SESSION_SECRET is not set")]
    NoGuestSessions,
    #[error("could not make a guest id: {0}")]
    Random(String),
}

pub type Result<T, E = IdentityError> = std::result::Result<T, E>;

/// A verified shopper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shopper {
    /// The shop's user id (the token's `sub`), or a guest's `guest_…` id.
    pub id: String,
    pub guest: bool,
    /// When the token stops being accepted (Unix seconds).
    pub expires_at: i64,
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone)]
struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// How shopper tokens are verified and guest tokens issued; built once at cold start.
#[derive(Debug, Clone, Default)]
pub struct ShopperAuth {
    shop_secret: Option<Secret>,
    jwks: Option<JwkSet>,
    issuer: Option<String>,
    audience: Option<String>,
    session_secret: Option<Secret>,
    guest_ttl: Duration,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iss: Option<String>,
    #[serde(default)]
    aud: Audience,
}

/// `aud` is a string or a list of strings (RFC 7519 §4.1.3).
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Audience {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, want: &str) -> bool {
        match self {
            Audience::None => false,
            Audience::One(a) => a == want,
            Audience::Many(all) => all.iter().any(|a| a == want),
        }
    }
}

#[derive(Serialize)]
struct IssuedClaims<'a> {
    sub: &'a str,
    iss: &'a str,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

const ASYMMETRIC: [Algorithm; 7] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl ShopperAuth {
    /// Reads the settings (see the README's Shopper identity section):
    ///
    /// | variable | meaning |
    /// | --- | --- |
    /// | `SHOPMIND_SHOPPER_JWKS` | the identity provider's JWKS: the JSON itself or a file path |
    /// | `SHOPMIND_SHOPPER_ISSUER` / `SHOPMIND_SHOPPER_AUDIENCE` | required `iss` / `aud`; both must be set with a JWKS |
    /// | `SHOPMIND_SHOPPER_HMAC_SECRET` | HS256 secret shared with the shop's backend, ≥ 32 bytes |
    /// | `SHOPMIND_SESSION_SECRET` | Shopmind's own secret for guest tokens, ≥ 32 bytes |
    /// | `SHOPMIND_GUEST_TTL_SECS` | guest token lifetime, 60 – 2,592,000; default 86,400 |
    ///
    /// With none set, every token is refused and there are no guest sessions: shopper routes
    /// serve only what needs no identity.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let set = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let secret = |name: &'static str| -> Result<Option<Secret>> {
            match get(name).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) if v.len() < MIN_SECRET_BYTES => Err(IdentityError::Config {
                    name,
                    why: format!("must be at least {MIN_SECRET_BYTES} bytes"),
                }),
                Some(v) => Ok(Some(Secret(v.into_bytes()))),
            }
        };
        let jwks = match set("SHOPMIND_SHOPPER_JWKS") {
            None => None,
            Some(v) => Some(parse_jwks(&v)?),
        };
        let issuer = set("SHOPMIND_SHOPPER_ISSUER");
        let audience = set("SHOPMIND_SHOPPER_AUDIENCE");
        if jwks.is_some() && (issuer.is_none() || audience.is_none()) {
            return Err(IdentityError::Config {
                name: "SHOPMIND_SHOPPER_JWKS",
                why: "needs SHOPMIND_SHOPPER_ISSUER and SHOPMIND_SHOPPER_AUDIENCE as well: \
                      an identity provider signs tokens for other applications too"
                    .into(),
            });
        }
        let guest_ttl = match set("SHOPMIND_GUEST_TTL_SECS") {
            None => 86_400,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|s| (60..=2_592_000).contains(s))
                .ok_or_else(|| IdentityError::Config {
                    name: "SHOPMIND_GUEST_TTL_SECS",
                    why: format!("{v:?} must be whole seconds from 60 to 2592000"),
                })?,
        };
        let shop_secret = secret("SHOPMIND_SHOPPER_HMAC_SECRET")?;
        let session_secret = secret("SHOPMIND_SESSION_SECRET")?;
        if let (Some(a), Some(b)) = (&shop_secret, &session_secret) {
            if a.0 == b.0 {
                // Shop tokens would then verify as guest tokens' signatures, and be refused.
                return Err(IdentityError::Config {
                    name: "SHOPMIND_SESSION_SECRET",
                    why: "must differ from SHOPMIND_SHOPPER_HMAC_SECRET".into(),
                });
            }
        }
        Ok(Self {
            shop_secret,
            jwks,
            issuer,
            audience,
            session_secret,
            guest_ttl: Duration::from_secs(guest_ttl),
        })
    }

    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// HS256 shop tokens with `secret` and guest tokens with `session_secret`; for tests and
    /// the local server's development keys.
    pub fn with_secrets(secret: &[u8], session_secret: &[u8]) -> Self {
        Self::default()
            .with_shop_secret(secret)
            .with_session_secret(session_secret)
    }

    /// The same settings with `secret` as the HS256 shop secret (the local server's
    /// development key when none is configured).
    pub fn with_shop_secret(mut self, secret: &[u8]) -> Self {
        self.shop_secret = Some(Secret(secret.to_vec()));
        self
    }

    /// The same settings with `secret` as the guest session secret.
    pub fn with_session_secret(mut self, secret: &[u8]) -> Self {
        self.session_secret = Some(Secret(secret.to_vec()));
        if self.guest_ttl.is_zero() {
            self.guest_ttl = Duration::from_secs(86_400);
        }
        self
    }

    /// Whether any kind of shop token can be verified (guests aside).
    pub fn verifies_shoppers(&self) -> bool {
        self.shop_secret.is_some() || self.jwks.is_some()
    }

    pub fn guest_sessions(&self) -> bool {
        self.session_secret.is_some()
    }

    /// The shopper a token names, if it is genuine, meant for Shopmind and current at `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<Shopper> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("longer than any token Shopmind accepts"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("not a JWT"))?;
        // Which key verified the token says whether it is a guest's, not any claim in it.
        let (claims, guest) = match header.alg {
            Algorithm::HS256 => self.verify_hmac(token)?,
            alg if ASYMMETRIC.contains(&alg) => (self.verify_jwks(token, &header)?, false),
            _ => return Err(invalid("signed with an algorithm Shopmind does not accept")),
        };
        self.check_claims(claims, guest, now)
    }

    /// A new guest: a fresh `guest_…` id and a token for it, valid for the guest lifetime.
    pub fn issue_guest(&self, now: i64) -> Result<(String, Shopper)> {
        let secret = self
            .session_secret
            .as_ref()
            .ok_or(IdentityError::NoGuestSessions)?;
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| IdentityError::Random(e.to_string()))?;
        let id = format!("{GUEST_PREFIX}{}", hex::encode(bytes));
        let expires_at = now + self.guest_ttl.as_secs() as i64;
        let token = sign_hs256(secret, &id, GUEST_ISSUER, None, now, expires_at)?;
        let shopper = Shopper {
            id,
            guest: true,
            expires_at,
        };
        Ok((token, shopper))
    }

    /// A shop token for `user_id`, signed with the HMAC secret: what a shop's backend does,
    /// for the local server's `shopmind token` and for tests.
    pub fn issue_shopper(&self, user_id: &str, now: i64, ttl: Duration) -> Result<String> {
        let secret = self
            .shop_secret
            .as_ref()
            .ok_or_else(|| IdentityError::Config {
                name: "SHOPMIND_SHOPPER_HMAC_SECRET",
                why: "is not set, so there is no key to sign a shopper token with".into(),
            })?;
        let iss = self.issuer.as_deref().unwrap_or("shop");
        let exp = now + ttl.as_secs() as i64;
        sign_hs256(secret, user_id, iss, self.audience.as_deref(), now, exp)
    }

    /// HS256 is either a guest token (Shopmind's session secret) or a shop token (the shared
    /// secret); the signature tells which, and each kind must then look like itself.
    fn verify_hmac(&self, token: &str) -> Result<(Claims, bool)> {
        if let Some(secret) = &self.session_secret {
            if let Ok(claims) = decode(
                token,
                &DecodingKey::from_secret(&secret.0),
                Algorithm::HS256,
            ) {
                let is_guest = claims.iss.as_deref() == Some(GUEST_ISSUER)
                    && claims.sub.as_deref().is_some_and(is_guest_id);
                return if is_guest {
                    Ok((claims, true))
                } else {
                    Err(invalid(
                        "signed with the session secret but not a guest token",
                    ))
                };
            }
        }
        let secret = self
            .shop_secret
            .as_ref()
            .ok_or_else(|| invalid("HS256 shop tokens are not configured"))?;
        let claims = decode(
            token,
            &DecodingKey::from_secret(&secret.0),
            Algorithm::HS256,
        )
        .map_err(|_| invalid("bad signature"))?;
        Ok((claims, false))
    }

    fn verify_jwks(&self, token: &str, header: &Header) -> Result<Claims> {
        let set = self
            .jwks
            .as_ref()
            .ok_or_else(|| invalid("no JWKS is configured for signed tokens"))?;
        let jwk = match &header.kid {
            Some(kid) => set.find(kid),
            None if set.keys.len() == 1 => set.keys.first(),
            None => None,
        }
        .ok_or_else(|| invalid("signed by a key that is not in the JWKS"))?;
        if let Some(key_alg) = jwk.common.key_algorithm {
            if format!("{key_alg:?}") != format!("{:?}", header.alg) {
                return Err(invalid("the header's algorithm is not the key's"));
            }
        }
        let key =
            DecodingKey::from_jwk(jwk).map_err(|_| invalid("a JWKS key Shopmind cannot use"))?;
        decode(token, &key, header.alg).map_err(|_| invalid("bad signature"))
    }

    fn check_claims(&self, claims: Claims, guest: bool, now: i64) -> Result<Shopper> {
        if !guest && claims.iss.as_deref() == Some(GUEST_ISSUER) {
            return Err(invalid("a guest issuer on a shop token"));
        }
        if !guest {
            if let Some(want) = &self.issuer {
                if claims.iss.as_deref() != Some(want) {
                    return Err(invalid("from another issuer"));
                }
            }
            if let Some(want) = &self.audience {
                if !claims.aud.contains(want) {
                    return Err(invalid("for another audience"));
                }
            }
        }
        let exp = claims
            .exp
            .ok_or_else(|| invalid("no `exp`: tokens must expire"))?;
        if now > exp + LEEWAY_SECS {
            return Err(IdentityError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| now + LEEWAY_SECS < nbf) {
            return Err(invalid("not valid yet"));
        }
        let id = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("no `sub`"))?;
        if !guest && id.starts_with(GUEST_PREFIX) {
            return Err(invalid("a shop user id may not start with `guest_`"));
        }
        Ok(Shopper {
            id,
            guest,
            expires_at: exp,
        })
    }
}

fn invalid(why: &str) -> IdentityError {
    IdentityError::Invalid(why.to_owned())
}

fn is_guest_id(sub: &str) -> bool {
    sub.strip_prefix(GUEST_PREFIX).is_some_and(|hex| {
        hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Signature, algorithm and shape only; time and audience are [`ShopperAuth::check_claims`]'s,
/// against the caller's clock.
fn decode(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<Claims, jsonwebtoken::errors::Error> {
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    jsonwebtoken::decode::<Claims>(token, key, &validation).map(|data| data.claims)
}

fn sign_hs256(
    secret: &Secret,
    sub: &str,
    iss: &str,
    aud: Option<&str>,
    iat: i64,
    exp: i64,
) -> Result<String> {
    let claims = IssuedClaims {
        sub,
        iss,
        iat,
        exp,
        aud,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&secret.0),
    )
    .map_err(|e| IdentityError::Invalid(format!("could not sign: {e}")))
}

fn parse_jwks(value: &str) -> Result<JwkSet> {
    let text = if value.starts_with('{') {
        value.to_owned()
    } else {
        std::fs::read_to_string(value).map_err(|e| IdentityError::Config {
            name: "SHOPMIND_SHOPPER_JWKS",
            why: format!("file {value}: {e}"),
        })?
    };
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| IdentityError::Config {
        name: "SHOPMIND_SHOPPER_JWKS",
        why: format!("not a JWKS ({{\"keys\": [...]}}): {e}"),
    })?;
    if set.keys.is_empty() {
        return Err(IdentityError::Config {
            name: "SHOPMIND_SHOPPER_JWKS",
            why: "holds no keys".into(),
        });
    }
    for jwk in &set.keys {
        DecodingKey::from_jwk(jwk).map_err(|e| IdentityError::Config {
            name: "SHOPMIND_SHOPPER_JWKS",
            why: format!("key {:?} cannot verify signatures: {e}", jwk.common.key_id),
        })?;
    }
    Ok(set)
}

#[cfg(test)]
mod tests;
