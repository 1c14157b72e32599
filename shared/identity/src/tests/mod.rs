//! Reference tokens come from outside this crate: RFC 7515 Appendix A.1 (HS256), and RS256 /
//! HS256 tokens signed with `openssl dgst -sha256 -sign` and Python's `hmac` (fixtures.json;
//! the RSA private keys were thrown away).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const NOW: i64 = 1_999_999_000;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const SESSION: &[u8] = b"session-secret-session-secret-00";

fn fx(name: &str) -> String {
    let all: serde_json::Value = serde_json::from_str(include_str!("fixtures.json")).unwrap();
    match &all[name] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn env(pairs: &[(&str, String)]) -> Result<ShopperAuth> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    ShopperAuth::from_lookup(|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
}

fn jwks_auth() -> ShopperAuth {
    env(&[
        ("SHOPMIND_SHOPPER_JWKS", fx("jwks")),
        ("SHOPMIND_SHOPPER_ISSUER", "https://id.example.test/".into()),
        ("SHOPMIND_SHOPPER_AUDIENCE", "shopmind".into()),
        (
            "SHOPMIND_SESSION_SECRET",
            String::from_utf8(SESSION.to_vec()).unwrap(),
        ),
    ])
    .unwrap()
}

fn why(r: Result<Shopper>) -> String {
    match r {
        Ok(s) => panic!("accepted {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_rfc_7515_hs256_example_verifies_and_is_judged_on_its_claims() {
    // RFC 7515 A.1: key, token and signature as published.
    let key =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    let key = base64_url(key);
    let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
        eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
        dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let auth = ShopperAuth {
        shop_secret: Some(Secret(key)),
        ..ShopperAuth::default()
    };
    // The signature holds; the example has no `sub`, and it expired in 2011.
    assert!(why(auth.verify(token, 1_300_819_000)).contains("no `sub`"));
    assert!(matches!(
        auth.verify(token, 1_300_819_380 + 31),
        Err(IdentityError::Expired)
    ));
    let tampered = format!("{}A", &token[..token.len() - 1]);
    assert!(why(auth.verify(&tampered, 1_300_819_000)).contains("bad signature"));
}

fn base64_url(s: &str) -> Vec<u8> {
    // A few lines rather than a dependency: RFC 4648 §5 without padding.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = alphabet.iter().position(|&a| a == c).unwrap() as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

#[test]
fn an_identity_provider_token_is_accepted_only_as_issued() {
    let auth = jwks_auth();
    let s = auth.verify(&fx("rs_ok"), NOW).unwrap();
    assert_eq!(
        (s.id.as_str(), s.guest, s.expires_at),
        ("u-42", false, 2_000_000_000)
    );
    assert_eq!(auth.verify(&fx("rs_aud_list"), NOW).unwrap().id, "u-42");
    assert!(why(auth.verify(&fx("rs_other_key"), NOW)).contains("bad signature"));
    assert!(why(auth.verify(&fx("rs_unknown_kid"), NOW)).contains("not in the JWKS"));
    assert!(why(auth.verify(&fx("rs_wrong_aud"), NOW)).contains("another audience"));
    assert!(why(auth.verify(&fx("rs_wrong_iss"), NOW)).contains("another issuer"));
    assert!(matches!(
        auth.verify(&fx("rs_ok"), 2_000_000_000 + LEEWAY_SECS + 1),
        Err(IdentityError::Expired)
    ));
    // Inside the allowed skew it still holds.
    assert!(auth
        .verify(&fx("rs_ok"), 2_000_000_000 + LEEWAY_SECS)
        .is_ok());
}

#[test]
fn forged_and_confused_tokens_are_refused() {
    let auth = jwks_auth();
    // `alg: none`, and HS256 "signed" with the RSA key's public modulus (algorithm confusion).
    assert!(auth.verify(&fx("none_alg"), NOW).is_err());
    assert!(why(auth.verify(&fx("hs_with_rsa_n"), NOW)).contains("not configured"));
    for junk in ["", "a.b", "a.b.c", "....", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
        assert!(auth.verify(junk, NOW).is_err(), "{junk:.20}");
    }
}

#[test]
fn hmac_shop_tokens_need_expiry_and_may_not_pose_as_guests() {
    let auth = ShopperAuth::with_secrets(SECRET, SESSION);
    let s = auth.verify(&fx("hs_ok"), NOW).unwrap();
    assert_eq!((s.id.as_str(), s.guest), ("u-1", false));
    assert!(why(auth.verify(&fx("hs_no_exp"), NOW)).contains("exp"));
    assert!(why(auth.verify(&fx("hs_guest_prefix"), NOW)).contains("guest_"));
    // Signed by the shop but claiming to be a guest token: the key decides, and it refuses.
    let posing = sign_hs256(
        &Secret(SECRET.to_vec()),
        "guest_0123456789abcdef0123456789abcdef",
        GUEST_ISSUER,
        None,
        NOW,
        NOW + 60,
    )
    .unwrap();
    assert!(why(auth.verify(&posing, NOW)).contains("guest"));
    // Another shop's secret.
    let other = ShopperAuth::with_secrets(b"another-secret-another-secret-00", SESSION);
    assert!(why(other.verify(&fx("hs_ok"), NOW)).contains("bad signature"));
}

#[test]
fn guests_get_a_fresh_id_and_a_token_only_shopmind_can_sign() {
    let auth = ShopperAuth::with_secrets(SECRET, SESSION);
    let (token, guest) = auth.issue_guest(NOW).unwrap();
    assert!(guest.guest && is_guest_id(&guest.id), "{guest:?}");
    assert_eq!(guest.expires_at, NOW + 86_400);
    assert_eq!(auth.verify(&token, NOW + 10).unwrap(), guest);
    let (_, second) = auth.issue_guest(NOW).unwrap();
    assert_ne!(second.id, guest.id);
    assert!(matches!(
        auth.verify(&token, NOW + 86_400 + 31),
        Err(IdentityError::Expired)
    ));
    // The same token under another deployment's session secret is worthless.
    let other = ShopperAuth::with_secrets(SECRET, b"other-session-other-session-0000");
    assert!(other.verify(&token, NOW).is_err());
    // No session secret, no guests.
    let closed = ShopperAuth::default();
    assert!(matches!(
        closed.issue_guest(NOW),
        Err(IdentityError::NoGuestSessions)
    ));
    assert!(closed.verify(&token, NOW).is_err());
}

#[test]
fn issued_shop_tokens_round_trip_and_carry_the_configured_audience() {
    let auth = env(&[
        (
            "SHOPMIND_SHOPPER_HMAC_SECRET",
            String::from_utf8(SECRET.to_vec()).unwrap(),
        ),
        ("SHOPMIND_SHOPPER_ISSUER", "my-shop".into()),
        ("SHOPMIND_SHOPPER_AUDIENCE", "shopmind".into()),
    ])
    .unwrap();
    let token = auth
        .issue_shopper("u-7", NOW, Duration::from_secs(600))
        .unwrap();
    assert_eq!(auth.verify(&token, NOW).unwrap().id, "u-7");
    // The Python-signed fixture has no audience, so this deployment refuses it.
    assert!(why(auth.verify(&fx("hs_ok"), NOW)).contains("issuer"));
}

#[test]
fn settings_are_checked_at_cold_start() {
    let short = env(&[("SHOPMIND_SHOPPER_HMAC_SECRET", "too-short".into())]);
    assert!(matches!(
        short,
        Err(IdentityError::Config {
            name: "SHOPMIND_SHOPPER_HMAC_SECRET",
            ..
        })
    ));
    let no_aud = env(&[("SHOPMIND_SHOPPER_JWKS", fx("jwks"))]);
    assert!(no_aud.unwrap_err().to_string().contains("AUDIENCE"));
    let bad = env(&[
        ("SHOPMIND_SHOPPER_JWKS", "{\"keys\": []}".into()),
        ("SHOPMIND_SHOPPER_ISSUER", "i".into()),
        ("SHOPMIND_SHOPPER_AUDIENCE", "a".into()),
    ]);
    assert!(bad.unwrap_err().to_string().contains("no keys"));
    let missing = env(&[
        ("SHOPMIND_SHOPPER_JWKS", "/nonexistent/jwks.json".into()),
        ("SHOPMIND_SHOPPER_ISSUER", "i".into()),
        ("SHOPMIND_SHOPPER_AUDIENCE", "a".into()),
    ]);
    assert!(missing
        .unwrap_err()
        .to_string()
        .contains("/nonexistent/jwks.json"));
    let same = env(&[
        ("SHOPMIND_SHOPPER_HMAC_SECRET", "x".repeat(32)),
        ("SHOPMIND_SESSION_SECRET", "x".repeat(32)),
    ]);
    assert!(same.unwrap_err().to_string().contains("must differ"));
    let ttl = env(&[("SHOPMIND_GUEST_TTL_SECS", "5".into())]);
    assert!(ttl.unwrap_err().to_string().contains("GUEST_TTL"));
    let none = env(&[]).unwrap();
    assert!(!none.verifies_shoppers() && !none.guest_sessions());
    // Secrets never show in debug output.
    let auth = ShopperAuth::with_secrets(SECRET, SESSION);
    assert!(!format!("{auth:?}").contains("0123456789abcdef"));
}

proptest::proptest! {
    #[test]
    fn no_mutation_of_a_valid_token_is_accepted(pos in 0usize..200, byte in 0u8..128) {
        let auth = ShopperAuth::with_secrets(SECRET, SESSION);
        let token = fx("hs_ok");
        let mut bytes = token.clone().into_bytes();
        let i = pos % bytes.len();
        proptest::prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let mutated = String::from_utf8_lossy(&bytes).into_owned();
        // Base64url has a few spellings of the same final bits; anything accepted must then
        // name the same shopper with the same claims.
        if let Ok(s) = auth.verify(&mutated, NOW) {
            proptest::prop_assert_eq!(s.id, "u-1");
        }
    }
}
