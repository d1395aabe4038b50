//! The `bearer_mtls` example run as its documentation says, against a tonic client: a
//! call needs a client certificate of the trusted CA and a bearer token of the issuer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_tests::examples::start_example;
use auth_tests::jwt::Es256Issuer;
use auth_tests::token_endpoint::{Answer, TokenEndpoint};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const ISS: &str = "https://issuer.test";

async fn call(
    addr: &str,
    ca: &str,
    identity: Option<Identity>,
    token: Option<&str>,
) -> Result<i32, tonic::Code> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    let channel = Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|_| tonic::Code::Unavailable)?;
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    HealthClient::new(channel)
        .check(request)
        .await
        .map(|r| r.into_inner().status)
        .map_err(|s| s.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_mtls_example_wants_a_client_certificate_and_a_token() {
    let issuer = Es256Issuer::new();
    let jwks = serde_json::json!({"keys": [issuer.jwk]}).to_string();
    let endpoint = TokenEndpoint::start(Answer::new(200, "application/json", &jwks))
        .unwrap_or_else(|e| panic!("{e}"));
    let tmp = tempfile::tempdir().unwrap();
    let ca = auth_tests::pki::run_ca().unwrap();
    let ca_file = ca.write_ca("ca.pem").unwrap();
    let server = ca.server_in(tmp.path(), "server").unwrap();
    let alice = ca.client("alice", "alice", 7).unwrap();
    let (_process, addr) = start_example(
        "bearer_mtls",
        &[
            "--listen",
            "127.0.0.1:0",
            "--cert",
            server.cert.to_str().unwrap(),
            "--key",
            server.key.to_str().unwrap(),
            "--client-ca",
            ca_file.to_str().unwrap(),
            "--issuer",
            ISS,
            "--jwks-url",
            &endpoint.token_endpoint(),
            "--audience",
            "api",
            "--jwks-ca",
            ca_file.to_str().unwrap(),
        ],
        tmp.path(),
        "listening on ",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ca_pem = ca.pem();
    let identity = || {
        Some(Identity::from_pem(
            std::fs::read(&alice.cert).unwrap(),
            std::fs::read(&alice.key).unwrap(),
        ))
    };
    let token = issuer.token(ISS);
    // SERVING is 1.
    assert_eq!(
        call(&addr, &ca_pem, identity(), Some(&token)).await,
        Ok(1),
        "certificate and token"
    );
    assert_eq!(
        call(&addr, &ca_pem, None, Some(&token)).await,
        Err(tonic::Code::Unauthenticated),
        "a token without a client certificate"
    );
    assert_eq!(
        call(&addr, &ca_pem, identity(), None).await,
        Err(tonic::Code::Unauthenticated),
        "a client certificate without a token"
    );
    let stranger = Es256Issuer::new().token(ISS);
    assert_eq!(
        call(&addr, &ca_pem, identity(), Some(&stranger)).await,
        Err(tonic::Code::Unauthenticated),
        "a token signed by another key"
    );
}
