//! ADAPT-5 with real clients: client certificates from a throwaway CA on every front door
//! of the gateway. psql (`sslcert`/`sslkey`) logs in by `method = "cert"` and, with a
//! password, through a `client_certificate = "verify-full"` SCRAM rule; curl (`--cert`)
//! and a tonic client with an identity reach the HTTP and gRPC APIs. Refused, each with
//! its reason in the audit log and nothing but a generic failure for the client: a
//! certificate from another CA, an expired one, a revoked one, a valid one for another
//! user, none at all, and a valid one for a disabled account.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use auth_core::account::{Directory, UserStatus};
use auth_examples::api::LocalIssuer;
use auth_examples::grpc::pb::WhoAmIRequest;
use auth_examples::grpc::pb::demo_client::DemoClient;
use auth_password::{Argon2Settings, Hasher, PasswordPolicy, Users};
use auth_tests::gateway::{self, GatewayProcess};
use auth_tests::pki::{ClientFiles, TestCa};
use secrecy::SecretString;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const CAROL_PASSWORD: &str = "carol-long-password-2026";

struct Setup {
    gw: GatewayProcess,
    alice: ClientFiles,
    bob: ClientFiles,
    carol: ClientFiles,
    billing: ClientFiles,
    expired: ClientFiles,
    revoked: ClientFiles,
    foreign: ClientFiles,
    /// alice's, from a CA with the trusted CA's name but another key.
    impostor: ClientFiles,
    _pki: tempfile::TempDir,
}

async fn setup() -> Setup {
    let pki = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Gateway Client CA", pki.path()).unwrap();
    let other = TestCa::new("Other CA", &pki.path().join("other")).unwrap();
    let impostor = TestCa::new("Gateway Client CA", &pki.path().join("impostor")).unwrap();
    let ca_file = ca.write_ca("client-ca.crt").unwrap();
    let crl_file = ca.write_crl("client-ca.crl", &[4]).unwrap();
    let rules = format!(
        r#"[client_certificates]
ca_file = "{}"
crl_file = "{}"
api_login = true

[[rule]]
name = "certificates"
type = "hostssl"
users = ["alice", "bob", "billing"]
method = "cert"

[[rule]]
name = "scram-and-certificate"
type = "hostssl"
users = ["carol"]
method = "scram"
client_certificate = "verify-full"

[[rule]]
name = "scram"
method = "scram"
"#,
        ca_file.display(),
        crl_file.display()
    );
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let gw = GatewayProcess::start(binary, "10s", &rules).unwrap_or_else(|e| panic!("{e}"));
    let wallet = gw.wallet().unwrap_or_else(|e| panic!("{e}"));
    let directory = Directory::new(wallet.clone());
    for user in ["alice", "bob", "billing"] {
        directory.update(user, |_| {}).await.unwrap();
    }
    directory
        .map_identity("cert", "svc-billing", "billing")
        .await
        .unwrap();
    Users::new(wallet)
        .set_password(
            &Hasher::new(Argon2Settings::default()).unwrap(),
            &PasswordPolicy::default(),
            "carol",
            &SecretString::from(CAROL_PASSWORD.to_owned()),
        )
        .await
        .unwrap();
    Setup {
        alice: ca.client("alice", "alice", 1).unwrap(),
        bob: ca.client("bob", "bob", 2).unwrap(),
        expired: ca.expired_client("alice-expired", "alice", 3).unwrap(),
        revoked: ca.client("alice-revoked", "alice", 4).unwrap(),
        carol: ca.client("carol", "carol", 5).unwrap(),
        billing: ca.client("billing", "svc-billing", 6).unwrap(),
        foreign: other.client("alice-foreign", "alice", 1).unwrap(),
        impostor: impostor.client("alice-impostor", "alice", 1).unwrap(),
        gw,
        _pki: pki,
    }
}

/// psql as `user` over verified TLS, presenting `files` if given.
fn psql(
    s: &Setup,
    user: &str,
    files: Option<&ClientFiles>,
    password: &str,
) -> Result<String, String> {
    let mut extra = format!(
        "sslmode=verify-full sslrootcert={}",
        s.gw.ca_file().display()
    );
    if let Some(f) = files {
        extra.push_str(&format!(
            " sslcert={} sslkey={}",
            f.cert.display(),
            f.key.display()
        ));
    }
    gateway::psql(
        std::process::Command::new("psql"),
        &s.gw.conninfo(user, &extra),
        password,
        "SELECT current_user",
    )
}

