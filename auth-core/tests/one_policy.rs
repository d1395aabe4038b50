//! One policy for every front door: rules by protocol, transport in the core, the rule of
//! a user proved only by the credential, and identity maps per rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use auth_core::account::{IdentityMap, MapEntry};
use auth_core::policy::{ConnectionType, NameMatch, ProtocolMatch, Rule, Target};
use auth_core::{
    Attempt, Authenticator, Chain, ConnectionInfo, Credential, CredentialKind, Engine, Error,
    Evidence, MemoryAuditSink, Outcome, OutcomeClass, Peer, Policy, PolicyError, Protocol,
    StandardSession, TlsInfo, Transport,
};
use common::{Scripted, decide, t0};
use secrecy::ExposeSecret;

/// Bearer tokens whose text is the user they prove.
#[derive(Debug)]
struct Tokens;

#[async_trait]
impl Authenticator for Tokens {
    fn name(&self) -> &str {
        "tokens"
    }
    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Bearer]
    }
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let Credential::Bearer(token) = &attempt.credential else {
            return Outcome::NotApplicable;
        };
        let user = token.expose_secret().to_owned();
        let evidence = Evidence::Token {
            issuer: None,
            token_id: None,
        };
        Outcome::Authenticated(
            StandardSession::new(user, "tokens", t0())
                .with_evidence(evidence)
                .boxed(),
        )
    }
}

/// Peer authentication as a test sees it: every Unix-socket client runs as `os_user`.
#[derive(Debug)]
struct PeerAs(&'static str);

#[async_trait]
impl Authenticator for PeerAs {
    fn name(&self) -> &str {
        "peer"
    }
    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Peer]
    }
    fn local_only(&self) -> bool {
        true
    }
    async fn authenticate(&self, _: &mut Attempt) -> Outcome {
        let evidence = Evidence::OsUser {
            uid: 1000,
            name: self.0.into(),
        };
        Outcome::Authenticated(
            StandardSession::new(self.0, "peer", t0())
                .with_evidence(evidence)
                .boxed(),
        )
    }
}

fn chain_of(method: Arc<dyn Authenticator>) -> Arc<Chain> {
    Arc::new(Chain::builder().link(method).build())
}

fn https(user: Option<&str>) -> ConnectionInfo {
    let c = ConnectionInfo::tcp(Protocol::Http, "192.0.2.5:40000".parse().unwrap())
        .with_tls(TlsInfo::default());
    match user {
        Some(u) => c.with_user(u),
        None => c,
    }
}

#[tokio::test]
async fn a_rule_names_its_doors_and_guards_all_of_them_by_default() {
    let password = chain_of(Scripted::new("password", OutcomeClass::Success));
    let engine = Engine::builder(
        Policy::new(vec![
            Rule::new("no-bob", Target::Reject).with_users(NameMatch::Names(vec!["bob".into()])),
            Rule::new("http-only", Target::Chain(password.clone()))
                .with_protocols(ProtocolMatch::Only(vec![Protocol::Http])),
        ])
        .unwrap(),
    )
    .build();
    for protocol in [Protocol::Postgres, Protocol::Http, Protocol::Grpc] {
        let mut c = https(Some("bob"));
        c.protocol = protocol;
        let refused = engine.offer(&c, None).unwrap_err();
        assert!(
            refused.detail.contains("no-bob"),
            "{protocol:?}: {refused:?}"
        );
    }
    assert_eq!(
        engine.offer(&https(Some("alice")), None).unwrap().rule(),
        "http-only"
    );
    let mut grpc = https(Some("alice"));
    grpc.protocol = Protocol::Grpc;
    assert!(
        engine
            .offer(&grpc, None)
            .unwrap_err()
            .detail
            .contains("no policy rule")
    );
}

