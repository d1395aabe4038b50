//! How we authenticate to an authorization server's endpoints: a client secret (HTTP
//! Basic, in the body, or as an HS256 `client_secret_jwt` assertion) or a private key
//! (`private_key_jwt`, RFC 7523). A secret kept in a store is re-read when it rotates.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::CredentialStore;
use auth_core::clock::SharedClock;
use aws_lc_rs::signature::{self, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::http::HttpError;

/// The shortest client secret accepted.
pub const MIN_CLIENT_SECRET: usize = 32;

/// A client secret that is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client secret: {0}")]
pub struct SecretError(String);

impl SecretError {
    pub(crate) fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

pub(crate) fn checked(secret: SecretString) -> Result<SecretString, SecretError> {
    if secret.expose_secret().chars().count() < MIN_CLIENT_SECRET {
        return Err(SecretError(format!(
            "shorter than {MIN_CLIENT_SECRET} characters"
        )));
    }
    Ok(secret)
}

/// The client secret from environment variable `var`.
pub fn client_secret_from_env(var: &str) -> Result<SecretString, SecretError> {
    let value = std::env::var(var).map_err(|_| SecretError(format!("`{var}` is not set")))?;
    checked(SecretString::from(value))
}

/// The client secret from a store (the wallet's `pgwire-oauth-client`).
pub async fn client_secret_from_store(
    store: &dyn CredentialStore,
    key: &str,
) -> Result<SecretString, SecretError> {
    auth_core::store::text_secret(store, key)
        .await
        .map_err(SecretError)
        .and_then(checked)
}

/// Why an authenticator or token source that calls a provider could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An endpoint URL is refused, or the TLS settings are unusable.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The client secret or key is unusable.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A trusted issuer's key source (JWKS URL, discovery) is refused.
    #[error("issuer `{issuer}`: {source}")]
    Issuer {
        /// The issuer, as configured.
        issuer: String,
        /// Why its key source is refused.
        #[source]
        source: HttpError,
    },
}

impl From<ConfigError> for auth_core::Failure {
    /// A configuration the server cannot use: insecure when a URL was refused for its
    /// scheme or its user info, invalid otherwise (not a URL at all, unusable TLS settings
    /// or secret).
    fn from(e: ConfigError) -> Self {
        let refused = match &e {
            ConfigError::Http(HttpError::Url { why, .. })
            | ConfigError::Issuer {
                source: HttpError::Url { why, .. },
                ..
            } => Some(*why),
            _ => None,
        };
        let kind = match refused {
            Some(why) if why != crate::http::NOT_A_URL => auth_core::ConfigurationError::Insecure,
            _ => auth_core::ConfigurationError::Invalid,
        };
        auth_core::Failure::new(kind, e.to_string())
    }
}

/// How the client authenticates to the authorization server.
#[derive(Clone)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic, both halves form-encoded (RFC 6749 2.3.1).
    SecretBasic(ClientSecret),
    /// `client_secret_post`: in the form body.
    SecretPost(ClientSecret),
    /// `client_secret_jwt` (RFC 7523): an assertion signed with HS256 under the secret,
    /// which itself never leaves this process.
    SecretJwt(ClientSecret),
    /// `private_key_jwt` (RFC 7523): an assertion signed with our private key; the
    /// provider holds only the public key.
    PrivateKeyJwt(AssertionKey),
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.method())
    }
}

impl ClientAuth {
    /// The method's registered name (`token_endpoint_auth_method`).
    pub fn method(&self) -> &'static str {
        match self {
            Self::SecretBasic(_) => "client_secret_basic",
            Self::SecretPost(_) => "client_secret_post",
            Self::SecretJwt(_) => "client_secret_jwt",
            Self::PrivateKeyJwt(_) => "private_key_jwt",
        }
    }

    /// The secret, for the methods that have one.
    pub(crate) fn secret(&self) -> Option<&ClientSecret> {
        match self {
            Self::SecretBasic(s) | Self::SecretPost(s) | Self::SecretJwt(s) => Some(s),
            Self::PrivateKeyJwt(_) => None,
        }
    }
}

/// Where the client secret comes from.
enum Source {
    Fixed,
    Store {
        store: Arc<dyn CredentialStore>,
        key: String,
        every: Duration,
        clock: SharedClock,
    },
}

/// Our client secret: fixed, or read from a store (the wallet) and read again when the
/// provider says `invalid_client` and at an interval, so a rotated secret is picked up
/// without a restart.
#[derive(Clone)]
pub struct ClientSecret {
    /// The secret and when it was last read (or a read was last tried).
    current: Arc<RwLock<(SecretString, SystemTime)>>,
    /// One read of the store at a time; holds when a refusal last caused one.
    reading: Arc<tokio::sync::Mutex<Option<SystemTime>>>,
    source: Arc<Source>,
}

/// The least time between two reads of the store caused by the provider refusing our
/// secret: a provider that refuses everything must not turn into a query per request.
const REFUSAL_REREAD_SPACING: Duration = Duration::from_secs(5);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match &*self.source {
            Source::Fixed => "ClientSecret(fixed, [REDACTED])",
            Source::Store { .. } => "ClientSecret(store, [REDACTED])",
        })
    }
}

