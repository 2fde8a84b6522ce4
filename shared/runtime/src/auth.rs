//! API keys: `Authorization: Bearer <key>`, stored as peppered hashes, each
//! with scopes (send, read, admin), the business numbers it acts for and a
//! request rate.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use zapfn_store::{ApiKey, Scope, Store, ALL_NUMBERS};

use crate::rate_limit::KeyRates;
use crate::{Context, Problem};

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

/// What a new key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Business numbers, or [`ALL_NUMBERS`].
    pub phone_number_ids: Vec<String>,
    pub rate_per_second: Option<u32>,
}

impl KeyGrant {
    /// Checks the grant; the error names the field at fault.
    pub fn validate(&self) -> Result<(), Problem> {
        let bad = |field: &str, detail: &str| {
            Err(Problem::new(StatusCode::BAD_REQUEST, detail).with_field(field))
        };
        let name_ok = (1..=100).contains(&self.name.len())
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
        if !name_ok {
            return bad(
                "name",
                "must be 1 to 100 letters, digits, '-', '_', '.' or '@'",
            );
        }
        if self.scopes.is_empty() {
            return bad("scopes", "name at least one of send, read, admin");
        }
        let number_ok = |n: &String| {
            n == ALL_NUMBERS
                || (!n.is_empty() && n.len() <= 32 && n.bytes().all(|b| b.is_ascii_digit()))
        };
        if self.phone_number_ids.is_empty() || !self.phone_number_ids.iter().all(number_ok) {
            return bad(
                "phone_number_ids",
                "name the numeric phone number ids the key acts for, or \"*\" for every number",
            );
        }
        if self
            .rate_per_second
            .is_some_and(|rate| !(1..=100_000).contains(&rate))
        {
            return bad("rate_per_second", "must be between 1 and 100000");
        }
        Ok(())
    }
}

/// Makes and stores a new key for `grant`; returns the key (shown once) and what was stored.
pub async fn issue_key(
    store: &dyn Store,
    pepper: &str,
    grant: KeyGrant,
) -> Result<(String, ApiKey), Problem> {
    grant.validate()?;
    let key = generate_key();
    let stored = ApiKey {
        name: grant.name,
        key_hash: hash_key(pepper, &key),
        scopes: grant.scopes,
        phone_number_ids: grant.phone_number_ids,
        rate_per_second: grant.rate_per_second,
        created_at: chrono::Utc::now().timestamp(),
        revoked_at: None,
    };
    store.put_api_key(&stored).await?;
    Ok((key, stored))
}

/// Stores `ZAPFN_API_KEY` (if set) as the `bootstrap` key: admin on every number, unlimited.
pub async fn store_bootstrap_key(context: &Context) -> anyhow::Result<()> {
    let Some(key) = &context.config.bootstrap_api_key else {
        return Ok(());
    };
    let bootstrap = ApiKey {
        name: "bootstrap".into(),
        key_hash: hash_key(&context.config.key_pepper, key),
        scopes: vec![Scope::Admin],
        phone_number_ids: vec![ALL_NUMBERS.into()],
        rate_per_second: None,
        created_at: chrono::Utc::now().timestamp(),
        revoked_at: None,
    };
    // Every instance starts here: one that finds the key as it would write it
    // only reads (on Firestore, ten instances starting at once each wrote it in
    // a transaction on the same document and waited on each other's locks).
    // A live key equal to it but for its creation time is the one it would write.
    let stored = context.store.api_key(&bootstrap.key_hash).await?;
    if let Some(stored) = stored {
        let as_written = ApiKey {
            created_at: stored.created_at,
            ..bootstrap.clone()
        };
        if stored == as_written {
            return Ok(());
        }
    }
    context.store.put_api_key(&bootstrap).await?;
    Ok(())
}

/// The key a request authenticated with (put in its extensions by [`require_api_key`]).
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<ApiKey>);

impl Caller {
    /// The key's name (what the audit log records).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// 403 unless the key has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), Problem> {
        if self.0.allows(scope) {
            return Ok(());
        }
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "the API key {:?} lacks the {} scope",
                self.0.name,
                scope.as_str()
            ),
        ))
    }

    /// 403 unless the key has `scope` for this business number.
    pub fn require_for(&self, scope: Scope, phone_number_id: &str) -> Result<(), Problem> {
        self.require(scope)?;
        if self.0.allows_number(phone_number_id) {
            return Ok(());
        }
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "the API key {:?} does not act for phone number id {phone_number_id:?}",
                self.0.name
            ),
        )
        .with_field("phone_number_id"))
    }

    /// Whether the key may see data of this business number (to answer 404, not
    /// 403, for another tenant's records: their existence is not disclosed).
    pub fn sees(&self, phone_number_id: &str) -> bool {
        self.0.allows_number(phone_number_id)
    }

    /// The business numbers the key is limited to; None for every number.
    pub fn numbers(&self) -> Option<&[String]> {
        self.0.numbers()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, Problem> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "route served without API-key authentication",
            )
        })
    }
}

/// What [`require_api_key`] needs: the context and this process's per-key rates.
#[derive(Clone)]
pub struct ApiAuth {
    pub context: Context,
    pub rates: Arc<KeyRates>,
}

impl ApiAuth {
    /// Authentication with fresh rate buckets.
    pub fn new(context: Context) -> ApiAuth {
        ApiAuth {
            context,
            rates: Arc::default(),
        }
    }
}

/// Middleware: 401 unless the request carries a live API key, 429 (with
/// `Retry-After`) past the key's rate; puts the [`Caller`] in the request.
pub async fn require_api_key(
    State(auth): State<ApiAuth>,
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
    let hash = hash_key(&auth.context.config.key_pepper, key);
    let key = match auth.context.store.api_key(&hash).await {
        Ok(Some(key)) => key,
        Ok(None) => return unauthorized("the API key is not valid or was revoked"),
        Err(error) => return Problem::from(error).into_response(),
    };
    if let Some(rate) = key.rate_per_second {
        if let Err(wait) = auth.rates.try_take(&hash, rate) {
            return too_many_requests(&key.name, rate, wait);
        }
    }
    request.extensions_mut().insert(Caller(Arc::new(key)));
    next.run(request).await
}

fn unauthorized(detail: &str) -> Response {
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, detail).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn too_many_requests(name: &str, rate: u32, wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "the API key {name:?} is limited to {rate} requests per second; retry in {seconds} s"
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
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

    #[test]
    fn grants_name_what_is_wrong() {
        let good = KeyGrant {
            name: "ci".into(),
            scopes: vec![Scope::Send],
            phone_number_ids: vec!["106540352242922".into()],
            rate_per_second: Some(10),
        };
        assert!(good.validate().is_ok());
        let field = |grant: KeyGrant| grant.validate().unwrap_err().field.unwrap();
        assert_eq!(
            field(KeyGrant {
                name: "a b".into(),
                ..good.clone()
            }),
            "name"
        );
        assert_eq!(
            field(KeyGrant {
                scopes: vec![],
                ..good.clone()
            }),
            "scopes"
        );
        assert_eq!(
            field(KeyGrant {
                phone_number_ids: vec![],
                ..good.clone()
            }),
            "phone_number_ids"
        );
        assert_eq!(
            field(KeyGrant {
                phone_number_ids: vec!["12a".into()],
                ..good.clone()
            }),
            "phone_number_ids"
        );
        assert_eq!(
            field(KeyGrant {
                rate_per_second: Some(0),
                ..good.clone()
            }),
            "rate_per_second"
        );
    }
}
