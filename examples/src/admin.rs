//! What an operator sees of a running gateway: the admin listener (`--admin-listen`,
//! default `127.0.0.1:9464`) serving `/metrics` (Prometheus text), `/livez` and
//! `/readyz`, and the readiness state the gRPC API's `grpc.health.v1` service reports.
//!
//! Readiness checks every dependency each `[health] interval` (5 s by default): the
//! wallet's store, the server certificate's remaining validity, the CRLs' next update,
//! the Kerberos keytab, each `[[oauth_issuer]]` (its keys fetched now) and the
//! `[oauth_password]` token endpoint. Every
//! dependency is in `/readyz`'s JSON body (up or not, what, since when) and in the
//! `auth_dependency_up{dependency}` gauge; only those `[health] required` names make
//! `/readyz` answer 503.

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use auth_core::CredentialStore;
use auth_oauth::JwtAuthenticator;
use auth_wallet::Wallet;
use futures::future::BoxFuture;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;

use crate::gateway::{GatewayError, HealthSettings, Prepared};

/// Where the admin listener listens unless told otherwise.
pub const ADMIN_LISTEN: &str = "127.0.0.1:9464";

/// `auth_dependency_up{dependency}`: 1 when the dependency's last check passed.
pub const DEPENDENCY_UP_METRIC: &str = "auth_dependency_up";

/// `auth_ready`: 1 when every required dependency is up (what `/readyz` answers).
pub const READY_METRIC: &str = "auth_ready";

/// Installs the process's Prometheus recorder, with the decision histograms' explicit
/// buckets (so they add up across instances), before any attempt is made; `None` when a
/// recorder is already installed.
pub fn install_metrics() -> Option<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(auth_core::metrics::DECISION_SECONDS.into()),
            auth_core::metrics::DECISION_BUCKETS,
        )
        .ok()?
        .install_recorder()
        .ok()?;
    // Histograms keep their samples until upkeep folds them in.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Some(handle)
}

type Probe = Box<dyn Fn() -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// One thing the gateway needs, and how to ask whether it works.
struct Dependency {
    name: String,
    required: bool,
    probe: Probe,
}

/// A dependency as the last check found it.
#[derive(Debug, Clone, Serialize)]
pub struct DependencyStatus {
    /// Its name (`wallet`, `crl client-ca.crl`, `oauth_issuer https://...`).
    pub name: String,
    /// Whether its failure makes the gateway not ready.
    pub required: bool,
    /// Whether the last check passed.
    pub up: bool,
    /// What the check found.
    pub detail: String,
    /// Since when it has been up, or down (RFC 3339).
    pub since: String,
}