#[tokio::test]
async fn a_token_for_a_user_with_a_rule_of_their_own_is_refused_under_another() {
    let audit = Arc::new(MemoryAuditSink::new());
    let tokens = chain_of(Arc::new(Tokens));
    let engine = Engine::builder(
        Policy::new(vec![
            Rule::new("no-bob", Target::Reject).with_users(NameMatch::Names(vec!["bob".into()])),
            Rule::new(
                "carol-strict",
                Target::Chain(chain_of(Scripted::new("x", OutcomeClass::Success))),
            )
            .with_users(NameMatch::Names(vec!["carol".into()])),
            Rule::new("dave-same", Target::Chain(tokens.clone()))
                .with_users(NameMatch::Names(vec!["dave".into()])),
            Rule::new("erin-own", Target::Chain(chain_of(Arc::new(Tokens))))
                .with_users(NameMatch::Names(vec!["erin".into()])),
            Rule::new("api", Target::Chain(tokens)),
        ])
        .unwrap(),
    )
    .audit(audit.clone())
    .build();
    let mut alice = Attempt::new(https(None), Credential::bearer("alice"));
    assert!(decide(&engine, &mut alice).await.is_authenticated());
    // Dave's rule runs the very method that judged the token: the judgement stands. Erin's
    // runs another instance: the token is judged again under her rule, which decides.
    for (user, rule) in [("dave", "dave-same"), ("erin", "erin-own")] {
        let mut attempt = Attempt::new(https(None), Credential::bearer(user));
        assert!(
            decide(&engine, &mut attempt).await.is_authenticated(),
            "{user}"
        );
        let event = audit.events().last().unwrap().clone();
        assert_eq!(
            (&event["event"], &event["rule"]),
            (&"attempt_succeeded".into(), &rule.into())
        );
    }
    // The audit names the rule whose offer decided: the one the token came in under when
    // the user's rule refuses outright, else the user's own.
    for (user, decides, audited) in [
        ("bob", "rule `no-bob` (reject)", "api"),
        ("carol", "rule `carol-strict`", "carol-strict"),
    ] {
        let mut attempt = Attempt::new(https(None), Credential::bearer(user));
        let outcome = decide(&engine, &mut attempt).await;
        let (error, detail) = outcome.error_and_detail().unwrap();
        assert_eq!(
            error,
            Error::Authorization(auth_core::AuthorizationError::Rejected)
        );
        assert!(detail.contains(decides), "{detail}");
        let event = audit.events().last().unwrap().clone();
        assert_eq!(event["event"], "attempt_failed");
        assert_eq!(event["rule"], audited);
    }
}

#[tokio::test]
async fn secrets_are_withheld_without_encryption_on_every_door_unless_opted_in() {
    let password = chain_of(Scripted::new("password", OutcomeClass::Success));
    let policy = || Policy::new(vec![Rule::new("all", Target::Chain(password.clone()))]).unwrap();
    let plain = |protocol| {
        ConnectionInfo::tcp(protocol, "192.0.2.5:40000".parse().unwrap()).with_user("alice")
    };
    let strict = Engine::builder(policy()).build();
    for protocol in [Protocol::Postgres, Protocol::Http, Protocol::Grpc] {
        let mut attempt = Attempt::new(plain(protocol), Credential::password("alice", "pw"));
        let outcome = decide(&strict, &mut attempt).await;
        assert_eq!(outcome.class(), OutcomeClass::Rejected, "{protocol:?}");
        assert!(
            strict
                .offer(&plain(protocol), None)
                .unwrap()
                .needs_encryption()
        );
    }
    let unix = ConnectionInfo::new(Protocol::Postgres, Peer::unix(None, None)).with_user("alice");
    let mut local = Attempt::new(unix, Credential::password("alice", "pw"));
    assert!(
        decide(&strict, &mut local).await.is_authenticated(),
        "a Unix socket is local"
    );
    let opted_in = Engine::builder(policy())
        .dangerous()
        .allow_cleartext_without_tls()
        .build();
    let mut attempt = Attempt::new(plain(Protocol::Http), Credential::password("alice", "pw"));
    assert!(decide(&opted_in, &mut attempt).await.is_authenticated());
    assert_eq!(Tokens.transport(), Transport::Encrypted);
}

