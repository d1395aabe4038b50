//! OPS-3: the engine's metrics have bounded labels. The series recorded after 10,000
//! distinct user names from 1,000 addresses are the series recorded after 10 users from
//! 10 addresses: no name, address or secret becomes a label.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use auth_core::policy::{NameMatch, Rule, Target};
use auth_core::rate_limit::LimitSettings;
use auth_core::{
    Attempt, Authenticator, Chain, ConnectionInfo, Credential, CredentialKind, Engine,
    MemoryRateLimiter, Outcome, Policy, Protocol, StandardSession,
};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use secrecy::ExposeSecret;

/// Remembers every series registered: its name and labels.
#[derive(Default)]
struct Series(Mutex<BTreeSet<String>>);

impl Series {
    fn note(&self, key: &Key) {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        self.0
            .lock()
            .unwrap()
            .insert(format!("{}{{{}}}", key.name(), labels.join(",")));
    }
}

impl Recorder for Series {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.note(key);
        Counter::noop()
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.note(key);
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.note(key);
        Histogram::noop()
    }
}

/// The password `right` is right for every user.
#[derive(Debug)]
struct Right;

#[async_trait]
impl Authenticator for Right {
    fn name(&self) -> &str {
        "right"
    }
    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Password]
    }
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let Credential::Password { user, password } = &attempt.credential else {
            return Outcome::NotApplicable;
        };
        if password.expose_secret() == "right" {
            Outcome::Authenticated(
                StandardSession::new(user.as_str(), "right", attempt.now()).boxed(),
            )
        } else {
            Outcome::Rejected(auth_core::Failure::new(
                auth_core::CredentialError::Invalid,
                "wrong password",
            ))
        }
    }
}

/// Every series the engine registers while `users` users log in from `addresses`
/// addresses (once wrong, once right, over pgwire and HTTP), and a rejected user tries.
fn series_after(users: u32, addresses: u32) -> BTreeSet<String> {
    let series = Series::default();
    metrics::with_local_recorder(&series, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let chain = Arc::new(Chain::builder().link(Arc::new(Right)).build());
            let policy = Policy::new(vec![
                Rule::new("nobody", Target::Reject)
                    .with_users(NameMatch::Names(vec!["nobody".into()])),
                Rule::new("all", Target::Chain(chain)),
            ])
            .unwrap();
            let engine = Engine::builder(policy)
                .rate_limiter(Arc::new(MemoryRateLimiter::new(LimitSettings::default())))
                .dangerous()
                .allow_cleartext_without_tls()
                .build();
            for i in 0..users {
                let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i % addresses));
                let protocol = if i % 2 == 0 {
                    Protocol::Postgres
                } else {
                    Protocol::Http
                };
                let user = format!("user-{i}");
                for password in ["wrong", "right"] {
                    let connection =
                        ConnectionInfo::tcp(protocol, SocketAddr::new(ip, 40000)).with_user(&user);
                    let offer = engine.offer(&connection, None).unwrap();
                    let mut attempt =
                        Attempt::new(connection, Credential::password(&user, password));
                    let outcome = engine.decide(&offer, &mut attempt).await;
                    if let Outcome::Authenticated(session) = outcome {
                        let _open = engine.open_session(session, &attempt.connection);
                    }
                }
                let nobody =
                    ConnectionInfo::tcp(protocol, SocketAddr::new(ip, 40000)).with_user("nobody");
                assert!(engine.offer(&nobody, None).is_err());
            }
        });
    });
    series.0.into_inner().unwrap()
}

#[test]
fn ten_thousand_users_from_a_thousand_addresses_make_the_series_ten_make() {
    let few = series_after(10, 10);
    let many = series_after(10_000, 1_000);
    println!(
        "{} series after 10 users from 10 addresses, {} after 10,000 from 1,000",
        few.len(),
        many.len()
    );
    assert_eq!(few, many);
    // What the set holds: each attempt series with bounded labels only.
    assert!(
        few.contains(
            "auth_attempts_total{protocol=postgres,method=right,outcome=success,error=none}"
        ),
        "{few:#?}"
    );
    assert!(
        few.iter()
            .any(|s| s.starts_with("auth_decision_seconds{protocol=http,method=right}"))
    );
    assert!(
        few.contains("auth_policy_rejects_total{protocol=postgres}"),
        "{few:#?}"
    );
    assert!(
        few.contains("auth_sessions_open{protocol=http}"),
        "{few:#?}"
    );
    assert!(
        few.iter()
            .all(|s| !s.contains("user-") && !s.contains("10.0."))
    );
}