impl ClientSecret {
    /// A fixed secret; refuses one shorter than [`crate::MIN_CLIENT_SECRET`] characters.
    pub fn new(secret: SecretString) -> Result<Self, SecretError> {
        Ok(Self {
            current: Arc::new(RwLock::new((checked(secret)?, UNIX_EPOCH))),
            reading: Arc::default(),
            source: Arc::new(Source::Fixed),
        })
    }

    /// The secret stored under `key` in `store` (the wallet), read now, again when the
    /// provider refuses it, and again when it is older than `every` on `clock`.
    pub async fn from_store(
        store: Arc<dyn CredentialStore>,
        key: &str,
        every: Duration,
        clock: SharedClock,
    ) -> Result<Self, SecretError> {
        let secret = client_secret_from_store(store.as_ref(), key).await?;
        let now = clock.now();
        Ok(Self {
            current: Arc::new(RwLock::new((secret, now))),
            reading: Arc::default(),
            source: Arc::new(Source::Store {
                store,
                key: key.to_owned(),
                every,
                clock,
            }),
        })
    }

    fn read(&self) -> (SecretString, SystemTime) {
        let guard = self.current.read().unwrap_or_else(PoisonError::into_inner);
        (guard.0.clone(), guard.1)
    }

    /// The secret to use now; re-read first when the interval has passed. A store that
    /// cannot be read keeps the secret we have (and says so in the log) until the next
    /// interval.
    pub(crate) async fn current(&self) -> SecretString {
        let (secret, read_at) = self.read();
        if let Source::Store { every, clock, .. } = &*self.source
            && due(read_at, clock.now(), *every)
        {
            if let Err(e) = self.reload(false).await {
                tracing::warn!(error = %e, "could not re-read the client secret; the one in use stays");
            }
            return self.read().0;
        }
        secret
    }

    /// Reads the secret from its store again because the provider refused it; whether
    /// it changed. A fixed secret never changes.
    pub(crate) async fn reread(&self) -> Result<bool, SecretError> {
        self.reload(true).await
    }

    /// One read of the store at a time: on the interval (`refused` false: skipped when
    /// another caller just read), or after a refusal (at most one per
    /// [`REFUSAL_REREAD_SPACING`]). A failed read also counts as a read, so a broken store
    /// is asked once per interval.
    async fn reload(&self, refused: bool) -> Result<bool, SecretError> {
        let Source::Store {
            store,
            key,
            clock,
            every,
        } = &*self.source
        else {
            return Ok(false);
        };
        let mut last_refusal = self.reading.lock().await;
        let now = clock.now();
        if refused {
            if last_refusal.is_some_and(|t| !due(t, now, REFUSAL_REREAD_SPACING)) {
                return Ok(false);
            }
            *last_refusal = Some(now);
        } else if !due(self.read().1, now, *every) {
            return Ok(false); // read by whoever held the lock before us
        }
        let fresh = client_secret_from_store(store.as_ref(), key).await;
        let mut guard = self.current.write().unwrap_or_else(PoisonError::into_inner);
        match fresh {
            Ok(fresh) => {
                let changed = fresh.expose_secret() != guard.0.expose_secret();
                *guard = (fresh, now);
                Ok(changed)
            }
            Err(e) => {
                guard.1 = now;
                Err(e)
            }
        }
    }
}

/// Whether `interval` has passed since `then` (a clock gone backwards counts as passed).
fn due(then: SystemTime, now: SystemTime, interval: Duration) -> bool {
    now.duration_since(then).map_or(true, |age| age >= interval)
}

impl TryFrom<SecretString> for ClientSecret {
    type Error = SecretError;
    fn try_from(secret: SecretString) -> Result<Self, SecretError> {
        Self::new(secret)
    }
}

enum Signer {
    Rsa(signature::RsaKeyPair),
    Ecdsa(signature::EcdsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
}

/// Our private key for `private_key_jwt`, with the `kid` the provider knows it by.
#[derive(Clone)]
pub struct AssertionKey {
    signer: Arc<Signer>,
    kid: Option<String>,
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionKey")
            .field("alg", &self.alg())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl AssertionKey {
    /// A key from PKCS#8 DER: RSA (signs RS256), EC P-256 (ES256) or Ed25519 (EdDSA).
    pub fn from_pkcs8_der(der: &[u8], kid: Option<String>) -> Result<Self, SecretError> {
        let signer = if let Ok(k) =
            signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
        {
            Signer::Ecdsa(k)
        } else if let Ok(k) = signature::Ed25519KeyPair::from_pkcs8(der) {
            Signer::Ed25519(k)
        } else if let Ok(k) = signature::RsaKeyPair::from_pkcs8(der) {
            Signer::Rsa(k)
        } else {
            return Err(SecretError::new(
                "private key: not a PKCS#8 RSA, P-256 or Ed25519 key",
            ));
        };
        Ok(Self {
            signer: Arc::new(signer),
            kid,
        })
    }

    /// A key from a PEM `PRIVATE KEY` block.
    pub fn from_pkcs8_pem(pem: &[u8], kid: Option<String>) -> Result<Self, SecretError> {
        use rustls_pki_types::PrivatePkcs8KeyDer;
        use rustls_pki_types::pem::PemObject;
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem)
            .map_err(|e| SecretError::new(format!("private key: {e}")))?;
        Self::from_pkcs8_der(der.secret_pkcs8_der(), kid)
    }

