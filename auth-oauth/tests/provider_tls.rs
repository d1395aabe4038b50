//! Against oidc-provider over HTTPS (a certificate from the harness's run CA): a client
//! trusting another CA is refused with a clear error; plain http off loopback is refused
//! at construction; our own client authentication by `client_secret_post`,
//! `client_secret_jwt` and `private_key_jwt` for the token and introspection endpoints;
//! a client secret rotated in the wallet is picked up without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use auth_core::secrecy::{ExposeSecret, SecretSlice, SecretString};
use auth_core::{
    Attempt, Authenticator, ConnectionInfo, Credential, CredentialStore, Key, ManualClock,
    OutcomeClass, Precondition, Protocol,
};
use auth_oauth::{
    AssertionKey, ClientAuth, ClientCredentials, ClientCredentialsConfig, ClientSecret,
    ConfigError, HttpError, IntrospectionAuthenticator, IntrospectionConfig, IssuerConfig,
    JwtAuthenticator, ValidationSettings,
};
use auth_tests::oidc::{CLIENT_SECRET, OidcProvider};

fn attempt(token: &str) -> Attempt {
    Attempt::new(
        ConnectionInfo::tcp(Protocol::Http, "10.0.0.1:1".parse().unwrap()),
        Credential::bearer(token),
    )
}

async fn provider() -> OidcProvider {
    tokio::task::spawn_blocking(|| OidcProvider::start().unwrap_or_else(|e| panic!("{e}")))
        .await
        .unwrap()
}

fn secret(text: &str) -> ClientSecret {
    ClientSecret::new(SecretString::from(text.to_owned())).unwrap()
}