/// The dependencies and what their checks found.
pub struct Health {
    dependencies: Vec<Dependency>,
    state: RwLock<Vec<DependencyStatus>>,
    ready: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Health {
    /// The dependencies of `prepared`'s configuration.
    pub fn of(prepared: &Prepared) -> Arc<Self> {
        let settings = &prepared.config.health;
        let mut dependencies = Vec::new();
        let mut add = |name: String, probe: Probe| {
            dependencies.push(Dependency {
                required: is_required(settings, &name),
                name,
                probe,
            });
        };
        let wallet = prepared.wallet.clone();
        add(
            "wallet".into(),
            Box::new(move || probe_wallet(wallet.clone())),
        );
        let (cert, _) = prepared.config.listen.tls_paths(&prepared.data_dir);
        add(
            "server_certificate".into(),
            Box::new(move || Box::pin(std::future::ready(certificate_validity(&cert)))),
        );
        if let Some(crl) = &prepared.config.client_certificates.crl_file {
            let path = prepared.data_dir.join(crl);
            add(
                format!("crl {crl}"),
                Box::new(move || Box::pin(std::future::ready(crl_freshness(&path)))),
            );
        }
        #[cfg(feature = "kerberos")]
        if let Some(keytab) = prepared.config.kerberos.keytab.clone()
            && prepared
                .config
                .rules
                .iter()
                .any(|r| r.has(crate::gateway::Method::Gss))
        {
            let keytab = prepared.data_dir.join(keytab);
            add(
                "keytab".into(),
                Box::new(move || Box::pin(std::future::ready(readable(&keytab)))),
            );
        }
        for (issuer, jwt) in &prepared.oauth.issuers {
            let (issuer, jwt) = (issuer.clone(), jwt.clone());
            add(
                format!("oauth_issuer {issuer}"),
                Box::new(move || probe_issuer(jwt.clone(), issuer.clone())),
            );
        }
        if let Some(limiter) = prepared.shared_limiter.clone() {
            add(
                "redis".into(),
                Box::new(move || {
                    let limiter = limiter.clone();
                    Box::pin(async move { limiter.probe().await })
                }),
            );
        }
        if let Some(grant) = prepared.oauth.password_grant.clone() {
            add(
                "oauth_password".into(),
                Box::new(move || {
                    let grant = grant.clone();
                    Box::pin(async move { grant.probe().await })
                }),
            );
        }
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let state = dependencies
            .iter()
            .map(|d| DependencyStatus {
                name: d.name.clone(),
                required: d.required,
                up: false,
                detail: "not checked yet".into(),
                since: now.clone(),
            })
            .collect();
        Arc::new(Self {
            dependencies,
            state: RwLock::new(state),
            ready: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Checks every dependency once, together, each within the interval.
    pub async fn check(&self, limit: Duration) {
        let results = futures::future::join_all(self.dependencies.iter().map(|d| async {
            match tokio::time::timeout(limit, (d.probe)()).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "no answer within {}",
                    humantime::format_duration(limit)
                )),
            }
        }))
        .await;
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let ready = {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            for (status, (dependency, result)) in
                state.iter_mut().zip(self.dependencies.iter().zip(results))
            {
                let up = result.is_ok();
                if up != status.up || status.detail == "not checked yet" {
                    status.since = now.clone();
                }
                status.up = up;
                status.detail = match result {
                    Ok(detail) | Err(detail) => detail,
                };
                metrics::gauge!(DEPENDENCY_UP_METRIC, "dependency" => dependency.name.clone())
                    .set(if up { 1.0 } else { 0.0 });
            }
            state.iter().all(|s| s.up || !s.required)
        };
        metrics::gauge!(READY_METRIC).set(if ready { 1.0 } else { 0.0 });
        self.ready.send_replace(ready);
    }

    /// Checks now and then every `interval`, for the life of the process.
    pub fn watch(self: &Arc<Self>, interval: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                me.check(interval).await;
            }
        });
    }

    /// Whether every required dependency is up.
    pub fn ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Readiness as it changes, for the gRPC health service.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// The dependencies as the last check found them.
    pub fn report(&self) -> Vec<DependencyStatus> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Whether `[health] required` names `dependency`, by name or by kind.
fn is_required(settings: &HealthSettings, dependency: &str) -> bool {
    let kind = dependency.split(' ').next().unwrap_or(dependency);
    settings
        .required
        .iter()
        .any(|r| r == dependency || r == kind)
}

fn probe_wallet(wallet: Arc<Wallet>) -> BoxFuture<'static, Result<String, String>> {
    Box::pin(async move {
        let key = auth_core::Key::new("health/probe").map_err(|e| e.to_string())?;
        wallet
            .get(&key)
            .await
            .map(|_| "the store answers".to_owned())
            .map_err(|e| format!("the store does not answer: {e}"))
    })
}

fn probe_issuer(
    jwt: Arc<JwtAuthenticator>,
    issuer: String,
) -> BoxFuture<'static, Result<String, String>> {
    Box::pin(async move {
        jwt.probe_issuer(&issuer)
            .await
            .map(|keys| format!("keys fetched now: {keys} usable"))
    })
}

fn pem_der(path: &std::path::Path, what: &str) -> Result<Vec<u8>, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text)
        .map_err(|e| format!("{}: not a PEM {what}: {e}", path.display()))?;
    Ok(pem.contents)
}

/// Down when the certificate has expired or cannot be read; says how long it has left.
fn certificate_validity(path: &std::path::Path) -> Result<String, String> {
    use x509_parser::prelude::FromDer;
    let der = pem_der(path, "certificate")?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let until = cert.validity().not_after.timestamp();
    let left = until - unix_now();
    if left <= 0 {
        return Err(format!("expired {} days ago", -left / 86_400));
    }
    Ok(format!("valid for {} more days", left / 86_400))
}

/// Down when the list's next update has passed (its CA's certificates are then refused).
fn crl_freshness(path: &std::path::Path) -> Result<String, String> {
    use x509_parser::prelude::FromDer;
    let der = pem_der(path, "CRL")?;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(next) = crl.next_update() else {
        return Ok("no next update named".into());
    };
    let left = next.timestamp() - unix_now();
    if left <= 0 {
        return Err(format!(
            "expired: its next update was due {} hours ago",
            -left / 3600
        ));
    }
    Ok(format!("next update due in {} hours", left / 3600))
}

