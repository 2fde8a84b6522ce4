//! OIDC push tokens: a locally generated RSA key, its JWKS served on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use zapfn_cloud::oidc::{OidcError, OidcVerifier, SIGNATURE_REMOVED};

const AUDIENCE: &str = "https://dispatch-abc.a.run.app/_tasks/dispatch";
const PUSHER: &str = "zapfn-push@p.iam.gserviceaccount.com";

struct Keys {
    encoding: EncodingKey,
    jwk: Value,
}

fn keys(kid: &str) -> Keys {
    let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let der = pair.as_der().unwrap();
    let public = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Keys {
        encoding: EncodingKey::from_rsa_der(pkcs1_from(der.as_ref())),
        jwk: json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": b64(&public.n), "e": b64(&public.e)}),
    }
}

/// The PKCS#1 RSAPrivateKey inside a PKCS#8 PrivateKeyInfo (jsonwebtoken takes PKCS#1 DER).
fn pkcs1_from(pkcs8: &[u8]) -> &[u8] {
    // PrivateKeyInfo ::= SEQUENCE { version, algorithm, OCTET STRING privateKey }
    let (_, body) = der_element(pkcs8);
    let (rest, _) = split_element(body); // version
    let (rest, _) = split_element(rest); // algorithm
    let (_, octets) = der_element(rest);
    octets
}

fn der_element(bytes: &[u8]) -> (&[u8], &[u8]) {
    let (header, len) = der_length(&bytes[1..]);
    let start = 1 + header;
    (&bytes[start + len..], &bytes[start..start + len])
}

fn split_element(bytes: &[u8]) -> (&[u8], &[u8]) {
    let (header, len) = der_length(&bytes[1..]);
    let end = 1 + header + len;
    (&bytes[end..], &bytes[..end])
}

fn der_length(bytes: &[u8]) -> (usize, usize) {
    if bytes[0] < 0x80 {
        return (1, bytes[0] as usize);
    }
    let n = (bytes[0] & 0x7f) as usize;
    let len = bytes[1..=n]
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | *b as usize);
    (1 + n, len)
}

async fn serve_jwks(jwks: Value) -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = Router::new().route(
        "/certs",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let jwks = jwks.clone();
            async move { Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/certs", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fetches)
}

fn token(keys: &Keys, kid: &str, claims: Value) -> String {
    let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    encode(&header, &claims, &keys.encoding).unwrap()
}

fn claims(overrides: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": "https://accounts.google.com", "aud": AUDIENCE, "iat": now, "exp": now + 600,
        "email": PUSHER, "email_verified": true, "sub": "1234567890"
    });
    for (key, value) in overrides.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

#[tokio::test]
async fn google_style_tokens_are_checked_with_cached_keys() {
    let good = keys("k1");
    let (jwks_url, fetches) = serve_jwks(json!({"keys": [good.jwk]})).await;
    let verifier = OidcVerifier::new(AUDIENCE.into(), vec![PUSHER.into()], jwks_url);
    let bearer = |token: String| format!("Bearer {token}");

    let accepted = verifier
        .verify(Some(&bearer(token(&good, "k1", claims(json!({}))))), None)
        .await
        .unwrap();
    assert_eq!(accepted.email.as_deref(), Some(PUSHER));
    verifier
        .verify(
            Some(&bearer(token(
                &good,
                "k1",
                claims(json!({"iss": "accounts.google.com"})),
            ))),
            None,
        )
        .await
        .unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "keys are cached");

    let refused = [
        (
            "expired",
            token(
                &good,
                "k1",
                claims(json!({"exp": chrono::Utc::now().timestamp() - 3600})),
            ),
        ),
        (
            "other audience",
            token(&good, "k1", claims(json!({"aud": "https://elsewhere"}))),
        ),
        (
            "other issuer",
            token(&good, "k1", claims(json!({"iss": "https://evil.example"}))),
        ),
        (
            "other account",
            token(
                &good,
                "k1",
                claims(json!({"email": "someone@p.iam.gserviceaccount.com"})),
            ),
        ),
        (
            "unverified email",
            token(&good, "k1", claims(json!({"email_verified": false}))),
        ),
    ];
    for (what, token) in refused {
        let error = verifier
            .verify(Some(&bearer(token)), None)
            .await
            .unwrap_err();
        assert!(matches!(error, OidcError::Invalid(_)), "{what}: {error}");
    }

    // Signed by a key Google does not publish: unknown kid, refetched once, then refused.
    let stranger = keys("k2");
    let error = verifier
        .verify(
            Some(&bearer(token(&stranger, "k2", claims(json!({}))))),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, OidcError::UnknownKey(_)), "{error}");
    // A forged token claiming the known kid fails the signature check.
    let forged = token(&stranger, "k1", claims(json!({})));
    assert!(matches!(
        verifier
            .verify(Some(&bearer(forged)), None)
            .await
            .unwrap_err(),
        OidcError::Invalid(_)
    ));
    // Tampered payload.
    let genuine = token(&good, "k1", claims(json!({})));
    let parts: Vec<&str> = genuine.split('.').collect();
    let other_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(claims(json!({"email": "x@p.iam.gserviceaccount.com"})).to_string());
    let tampered = format!("{}.{}.{}", parts[0], other_payload, parts[2]);
    assert!(verifier
        .verify(Some(&bearer(tampered)), None)
        .await
        .is_err());

    assert!(matches!(
        verifier.verify(None, None).await.unwrap_err(),
        OidcError::Missing
    ));
    assert!(matches!(
        verifier.verify(Some("Basic abc"), None).await.unwrap_err(),
        OidcError::Missing
    ));
    assert!(
        fetches.load(Ordering::SeqCst) <= 2,
        "refetches are rate-limited"
    );
}

