//! The grpc-gateway end to end: its printed grpcurl lines work as printed (run by grpcurl,
//! or by the grpcio stand-in with the same flags), and tonic's generated client gets the
//! statuses a demanding client expects, with the audit log recording it all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use auth_examples::grpc::pb::demo_client::DemoClient;
use auth_examples::grpc::pb::{AdminRequest, WhoAmIRequest};
use auth_tests::gateway::{printed_line, run_printed_grpcurl};
use auth_tests::{ServiceProcess, free_port};
use base64::Engine;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

struct GrpcGateway {
    _dir: tempfile::TempDir,
    audit: std::path::PathBuf,
    /// The certificate the gateway serves TLS with.
    ca: std::path::PathBuf,
    port: u16,
    output: String,
    _process: ServiceProcess,
}

fn start() -> GrpcGateway {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_grpc-gateway"));
    cmd.arg("--data-dir")
        .arg(dir.path())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"));
    let process = ServiceProcess::spawn("grpc-gateway", &mut cmd, "listening on").unwrap();
    GrpcGateway {
        audit: dir.path().join("audit.jsonl"),
        ca: dir.path().join("server.crt"),
        _dir: dir,
        port,
        output: process.output(),
        _process: process,
    }
}

impl GrpcGateway {
    fn printed(&self, label: &str) -> String {
        printed_line(&self.output, label)
            .unwrap_or_else(|| panic!("no `{label}` line in:\n{}", self.output))
    }

    fn audit(&self) -> String {
        auth_tests::gateway::flush_audit(&self._process, &self.audit);
        std::fs::read_to_string(&self.audit).unwrap()
    }
}

#[test]
fn printed_grpcurl_lines_work_as_printed() {
    let gw = start();
    let json = |line: &str| {
        let run = run_printed_grpcurl(line).unwrap();
        assert_eq!(run.code, Some(0), "{line}: {run:?}");
        serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap()
    };
    let who = json(&gw.printed("grpc bearer:"));
    assert_eq!(
        (who["user"].as_str(), who["method"].as_str()),
        (Some("demo"), Some("oauth")),
        "{who}"
    );
    assert_eq!(who["scopes"], serde_json::json!(["read"]));
    let who = json(&gw.printed("grpc basic:"));
    assert_eq!(who["user"], "demo");
    assert_eq!(who["method"], "password");

    // Authenticated without the scope: PERMISSION_DENIED (grpcurl exits 64 + 7).
    let forbidden =
        run_printed_grpcurl(&gw.printed("grpc forbidden (needs scope admin):")).unwrap();
    assert_eq!(forbidden.code, Some(71), "{forbidden:?}");
    assert!(
        forbidden.stderr.contains("PermissionDenied"),
        "{forbidden:?}"
    );

    // Reflection answers without a credential.
    let list = run_printed_grpcurl(&gw.printed("grpc list:")).unwrap();
    assert_eq!(list.code, Some(0), "{list:?}");
    assert!(list.stdout.contains("auth.demo.v1.Demo.WhoAmI"), "{list:?}");

    // The same call without a credential, and with a wrong password: UNAUTHENTICATED
    // (64 + 16), with a generic message.
    let addr = format!("127.0.0.1:{}", gw.port);
    let ca = gw.ca.display();
    let anonymous = run_printed_grpcurl(&format!(
        "grpcurl -cacert {ca} {addr} auth.demo.v1.Demo/WhoAmI"
    ))
    .unwrap();
    assert_eq!(anonymous.code, Some(80), "{anonymous:?}");
    let wrong = base64::engine::general_purpose::STANDARD.encode("demo:wrong-password");
    let refused = run_printed_grpcurl(&format!(
        "grpcurl -cacert {ca} -H 'authorization: Basic {wrong}' {addr} auth.demo.v1.Demo/WhoAmI"
    ))
    .unwrap();
    assert_eq!(refused.code, Some(80), "{refused:?}");
    assert!(
        refused.stderr.contains("the credentials were not accepted"),
        "{refused:?}"
    );

    let audit = gw.audit();
    assert!(audit.contains("\"protocol\":\"grpc\""), "{audit}");
    assert!(audit.contains("\"event\":\"attempt_failed\""), "{audit}");
    assert!(!audit.contains("wrong-password"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_client_gets_identity_and_the_right_statuses() {
    let gw = start();
    let token = gw.printed("token (scope read, 1 hour):");
    let password = gw
        .output
        .split("password: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&gw.ca).unwrap()))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://127.0.0.1:{}", gw.port))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = DemoClient::new(channel);
    let with = |value: &str| {
        let mut request = tonic::Request::new(WhoAmIRequest {});
        if !value.is_empty() {
            request
                .metadata_mut()
                .insert("authorization", MetadataValue::try_from(value).unwrap());
        }
        request
    };

    let who = client
        .who_am_i(with(&format!("Bearer {token}")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((who.user.as_str(), who.method.as_str()), ("demo", "oauth"));
    assert_eq!(who.principal, "demo");

    let basic = base64::engine::general_purpose::STANDARD.encode(format!("demo:{password}"));
    let who = client
        .who_am_i(with(&format!("Basic {basic}")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(who.user, "demo");

    for (value, what) in [
        ("", "no credential"),
        (&format!("Bearer {token}x") as &str, "a forged token"),
        ("Bearer not-a-jwt", "not a JWT"),
        ("Digest abc", "an unknown scheme"),
    ] {
        let status = client.who_am_i(with(value)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
        let expected = if value.starts_with("Bearer") {
            auth_core::Error::Credential(auth_core::CredentialError::Invalid)
        } else {
            auth_core::Error::Credential(auth_core::CredentialError::Missing)
        };
        assert_eq!(
            status.message(),
            auth_tonic::status_for(expected).message(),
            "{what}"
        );
    }

    let mut admin = tonic::Request::new(AdminRequest {});
    admin.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    let status = client.admin(admin).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
}
