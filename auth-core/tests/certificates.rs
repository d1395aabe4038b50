//! Client certificates: the `cert` method and a policy rule's `clientcert` requirement,
//! with certificates from a throwaway CA and the time from a manual clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::account::{AccountStage, Directory, UserStatus};
use auth_core::certificate::{
    CertificateAuthenticator, CertificateCheck, CertificateRefusal, ClientName, Requirement,
    TrustedIssuers,
};
use auth_core::policy::{ConnectionType, Rule, Target};
use auth_core::{
    Attempt, Authenticator, Chain, ConnectionInfo, Credential, CredentialError, Engine, Error,
    ManualClock, MemoryStore, Outcome, OutcomeClass, Policy, Protocol, TlsInfo,
};
use auth_tests::pki::TestCa;
use common::{Scripted, decide};

/// The harness's throwaway CA, as these tests use it: certificates in memory, valid
/// through 2027.
struct Ca(TestCa);

/// 2027-01-01, inside every certificate's validity below.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600)
}

impl Ca {
    fn new(name: &str) -> Self {
        Self(TestCa::in_memory(name).unwrap())
    }

    fn trust(&self) -> TrustedIssuers {
        TrustedIssuers::from_pem(self.0.pem().as_bytes()).unwrap()
    }

    /// A client certificate for `cn`, serial `serial`, valid through 2027.
    fn client(&self, cn: &str, serial: u64) -> Vec<u8> {
        self.0
            .client_der(cn, serial, (2026, 1, 1), (2028, 1, 1))
            .unwrap()
    }

    /// A CRL revoking `serials`, next update `next`.
    fn crl(&self, serials: &[u64], next: (i32, u8, u8)) -> String {
        self.0.crl_pem(serials, (2026, 6, 1), next).unwrap()
    }
}

fn over_tls(chain: Vec<Vec<u8>>, user: Option<&str>) -> ConnectionInfo {
    let c = ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.7:50000".parse().unwrap()).with_tls(
        TlsInfo {
            client_certificates: chain,
            ..TlsInfo::default()
        },
    );
    match user {
        Some(u) => c.with_user(u),
        None => c,
    }
}

fn method(trust: TrustedIssuers) -> CertificateAuthenticator {
    CertificateAuthenticator::new(Arc::new(trust))
}

/// An engine builder whose one rule runs `chain` for TLS connections: certificates come
/// only with TLS, and the policy refuses a certificate rule that could match without it.
fn engine(chain: Chain) -> auth_core::engine::EngineBuilder {
    let rule = Rule::new("clientcert", Target::Chain(Arc::new(chain)))
        .with_connection(ConnectionType::HostSsl);
    Engine::builder(Policy::new(vec![rule]).unwrap())
}

/// Runs `method` on its own, judged at the time of `clock`.
async fn run(
    method: &dyn Authenticator,
    clock: &Arc<ManualClock>,
    connection: ConnectionInfo,
) -> Outcome {
    let mut attempt =
        Attempt::new(connection, Credential::ClientCertificate).with_clock(clock.clone());
    method.authenticate(&mut attempt).await
}

