//! The README's Rust snippets, compiled and, where they can be, run: each block between a
//! `README begin` and a `README end` comment is, dedented, a ```rust block of README.md,
//! and a test checks that every ```rust block of the README is one of them, so neither
//! can change alone.

use std::sync::Arc;

use auth_core::contract::accounts::AccountsFixture;
use auth_core::contract::authenticator::{AuthenticatorCapabilities, AuthenticatorFixture};
use auth_core::contract::store::StoreFixture;
use auth_core::{Accounts, Authenticator, CredentialStore, MemoryStore};
use axum::Router;

/// The README's quick start, a whole program. It serves until it is stopped, so it is
/// compiled here and not run.
mod quick_start {
    // README begin
    use std::sync::Arc;

    use auth_axum::{AuthLayer, Authenticated};
    use auth_core::{Chain, Engine, MemoryStore, Policy, Protocol};
    use auth_listen::{Listener, TlsSetup};
    use auth_password::{Argon2Settings, Hasher, PasswordAuthenticator, PasswordPolicy, Users};
    use axum::{Router, routing::get};

    #[tokio::main]
    async fn main() -> Result<(), Box<dyn std::error::Error>> {
        // One user, `alice`, with an argon2id hash, in a store in memory.
        let users = Users::new(Arc::new(MemoryStore::new()));
        let hasher = Hasher::new(Argon2Settings::default())?;
        let password = std::env::var("ALICE_PASSWORD")?.into();
        users
            .set_password(&hasher, &PasswordPolicy::default(), "alice", &password)
            .await?;

        // HTTP Basic checked against the stored hash, for every client.
        let passwords = PasswordAuthenticator::new(users, hasher);
        let policy = Policy::single(Chain::builder().link(Arc::new(passwords)).build())?;
        let engine = Arc::new(Engine::builder(policy).build());

        let app = Router::new()
            .route(
                "/whoami",
                get(|auth: Authenticated| async move { auth.user().to_owned() }),
            )
            .layer(AuthLayer::new(engine));

        // Passwords are accepted only over TLS.
        let cert = std::fs::read("server.crt")?;
        let key = std::fs::read("server.key")?;
        let listener = Listener::bind("127.0.0.1:8443".parse()?, Protocol::Http)
            .await?
            .with_tls(TlsSetup::from_pem(&cert, &key)?);
        auth_axum::serve(listener, app).await?;
        Ok(())
    }
    // README end

    #[test]
    fn the_quick_start_is_a_program() {
        let _: fn() -> Result<(), Box<dyn std::error::Error>> = main;
    }
}

/// The README's "Composing a chain": the API it builds, and the store its users are in.
fn composing_a_chain() -> Result<(Router, Arc<MemoryStore>), Box<dyn std::error::Error>> {
    // README begin
    use std::sync::Arc;

    use auth_axum::{AuthLayer, Authenticated};
    use auth_core::account::{AccountStage, Directory};
    use auth_core::policy::{AddressMatch, ConnectionType, Rule, Target};
    use auth_core::{Chain, Control, Engine, MemoryRateLimiter, MemoryStore, Policy};
    use auth_oauth::{IssuerConfig, JwtAuthenticator, ValidationSettings};
    use auth_password::{Argon2Settings, Hasher, PasswordAuthenticator, Users};
    use auth_wallet::WalletAuthenticator;
    use axum::{Router, routing::get};

    // Users, their accounts and wallet secrets in one store: in memory here, an
    // auth_wallet::Wallet (a file or PostgreSQL) in production.
    let store = Arc::new(MemoryStore::new());
    let issuer = IssuerConfig::discovery("https://idp.example.com", "api");
    let settings = ValidationSettings::default();
    let oauth = Arc::new(JwtAuthenticator::new(vec![issuer], settings)?);
    let wallet = Arc::new(WalletAuthenticator::new(store.clone()));
    let users = Users::new(store.clone());
    let hasher = Hasher::new(Argon2Settings::default())?;
    let password = Arc::new(PasswordAuthenticator::new(users, hasher));

    // OAuth first; if the OAuth server is down, fall through. The wallet (like
    // auth_kerberos's GssAuthenticator) declines credentials it cannot judge ("not in
    // wallet" moves on); a wrong password stops the chain.
    let chain = Chain::builder()
        .link_with(oauth, Control::CONCLUSIVE.fallback_on_unavailable())
        .link(wallet) // Control::CONCLUSIVE, 5 s timeout
        .link(password)
        .build();

    // pg_hba-like: first match wins, no match rejects.
    let policy = Policy::new(vec![
        Rule::new("tls-only", Target::Chain(Arc::new(chain)))
            .with_connection(ConnectionType::HostSsl)
            .with_addresses(AddressMatch::Networks(vec!["10.0.0.0/8".parse()?])),
    ])?;

    // One engine for every front door: audit (default: `tracing`), limiter, account stage
    // and clock are set here.
    let accounts = AccountStage::new(Arc::new(Directory::new(store.clone())));
    let engine = Arc::new(
        Engine::builder(policy)
            .rate_limiter(Arc::new(MemoryRateLimiter::default())) // smart lockout: 5/user, 20/address in 5 min
            .accounts(Arc::new(accounts)) // disabled/locked/expired refused by every method
            .build(),
    );

    // The front doors share it, and each asks it what to offer a connection and what the
    // client's attempt earns: auth_pgwire::PgServer::new(engine.clone(), queries), a tonic
    // server's .layer(auth_tonic::AuthLayer::new(engine.clone())), and this axum API.
    let app = Router::new()
        .route(
            "/whoami",
            get(|auth: Authenticated| async move { auth.user().to_owned() }),
        )
        .layer(AuthLayer::new(engine));
    // README end
    Ok((app, store))
}

