//! What the HTTP and gRPC gateways share: a local token issuer whose key lives in the
//! data directory, TLS, and the gateway's one engine (the rules of `gateway.toml`, as on
//! pgwire), auditing to its audit log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::{Engine, Protocol};
use auth_listen::{Listener, TlsSetup};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::json;

use crate::gateway::{GatewayError, Prepared, write_private};

/// What the gateways print instead of credential lines on a plaintext API that refuses
/// them.
pub const SECRETS_REFUSED: &str = "plain HTTP: passwords and tokens are refused here \
    (danger_allow_cleartext_without_tls = false); set it to true only behind a \
    TLS-terminating proxy on this machine, or serve TLS (api_tls = true)";

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

/// TLS for the APIs: the data directory's certificate with each API's ALPN, and the
/// certificate file clients verify the server with (the printed `--cacert`).
#[derive(Clone)]
pub struct ApiTls {
    /// For the HTTP API (`h2`, `http/1.1`).
    pub http: TlsSetup,
    /// For the gRPC API (`h2`).
    pub grpc: TlsSetup,
    /// The data directory's `server.crt`.
    pub ca_file: PathBuf,
}

impl std::fmt::Debug for ApiTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTls")
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl ApiTls {
    /// TLS with `prepared`'s certificate (and its client CAs, asking every client for a
    /// certificate the policy judges), unless `api_tls = false`.
    pub fn new(prepared: &Prepared) -> Option<Self> {
        prepared.config.gateway.api_tls.then(|| Self {
            http: prepared.tls.clone().with_alpn(&[b"h2", b"http/1.1"]),
            grpc: prepared.tls.clone().with_alpn(&[b"h2"]),
            ca_file: prepared.data_dir.join("server.crt"),
        })
    }
}

/// The engine the API gateways authenticate with.
#[derive(Clone)]
pub struct ApiAuth {
    /// The gateway's one engine: the rules of `gateway.toml`, as on pgwire.
    pub engine: Arc<Engine>,
    /// The local issuer, to print tokens and serve its public key.
    pub issuer: Arc<LocalIssuer>,
    /// TLS, unless `api_tls = false`.
    pub tls: Option<ApiTls>,
    /// What the APIs listen with, shared with every front door.
    pub doors: crate::gateway::Doors,
    /// The gateway's readiness, which the gRPC API serves as `grpc.health.v1`.
    pub health: Option<Arc<crate::admin::Health>>,
}

impl std::fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiAuth")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl ApiAuth {
    /// The APIs of `prepared`, authenticating with `engine`: the one
    /// [`gateway::engine`](crate::gateway::engine) builds from the rules, shared with pgwire,
    /// so a rule holds on every door, listening through `doors` (shared with pgwire).
    pub fn new(prepared: &Prepared, engine: Arc<Engine>, doors: crate::gateway::Doors) -> Self {
        Self {
            engine,
            issuer: prepared.issuer.clone(),
            tls: ApiTls::new(prepared),
            doors,
            health: None,
        }
    }

    /// The same, serving `health` as gRPC's `grpc.health.v1`.
    #[must_use]
    pub fn with_health(mut self, health: Arc<crate::admin::Health>) -> Self {
        self.health = Some(health);
        self
    }

    /// Whether the APIs refuse passwords and tokens: plaintext (`api_tls = false`) without
    /// `danger_allow_cleartext_without_tls`.
    pub fn refuses_secrets(&self) -> bool {
        self.tls.is_none() && !self.engine.allows_cleartext_without_tls()
    }

    /// A one-hour token for `demo` with scope `read`, the one the gateways print.
    pub fn demo_token(&self) -> Result<String, GatewayError> {
        self.issuer.issue("demo", "read", Duration::from_secs(3600))
    }
}