fn detail(outcome: &Outcome) -> String {
    outcome
        .error_and_detail()
        .map(|(_, d)| d.to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_certificate_of_the_ca_names_its_holder_and_others_say_why_not() {
    let (ca, other) = (Ca::new("Test CA"), Ca::new("Other CA"));
    let clock = Arc::new(ManualClock::new(now()));
    let cert = method(ca.trust());

    let ok = run(&cert, &clock, over_tls(vec![ca.client("alice", 1)], None)).await;
    let session = ok.session().expect("alice's certificate authenticates");
    assert_eq!((session.principal(), session.method()), ("alice", "cert"));

    let foreign = run(
        &cert,
        &clock,
        over_tls(vec![other.client("alice", 1)], None),
    )
    .await;
    assert_eq!(
        foreign.error_and_detail().unwrap().0,
        Error::Credential(CredentialError::UntrustedIssuer)
    );
    assert!(detail(&foreign).contains("not issued by a trusted CA"));

    clock.set(SystemTime::UNIX_EPOCH + Duration::from_secs(1_830_384_000)); // 2028-01-02
    let expired = run(&cert, &clock, over_tls(vec![ca.client("alice", 1)], None)).await;
    assert_eq!(
        expired.error_and_detail().unwrap().0,
        Error::Credential(CredentialError::Expired)
    );
    assert!(
        detail(&expired).contains("expired at 2028-01-01T00:00:00Z"),
        "{}",
        detail(&expired)
    );
    clock.set(SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600)); // 2025-01-01
    let early = run(&cert, &clock, over_tls(vec![ca.client("alice", 1)], None)).await;
    assert!(detail(&early).contains("not valid before 2026-01-01"));

    clock.set(now());
    let none = run(&cert, &clock, over_tls(Vec::new(), None)).await;
    assert_eq!(
        none.error_and_detail().unwrap().0,
        Error::Credential(CredentialError::Missing)
    );
    let plain = ConnectionInfo::tcp(Protocol::Http, "10.0.0.7:1".parse().unwrap());
    let without_tls = run(&cert, &clock, plain).await;
    assert_eq!(
        without_tls.error_and_detail().unwrap().0,
        Error::Credential(CredentialError::Missing)
    );
    let garbage = run(&cert, &clock, over_tls(vec![b"garbage".to_vec()], None)).await;
    assert_eq!(
        garbage.error_and_detail().unwrap().0,
        Error::Credential(CredentialError::Malformed)
    );
    let password = Credential::password("alice", "x");
    assert!(!cert.supports(&password), "only the certificate credential");
}

#[tokio::test]
async fn revoked_certificates_and_stale_revocation_lists_are_refused() {
    let ca = Ca::new("Test CA");
    let clock = Arc::new(ManualClock::new(now()));
    let trust = ca
        .trust()
        .with_crls_pem(ca.crl(&[2], (2027, 6, 1)).as_bytes())
        .unwrap();
    let cert = method(trust);
    assert!(
        run(&cert, &clock, over_tls(vec![ca.client("alice", 1)], None))
            .await
            .is_authenticated()
    );
    let revoked = run(&cert, &clock, over_tls(vec![ca.client("bob", 2)], None)).await;
    assert_eq!(detail(&revoked), CertificateRefusal::Revoked.to_string());

    clock.set(SystemTime::UNIX_EPOCH + Duration::from_secs(1_814_400_000)); // mid-2027
    let stale = run(&cert, &clock, over_tls(vec![ca.client("alice", 1)], None)).await;
    assert_eq!(
        stale.class(),
        OutcomeClass::Unavailable,
        "the operator's stale list is no failed login to count"
    );
    assert!(
        detail(&stale).contains("revocation list expired at 2027-06-01"),
        "{}",
        detail(&stale)
    );
    assert!(
        TrustedIssuers::from_pem(b"").is_err() && ca.trust().with_crls_pem(b"nope").is_err(),
        "empty bundles and garbage CRLs are configuration errors"
    );
    let leaf = rcgen::generate_simple_self_signed(vec!["alice".into()]).unwrap();
    let err = TrustedIssuers::from_pem(leaf.cert.pem().as_bytes()).unwrap_err();
    assert!(err.to_string().contains("not a CA certificate"), "{err}");
}

#[tokio::test]
async fn names_go_through_the_identity_map_and_the_account_stage() {
    let ca = Ca::new("Test CA");
    let clock = Arc::new(ManualClock::new(now()));
    let dir = Directory::new(Arc::new(MemoryStore::new()));
    dir.update("billing", |_| {}).await.unwrap();
    dir.map_identity("cert", "CN=svc-billing", "billing")
        .await
        .unwrap();
    let stage = Arc::new(AccountStage::new(Arc::new(dir)));
    let chain = Chain::builder()
        .link(Arc::new(
            method(ca.trust()).with_name(ClientName::DistinguishedName),
        ))
        .build();
    let engine_dn = engine(chain).accounts(stage).clock(clock.clone()).build();
    let svc = ca.client("svc-billing", 3);

    // HTTP names no user: the directory's mapping says who the certificate is.
    let mut http = Attempt::new(
        over_tls(vec![svc.clone()], None),
        Credential::ClientCertificate,
    );
    let outcome = decide(&engine_dn, &mut http).await;
    assert_eq!(outcome.session().map(|s| s.user()), Some("billing"));
    // pgwire names one: the mapped user, and no other.
    let mut as_billing = Attempt::new(
        over_tls(vec![svc.clone()], Some("billing")),
        Credential::ClientCertificate,
    );
    assert!(decide(&engine_dn, &mut as_billing).await.is_authenticated());
    let mut as_alice = Attempt::new(
        over_tls(vec![svc], Some("alice")),
        Credential::ClientCertificate,
    );
    let refused = decide(&engine_dn, &mut as_alice).await;
    assert!(detail(&refused).contains("may not act as the requested user `alice`"));
    // A disabled account is refused whatever its certificate says.
    let engine_cn = engine(Chain::builder().link(Arc::new(method(ca.trust()))).build())
        .accounts(Arc::new(AccountStage::new(Arc::new({
            let d = Directory::new(Arc::new(MemoryStore::new()));
            d.update("mallory", |r| r.status = UserStatus::Disabled)
                .await
                .unwrap();
            d
        }))))
        .clock(clock.clone())
        .build();
    let mut mallory = Attempt::new(
        over_tls(vec![ca.client("mallory", 4)], Some("mallory")),
        Credential::ClientCertificate,
    );
    let outcome = decide(&engine_cn, &mut mallory).await;
    assert_eq!(outcome.class(), OutcomeClass::AccountRefused);
    assert!(detail(&outcome).contains("account `mallory` is disabled"));
}

#[tokio::test]
async fn clientcert_requirements_guard_another_method() {
    let (ca, other) = (Ca::new("Test CA"), Ca::new("Other CA"));
    let clock = Arc::new(ManualClock::new(now()));
    let trust = Arc::new(ca.trust());
    let password = Scripted::new("password", OutcomeClass::Success);
    // The requirement is the policy rule's; the chain runs only the password.
    let engine = |requirement| {
        let chain = Chain::builder().link(password.clone()).build();
        let rule = Rule::new("clientcert", Target::Chain(Arc::new(chain)))
            .with_connection(ConnectionType::HostSsl)
            .with_client_certificate(CertificateCheck::new(trust.clone(), requirement));
        Engine::builder(Policy::new(vec![rule]).unwrap())
            .clock(clock.clone())
            .build()
    };
    let attempt = |chain: Vec<Vec<u8>>| {
        Attempt::new(
            over_tls(chain, Some("alice")),
            Credential::password("alice", "right"),
        )
    };
    let verify_ca = engine(Requirement::VerifyCa);
    // Any certificate of the CA, whoever it names, with the password.
    assert!(
        decide(&verify_ca, &mut attempt(vec![ca.client("bob", 1)]))
            .await
            .is_authenticated()
    );
    // Without one (or with another CA's) the password is never asked for.
    let calls = password.calls();
    let refused = decide(&verify_ca, &mut attempt(Vec::new())).await;
    assert!(detail(&refused).contains("the rule requires a client certificate"));
    let foreign = decide(&verify_ca, &mut attempt(vec![other.client("alice", 1)])).await;
    assert_eq!(
        foreign.error_and_detail().unwrap().0,
        Error::Credential(CredentialError::UntrustedIssuer)
    );
    assert_eq!(password.calls(), calls, "refused before the method ran");

    let verify_full = engine(Requirement::VerifyFull);
    assert!(
        decide(&verify_full, &mut attempt(vec![ca.client("alice", 2)]))
            .await
            .is_authenticated()
    );
    let bob = decide(&verify_full, &mut attempt(vec![ca.client("bob", 3)])).await;
    assert!(
        detail(&bob).contains("names `bob`, which may not act as `alice`"),
        "{}",
        detail(&bob)
    );
    assert_eq!(
        Requirement::parse("verify-full"),
        Some(Requirement::VerifyFull)
    );
    assert_eq!(Requirement::parse("1"), None);
}
