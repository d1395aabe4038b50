//! tonic's own TLS reaches the policy (feature `tls`): a `hostssl`-only policy admits a
//! TLS client and refuses the same key over plaintext, with tonic's client on both.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use auth_core::audit::AuditEventKind;
use auth_core::policy::{ConnectionType, Rule, Target};
use auth_core::secrecy::{ExposeSecret, SecretString};
use auth_core::{ApiKeyAuthenticator, ApiKeyGrant, Chain, MemoryAuditSink, MemoryStore, Policy};
use auth_tonic::AuthLayer;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

async fn serve(layer: AuthLayer, tls: Option<ServerTlsConfig>) -> String {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).unwrap();
    }
    tokio::spawn(
        builder
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    format!("{port}")
}

async fn check(endpoint: Endpoint, key: &str) -> Result<(), tonic::Status> {
    let mut client = HealthClient::new(endpoint.connect().await.unwrap());
    let mut request = tonic::Request::new(HealthCheckRequest::default());
    request
        .metadata_mut()
        .insert("x-api-key", MetadataValue::try_from(key).unwrap());
    client.check(request).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostssl_rules_see_tonics_tls() {
    // Several crypto providers are in the workspace build; say which one.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let store = Arc::new(MemoryStore::new());
    let key = ApiKeyAuthenticator::register(
        store.as_ref(),
        "svc",
        &SecretString::from("0123456789abcdef0123456789abcdef-svc"),
        ApiKeyGrant {
            principal: "svc".into(),
            roles: vec![],
            scopes: vec![],
        },
    )
    .await
    .unwrap();
    let audit = Arc::new(MemoryAuditSink::default());
    let chain = Chain::builder()
        .link(Arc::new(ApiKeyAuthenticator::new(store)))
        .build();
    let policy = Policy::new(vec![
        Rule::new("tls-only", Target::Chain(Arc::new(chain)))
            .with_connection(ConnectionType::HostSsl),
        Rule::new("plaintext", Target::Reject),
    ])
    .with_audit(audit.clone());
    let layer = AuthLayer::new(Arc::new(policy));

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let tls_port = serve(
        layer.clone(),
        Some(ServerTlsConfig::new().identity(Identity::from_pem(&cert_pem, &key_pem))),
    )
    .await;
    let plain_port = serve(layer, None).await;

    let over_tls = Endpoint::from_shared(format!("https://localhost:{tls_port}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&cert_pem))
                .domain_name("localhost"),
        )
        .unwrap();
    check(over_tls, key.expose_secret()).await.unwrap();

    let plaintext = Endpoint::from_shared(format!("http://127.0.0.1:{plain_port}")).unwrap();
    let refused = check(plaintext, key.expose_secret()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let rejects = audit.of_kind(AuditEventKind::PolicyReject);
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert!(
        rejects[0]["detail"].as_str().unwrap().contains("plaintext"),
        "{rejects:?}"
    );
}
