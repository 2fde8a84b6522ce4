//! Checks the Google-signed OIDC ID token Pub/Sub, Cloud Tasks, Eventarc and
//! Cloud Scheduler attach to push requests (`Authorization: Bearer <jwt>`):
//! RS256 with a key from Google's JWKS (cached), issuer Google, the configured
//! audience (or the URL the request was sent to: Eventarc, which cannot be
//! given an audience, addresses its tokens to the Cloud Run service's URL), not
//! expired, and optionally one of the allowed service accounts.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

/// Google's OIDC signing keys.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// Issuers of Google ID tokens.
const ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
/// How long fetched keys are used before fetching again.
const KEYS_TTL: Duration = Duration::from_secs(3600);
/// An unknown key id triggers a refetch at most this often.
const REFETCH_AFTER: Duration = Duration::from_secs(30);

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<bool>,
    #[serde(default)]
    pub sub: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("missing `Authorization: Bearer <token>`")]
    Missing,
    #[error("token refused: {0}")]
    Invalid(String),
    #[error("token signed by unknown key {0:?}")]
    UnknownKey(String),
    #[error("signing keys unavailable: {0}")]
    Keys(String),
}

/// Verifies push tokens for one audience.
pub struct OidcVerifier {
    audience: String,
    allowed_emails: Vec<String>,
    jwks_url: String,
    http: reqwest::Client,
    keys: RwLock<Option<(Instant, JwkSet)>>,
}

impl OidcVerifier {
    /// Accepts tokens for `audience` signed with keys from `jwks_url`
    /// ([`GOOGLE_JWKS_URL`] in production); when `allowed_emails` is not empty,
    /// only from those (verified) service accounts.
    pub fn new(audience: String, allowed_emails: Vec<String>, jwks_url: String) -> OidcVerifier {
        OidcVerifier {
            audience,
            allowed_emails,
            jwks_url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("a default reqwest client builds"),
            keys: RwLock::new(None),
        }
    }

    /// Verifies the `Authorization` header value of a request sent to
    /// `addressed_to` (`https://HOST/PATH`, when known): a token for the
    /// configured audience, that URL or its origin is accepted.
    pub async fn verify(
        &self,
        authorization: Option<&str>,
        addressed_to: Option<&str>,
    ) -> Result<Claims, OidcError> {
        let token = authorization
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or(OidcError::Missing)?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| OidcError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(OidcError::Invalid(format!(
                "algorithm {:?} is not RS256",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| OidcError::Invalid("no key id (kid)".into()))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        let mut audiences = vec![self.audience.as_str()];
        if let Some(url) = addressed_to {
            audiences.push(url);
            audiences.extend(origin(url));
        }
        validation.set_audience(&audiences);
        validation.set_issuer(&ISSUERS);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| OidcError::Invalid(e.to_string()))?
            .claims;
        if !self.allowed_emails.is_empty() {
            let allowed = claims.email_verified == Some(true)
                && claims
                    .email
                    .as_ref()
                    .is_some_and(|email| self.allowed_emails.contains(email));
            if !allowed {
                return Err(OidcError::Invalid(format!(
                    "email {:?} is not an allowed (verified) service account",
                    claims.email
                )));
            }
        }
        Ok(claims)
    }

    /// The decoding key for `kid`, fetching the key set when it is stale or lacks `kid`.
    async fn key(&self, kid: &str) -> Result<DecodingKey, OidcError> {
        let mut refetch_allowed = true;
        if let Some((fetched, set)) = self.keys.read().await.as_ref() {
            if fetched.elapsed() < KEYS_TTL {
                if let Some(jwk) = set.find(kid) {
                    return DecodingKey::from_jwk(jwk).map_err(|e| OidcError::Keys(e.to_string()));
                }
                refetch_allowed = fetched.elapsed() >= REFETCH_AFTER;
            }
        }
        if !refetch_allowed {
            return Err(OidcError::UnknownKey(kid.to_owned()));
        }
        let set = self.fetch().await?;
        let key = set
            .find(kid)
            .map(|jwk| DecodingKey::from_jwk(jwk).map_err(|e| OidcError::Keys(e.to_string())));
        *self.keys.write().await = Some((Instant::now(), set));
        key.unwrap_or_else(|| Err(OidcError::UnknownKey(kid.to_owned())))
    }

    async fn fetch(&self) -> Result<JwkSet, OidcError> {
        let response = self
            .http
            .get(&self.jwks_url)
            .send()
            .await
            .and_then(|response| response.error_for_status())
            .map_err(|e| OidcError::Keys(e.to_string()))?;
        response
            .json::<JwkSet>()
            .await
            .map_err(|e| OidcError::Keys(format!("not a JWK set: {e}")))
    }
}

/// `https://host` of `https://host/path`.
fn origin(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let host_end = rest.find('/').unwrap_or(rest.len());
    Some(&url[.."https://".len() + host_end])
}
