//! Authenticates sample credentials through a policy and a rate-limited chain, printing
//! each attempt's result and the audit events (JSON lines) it produced.
//!
//! `cargo run -p auth-examples --bin chain-demo`
//!
//! Runs on a fresh machine with nothing configured: the credential store is in memory and
//! the API key's secret is derived fresh at start-up.

use std::io::Write;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use auth_core::audit::JsonLinesAuditSink;
use auth_core::policy::{AddressMatch, Rule, Target};
use auth_core::rate_limit::LimitSettings;
use auth_core::{
    ApiKeyAuthenticator, ApiKeyGrant, Attempt, Chain, ConnectionInfo, Credential, Engine,
    MemoryRateLimiter, MemoryStore, Outcome, Policy, Protocol,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// A fresh secret for this run (not a production key generator: the demo only needs a
/// value nobody has seen before).
fn fresh_secret() -> SecretString {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!("{nanos}-{}", std::process::id());
    SecretString::from(hex::encode(Sha256::digest(seed.as_bytes())))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(MemoryStore::new());
    let key = ApiKeyAuthenticator::register(
        store.as_ref(),
        "ci",
        &fresh_secret(),
        ApiKeyGrant {
            principal: "ci-runner".into(),
            roles: vec![auth_core::Role::Service],
            scopes: vec!["kms:encrypt".into()],
        },
    )
    .await?;

    let audit = Arc::new(JsonLinesAuditSink::new(std::io::stdout()));
    // Limits lowered from the defaults (5 per user, 20 per address in 5 minutes) so the
    // demo reaches a lockout quickly.
    let limits = LimitSettings {
        address_failures: 6,
        ..LimitSettings::default()
    };
    let chain = Chain::builder()
        .name("demo")
        .link(Arc::new(ApiKeyAuthenticator::new(store)))
        .build();
    let policy = Policy::new(vec![
        Rule::new("office", Target::Chain(Arc::new(chain)))
            .with_addresses(AddressMatch::Networks(vec!["10.0.0.0/8".parse()?])),
    ])?;
    let engine = Engine::builder(policy)
        .audit(audit)
        .rate_limiter(Arc::new(MemoryRateLimiter::new(limits)))
        .build();
    // HTTP-like: the credential arrives with the request, so offer and decision follow
    // each other at once.
    let authenticate = async |attempt: &mut Attempt| match engine
        .offer(&attempt.connection, attempt.credential.user())
    {
        Ok(offer) => engine.decide(&offer, attempt).await,
        Err(refused) => Outcome::Rejected(refused),
    };

    let office = "10.1.2.3:50000".parse()?;
    let outside = "203.0.113.9:50000".parse()?;
    let good = key.expose_secret().to_owned();
    let wrong = format!("ci.{}", "0".repeat(64));
    let samples: Vec<(&str, std::net::SocketAddr, Credential)> = vec![
        ("valid API key", office, Credential::api_key(good.clone())),
        ("wrong secret", office, Credential::api_key(wrong.clone())),
        (
            "unknown key id",
            office,
            Credential::api_key(format!("nope.{}", "1".repeat(64))),
        ),
        ("malformed key", office, Credential::api_key("no-dot-here")),
        ("no credentials", office, Credential::Absent),
        (
            "a password (no link takes it)",
            office,
            Credential::password("alice", "pw"),
        ),
        (
            "valid key from outside the office",
            outside,
            Credential::api_key(good),
        ),
    ];
    let mut out = std::io::stdout();
    let mut conn_id = 0;
    let mut run = |label: String, peer, credential| {
        conn_id += 1;
        let attempt = Attempt::new(
            // Over TLS: passwords and keys are never offered on a plaintext connection.
            ConnectionInfo::tcp(Protocol::Http, peer)
                .with_tls(auth_core::TlsInfo::default())
                .with_id(conn_id),
            credential,
        );
        (label, attempt)
    };
    for (label, peer, credential) in samples {
        let (label, mut attempt) = run(label.to_owned(), peer, credential);
        writeln!(out, "\n# {label}")?;
        let outcome = authenticate(&mut attempt).await;
        let summary = match (outcome.session(), outcome.failure()) {
            (Some(s), _) => format!(
                "=> authenticated as {} via {} (roles {:?}, scopes {:?})",
                s.principal(),
                s.method(),
                s.roles(),
                s.scopes()
            ),
            (None, Some(f)) => format!(
                "=> refused: \"{}\" (SQLSTATE {}, HTTP {})",
                f.error,
                auth_pgwire::sqlstate(f.error),
                auth_axum::http_status(f.error).as_u16()
            ),
            (None, None) => "=> refused".to_owned(),
        };
        writeln!(out, "{summary}")?;
    }

    // Three failures count against this address so far (the wrong secret, the unknown key
    // id and the malformed key; no credential, or one no link takes, counts neither way);
    // three more reach the limit of six.
    writeln!(
        out,
        "\n# more wrong secrets from the same address: locked out after six failures"
    )?;
    for i in 1..=4 {
        let (_, mut attempt) = run(String::new(), office, Credential::api_key(wrong.clone()));
        let outcome = authenticate(&mut attempt).await;
        let error = outcome.failure().map(|f| f.error.code()).unwrap_or("none");
        writeln!(out, "=> attempt {i}: {error}")?;
    }
    Ok(())
}
