//! The HTTP gateway: the pg-gateway's data directory (wallet, demo user, audit log) behind
//! an axum API, with a local ES256 token issuer so a fresh machine can show `curl` with a
//! bearer token working.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_axum::{AuthLayer, AuthRejection, Authenticated};
use auth_core::audit::JsonLinesAuditSink;
use auth_core::policy::{Rule, Target};
use auth_core::{AuditSink, Chain, MemoryRateLimiter, Policy, RateLimiter};
use auth_oauth::{IssuerConfig, JwtAuthenticator, KeySource, ValidationSettings, VerifyingKey};
use auth_password::{Argon2Settings, Hasher, PasswordAuthenticator, Users};
use auth_wallet::WalletAuthenticator;
use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::json;

use crate::gateway::{GatewayError, Prepared, write_private};

/// The `iss` of the tokens the gateway issues.
pub const ISSUER: &str = "urn:auth-examples:http-gateway";
/// The audience the API accepts.
pub const AUDIENCE: &str = "demo-api";
const KID: &str = "local-es256";

/// The gateway's own signing key (kept in the data directory) and its public JWK.
pub struct LocalIssuer {
    encoding: jsonwebtoken::EncodingKey,
    /// The public key as a JWK.
    pub jwk: serde_json::Value,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("jwk", &self.jwk)
            .finish()
    }
}

impl LocalIssuer {
    /// Loads `jwt-signing.pem` from the data directory, creating it (0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, GatewayError> {
        let path = data_dir.join("jwt-signing.pem");
        if !path.exists() {
            let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .map_err(|e| GatewayError(format!("signing key: {e}")))?;
            write_private(&path, pair.serialize_pem().as_bytes())?;
        }
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| GatewayError(format!("{}: {e}", path.display())))?;
        let bad = |e: &dyn std::fmt::Display| GatewayError(format!("{}: {e}", path.display()));
        let pair = rcgen::KeyPair::from_pem(&pem).map_err(|e| bad(&e))?;
        let raw = pair.public_key_raw();
        if raw.len() != 65 {
            return Err(bad(&"not a P-256 key; delete it to make a new one"));
        }
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": KID, "use": "sig", "alg": "ES256",
                         "x": B64URL.encode(&raw[1..33]), "y": B64URL.encode(&raw[33..])});
        let encoding =
            jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| bad(&e))?;
        Ok(Self { encoding, jwk })
    }

    /// A token for `subject` with `scope`, valid for `lifetime`.
    pub fn issue(
        &self,
        subject: &str,
        scope: &str,
        lifetime: Duration,
    ) -> Result<String, GatewayError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(KID.into());
        let claims = json!({"iss": ISSUER, "sub": subject, "aud": AUDIENCE, "iat": now,
                            "exp": now + lifetime.as_secs(), "scope": scope});
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| GatewayError(format!("signing: {e}")))
    }
}

/// An HTTP API bound to its address, with a fresh demo token: what both gateways start.
#[derive(Debug)]
pub struct Started {
    /// The bound listener.
    pub listener: tokio::net::TcpListener,
    /// The routes.
    pub app: Router,
    /// The address actually bound.
    pub addr: std::net::SocketAddr,
    /// A one-hour token for `demo` with scope `read`.
    pub token: String,
}

/// Binds `listen` (`flag` names the option that sets it, for the error) and builds the
/// API over `prepared` with the data directory's local issuer.
pub async fn start(prepared: &Prepared, listen: &str, flag: &str) -> Result<Started, GatewayError> {
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| GatewayError(format!("`{listen}` is not an address like 127.0.0.1:8080")))?;
    let issuer = LocalIssuer::load_or_create(&prepared.data_dir)?;
    let app = app(prepared, &issuer)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| GatewayError(format!("cannot listen on {addr}: {e}; pass {flag}")))?;
    let addr = listener.local_addr().unwrap_or(addr);
    let token = issuer.issue("demo", "read", Duration::from_secs(3600))?;
    Ok(Started {
        listener,
        app,
        addr,
        token,
    })
}

