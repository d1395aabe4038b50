//! The HTTP gateway: the pg-gateway's data directory (wallet, demo user, audit log) behind
//! an axum API, with a local ES256 token issuer so a fresh machine can show `curl` with a
//! bearer token working.

use auth_axum::{AuthLayer, AuthRejection, Authenticated};
use axum::Router;
use axum::routing::get;
use serde_json::json;

use crate::api::ApiAuth;
use crate::gateway::GatewayError;

/// An HTTP API bound to its address, with a fresh demo token: what both gateways start.
#[derive(Debug)]
pub struct Started {
    /// The bound listener, with the shared admission and TLS.
    pub listener: auth_listen::Listener,
    /// The routes.
    pub app: Router,
    /// The address actually bound.
    pub addr: std::net::SocketAddr,
    /// A one-hour token for `demo` with scope `read`.
    pub token: String,
    /// TLS, unless `api_tls = false`.
    pub tls: Option<crate::api::ApiTls>,
    /// Whether passwords and tokens are refused here: plaintext without the engine's
    /// cleartext opt-in (`danger_allow_cleartext_without_tls`).
    pub secrets_refused: bool,
}

/// Binds `listen` (`flag` names the option that sets it, for the error) and builds the
/// API over `auth`.
pub async fn start(auth: &ApiAuth, listen: &str, flag: &str) -> Result<Started, GatewayError> {
    let tls = auth.tls.as_ref().map(|t| t.http.clone());
    let listener = crate::api::bind(auth, listen, flag, auth_core::Protocol::Http, tls).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| GatewayError(e.to_string()))?;
    let app = app(auth);
    let token = auth.demo_token()?;
    Ok(Started {
        listener,
        app,
        addr,
        token,
        tls: auth.tls.clone(),
        secrets_refused: auth.refuses_secrets(),
    })
}

impl Started {
    /// Writes the token and the curl lines that work against this API as printed
    /// (`https` with `--cacert` under TLS); `password` is the demo user's, when known.
    pub fn write_curl_lines(
        &self,
        out: &mut impl std::io::Write,
        password: Option<&str>,
    ) -> std::io::Result<()> {
        let (token, addr) = (&self.token, self.addr);
        let password = password.unwrap_or("PASSWORD");
        let (curl, scheme) = match &self.tls {
            Some(tls) => (
                format!(
                    "curl --cacert {}",
                    crate::gateway::shell_word(&tls.ca_file.display().to_string())
                ),
                "https",
            ),
            None => ("curl".to_owned(), "http"),
        };
        writeln!(out, "token (scope read, 1 hour): {token}")?;
        if self.secrets_refused {
            // Lines that would be refused are not printed: only what works as printed.
            writeln!(out, "{}", crate::api::SECRETS_REFUSED)?;
            return writeln!(
                out,
                "keys:     {curl} {scheme}://{addr}/.well-known/jwks.json"
            );
        }
        writeln!(
            out,
            "bearer:   {curl} -H 'Authorization: Bearer {token}' {scheme}://{addr}/whoami"
        )?;
        writeln!(
            out,
            "basic:    {curl} -u 'demo:{password}' {scheme}://{addr}/whoami"
        )?;
        writeln!(
            out,
            "forbidden (needs scope admin): {curl} -H 'Authorization: Bearer {token}' {scheme}://{addr}/admin"
        )?;
        writeln!(
            out,
            "keys:     {curl} {scheme}://{addr}/.well-known/jwks.json"
        )
    }
}

/// Serves the API until `shutdown` completes, over TLS unless `api_tls = false`, through
/// the shared admission, with peer addresses (and under TLS client certificates) for the
/// policy.
pub async fn serve(
    started: Started,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    auth_axum::serve_until(started.listener, started.app, shutdown).await
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
pub fn app(auth: &ApiAuth) -> Router {
    let layer = AuthLayer::new(auth.engine.clone()).realm("demo");
    let jwks = json!({"keys": [auth.issuer.jwk.clone()]});
    Router::new()
        .route("/whoami", get(whoami))
        .route("/admin", get(admin))
        .layer(layer)
        .route(
            "/.well-known/jwks.json",
            get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        )
}
