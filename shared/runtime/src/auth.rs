//! API keys: `Authorization: Bearer <key>`, stored as peppered hashes.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::{Context, Problem};

/// The name a request's key was stored under, put in request extensions.
#[derive(Debug, Clone)]
pub struct ApiKeyName(pub String);

/// HMAC-SHA256 of the key with the server-side pepper, hex.
pub fn hash_key(pepper: &str, key: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(pepper.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(key.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A new random key: `zk_` and 40 alphanumerics (≈238 bits).
pub fn generate_key() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    let body: String = (0..40)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("zk_{body}")
}

/// Stores `ZAPFN_API_KEY` (if set) as the `bootstrap` key.
pub async fn store_bootstrap_key(context: &Context) -> anyhow::Result<()> {
    if let Some(key) = &context.config.bootstrap_api_key {
        context
            .store
            .put_api_key("bootstrap", &hash_key(&context.config.key_pepper, key))
            .await?;
    }
    Ok(())
}

/// Middleware: 401 unless the request carries a live API key.
pub async fn require_api_key(
    State(context): State<Context>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .filter(|key| !key.is_empty());
    let Some(key) = presented else {
        return unauthorized(
            "send `Authorization: Bearer <api key>` (create one with `zapfn keys create`)",
        );
    };
    match context
        .store
        .api_key_name(&hash_key(&context.config.key_pepper, key))
        .await
    {
        Ok(Some(name)) => {
            request.extensions_mut().insert(ApiKeyName(name));
            next.run(request).await
        }
        Ok(None) => unauthorized("the API key is not valid or was revoked"),
        Err(error) => Problem::from(error).into_response(),
    }
}

fn unauthorized(detail: &str) -> Response {
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, detail).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashes_depend_on_the_pepper() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert!(a.starts_with("zk_") && a.len() == 43);
        assert_ne!(hash_key("p1", &a), hash_key("p2", &a));
        assert_eq!(hash_key("p1", &a), hash_key("p1", &a));
        assert_eq!(hash_key("p1", &a).len(), 64);
    }
}
