//! The gRPC gateway: the pg-gateway's users behind a tonic service (`auth.demo.v1.Demo`),
//! authenticated by auth-tonic's layer with the same policy as the HTTP API, and server
//! reflection so `grpcurl` needs no proto file.

use std::net::SocketAddr;

use auth_tonic::{AuthLayer, RequestExt};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tonic::{Request, Response, Status};
use tower::Layer;

use crate::api::ApiAuth;
use crate::gateway::GatewayError;

/// The generated messages, client and server of `proto/demo.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("auth.demo.v1");

    /// The encoded file descriptor set, for the reflection service.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/demo_descriptor.bin"));
}

/// The fully qualified service name clients call.
pub const SERVICE: &str = "auth.demo.v1.Demo";

/// The demo service: who the caller is, and an operation that needs scope `admin`.
#[derive(Debug, Default)]
pub struct DemoService;

#[tonic::async_trait]
impl pb::demo_server::Demo for DemoService {
    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::Identity>, Status> {
        let auth = request.authenticated()?;
        Ok(Response::new(pb::Identity {
            principal: auth.principal().to_owned(),
            user: auth.user().to_owned(),
            method: auth.method().to_owned(),
            scopes: auth.scopes().to_vec(),
            roles: auth.roles().iter().map(|r| r.as_str().to_owned()).collect(),
        }))
    }

    async fn admin(
        &self,
        request: Request<pb::AdminRequest>,
    ) -> Result<Response<pb::AdminReply>, Status> {
        let auth = request.authenticated()?;
        auth.require_scope("admin")?;
        Ok(Response::new(pb::AdminReply {
            message: "admin area".into(),
        }))
    }
}

/// A gRPC server bound to its address, with a fresh demo token.
#[derive(Debug)]
pub struct Started {
    /// The bound listener, with the shared admission and TLS.
    pub listener: auth_listen::Listener,
    /// The auth layer in front of the Demo service (reflection stays open: it is how
    /// grpcurl learns the API).
    pub layer: AuthLayer,
    /// The address actually bound.
    pub addr: SocketAddr,
    /// A one-hour token for `demo` with scope `read`.
    pub token: String,
    /// TLS, unless `api_tls = false`.
    pub tls: Option<crate::api::ApiTls>,
    /// Whether passwords and tokens are refused here: plaintext without the engine's
    /// cleartext opt-in (`danger_allow_cleartext_without_tls`).
    pub secrets_refused: bool,
    /// The readiness `grpc.health.v1` reports, when the gateway has one.
    pub health: Option<std::sync::Arc<crate::admin::Health>>,
}

/// Binds `listen` (`flag` names the option that sets it, for the error) and prepares the
/// layer over `auth`.
pub async fn start(auth: &ApiAuth, listen: &str, flag: &str) -> Result<Started, GatewayError> {
    let tls = auth.tls.as_ref().map(|t| t.grpc.clone());
    let listener = crate::api::bind(auth, listen, flag, auth_core::Protocol::Grpc, tls).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| GatewayError(e.to_string()))?;
    let layer = AuthLayer::new(auth.engine.clone());
    Ok(Started {
        listener,
        layer,
        addr,
        token: auth.demo_token()?,
        tls: auth.tls.clone(),
        secrets_refused: auth.refuses_secrets(),
        health: auth.health.clone(),
    })
}

impl Started {
    /// Writes the grpcurl lines that work against this server as printed (`-cacert`
    /// under TLS, `-plaintext` without); `password` is the demo user's, when known.
    pub fn write_grpcurl_lines(
        &self,
        out: &mut impl std::io::Write,
        password: Option<&str>,
    ) -> std::io::Result<()> {
        let addr = self.addr;
        let basic = B64.encode(format!("demo:{}", password.unwrap_or("PASSWORD")));
        let security = match &self.tls {
            Some(tls) => format!(
                "-cacert {}",
                crate::gateway::shell_word(&tls.ca_file.display().to_string())
            ),
            None => "-plaintext".to_owned(),
        };
        let call = |header: &str, method: &str| {
            format!("grpcurl {security} -H '{header}' {addr} {SERVICE}/{method}")
        };
        if self.secrets_refused {
            writeln!(out, "grpc: {}", crate::api::SECRETS_REFUSED)?;
            return writeln!(out, "grpc list: grpcurl {security} {addr} list {SERVICE}");
        }
        let bearer = format!("authorization: Bearer {}", self.token);
        writeln!(out, "grpc bearer: {}", call(&bearer, "WhoAmI"))?;
        writeln!(
            out,
            "grpc basic: {}",
            call(&format!("authorization: Basic {basic}"), "WhoAmI")
        )?;
        writeln!(
            out,
            "grpc forbidden (needs scope admin): {}",
            call(&bearer, "Admin")
        )?;
        writeln!(out, "grpc list: grpcurl {security} {addr} list {SERVICE}")
    }
}

/// Serves the Demo service behind the layer, and reflection (v1 and v1alpha) open to
/// anyone, until `shutdown` completes.
pub async fn serve(
    started: Started,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let bad = |e: tonic_reflection::server::Error| GatewayError(format!("reflection: {e}"));
    let v1 = reflection().build_v1().map_err(bad)?;
    let v1alpha = reflection().build_v1alpha().map_err(bad)?;
    // The gateway's readiness, outside the auth layer as reflection is: a load balancer
    // asks it without credentials.
    let (reporter, health) = tonic_health::server::health_reporter();
    if let Some(state) = &started.health {
        let mut ready = state.subscribe();
        tokio::spawn(async move {
            loop {
                let status = if *ready.borrow_and_update() {
                    tonic_health::ServingStatus::Serving
                } else {
                    tonic_health::ServingStatus::NotServing
                };
                reporter.set_service_status("", status).await;
                reporter.set_service_status(SERVICE, status).await;
                if ready.changed().await.is_err() {
                    break;
                }
            }
        });
    } else {
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
    }
    let router = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(
            started
                .layer
                .layer(pb::demo_server::DemoServer::new(DemoService)),
        )
        .add_service(v1)
        .add_service(v1alpha);
    // The listener admits connections and does TLS; each call carries the connection's
    // facts (peer, client certificates), which auth-tonic hands to the policy.
    let served = router
        .serve_with_incoming_shutdown(auth_tonic::incoming(started.listener), shutdown)
        .await;
    served.map_err(|e| GatewayError(format!("gRPC server: {e}")))
}
