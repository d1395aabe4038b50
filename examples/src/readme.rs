//! The README's Rust snippets, compiled and run: each block between a `README begin` and a
//! `README end` comment is, dedented, a ```rust block of README.md, and a test checks that
//! every ```rust block of the README is one of them, so neither can change alone.

use std::sync::Arc;

use auth_core::account::AccountStage;
use auth_core::audit::AuditSink;
use auth_core::contract::accounts::AccountsFixture;
use auth_core::contract::authenticator::{AuthenticatorCapabilities, AuthenticatorFixture};
use auth_core::contract::store::StoreFixture;
use auth_core::{Accounts, Attempt, Authenticator, CredentialStore, Outcome};

/// The README's "Composing a chain".
#[allow(clippy::too_many_arguments)]
async fn composing_a_chain(
    oauth: Arc<dyn Authenticator>,
    kerberos: Arc<dyn Authenticator>,
    wallet: Arc<dyn Authenticator>,
    password: Arc<dyn Authenticator>,
    stage: Arc<AccountStage>,
    sink: Arc<dyn AuditSink>,
    mut attempt: Attempt,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    // README begin
    use auth_core::policy::{AddressMatch, ConnectionType, Rule, Target};
    use auth_core::{Chain, Control, Engine, MemoryRateLimiter, Policy};
    use std::sync::Arc;

    // OAuth first; if the OAuth server is down, fall through. Kerberos and the wallet decline
    // credentials they cannot judge ("not in wallet" moves on); a wrong password stops the chain.
    let chain = Chain::builder()
        .link_with(oauth, Control::CONCLUSIVE.fallback_on_unavailable())
        .link(kerberos) // Control::CONCLUSIVE, 5 s timeout
        .link(wallet)
        .link(password)
        .build();

    // pg_hba-like: first match wins, no match rejects.
    let policy = Policy::new(vec![
        Rule::new("tls-only", Target::Chain(Arc::new(chain)))
            .with_connection(ConnectionType::HostSsl)
            .with_addresses(AddressMatch::Networks(vec!["10.0.0.0/8".parse()?])),
    ])?;

    // One engine for every front door: audit, limiter, account stage and clock are set here.
    let engine = Engine::builder(policy)
        .rate_limiter(Arc::new(MemoryRateLimiter::default())) // smart lockout: 5/user, 20/address in 5 min
        .accounts(stage) // disabled/locked/expired refused by every method
        .audit(sink)
        .build();

    // Per attempt: what to offer this connection, then the decision.
    let offer = engine.offer(&attempt.connection, attempt.credential.user())?;
    let outcome = engine.decide(&offer, &mut attempt).await; // Authenticated(session) or a failure
    // README end
    Ok(outcome)
}