/// The README's "Testing your own backend".
async fn testing_your_own_backend(
    my_store: Arc<dyn CredentialStore>,
    my_auth: Arc<dyn Authenticator>,
    fixture: AuthenticatorFixture,
    capabilities: AuthenticatorCapabilities,
    my_accounts: Arc<dyn Accounts>,
    my_limiter_factory: impl auth_core::contract::rate_limiter::LimiterFactory,
) {
    // README begin
    use auth_core::contract::{accounts, authenticator, rate_limiter, store};

    store::run_all(my_store.as_ref(), &StoreFixture::new("contract-")).await;
    authenticator::run_all(my_auth.as_ref(), &fixture, &capabilities).await;
    // my_accounts holds AccountsFixture::standard's accounts (contract::accounts docs).
    accounts::run_all(my_accounts, &AccountsFixture::standard("acct-")).await;
    // A RateLimiter of your own: a factory that makes fresh ones on a ManualClock.
    rate_limiter::run_all(&my_limiter_factory).await;
    // README end
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::account::Directory;
    use auth_core::contract::accounts::seed_directory;
    use auth_core::contract::authenticator::AttemptFactory;
    use auth_core::{Attempt, ConnectionInfo, Credential, Protocol, TlsInfo};
    use auth_password::{Argon2Settings, Hasher, PasswordAuthenticator, PasswordPolicy, Users};
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, StatusCode};
    use base64::Engine as _;
    use secrecy::SecretString;
    use tower::ServiceExt;

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

    /// A hasher with cheap parameters: tests need no resistance to offline guessing.
    fn cheap_hasher() -> Hasher {
        Hasher::new(Argon2Settings {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        })
        .unwrap()
    }

    /// alice, with her password hashed by `hasher`, in `store`.
    async fn add_alice(store: Arc<dyn CredentialStore>, hasher: &Hasher) -> Users {
        let users = Users::new(store);
        users
            .set_password(
                hasher,
                &PasswordPolicy::default(),
                "alice",
                &SecretString::from("correct horse battery staple"),
            )
            .await
            .unwrap();
        users
    }

    /// A store with alice's password, and the cheap hasher it was hashed with.
    async fn alice() -> (Arc<dyn CredentialStore>, Users, Hasher) {
        let store: Arc<dyn CredentialStore> = Arc::new(MemoryStore::new());
        let hasher = cheap_hasher();
        let users = add_alice(store.clone(), &hasher).await;
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
            MemoryLimiters,
        )
        .await;
    }

    /// Fresh in-memory limiters, as a third party's factory makes its own.
    struct MemoryLimiters;

    #[async_trait::async_trait]
    impl auth_core::contract::rate_limiter::LimiterFactory for MemoryLimiters {
        async fn limiter(
            &self,
            settings: auth_core::rate_limit::LimitSettings,
            clock: auth_core::clock::SharedClock,
        ) -> Arc<dyn auth_core::RateLimiter> {
            Arc::new(auth_core::MemoryRateLimiter::with_clock(settings, clock))
        }
    }

    #[tokio::test]
    async fn the_composed_chain_decides() {
        let (app, store) = composing_a_chain().unwrap();
        // The chain's hasher verifies any argon2id hash (and rehashes a cheap one).
        add_alice(store, &cheap_hasher()).await;
        let get = |from: &str, tls: bool, authorization: String| {
            let mut request = Request::get("/whoami")
                .header("authorization", authorization)
                .body(Body::empty())
                .unwrap();
            // What auth_axum::serve gives every request: the client's address, and the
            // handshake's facts on a TLS connection.
            let peer: std::net::SocketAddr = from.parse().unwrap();
            request.extensions_mut().insert(ConnectInfo(peer));
            if tls {
                request.extensions_mut().insert(TlsInfo::default());
            }
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
                    .await
                    .unwrap();
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };
        let basic = |user: &str, password: &str| {
            let pair = format!("{user}:{password}");
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        };
        let right = basic("alice", "correct horse battery staple");

        assert_eq!(
            get("10.1.2.3:5000", true, right.clone()).await,
            (StatusCode::OK, "alice".to_owned())
        );
        let (status, _) = get("10.1.2.3:5000", true, basic("alice", "wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // The OAuth link judges bearer tokens, and refuses this one without fetching keys:
        // it is not a JWT.
        let (status, _) = get("10.1.2.3:5000", true, "Bearer not-a-jwt".to_owned()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Outside 10.0.0.0/8, or without TLS, no rule matches: refused, whatever the
        // password.
        let (status, _) = get("192.0.2.1:5000", true, right.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = get("10.1.2.3:5000", false, right).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}
