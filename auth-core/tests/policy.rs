//! pg_hba-like policy: first match wins, no match rejects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use auth_core::policy::{AddressMatch, ConnectionType, NameMatch, Rule, Target};
use auth_core::{
    Attempt, AuditEventKind, AuthorizationError, Chain, ConnectionInfo, Credential, Engine, Error,
    MemoryAuditSink, OutcomeClass, Peer, Policy, Protocol, TlsInfo,
};
use common::{Scripted, decide};

fn chain(name: &'static str) -> Arc<Chain> {
    Arc::new(
        Chain::builder()
            .name(name)
            .link(Scripted::new(name, OutcomeClass::Success))
            .build(),
    )
}

fn policy() -> Policy {
    Policy::new(vec![
        Rule::new("local-system", Target::Chain(chain("peer")))
            .with_connection(ConnectionType::Local)
            .with_users(NameMatch::Names(vec!["system".into()])),
        Rule::new("no-remote-system", Target::Reject)
            .with_users(NameMatch::Names(vec!["system".into()])),
        Rule::new("gss", Target::Chain(chain("kerberos"))).with_connection(ConnectionType::HostGss),
        Rule::new("own-db-over-tls", Target::Chain(chain("scram")))
            .with_connection(ConnectionType::HostSsl)
            .with_databases(NameMatch::SameUser),
        Rule::new("office", Target::Chain(chain("password")))
            .with_connection(ConnectionType::Host)
            .with_addresses(AddressMatch::Networks(vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ])),
        Rule::new("loopback", Target::Chain(chain("local")))
            .with_addresses(AddressMatch::Localhost),
    ])
    .unwrap()
}

fn tcp(addr: &str, user: &str, db: &str) -> ConnectionInfo {
    ConnectionInfo::tcp(Protocol::Postgres, addr.parse().unwrap())
        .with_user(user)
        .with_database(db)
}

/// The rule the engine's offer for `c` comes from, `reject:<rule>` for a rule that
/// rejects, `no-match` when none matches.
fn chosen(e: &Engine, c: &ConnectionInfo) -> String {
    match e.offer(c, None) {
        Ok(offer) => offer.rule().to_owned(),
        Err(failure) => {
            assert_eq!(
                failure.error,
                Error::Authorization(AuthorizationError::Rejected)
            );
            let detail = failure.detail.to_string();
            if detail == "no policy rule matches the connection" {
                "no-match".into()
            } else {
                let rule = detail
                    .strip_prefix("rejected by policy rule `")
                    .and_then(|r| r.strip_suffix('`'))
                    .unwrap_or_else(|| panic!("unexpected refusal: {detail}"));
                format!("reject:{rule}")
            }
        }
    }
}

#[test]
fn first_matching_rule_wins() {
    let p = Engine::builder(policy()).build();
    let mut local =
        ConnectionInfo::new(Protocol::Postgres, Peer::unix(None, None)).with_user("system");
    assert_eq!(chosen(&p, &local), "local-system");
    local.user = Some("alice".into());
    assert_eq!(chosen(&p, &local), "loopback", "unix sockets are localhost");

    assert_eq!(
        chosen(&p, &tcp("127.0.0.1:1", "system", "x")),
        "reject:no-remote-system"
    );

    let mut gss = tcp("192.0.2.1:1", "alice", "alice");
    assert_eq!(
        chosen(&p, &gss),
        "no-match",
        "a plain connection is not hostgss"
    );
    gss.gss_encrypted = true;
    assert_eq!(chosen(&p, &gss), "gss");

    let tls = tcp("192.0.2.1:1", "alice", "alice").with_tls(TlsInfo::default());
    assert_eq!(chosen(&p, &tls), "own-db-over-tls");
    let tls_other_db = tcp("192.0.2.1:1", "alice", "sales").with_tls(TlsInfo::default());
    assert_eq!(chosen(&p, &tls_other_db), "no-match");

    assert_eq!(
        chosen(&p, &tcp("10.20.30.40:1", "alice", "sales")),
        "office"
    );
    assert_eq!(
        chosen(&p, &tcp("[::ffff:10.1.1.1]:1", "alice", "s")),
        "office"
    );
    assert_eq!(chosen(&p, &tcp("[2001:db8::5]:1", "alice", "s")), "office");
    assert_eq!(chosen(&p, &tcp("[::1]:1", "alice", "s")), "loopback");
    assert_eq!(chosen(&p, &tcp("192.0.2.1:1", "alice", "s")), "no-match");
}

#[test]
fn hostnossl_matches_only_plaintext_tcp() {
    let p = Engine::builder(
        Policy::new(vec![
            Rule::new("plain", Target::Reject).with_connection(ConnectionType::HostNoSsl),
        ])
        .unwrap(),
    )
    .build();
    assert_eq!(chosen(&p, &tcp("10.0.0.1:1", "a", "b")), "reject:plain");
    let tls = tcp("10.0.0.1:1", "a", "b").with_tls(TlsInfo::default());
    assert_eq!(chosen(&p, &tls), "no-match");
    let unix = ConnectionInfo::new(Protocol::Postgres, Peer::unix(None, None));
    assert_eq!(chosen(&p, &unix), "no-match");
}

#[tokio::test]
async fn no_match_and_reject_deny_and_are_audited() {
    let audit = MemoryAuditSink::new();
    let p = Engine::builder(policy())
        .audit(Arc::new(audit.clone()))
        .build();
    let mut attempt = Attempt::new(
        tcp("192.0.2.9:1", "mallory", "x"),
        Credential::password("mallory", "pw"),
    );
    let out = decide(&p, &mut attempt).await;
    assert_eq!(
        out.failure().unwrap().error,
        Error::Authorization(AuthorizationError::Rejected)
    );

    let mut attempt = Attempt::new(
        tcp("10.0.0.1:1", "system", "x"),
        Credential::password("system", "pw"),
    );
    let out = decide(&p, &mut attempt).await;
    assert_eq!(
        out.failure().unwrap().error,
        Error::Authorization(AuthorizationError::Rejected)
    );

    let rejects = audit.of_kind(AuditEventKind::PolicyReject);
    assert_eq!(rejects.len(), 2);
    assert_eq!(rejects[0]["username"], "mallory");
    assert_eq!(
        rejects[0]["detail"],
        "no policy rule matches the connection"
    );
    assert!(
        rejects[1]["detail"]
            .as_str()
            .unwrap()
            .contains("no-remote-system")
    );
}

#[tokio::test]
async fn a_matching_rule_runs_its_chain() {
    let p = Engine::builder(policy()).build();
    let mut attempt = Attempt::new(
        tcp("10.0.0.1:1", "alice", "x").with_tls(auth_core::TlsInfo::default()),
        Credential::password("alice", "pw"),
    );
    let out = decide(&p, &mut attempt).await;
    assert_eq!(out.session().unwrap().method(), "password");
}
