//! Checks the Google-signed OIDC ID token Pub/Sub, Cloud Tasks, Eventarc and
//! Cloud Scheduler attach to push requests (`Authorization: Bearer <jwt>`):
//! RS256 with a key from Google's JWKS (cached), issuer Google, the configured
//! audience (or the URL the request was sent to: Eventarc, which cannot be
//! given an audience, addresses its tokens to the Cloud Run service's URL), not
//! expired, and optionally one of the allowed service accounts.
//!
//! A private Cloud Run service checks the token itself (IAM) and forwards it
//! with the signature replaced by [`SIGNATURE_REMOVED`]; such a token is
//! accepted on its claims alone only when the verifier was told Cloud Run
//! checked it ([`OidcVerifier::accept_removed_signatures`]).

use std::time::{Duration, Instant};

use jsonwebtoken::dangerous::insecure_decode_claims;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

/// Google's OIDC signing keys.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// What Cloud Run puts in place of the signature of a token it checked.
pub const SIGNATURE_REMOVED: &str = "SIGNATURE_REMOVED_BY_GOOGLE";
/// Issuers of Google ID tokens.
const ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
/// How long fetched keys are used before fetching again.
const KEYS_TTL: Duration = Duration::from_secs(3600);
/// An unknown key id triggers a refetch at most this often.
const REFETCH_AFTER: Duration = Duration::from_secs(30);
/// Clock skew allowed on `exp`, in seconds.
const LEEWAY_SECS: i64 = 60;

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
    removed_signatures: bool,
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
            removed_signatures: false,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("a default reqwest client builds"),
            keys: RwLock::new(None),
        }
    }

    /// With `accepted`, also takes a token whose signature is [`SIGNATURE_REMOVED`]
    /// on its claims alone. Only for a private Cloud Run service, which checked
    /// the token before removing the signature: on a public one anyone could
    /// forge such a token.
    pub fn accept_removed_signatures(mut self, accepted: bool) -> OidcVerifier {
        self.removed_signatures = accepted;
        self
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
        let claims =
            match token.rsplit_once('.') {
                Some((_, SIGNATURE_REMOVED)) if self.removed_signatures => {
                    insecure_decode_claims::<Claims>(token).map_err(invalid)?
                }
                Some((_, SIGNATURE_REMOVED)) => return Err(OidcError::Invalid(
                    "signature removed by Google, and Cloud Run is not trusted to have checked it"
                        .into(),
                )),
                _ => self.signed_claims(token).await?,
            };
        self.check(&claims, addressed_to)?;
        Ok(claims)
    }

    /// The claims of an RS256 token signed with one of the keys (not yet checked).
    async fn signed_claims(&self, token: &str) -> Result<Claims, OidcError> {
        let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
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
        // The signature only: [`OidcVerifier::check`] checks the claims of every token.
        let mut signature_only = Validation::new(Algorithm::RS256);
        signature_only.validate_exp = false;
        signature_only.validate_aud = false;
        signature_only.required_spec_claims.clear();
        Ok(jsonwebtoken::decode::<Claims>(token, &key, &signature_only)
            .map_err(invalid)?
            .claims)
    }

    /// Issuer Google, not expired, for the audience (or the URL the request was
    /// sent to, or its origin), and from an allowed service account.
    fn check(&self, claims: &Claims, addressed_to: Option<&str>) -> Result<(), OidcError> {
        if !ISSUERS.contains(&claims.iss.as_str()) {
            return Err(OidcError::Invalid(format!("issuer {:?}", claims.iss)));
        }
        if claims.exp + LEEWAY_SECS < chrono::Utc::now().timestamp() {
            return Err(OidcError::Invalid("expired".into()));
        }
        let mut audiences = vec![self.audience.as_str()];
        if let Some(url) = addressed_to {
            audiences.push(url);
            audiences.extend(origin(url));
        }
        if !audiences.contains(&claims.aud.as_str()) {
            return Err(OidcError::Invalid(format!("audience {:?}", claims.aud)));
        }
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
        Ok(())
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

fn invalid(error: jsonwebtoken::errors::Error) -> OidcError {
    OidcError::Invalid(error.to_string())
}

/// `https://host` of `https://host/path`.
fn origin(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let host_end = rest.find('/').unwrap_or(rest.len());
    Some(&url[.."https://".len() + host_end])
}