#[cfg(feature = "kerberos")]
fn readable(path: &std::path::Path) -> Result<String, String> {
    std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))
        .and_then(|m| {
            (m.len() > 0)
                .then(|| "readable".to_owned())
                .ok_or_else(|| format!("{} is empty", path.display()))
        })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The admin listener's routes over `metrics` and `health`.
pub fn router(metrics: Option<PrometheusHandle>, health: Arc<Health>) -> axum::Router {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::get;
    let ready = health.clone();
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    match metrics {
                        // Folds in the histograms' latest samples, so a scrape sees them.
                        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], {
                            handle.run_upkeep();
                            handle.render()
                        })
                            .into_response(),
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                }
            }),
        )
        .route("/livez", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let health = ready.clone();
                async move {
                    // Read once: the status and the body must agree.
                    let ready = health.ready();
                    let status = if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    let body = serde_json::json!({
                        "ready": ready,
                        "dependencies": health.report(),
                    });
                    (status, axum::Json(body))
                }
            }),
        )
}

/// A bound admin listener.
#[derive(Debug)]
pub struct AdminStarted {
    listener: tokio::net::TcpListener,
    tls: Option<auth_listen::TlsSetup>,
    /// The address bound.
    pub addr: SocketAddr,
}

impl AdminStarted {
    /// The URL of `path` on it.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }
}

/// Binds `listen` (an address, or `off`): plain HTTP on loopback, TLS with the gateway's
/// certificate elsewhere (the metrics and readiness say what this instance runs).
pub async fn bind(listen: &str, prepared: &Prepared) -> Result<Option<AdminStarted>, GatewayError> {
    if listen == "off" {
        return Ok(None);
    }
    let addr: SocketAddr = listen.parse().map_err(|_| {
        GatewayError(format!(
            "`{listen}` is not an address like {ADMIN_LISTEN}; pass --admin-listen (or off)"
        ))
    })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| GatewayError(format!("cannot listen on {addr}: {e}; pass --admin-listen")))?;
    let addr = listener.local_addr().unwrap_or(addr);
    let tls = (!addr.ip().is_loopback()).then(|| prepared.tls.clone().with_alpn(&[b"http/1.1"]));
    Ok(Some(AdminStarted {
        listener,
        tls,
        addr,
    }))
}

/// Serves the admin routes on `started` for the life of the process.
pub fn serve(started: AdminStarted, router: axum::Router) {
    tokio::spawn(async move {
        let AdminStarted { listener, tls, .. } = started;
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (router, tls) = (router.clone(), tls.clone());
            tokio::spawn(async move {
                let service = hyper_util::service::TowerToHyperService::new(router);
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                let _ = match tls {
                    Some(tls) => match tls.handshake(tcp).await {
                        Ok((stream, _)) => {
                            builder
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await
                        }
                        Err(_) => return,
                    },
                    None => {
                        builder
                            .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                            .await
                    }
                };
            });
        }
    });
}

/// The admin listener's lines for the banner, each a command that works as printed
/// (`curl -k` off loopback: the certificate is the gateway's own).
pub fn write_admin_lines(
    out: &mut impl std::io::Write,
    started: &AdminStarted,
) -> std::io::Result<()> {
    let curl = match &started.tls {
        Some(_) => "curl -k",
        None => "curl",
    };
    writeln!(out, "metrics:  {curl} {}", started.url("/metrics"))?;
    writeln!(out, "ready:    {curl} {}", started.url("/readyz"))
}

/// Everything above for a gateway binary: the dependencies of `prepared` checked every
/// `[health] interval`, and the admin listener on `listen` (`off`: none) with its banner
/// line; a listener that cannot start is reported and the gateway runs on without it.
/// The health, for the gRPC API's health service.
pub async fn start(
    listen: &str,
    prepared: &Prepared,
    metrics: Option<PrometheusHandle>,
    out: &mut impl std::io::Write,
) -> Arc<Health> {
    let health = Health::of(prepared);
    health.watch(prepared.config.health.interval);
    match bind(listen, prepared).await {
        Ok(Some(started)) => {
            let _ = write_admin_lines(out, &started);
            serve(started, router(metrics, health.clone()));
        }
        Ok(None) => {}
        Err(e) => {
            let _ = writeln!(out, "admin not started: {e}");
        }
    }
    health
}
