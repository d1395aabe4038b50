//! Test issuers: keys, signed tokens, and a JWKS server whose behaviour can be changed.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A signing key and its public JWK.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
    /// The raw public key bytes (what a confused verifier might use as an HMAC secret).
    pub public_raw: Vec<u8>,
}

/// The n and e of a PKCS#1 RSAPublicKey DER.
fn rsa_n_e(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn read(der: &[u8], at: &mut usize) -> Vec<u8> {
        let tag = der[*at];
        assert!(tag == 0x02 || tag == 0x30);
        *at += 1;
        let mut len = der[*at] as usize;
        *at += 1;
        if len & 0x80 != 0 {
            let n = len & 0x7f;
            len = der[*at..*at + n]
                .iter()
                .fold(0, |acc, b| acc << 8 | *b as usize);
            *at += n;
        }
        let v = der[*at..*at + len].to_vec();
        *at += len;
        v
    }
    let mut at = 0;
    let seq = read(der, &mut at);
    let mut i = 0;
    let n = read(&seq, &mut i);
    let e = read(&seq, &mut i);
    let strip = |v: Vec<u8>| v.into_iter().skip_while(|b| *b == 0).collect::<Vec<u8>>();
    (strip(n), strip(e))
}

impl TestKey {
    pub fn new(kid: &str, alg: Algorithm) -> Self {
        let rc_alg = match alg {
            Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Algorithm::ES384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Algorithm::EdDSA => &rcgen::PKCS_ED25519,
            Algorithm::RS256 => &rcgen::PKCS_RSA_SHA256,
            other => panic!("no test key for {other:?}"),
        };
        let pair = rcgen::KeyPair::generate_for(rc_alg).unwrap();
        let pem = pair.serialize_pem();
        let raw = pair.public_key_raw().to_vec();
        let (encoding, jwk) = match alg {
            Algorithm::ES256 | Algorithm::ES384 => {
                let half = (raw.len() - 1) / 2;
                let crv = if alg == Algorithm::ES256 {
                    "P-256"
                } else {
                    "P-384"
                };
                (
                    EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
                    json!({"kty": "EC", "crv": crv, "kid": kid, "use": "sig",
                           "x": B64URL.encode(&raw[1..1 + half]), "y": B64URL.encode(&raw[1 + half..])}),
                )
            }
            Algorithm::EdDSA => (
                EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
                json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": B64URL.encode(&raw)}),
            ),
            _ => {
                let (n, e) = rsa_n_e(&raw);
                (
                    EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
                    json!({"kty": "RSA", "kid": kid, "alg": "RS256", "n": B64URL.encode(n), "e": B64URL.encode(e)}),
                )
            }
        };
        Self {
            kid: kid.into(),
            alg,
            encoding,
            jwk,
            public_raw: raw,
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

pub fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Good claims for `iss` and audience `api`.
pub fn claims(iss: &str) -> Value {
    let t = now();
    json!({"iss": iss, "sub": "user-123", "aud": "api", "exp": t + 300, "iat": t, "nbf": t,
           "preferred_username": "alice", "scope": "kms:encrypt read", "roles": ["service"], "jti": "t1"})
}

/// How the JWKS server answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Slow,
    Garbage,
}

#[derive(Clone)]
pub struct Issuer {
    pub keys: Arc<Mutex<Vec<Value>>>,
    pub mode: Arc<Mutex<Mode>>,
    pub requests: Arc<AtomicU64>,
    pub url: String,
    pub server: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

async fn jwks(State(issuer): State<Issuer>) -> axum::response::Response {
    issuer.requests.fetch_add(1, Ordering::SeqCst);
    let mode = *issuer.mode.lock().unwrap();
    match mode {
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "{}".into_response()
        }
        Mode::Garbage => "<html>not json</html>".into_response(),
        Mode::Normal => {
            let keys = issuer.keys.lock().unwrap().clone();
            axum::Json(json!({ "keys": keys })).into_response()
        }
    }
}

async fn discovery(State(issuer): State<Issuer>) -> axum::response::Response {
    axum::Json(json!({"issuer": issuer.url, "jwks_uri": format!("{}/jwks", issuer.url)}))
        .into_response()
}

impl Issuer {
    pub async fn start(keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let issuer = Issuer {
            keys: Arc::new(Mutex::new(keys)),
            mode: Arc::new(Mutex::new(Mode::Normal)),
            requests: Arc::new(AtomicU64::new(0)),
            url,
            server: Arc::new(Mutex::new(None)),
        };
        let app = axum::Router::new()
            .route("/jwks", axum::routing::get(jwks))
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(discovery),
            )
            .with_state(issuer.clone());
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *issuer.server.lock().unwrap() = Some(handle);
        issuer
    }

    /// Stops the server and waits until its socket is closed.
    pub async fn stop(&self) {
        let handle = self.server.lock().unwrap().take();
        if let Some(h) = handle {
            h.abort();
            let _ = h.await;
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A client that trusts only `ca_pem`: a test proves the provider's certificate is
/// verified, not merely that some public root happens to match.
pub fn trusting(ca_pem: &str) -> auth_oauth::HttpClient {
    auth_oauth::HttpClient::builder()
        .add_ca_pem(ca_pem.as_bytes())
        .unwrap()
        .only_added_roots()
        .build()
        .unwrap()
}

/// A client that trusts only the harness's run CA, which issues the certificate of every
/// TLS peer the harness starts (oidc-provider, django-oauth-toolkit).
pub fn run_ca_client() -> auth_oauth::HttpClient {
    trusting(&auth_tests::pki::run_ca().unwrap().pem())
}

/// A JWT validator for tokens oidc-provider issues to the audience `urn:api`, finding its
/// keys by discovery through `http`.
pub fn provider_jwt(issuer: &str, http: auth_oauth::HttpClient) -> auth_oauth::JwtAuthenticator {
    auth_oauth::JwtAuthenticator::new(
        vec![auth_oauth::IssuerConfig::discovery(issuer, "urn:api").with_http(http)],
        auth_oauth::ValidationSettings::default(),
    )
    .unwrap()
}