/// The README's "Testing your own backend".
async fn testing_your_own_backend(
    my_store: Arc<dyn CredentialStore>,
    my_auth: Arc<dyn Authenticator>,
    fixture: AuthenticatorFixture,
    capabilities: AuthenticatorCapabilities,
    my_accounts: Arc<dyn Accounts>,
) {
    // README begin
    use auth_core::contract::{accounts, authenticator, store};

    store::run_all(my_store.as_ref(), &StoreFixture::new("contract-")).await;
    authenticator::run_all(my_auth.as_ref(), &fixture, &capabilities).await;
    // my_accounts holds AccountsFixture::standard's accounts (contract::accounts docs).
    accounts::run_all(my_accounts, &AccountsFixture::standard("acct-")).await;
    // README end
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::account::Directory;
    use auth_core::audit::MemoryAuditSink;
    use auth_core::contract::accounts::seed_directory;
    use auth_core::contract::authenticator::AttemptFactory;
    use auth_core::{
        ConnectionInfo, Credential, CredentialError, Error, MemoryStore, Protocol, TlsInfo,
    };
    use auth_oauth::{IssuerConfig, JwtAuthenticator, ValidationSettings};
    use auth_password::{Argon2Settings, Hasher, PasswordAuthenticator, PasswordPolicy, Users};
    use auth_wallet::WalletAuthenticator;
    use secrecy::SecretString;

    /// The snippets of this file, dedented, in order.
    fn snippets() -> Vec<String> {
        let source = include_str!("readme.rs");
        let mut out = Vec::new();
        let mut current: Option<Vec<&str>> = None;
        for line in source.lines() {
            match line.trim() {
                "// README begin" => current = Some(Vec::new()),
                "// README end" => out.extend(current.take().map(|l| l.join("\n"))),
                _ => {
                    if let Some(lines) = current.as_mut() {
                        lines.push(line.strip_prefix("    ").unwrap_or(line));
                    }
                }
            }
        }
        out
    }

    /// The ```rust blocks of README.md, in order.
    fn readme_blocks() -> Vec<String> {
        let readme = include_str!("../../README.md");
        let mut out = Vec::new();
        let mut current: Option<Vec<&str>> = None;
        for line in readme.lines() {
            if current.is_none() && line.trim() == "```rust" {
                current = Some(Vec::new());
            } else if line.trim() == "```" && current.is_some() {
                out.extend(current.take().map(|l| l.join("\n")));
            } else if let Some(lines) = current.as_mut() {
                lines.push(line);
            }
        }
        out
    }

    #[test]
    fn every_rust_block_of_the_readme_is_compiled_here() {
        let blocks = readme_blocks();
        assert!(!blocks.is_empty(), "the README has Rust snippets");
        assert_eq!(blocks, snippets());
    }

    fn remote(addr: &str, credential: Credential) -> Attempt {
        let connection = ConnectionInfo::tcp(Protocol::Postgres, addr.parse().unwrap())
            .with_tls(TlsInfo::default());
        Attempt::new(connection, credential)
    }

    /// A store with alice's password, and the cheap hasher it was hashed with.
    async fn alice() -> (Arc<dyn CredentialStore>, Users, Hasher) {
        let store: Arc<dyn CredentialStore> = Arc::new(MemoryStore::new());
        let hasher = Hasher::new(Argon2Settings {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        })
        .unwrap();
        let users = Users::new(store.clone());
        users
            .set_password(
                &hasher,
                &PasswordPolicy::default(),
                "alice",
                &SecretString::from("correct horse battery staple"),
            )
            .await
            .unwrap();
        (store, users, hasher)
    }

    #[tokio::test]
    async fn the_contract_suites_pass_for_the_in_memory_backends() {
        let (store, users, hasher) = alice().await;
        let password = |user: &'static str, secret: &'static str| -> AttemptFactory {
            Arc::new(move || remote("10.1.2.3:5000", Credential::password(user, secret)))
        };
        let fixture = AuthenticatorFixture {
            valid: password("alice", "correct horse battery staple"),
            wrong_secret: password("alice", "correct horse battery stapler"),
            unknown_principal: password("zed", "correct horse battery staple"),
            foreign: Arc::new(|| remote("10.1.2.3:5000", Credential::bearer("a token"))),
            principal: "alice".to_owned(),
            secrets: vec!["correct horse battery staple".to_owned()],
        };
        testing_your_own_backend(
            Arc::new(MemoryStore::new()),
            Arc::new(PasswordAuthenticator::new(users, hasher)),
            fixture,
            AuthenticatorCapabilities {
                concurrency: 4,
                ..AuthenticatorCapabilities::default()
            },
            {
                let directory = Directory::new(store);
                seed_directory(&directory, &AccountsFixture::standard("acct-"))
                    .await
                    .unwrap();
                Arc::new(directory)
            },
        )
        .await;
    }

    #[tokio::test]
    async fn the_composed_chain_decides() {
        let (store, users, hasher) = alice().await;
        // An issuer that is not there: its link is unavailable, and the chain falls through.
        let oauth: Arc<dyn Authenticator> = Arc::new(
            JwtAuthenticator::new(
                vec![IssuerConfig::jwks(
                    "https://127.0.0.1:9",
                    "https://127.0.0.1:9/jwks",
                    "api",
                )],
                ValidationSettings::default(),
            )
            .unwrap(),
        );
        let link = |a: Arc<dyn Authenticator>| a;
        let run = |attempt: Attempt, sink: Arc<MemoryAuditSink>| {
            composing_a_chain(
                oauth.clone(),
                link(Arc::new(
                    WalletAuthenticator::new(store.clone()).with_prefix("krb-"),
                )),
                link(Arc::new(WalletAuthenticator::new(store.clone()))),
                link(Arc::new(PasswordAuthenticator::new(
                    users.clone(),
                    hasher.clone(),
                ))),
                Arc::new(AccountStage::new(Arc::new(Directory::new(store.clone())))),
                sink,
                attempt,
            )
        };
        let sink = Arc::new(MemoryAuditSink::default());
        let ok = run(
            remote(
                "10.1.2.3:5000",
                Credential::password("alice", "correct horse battery staple"),
            ),
            sink.clone(),
        )
        .await
        .unwrap();
        assert_eq!(ok.session().map(|s| s.user()), Some("alice"));
        assert!(!sink.events().is_empty(), "the engine audits");

        let wrong = run(
            remote("10.1.2.3:5000", Credential::password("alice", "wrong")),
            sink.clone(),
        )
        .await
        .unwrap();
        assert_eq!(
            wrong.failure().map(|f| f.error),
            Some(Error::Credential(CredentialError::Invalid))
        );
        // Outside 10.0.0.0/8 no rule matches: the offer is refused, with a Failure.
        let elsewhere = run(
            remote(
                "192.0.2.1:5000",
                Credential::password("alice", "correct horse battery staple"),
            ),
            sink,
        )
        .await;
        assert!(elsewhere.is_err());
    }
}