/// Writes the token and the curl lines for an API on `addr`.
pub fn write_curl_lines(
    out: &mut impl std::io::Write,
    addr: std::net::SocketAddr,
    token: &str,
    password: Option<&str>,
) -> std::io::Result<()> {
    let password = password.unwrap_or("PASSWORD");
    writeln!(out, "token (scope read, 1 hour): {token}")?;
    writeln!(
        out,
        "bearer:   curl -H 'Authorization: Bearer {token}' http://{addr}/whoami"
    )?;
    writeln!(
        out,
        "basic:    curl -u 'demo:{password}' http://{addr}/whoami"
    )?;
    writeln!(
        out,
        "forbidden (needs scope admin): curl -H 'Authorization: Bearer {token}' http://{addr}/admin"
    )?;
    writeln!(out, "keys:     curl http://{addr}/.well-known/jwks.json")
}

/// Serves `app` on `listener` until `shutdown` completes, with peer addresses for the
/// policy.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn whoami(auth: Authenticated) -> axum::Json<serde_json::Value> {
    axum::Json(json!({
        "principal": auth.principal(),
        "user": auth.user(),
        "method": auth.method(),
        "scopes": auth.scopes(),
        "roles": auth.roles().iter().map(|r| r.as_str()).collect::<Vec<_>>(),
    }))
}

async fn admin(auth: Authenticated) -> Result<&'static str, AuthRejection> {
    auth.require_scope("admin")?;
    Ok("admin area\n")
}

/// The API: `/whoami` and `/admin` (needs scope `admin`) behind the auth layer, and the
/// issuer's public keys at `/.well-known/jwks.json` for anyone.
pub fn app(prepared: &Prepared, issuer: &LocalIssuer) -> Result<Router, GatewayError> {
    let audit_path = prepared.data_dir.join(&prepared.config.audit_log);
    let audit_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&audit_path)
        .map_err(|e| GatewayError(format!("audit log {}: {e}", audit_path.display())))?;
    let audit: Arc<dyn AuditSink> = Arc::new(JsonLinesAuditSink::new(audit_file));
    let limiter: Arc<dyn RateLimiter> = Arc::new(MemoryRateLimiter::default());
    let key = VerifyingKey::from_jwk(&issuer.jwk)
        .map_err(|e| GatewayError(format!("signing key: {e}")))?;
    let jwt = JwtAuthenticator::new(
        vec![IssuerConfig {
            keys: KeySource::Static(Arc::new(vec![Arc::new(key)])),
            ..IssuerConfig::discovery(ISSUER, AUDIENCE)
        }],
        ValidationSettings::default(),
    )
    .map_err(GatewayError)?;
    let hasher =
        Hasher::new(Argon2Settings::default()).map_err(|e| GatewayError(format!("hasher: {e}")))?;
    // Bearer tokens go to the JWT validator; Basic credentials to the wallet's secrets,
    // then to the users' password hashes. Each method declines what it cannot judge.
    let chain = Chain::builder()
        .name("http")
        .audit(audit.clone())
        .rate_limiter(limiter)
        .link(Arc::new(jwt))
        .link(Arc::new(WalletAuthenticator::new(prepared.wallet.clone())))
        .link(Arc::new(PasswordAuthenticator::new(
            Users::new(prepared.wallet.clone()),
            hasher,
        )))
        .build();
    let policy = Policy::new(vec![Rule::new("http", Target::Chain(Arc::new(chain)))])
        .with_audit(audit.clone());
    let layer = AuthLayer::new(Arc::new(policy)).realm("demo").audit(audit);
    let jwks = json!({"keys": [issuer.jwk.clone()]});
    Ok(Router::new()
        .route("/whoami", get(whoami))
        .route("/admin", get(admin))
        .layer(layer)
        .route(
            "/.well-known/jwks.json",
            get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        ))
}