/// Eventarc cannot be given an audience: its tokens are for the service's URL,
/// accepted on requests sent to that URL, refused on any other.
#[tokio::test]
async fn tokens_for_the_url_the_request_was_sent_to_are_accepted() {
    let good = keys("k1");
    let (jwks_url, _) = serve_jwks(json!({"keys": [good.jwk]})).await;
    let verifier = OidcVerifier::new(AUDIENCE.into(), vec![PUSHER.into()], jwks_url);
    let service = "https://zapfn-media-image-x7k2-uc.a.run.app";
    let addressed = format!("{service}/_eventarc/media");
    for audience in [service, addressed.as_str()] {
        let bearer = format!(
            "Bearer {}",
            token(&good, "k1", claims(json!({"aud": audience})))
        );
        verifier
            .verify(Some(&bearer), Some(&addressed))
            .await
            .unwrap_or_else(|e| panic!("{audience}: {e}"));
        let elsewhere = "https://zapfn-send-x7k2-uc.a.run.app/_eventarc/media";
        let error = verifier
            .verify(Some(&bearer), Some(elsewhere))
            .await
            .unwrap_err();
        assert!(
            matches!(error, OidcError::Invalid(_)),
            "{audience}: {error}"
        );
        assert!(verifier.verify(Some(&bearer), None).await.is_err());
    }
}

/// A token as a private Cloud Run service forwards it: checked by Cloud Run,
/// its signature replaced by `SIGNATURE_REMOVED_BY_GOOGLE`.
fn signature_removed(keys: &Keys, claims: Value) -> String {
    let signed = token(keys, "k1", claims);
    let (unsigned, _) = signed.rsplit_once('.').unwrap();
    format!("Bearer {unsigned}.{SIGNATURE_REMOVED}")
}

#[tokio::test]
async fn signatures_removed_by_cloud_run_are_accepted_only_when_it_is_trusted() {
    let good = keys("k1");
    let (jwks_url, fetches) = serve_jwks(json!({"keys": [good.jwk]})).await;
    let stripped = signature_removed(&good, claims(json!({})));

    let untrusting = OidcVerifier::new(AUDIENCE.into(), vec![PUSHER.into()], jwks_url.clone());
    let error = untrusting.verify(Some(&stripped), None).await.unwrap_err();
    assert!(matches!(error, OidcError::Invalid(_)), "{error}");

    let trusting = OidcVerifier::new(AUDIENCE.into(), vec![PUSHER.into()], jwks_url)
        .accept_removed_signatures(true);
    let accepted = trusting.verify(Some(&stripped), None).await.unwrap();
    assert_eq!(accepted.email.as_deref(), Some(PUSHER));
    let service = "https://zapfn-status-x7k2-uc.a.run.app";
    let for_the_service = signature_removed(&good, claims(json!({"aud": service})));
    trusting
        .verify(
            Some(&for_the_service),
            Some(&format!("{service}/_push/statuses")),
        )
        .await
        .unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 0, "no key is needed");

    let refused = [
        ("other audience", json!({"aud": "https://elsewhere"})),
        (
            "expired",
            json!({"exp": chrono::Utc::now().timestamp() - 3600}),
        ),
        ("other issuer", json!({"iss": "https://evil.example"})),
        (
            "other account",
            json!({"email": "someone@p.iam.gserviceaccount.com"}),
        ),
        ("unverified email", json!({"email_verified": false})),
    ];
    for (what, overrides) in refused {
        let error = trusting
            .verify(Some(&signature_removed(&good, claims(overrides))), None)
            .await
            .unwrap_err();
        assert!(matches!(error, OidcError::Invalid(_)), "{what}: {error}");
    }
    // Any other signature is still checked.
    let (unsigned, _) = stripped.rsplit_once('.').unwrap();
    let forged = format!("{unsigned}.c2lnbmF0dXJl");
    assert!(trusting.verify(Some(&forged), None).await.is_err());
}