    /// The JWS algorithm the key signs with.
    pub fn alg(&self) -> &'static str {
        match &*self.signer {
            Signer::Rsa(_) => "RS256",
            Signer::Ecdsa(_) => "ES256",
            Signer::Ed25519(_) => "EdDSA",
        }
    }

    /// The public half as a JWK (to register at the provider).
    pub fn public_jwk(&self) -> serde_json::Value {
        let mut jwk = match &*self.signer {
            Signer::Ecdsa(k) => {
                // Uncompressed point: 0x04 || x || y.
                let point = k.public_key().as_ref();
                serde_json::json!({"kty": "EC", "crv": "P-256",
                    "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..65])})
            }
            Signer::Ed25519(k) => serde_json::json!({"kty": "OKP", "crv": "Ed25519",
                "x": B64URL.encode(k.public_key().as_ref())}),
            Signer::Rsa(k) => {
                let public = k.public_key();
                serde_json::json!({"kty": "RSA",
                    "n": B64URL.encode(public.modulus().big_endian_without_leading_zero()),
                    "e": B64URL.encode(public.exponent().big_endian_without_leading_zero())})
            }
        };
        jwk["alg"] = self.alg().into();
        jwk["use"] = "sig".into();
        if let Some(kid) = &self.kid {
            jwk["kid"] = kid.clone().into();
        }
        jwk
    }

    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, SecretError> {
        let failed = |_| SecretError::new("signing the client assertion failed");
        match &*self.signer {
            Signer::Ecdsa(k) => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                Ok(k.sign(&rng, input).map_err(failed)?.as_ref().to_vec())
            }
            Signer::Ed25519(k) => Ok(k.sign(input).as_ref().to_vec()),
            Signer::Rsa(k) => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let mut out = vec![0; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, input, &mut out)
                    .map_err(failed)?;
                Ok(out)
            }
        }
    }
}

/// The `client_assertion` (RFC 7523 section 3) for `client_id`, audience `audience`,
/// signed as `auth` says, valid for 60 seconds from `now`.
pub(crate) async fn assertion(
    auth: &ClientAuth,
    client_id: &str,
    audience: &str,
    now: SystemTime,
) -> Result<Option<Zeroizing<String>>, SecretError> {
    let iat = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).map_err(|_| SecretError::new("no randomness for the jti"))?;
    let claims = serde_json::json!({
        "iss": client_id, "sub": client_id, "aud": audience,
        "iat": iat, "exp": iat + 60, "jti": B64URL.encode(jti),
    });
    let (header, key) = match auth {
        ClientAuth::SecretJwt(_) => (serde_json::json!({"alg": "HS256", "typ": "JWT"}), None),
        ClientAuth::PrivateKeyJwt(key) => {
            let mut h = serde_json::json!({"alg": key.alg(), "typ": "JWT"});
            if let Some(kid) = &key.kid {
                h["kid"] = kid.clone().into();
            }
            (h, Some(key))
        }
        ClientAuth::SecretBasic(_) | ClientAuth::SecretPost(_) => return Ok(None),
    };
    let input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string())
    );
    let signature = match (key, auth.secret()) {
        (Some(key), _) => key.sign(input.as_bytes())?,
        (None, Some(secret)) => {
            let secret = secret.current().await;
            let key = aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA256,
                secret.expose_secret().as_bytes(),
            );
            aws_lc_rs::hmac::sign(&key, input.as_bytes())
                .as_ref()
                .to_vec()
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(Zeroizing::new(format!(
        "{input}.{}",
        B64URL.encode(signature)
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = ClientSecret::new(SecretString::from("s".repeat(40))).unwrap();
        let auth = ClientAuth::SecretBasic(secret.clone());
        assert!(!format!("{secret:?}{auth:?}").contains("sss"));
        assert_eq!(format!("{auth:?}"), "client_secret_basic");
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert!(ClientSecret::new(SecretString::from("short".to_owned())).is_err());
    }

    #[tokio::test]
    async fn assertions_verify_with_the_public_key() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let key = AssertionKey::from_pkcs8_der(pkcs8.as_ref(), Some("k1".into())).unwrap();
        let jwk = key.public_jwk();
        assert_eq!(jwk["kid"], "k1");
        let verifier = crate::VerifyingKey::from_jwk(&jwk).unwrap();
        let auth = ClientAuth::PrivateKeyJwt(key);
        let jwt = assertion(&auth, "svc", "https://idp/token", SystemTime::now())
            .await
            .unwrap()
            .unwrap();
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        assert!(verifier.verify(input.as_bytes(), &B64URL.decode(sig).unwrap()));
    }
}