/// curl GET /whoami presenting `files`, plus `args`: (status, body).
fn curl(s: &Setup, files: &ClientFiles, args: &[&str]) -> (String, serde_json::Value) {
    let (tls, url) = s.gw.https("/whoami");
    let mut cmd = std::process::Command::new("curl");
    cmd.args(tls)
        .arg("--cert")
        .arg(&files.cert)
        .arg("--key")
        .arg(&files.key)
        .args(args)
        .arg(url);
    let (body, status) = gateway::curl_reply(cmd).unwrap_or_else(|e| panic!("{e}"));
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[tokio::test]
async fn psql_logs_in_with_a_certificate_and_each_bad_one_is_refused_with_its_reason() {
    let s = setup().await;
    assert_eq!(
        psql(&s, "alice", Some(&s.alice), "").as_deref(),
        Ok("alice")
    );
    // The directory maps the certificate's name to a user.
    assert_eq!(
        psql(&s, "billing", Some(&s.billing), "").as_deref(),
        Ok("billing")
    );
    let cases: [(&str, Option<&ClientFiles>, &str); 6] = [
        ("another CA", Some(&s.foreign), "not issued by a trusted CA"),
        (
            "an impostor CA",
            Some(&s.impostor),
            "signature does not verify against the trusted CA",
        ),
        (
            "expired",
            Some(&s.expired),
            "expired at 2021-01-01T00:00:00Z",
        ),
        (
            "revoked",
            Some(&s.revoked),
            "the client certificate is revoked",
        ),
        (
            "bob's, for alice",
            Some(&s.bob),
            "identity `bob` (cert) may not act as the requested user `alice`",
        ),
        ("none", None, "no client certificate was presented"),
    ];
    for (case, files, reason) in cases {
        let err = psql(&s, "alice", files, "").unwrap_err();
        assert!(
            err.contains("certificate authentication failed for user \"alice\""),
            "{case}: {err}"
        );
        assert!(!err.contains(reason), "{case}: the client is not told why");
        let detail = s.gw.newest_refusal_detail();
        assert!(detail.contains(reason), "{case}: audited {detail:?}");
    }

    // clientcert=verify-full next to SCRAM: both, and the certificate names carol.
    assert_eq!(
        psql(&s, "carol", Some(&s.carol), CAROL_PASSWORD).as_deref(),
        Ok("carol")
    );
    assert!(psql(&s, "carol", None, CAROL_PASSWORD).is_err());
    assert!(
        s.gw.newest_refusal_detail()
            .contains("the rule requires a client certificate"),
        "{}",
        s.gw.newest_refusal_detail()
    );
    assert!(psql(&s, "carol", Some(&s.bob), CAROL_PASSWORD).is_err());
    assert!(
        s.gw.newest_refusal_detail()
            .contains("names `bob`, which may not act as `carol`"),
        "{}",
        s.gw.newest_refusal_detail()
    );

    // A disabled account: its valid certificate no longer logs in.
    Directory::new(s.gw.wallet().unwrap())
        .modify("alice", |r| r.status = UserStatus::Disabled)
        .await
        .unwrap();
    assert!(psql(&s, "alice", Some(&s.alice), "").is_err());
    assert_eq!(s.gw.newest_refusal_detail(), "account `alice` is disabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_a_tonic_client_present_certificates_to_the_apis() {
    let s = setup().await;
    let (status, who) = curl(&s, &s.alice, &[]);
    assert_eq!(status, "200", "{who}");
    assert_eq!(
        (&who["user"], &who["method"]),
        (&"alice".into(), &"cert".into())
    );
    let (status, who) = curl(&s, &s.billing, &[]);
    assert_eq!((status.as_str(), &who["user"]), ("200", &"billing".into()));
    for (case, files, reason) in [
        ("another CA", &s.foreign, "not issued by a trusted CA"),
        ("an impostor CA", &s.impostor, "signature does not verify"),
        ("expired", &s.expired, "expired at 2021-01-01T00:00:00Z"),
        ("revoked", &s.revoked, "the client certificate is revoked"),
    ] {
        let (status, _) = curl(&s, files, &[]);
        assert_eq!(status, "401", "{case}");
        let detail = s.gw.newest_refusal_detail();
        assert!(detail.contains(reason), "{case}: audited {detail:?}");
    }
    // A header is the credential when there is one: demo's token over alice's certificate.
    let issuer = LocalIssuer::load_or_create(&s.gw.data).unwrap();
    let token = |user: &str| issuer.issue(user, "read", Duration::from_secs(60)).unwrap();
    let bearer = format!("Authorization: Bearer {}", token("demo"));
    let (status, who) = curl(&s, &s.alice, &["-H", &bearer]);
    assert_eq!((status.as_str(), &who["user"]), ("200", &"demo".into()));
    // Bob's own rule says he logs in with a certificate: his token is judged under it, on
    // the APIs as on pgwire, and refused.
    let bearer = format!("Authorization: Bearer {}", token("bob"));
    let (status, _) = curl(&s, &s.alice, &["-H", &bearer]);
    assert_eq!(status, "401");
    let detail = s.gw.newest_refusal_detail();
    assert!(detail.contains("rule `certificates`"), "{detail}");

    // gRPC: tonic with an identity.
    let ca = Certificate::from_pem(std::fs::read(s.gw.ca_file()).unwrap());
    let whoami = |files: &ClientFiles| {
        let identity = Identity::from_pem(
            std::fs::read(&files.cert).unwrap(),
            std::fs::read(&files.key).unwrap(),
        );
        let tls = ClientTlsConfig::new()
            .ca_certificate(ca.clone())
            .domain_name("localhost")
            .identity(identity);
        let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{}", s.gw.grpc_port))
            .unwrap()
            .tls_config(tls)
            .unwrap();
        async move {
            let mut client = DemoClient::new(endpoint.connect().await.unwrap());
            client.who_am_i(WhoAmIRequest {}).await
        }
    };
    let me = whoami(&s.alice).await.unwrap().into_inner();
    assert_eq!((me.user.as_str(), me.method.as_str()), ("alice", "cert"));
    let refused = whoami(&s.revoked).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(!refused.message().contains("revoked"), "{refused:?}");
    let detail = s.gw.newest_refusal_detail();
    assert!(detail.contains("revoked"), "{detail}");
    let audited = s.gw.audit("attempt_succeeded");
    assert!(
        audited
            .iter()
            .any(|e| e["protocol"] == "grpc" && e["username"] == "alice"),
        "{audited:?}"
    );
}
