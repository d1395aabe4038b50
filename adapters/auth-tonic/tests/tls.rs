//! tonic's own TLS reaches the policy (feature `tls`): a `hostssl`-only policy admits a
//! TLS client and refuses the same key over plaintext, and a client certificate reaches
//! the authenticators, with tonic's client throughout.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::SystemTime;

use auth_core::audit::AuditEventKind;
use auth_core::policy::{ConnectionType, Rule, Target};
use auth_core::secrecy::{ExposeSecret, SecretString};
use auth_core::{
    ApiKeyAuthenticator, ApiKeyGrant, Attempt, Authenticator, Chain, Credential, CredentialError,
    CredentialKind, Engine, MemoryAuditSink, MemoryStore, Outcome, Policy, StandardSession,
};
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
    if !key.is_empty() {
        request
            .metadata_mut()
            .insert("x-api-key", MetadataValue::try_from(key).unwrap());
    }
    client.check(request).await.map(|_| ())
}

/// Grants the holder of one client certificate, whatever else the request carries.
#[derive(Debug)]
struct ClientCertificate(Vec<u8>);

#[async_trait::async_trait]
impl Authenticator for ClientCertificate {
    fn name(&self) -> &str {
        "client-certificate"
    }

    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Absent]
    }

    fn supports(&self, _: &Credential) -> bool {
        true
    }

    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let presented = attempt
            .connection
            .tls
            .as_ref()
            .and_then(|t| t.client_certificates.first());
        if presented == Some(&self.0) {
            Outcome::Authenticated(
                StandardSession::new("client", "client-certificate", SystemTime::now()).boxed(),
            )
        } else {
            Outcome::rejected(CredentialError::Invalid, "no or another client certificate")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_reach_the_authenticators() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let signed = |name: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert, key)
    };
    let (server_cert, server_key) = signed("localhost");
    let (client_cert, client_key) = signed("client");
    let chain = Chain::builder()
        .link(Arc::new(ClientCertificate(client_cert.der().to_vec())))
        .build();
    let engine = Engine::builder(Policy::single(chain).unwrap()).build();
    let port = serve(
        AuthLayer::new(Arc::new(engine)),
        Some(
            ServerTlsConfig::new()
                .identity(Identity::from_pem(
                    server_cert.pem(),
                    server_key.serialize_pem(),
                ))
                .client_ca_root(Certificate::from_pem(ca.pem()))
                .client_auth_optional(true),
        ),
    )
    .await;
    let endpoint = |identity: Option<Identity>| {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca.pem()))
            .domain_name("localhost");
        if let Some(identity) = identity {
            tls = tls.identity(identity);
        }
        Endpoint::from_shared(format!("https://localhost:{port}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
    };
    let with_certificate = Identity::from_pem(client_cert.pem(), client_key.serialize_pem());
    check(endpoint(Some(with_certificate)), "").await.unwrap();
    let without = check(endpoint(None), "").await.unwrap_err();
    assert_eq!(without.code(), Code::Unauthenticated, "{without:?}");
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
    .unwrap();
    let engine = Engine::builder(policy).audit(audit.clone()).build();
    let layer = AuthLayer::new(Arc::new(engine));

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