fn source(provider: &OidcProvider, client: &str, auth: ClientAuth) -> ClientCredentials {
    ClientCredentials::new(ClientCredentialsConfig {
        http: common::run_ca_client(),
        issuer: Some(provider.issuer()),
        scope: Some("read".into()),
        resource: Some("urn:api".into()),
        timeout: Duration::from_secs(5),
        ..ClientCredentialsConfig::new(format!("{}/token", provider.issuer()), client, auth)
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_certificate_from_another_ca_is_refused_with_a_clear_error() {
    let provider = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let other = auth_tests::pki::TestCa::new("another CA", dir.path()).unwrap();
    let auth = common::provider_jwt(&provider.issuer(), common::trusting(&other.pem()));
    let token = provider.token("urn:api", "read").unwrap();
    let out = auth.authenticate(&mut attempt(&token)).await;
    assert_eq!(out.class(), OutcomeClass::Unavailable, "{out:?}");
    let text = format!("{out:?}");
    assert!(
        text.contains("invalid peer certificate") && text.contains("UnknownIssuer"),
        "the refusal says why: {text}"
    );
    // The same for the token endpoint.
    let cc = ClientCredentials::new(ClientCredentialsConfig {
        http: common::trusting(&other.pem()),
        ..ClientCredentialsConfig::new(
            format!("{}/token", provider.issuer()),
            "svc",
            ClientAuth::SecretBasic(secret(CLIENT_SECRET)),
        )
    })
    .unwrap();
    let err = cc.token().await.unwrap_err().to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
    // Trusting the run CA, all is well.
    let auth = common::provider_jwt(&provider.issuer(), common::run_ca_client());
    assert!(
        auth.authenticate(&mut attempt(&token))
            .await
            .is_authenticated()
    );
}

#[test]
fn plain_http_off_loopback_is_refused_at_construction() {
    let err = JwtAuthenticator::new(
        vec![IssuerConfig::discovery("http://idp.example.com", "api")],
        ValidationSettings::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Issuer { issuer, source: HttpError::Url { .. } } if issuer == "http://idp.example.com"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("plain http is allowed only to loopback"),
        "{err}"
    );
    // A refused URL is an insecure configuration, for whoever logs it as a failure.
    assert_eq!(
        auth_core::Failure::from(err).error,
        auth_core::Error::Configuration(auth_core::ConfigurationError::Insecure)
    );
    let err = JwtAuthenticator::new(
        vec![IssuerConfig::jwks(
            "https://idp.example.com",
            "http://10.1.2.3/jwks",
            "api",
        )],
        ValidationSettings::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("http://10.1.2.3/jwks"), "{err}");
    let auth = || ClientAuth::SecretBasic(secret(CLIENT_SECRET));
    let err = IntrospectionAuthenticator::new(IntrospectionConfig::new(
        "http://idp.example.com/introspect",
        "svc",
        auth(),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("use https"), "{err}");
    assert!(
        ClientCredentials::new(ClientCredentialsConfig::new(
            "http://192.168.1.1/token",
            "svc",
            auth()
        ))
        .is_err()
    );
    let mut grant =
        auth_oauth::PasswordGrantConfig::new("https://idp.example.com/token", "svc", auth());
    grant.revocation_endpoint = Some("http://idp.example.com/revoke".into());
    assert!(auth_oauth::PasswordGrantAuthenticator::new(grant).is_err());
    // Loopback stays allowed (a provider on the same host).
    assert!(
        ClientCredentials::new(ClientCredentialsConfig::new(
            "http://127.0.0.1:9/token",
            "svc",
            auth()
        ))
        .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_authentication_method_gets_tokens_and_introspects() {
    let provider = provider().await;
    let key = AssertionKey::from_pkcs8_pem(
        &provider.assertion_key_pem().unwrap(),
        Some("svc-key-1".into()),
    )
    .unwrap();
    let jwt = common::provider_jwt(&provider.issuer(), common::run_ca_client());
    let methods = [
        ("svc", ClientAuth::SecretBasic(secret(CLIENT_SECRET))),
        ("svc-post", ClientAuth::SecretPost(secret(CLIENT_SECRET))),
        ("svc-hs", ClientAuth::SecretJwt(secret(CLIENT_SECRET))),
        ("svc-key", ClientAuth::PrivateKeyJwt(key.clone())),
    ];
    for (client, auth) in methods {
        let method = auth.method();
        let token = source(&provider, client, auth.clone())
            .token()
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        let out = jwt.authenticate(&mut attempt(token.expose_secret())).await;
        let session = out.session().unwrap_or_else(|| panic!("{method}: {out:?}"));
        assert_eq!(session.principal(), client, "{method}");
        // The same client introspects an opaque token.
        let introspection = IntrospectionAuthenticator::new(IntrospectionConfig {
            issuer: Some(provider.issuer()),
            http: common::run_ca_client(),
            client_id_as_user: true,
            ..IntrospectionConfig::new(
                format!("{}/token/introspection", provider.issuer()),
                client,
                auth,
            )
        })
        .unwrap();
        let opaque = provider.token("urn:opaque", "read").unwrap();
        let out = introspection.authenticate(&mut attempt(&opaque)).await;
        assert!(out.is_authenticated(), "{method}: {out:?}");
    }

    // A key the provider does not know is refused as a client: unavailable, not the
    // caller's fault.
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let stranger = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    let stranger =
        AssertionKey::from_pkcs8_der(stranger.as_ref(), Some("svc-key-1".into())).unwrap();
    let err = source(&provider, "svc-key", ClientAuth::PrivateKeyJwt(stranger))
        .token()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid_client"), "{err}");

    // Without `client_id_as_user`, a client's token (no `sub`) is no user.
    let strict = IntrospectionAuthenticator::new(IntrospectionConfig {
        http: common::run_ca_client(),
        ..IntrospectionConfig::new(
            format!("{}/token/introspection", provider.issuer()),
            "svc-key",
            ClientAuth::PrivateKeyJwt(key),
        )
    })
    .unwrap();
    let opaque = provider.token("urn:opaque", "read").unwrap();
    let out = strict.authenticate(&mut attempt(&opaque)).await;
    assert_eq!(
        out.failure().unwrap().error,
        auth_core::Error::Credential(auth_core::CredentialError::MissingClaim),
        "{out:?}"
    );
}

async fn put(store: &dyn CredentialStore, key: &str, value: &str) {
    store
        .put(
            &Key::new(key).unwrap(),
            SecretSlice::from(value.as_bytes().to_vec()),
            Precondition::None,
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotated_in_the_wallet_is_used_without_a_restart() {
    let mut provider = provider().await;
    let wallet: Arc<dyn CredentialStore> = Arc::new(auth_wallet::Wallet::new(
        Arc::new(auth_core::MemoryStore::new()),
        auth_wallet::MasterKey::generate().unwrap(),
    ));
    let key = auth_wallet::OAUTH_CLIENT_SECRET_KEY;
    put(wallet.as_ref(), key, CLIENT_SECRET).await;
    let clock = ManualClock::new(std::time::SystemTime::now());
    let every = Duration::from_secs(600);
    let stored = ClientSecret::from_store(wallet.clone(), key, every, Arc::new(clock.clone()))
        .await
        .unwrap();
    // refresh_before beyond any lifetime: every call goes to the provider.
    let always = |auth| {
        ClientCredentials::new(ClientCredentialsConfig {
            http: common::run_ca_client(),
            refresh_before: Duration::from_secs(100_000),
            ..ClientCredentialsConfig::new(format!("{}/token", provider.issuer()), "svc", auth)
        })
        .unwrap()
    };
    let cc = always(ClientAuth::SecretBasic(stored));
    let fixed = always(ClientAuth::SecretBasic(secret(CLIENT_SECRET)));
    cc.token().await.unwrap();
    fixed.token().await.unwrap();

    // The operator rotates: a new secret at the provider and in the wallet. The next
    // request is refused as `invalid_client`, the secret is read again, and the request
    // made once more with it.
    let rotated = "fedcba9876543210fedcba9876543210-rotated";
    tokio::task::block_in_place(|| provider.restart_with_secret(rotated).unwrap());
    put(wallet.as_ref(), key, rotated).await;
    cc.token()
        .await
        .unwrap_or_else(|e| panic!("the rotated secret is used: {e}"));
    let err = fixed.token().await.unwrap_err().to_string();
    assert!(
        err.contains("invalid_client"),
        "a fixed old secret stays refused: {err}"
    );

    // The wallet changes again while the provider keeps `rotated`: until the interval
    // passes (on the injected clock) the secret in use stays; after it, the new one is
    // read before the request, and the provider refuses it.
    put(
        wallet.as_ref(),
        key,
        "0000000000000000000000000000000000-third",
    )
    .await;
    cc.token().await.unwrap();
    clock.advance(every + Duration::from_secs(1));
    let err = cc.token().await.unwrap_err().to_string();
    assert!(
        err.contains("invalid_client"),
        "re-read on the interval: {err}"
    );
}
