//! The gRPC mapping end to end: a tonic server with the layer in front of a generated
//! service (grpc.health.v1, whose handler reads the identity), and tonic's generated
//! client over TCP sending real metadata.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use auth_core::audit::AuditEventKind;

use auth_core::secrecy::{ExposeSecret, SecretString};
use auth_core::{
    ApiKeyAuthenticator, ApiKeyGrant, Chain, Engine, MemoryAuditSink, MemoryStore, Policy,
    ScopeRules,
};
use auth_tonic::{AuthLayer, RequestExt};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// Answers SERVING when the caller is the user named in `service`, NOT_SERVING for
/// another user, SERVICE_UNKNOWN for an anonymous caller; `service = "admin"` needs the
/// `demo:admin` scope.
#[derive(Default)]
struct WhoProbe {
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl Health for WhoProbe {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let Some(auth) = request.maybe_authenticated() else {
            return Ok(reply(ServingStatus::ServiceUnknown));
        };
        let service = &request.get_ref().service;
        if service == "admin" {
            auth.require_scope("demo:admin")?;
            return Ok(reply(ServingStatus::Serving));
        }
        Ok(reply(if auth.user() == service {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }))
    }

    type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

fn reply(status: ServingStatus) -> Response<HealthCheckResponse> {
    Response::new(HealthCheckResponse {
        status: status as i32,
    })
}

struct Server {
    url: String,
    calls: Arc<AtomicUsize>,
    audit: Arc<MemoryAuditSink>,
    reader_key: SecretString,
    admin_key: SecretString,
}

async fn start(anonymous: bool) -> Server {
    let store = Arc::new(MemoryStore::new());
    let secret = SecretString::from("0123456789abcdef0123456789abcdef-reader");
    let grant = |principal: &str, scopes: &[&str]| ApiKeyGrant {
        principal: principal.into(),
        roles: vec![],
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
    };
    let reader_key = ApiKeyAuthenticator::register(
        store.as_ref(),
        "reader",
        &secret,
        grant("reporting", &["demo:read"]),
    )
    .await
    .unwrap();
    let admin_key = ApiKeyAuthenticator::register(
        store.as_ref(),
        "ops",
        &SecretString::from("0123456789abcdef0123456789abcdef-ops"),
        // `demo:*` grants `demo:admin` under the built-in scope rules.
        grant("operator", &["demo:*"]),
    )
    .await
    .unwrap();
    let audit = Arc::new(MemoryAuditSink::default());
    let chain = Chain::builder()
        .link(Arc::new(ApiKeyAuthenticator::new(store)))
        .build();
    // Plain HTTP/2 on loopback: the status mapping is the subject here, not the transport.
    let engine = Engine::builder(Policy::single(chain).unwrap())
        .dangerous()
        .allow_cleartext_without_tls()
        .audit(audit.clone())
        .build();
    let mut layer = AuthLayer::new(Arc::new(engine)).scope_rules(ScopeRules::new());
    if anonymous {
        layer = layer.allow_anonymous();
    }
    let probe = WhoProbe::default();
    let calls = probe.calls.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(HealthServer::new(probe))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Server {
        url,
        calls,
        audit,
        reader_key,
        admin_key,
    }
}

/// Calls Check for `service` with `metadata` entries.
async fn check(
    server: &Server,
    service: &str,
    metadata: &[(&'static str, &str)],
) -> Result<ServingStatus, Status> {
    let channel = tonic::transport::Endpoint::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let mut request = Request::new(HealthCheckRequest {
        service: service.into(),
    });
    for (key, value) in metadata {
        request
            .metadata_mut()
            .append(*key, MetadataValue::try_from(*value).unwrap());
    }
    let reply = client.check(request).await?;
    Ok(reply.into_inner().status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_identity_and_scopes_over_a_real_connection() {
    let server = start(false).await;
    let reader = server.reader_key.expose_secret();
    let admin = server.admin_key.expose_secret();

    // No credential, a wrong key, an unknown scheme: UNAUTHENTICATED, generic, and the
    // handler never runs.
    for metadata in [
        &[][..],
        &[("x-api-key", "reader.wrong-secret-wrong-secret-wrong-secret")],
        &[("authorization", "Digest abc")],
    ] {
        let status = check(&server, "reporting", metadata).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{metadata:?}");
        let generic = [
            "authentication is required",
            "the credentials were not accepted",
        ];
        assert!(generic.contains(&status.message()), "{status:?}");
    }
    // Unreadable metadata: UNAUTHENTICATED too (auth_tonic::grpc_code), with its own generic
    // message, audited by the layer.
    let status = check(
        &server,
        "reporting",
        &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the credentials could not be read");
    assert_eq!(server.calls.load(Ordering::SeqCst), 0);

    // A valid key: the handler sees who called.
    assert_eq!(
        check(&server, "reporting", &[("x-api-key", reader)])
            .await
            .unwrap(),
        ServingStatus::Serving
    );
    assert_eq!(
        check(&server, "someone-else", &[("x-api-key", reader)])
            .await
            .unwrap(),
        ServingStatus::NotServing
    );
    // Authenticated without the scope: PERMISSION_DENIED; `demo:*` grants it.
    let denied = check(&server, "admin", &[("x-api-key", reader)])
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(
        check(&server, "admin", &[("x-api-key", admin)])
            .await
            .unwrap(),
        ServingStatus::Serving
    );

    // The chain audited the client's real address and the mapped principal.
    let succeeded = server.audit.of_kind(AuditEventKind::AttemptSucceeded);
    assert_eq!(succeeded.len(), 4, "{succeeded:?}");
    assert_eq!(succeeded[0]["protocol"], "grpc");
    assert_eq!(succeeded[0]["username"], "reporting");
    assert!(
        succeeded[0]["source"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{succeeded:?}"
    );
    let failed = server.audit.of_kind(AuditEventKind::AttemptFailed);
    assert!(
        failed
            .iter()
            .any(|e| e["error"] == "malformed"
                && e["detail"] == "more than one Authorization header"),
        "{failed:?}"
    );
    for event in server.audit.events() {
        assert!(!event.to_string().contains("wrong-secret"), "{event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_calls_pass_without_identity_when_allowed() {
    let server = start(true).await;
    assert_eq!(
        check(&server, "reporting", &[]).await.unwrap(),
        ServingStatus::ServiceUnknown
    );
    // A credential that is present must still be valid.
    let status = check(&server, "reporting", &[("x-api-key", "reader.nope")])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        check(
            &server,
            "reporting",
            &[("x-api-key", server.reader_key.expose_secret())]
        )
        .await
        .unwrap(),
        ServingStatus::Serving
    );
}
