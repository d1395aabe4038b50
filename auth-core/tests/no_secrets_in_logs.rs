//! SEC-1: no secret reaches the logs, whatever the outcome, with the default tracing audit
//! sink and a JSON subscriber at the most verbose level.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use auth_core::{
    ApiKeyAuthenticator, ApiKeyGrant, Attempt, Chain, ConnectionInfo, Credential, Engine,
    MemoryStore, Policy, Protocol, TracingAuditSink,
};
use common::decide;
use secrecy::SecretString;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let secret = "0123456789abcdef-THE-SECRET-0123456789";
    let store = Arc::new(MemoryStore::new());
    ApiKeyAuthenticator::register(
        store.as_ref(),
        "svc",
        &SecretString::from(secret.to_owned()),
        ApiKeyGrant {
            principal: "svc".into(),
            roles: vec![],
            scopes: vec![],
        },
    )
    .await
    .unwrap();
    let chain = Chain::builder()
        .link(Arc::new(ApiKeyAuthenticator::new(store)))
        .build();
    let engine = Engine::builder(Policy::single(chain).unwrap())
        .audit(Arc::new(TracingAuditSink))
        .build();
    let conn = || {
        ConnectionInfo::tcp(Protocol::Http, "192.0.2.1:1".parse().unwrap())
            .with_tls(auth_core::TlsInfo::default())
    };
    let wrong = "0123456789abcdef-WRONG-SECRET-01234567";
    for credential in [
        Credential::api_key(format!("svc.{secret}")),
        Credential::api_key(format!("svc.{wrong}")),
        Credential::api_key(format!("ghost.{secret}")),
        Credential::api_key(secret),
        Credential::password("svc", secret),
        Credential::bearer(secret),
    ] {
        let mut attempt = Attempt::new(conn(), credential);
        tracing::debug!(?attempt, "attempt received");
        let outcome = decide(&engine, &mut attempt).await;
        tracing::debug!(?outcome, "attempt decided");
    }

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let audit_lines = log.lines().filter(|l| l.contains("auth::audit")).count();
    assert!(
        audit_lines >= 12,
        "expected audit events in the log, got:\n{log}"
    );
    assert!(log.contains("attempt_succeeded"));
    // Each attempt's lines carry its span, with the connection id its audit events carry.
    let joined = log
        .lines()
        .find(|l| l.contains("attempt_succeeded"))
        .unwrap();
    let line: serde_json::Value = serde_json::from_str(joined).unwrap();
    assert_eq!(line["span"]["name"], "attempt", "{joined}");
    assert_eq!(line["span"]["protocol"], "http", "{joined}");
    assert!(line["span"]["connection_id"].is_u64(), "{joined}");
    assert!(log.contains("REDACTED"), "Debug output was logged redacted");
    for s in [secret, wrong, "THE-SECRET", "WRONG-SECRET"] {
        assert!(!log.contains(s), "`{s}` reached the log:\n{log}");
    }
}