#[test]
fn rules_that_could_only_leak_secrets_or_never_see_certificates_are_refused() {
    let password = chain_of(Scripted::new("password", OutcomeClass::Success));
    let nossl = Rule::new("nossl", Target::Chain(password.clone()))
        .with_connection(ConnectionType::HostNoSsl);
    assert!(matches!(
        Policy::new(vec![nossl]),
        Err(PolicyError::CleartextSecret { .. })
    ));
    let ca = auth_tests::pki::TestCa::in_memory("CA").unwrap();
    let trust = auth_core::certificate::TrustedIssuers::from_pem(ca.pem().as_bytes()).unwrap();
    let cert_only = chain_of(Arc::new(
        auth_core::certificate::CertificateAuthenticator::new(Arc::new(trust)),
    ));
    let host = Rule::new("cert", Target::Chain(cert_only.clone()));
    assert!(matches!(
        Policy::new(vec![host]),
        Err(PolicyError::CertificateWithoutTls { .. })
    ));
    let hostssl =
        Rule::new("cert", Target::Chain(cert_only)).with_connection(ConnectionType::HostSsl);
    assert!(Policy::new(vec![hostssl]).is_ok());
    assert!(Policy::new(vec![Rule::new("host", Target::Chain(password))]).is_ok());
}

#[tokio::test]
async fn a_rules_map_alone_admits_an_identity_even_one_with_the_requested_name() {
    let local = |os_user: &'static str, map: Option<IdentityMap>| {
        let rule = Rule::new(
            "local-admin",
            Target::Chain(chain_of(Arc::new(PeerAs(os_user)))),
        )
        .with_connection(ConnectionType::Local);
        let rule = match map {
            Some(map) => rule.with_identity_map(map),
            None => rule,
        };
        Engine::builder(Policy::new(vec![rule]).unwrap()).build()
    };
    let map = || {
        IdentityMap::new(vec![
            MapEntry::new(Some("peer"), "root", "postgres").unwrap(),
        ])
    };
    let as_postgres = || {
        Attempt::new(
            ConnectionInfo::new(Protocol::Postgres, Peer::unix(None, None)).with_user("postgres"),
            Credential::Peer,
        )
    };
    // Without a map, the same name is enough (PostgreSQL's peer without map=).
    assert!(
        decide(&local("postgres", None), &mut as_postgres())
            .await
            .is_authenticated()
    );
    // With one, only its entries: OS user postgres is refused, root admitted.
    let refused = decide(&local("postgres", Some(map())), &mut as_postgres()).await;
    assert!(!refused.is_authenticated());
    assert!(
        refused
            .error_and_detail()
            .unwrap()
            .1
            .contains("may not act as"),
        "{refused:?}"
    );
    assert!(
        decide(&local("root", Some(map())), &mut as_postgres())
            .await
            .is_authenticated()
    );
}

#[tokio::test]
async fn a_replaced_policy_holds_for_new_offers_and_an_attempt_in_flight_keeps_its_own() {
    let audit = Arc::new(MemoryAuditSink::new());
    let tokens = chain_of(Arc::new(Tokens));
    let engine = Engine::builder(
        Policy::new(vec![Rule::new("api", Target::Chain(tokens.clone()))]).unwrap(),
    )
    .audit(audit.clone())
    .build();
    // Offered before the reload; the token names bob only once the method has run.
    let in_flight = engine.offer(&https(None), None).unwrap();
    let before = engine.chain_for(&https(None)).unwrap();

    let replaced = engine.replace_policy(
        Policy::new(vec![
            Rule::new("no-bob", Target::Reject).with_users(NameMatch::Names(vec!["bob".into()])),
            Rule::new("api", Target::Chain(chain_of(Arc::new(Tokens)))),
        ])
        .unwrap(),
    );
    assert_eq!(replaced.rules().len(), 1);
    assert_eq!(engine.policy().rules().len(), 2);

    // The attempt in flight is judged, and its user checked, under the rules it began with.
    let mut attempt = Attempt::new(https(None), Credential::bearer("bob"));
    assert!(
        engine
            .decide(&in_flight, &mut attempt)
            .await
            .is_authenticated()
    );
    assert_eq!(audit.events().last().unwrap()["rule"], "api");
    // A new one under the new rules.
    let mut attempt = Attempt::new(https(None), Credential::bearer("bob"));
    let outcome = decide(&engine, &mut attempt).await;
    let (_, detail) = outcome.error_and_detail().unwrap();
    assert!(detail.contains("rule `no-bob` (reject)"), "{detail}");
    let mut attempt = Attempt::new(https(None), Credential::bearer("alice"));
    assert!(decide(&engine, &mut attempt).await.is_authenticated());
    // A cache keyed by the chain (session reuse) misses: the new rules' chains are new.
    let after = engine.chain_for(&https(None)).unwrap();
    assert!(!Arc::ptr_eq(&before, &after));
}