/// Binds `listen`, an address like `127.0.0.1:8080`, for `protocol`'s API with the
/// shared admission, the authentication timeout and `tls`; `flag` names the option that
/// sets the address, for the error.
pub async fn bind(
    auth: &ApiAuth,
    listen: &str,
    flag: &str,
    protocol: Protocol,
    tls: Option<TlsSetup>,
) -> Result<Listener, GatewayError> {
    let addr: std::net::SocketAddr = listen.parse().map_err(|_| {
        GatewayError(format!(
            "`{listen}` is not an address like 127.0.0.1:8080; pass {flag}"
        ))
    })?;
    auth.doors
        .listener(addr, protocol, tls)
        .await
        .map_err(|e| GatewayError(format!("cannot listen on {addr}: {e}; pass {flag}")))
}

/// Where the HTTP API listens unless told otherwise, and the variable that tells it.
pub const HTTP_LISTEN: (&str, &str) = ("HTTP_GATEWAY_LISTEN", "127.0.0.1:8080");
/// Where the gRPC API listens unless told otherwise, and the variable that tells it.
pub const GRPC_LISTEN: (&str, &str) = ("GRPC_GATEWAY_LISTEN", "127.0.0.1:50051");

/// The API a standalone gateway binary serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standalone {
    /// `http-gateway`: the axum API.
    Http,
    /// `grpc-gateway`: the tonic service.
    Grpc,
}

impl Standalone {
    fn name(self) -> &'static str {
        match self {
            Self::Http => "http-gateway",
            Self::Grpc => "grpc-gateway",
        }
    }

    /// All of the binary: the data directory from `--data-dir`, the address from
    /// `--listen` (or the environment, or the default port), the banner and the lines
    /// that work as printed, then serving until Ctrl-C.
    pub async fn run(self) -> std::process::ExitCode {
        use clap::Parser;
        use std::io::Write;
        let (common, listen) = match self {
            Self::Http => {
                let a = crate::cli::HttpGatewayArgs::parse();
                (a.common, a.listen)
            }
            Self::Grpc => {
                let a = crate::cli::GrpcGatewayArgs::parse();
                (a.common, a.listen)
            }
        };
        if common.check_config {
            return crate::cli::check_config(
                &common.data_dir,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            );
        }
        common.init_logging();
        match self.serve(&common, &listen).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "{}: {e}", self.name());
                std::process::ExitCode::FAILURE
            }
        }
    }

    async fn serve(
        self,
        common: &crate::cli::CommonArgs,
        listen: &str,
    ) -> Result<(), GatewayError> {
        use secrecy::ExposeSecret;
        use std::io::Write;
        // Before the first attempt, so the engine's metric handles are the recorder's.
        let metrics = crate::admin::install_metrics();
        let prepared = crate::gateway::prepare(&common.data_dir).await?;
        let engine = crate::gateway::engine(&prepared)?;
        crate::gateway::serve_signals(&prepared, &engine);
        let doors = crate::gateway::Doors::new(&prepared, &engine);
        let password = prepared.demo_password.as_ref().map(|p| p.expose_secret());
        let mut out = std::io::stdout();
        let _ = crate::gateway::write_banner(&mut out, &prepared);
        let health = crate::admin::start(&common.admin_listen, &prepared, metrics, &mut out).await;
        let auth = ApiAuth::new(&prepared, engine, doors).with_health(health);
        let stop = crate::gateway::shutdown_requested();
        match self {
            Self::Http => {
                let started = crate::http::start(&auth, listen, "--listen").await?;
                let _ = started.write_curl_lines(&mut out, password);
                let _ = writeln!(out, "listening on {}", started.addr);
                let _ = out.flush();
                crate::http::serve(started, stop)
                    .await
                    .map_err(|e| GatewayError(e.to_string()))
            }
            Self::Grpc => {
                let started = crate::grpc::start(&auth, listen, "--listen").await?;
                let _ = writeln!(out, "token (scope read, 1 hour): {}", started.token);
                let _ = started.write_grpcurl_lines(&mut out, password);
                let _ = writeln!(out, "listening on {}", started.addr);
                let _ = out.flush();
                crate::grpc::serve(started, stop).await
            }
        }
    }
}
