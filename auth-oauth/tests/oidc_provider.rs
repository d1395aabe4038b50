//! Against a real OpenID provider (node oidc-provider): RFC 9068 access tokens from its
//! client_credentials grant validate through discovery; a restarted provider with a new
//! signing key is picked up with one refetch; tokens for another resource are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use auth_core::{Attempt, Authenticator, ConnectionInfo, Credential, Error, Protocol};
use auth_oauth::{FetchSettings, IssuerConfig, JwtAuthenticator, ValidationSettings};
use auth_tests::oidc::OidcProvider;

fn attempt(token: &str) -> Attempt {
    Attempt::new(
        ConnectionInfo::tcp(Protocol::Http, "10.0.0.1:1".parse().unwrap()),
        Credential::bearer(token),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9068_tokens_from_oidc_provider_validate_and_rotation_costs_one_refetch() {
    let mut provider =
        tokio::task::spawn_blocking(|| OidcProvider::start().unwrap_or_else(|e| panic!("{e}")))
            .await
            .unwrap();
    let issuer = provider.issuer();
    let config = IssuerConfig {
        require_at_jwt: true,
        fetch: FetchSettings {
            refetch_interval: Duration::from_secs(30),
            ..FetchSettings::default()
        },
        ..IssuerConfig::discovery(issuer.clone(), "urn:api")
    };
    let auth = JwtAuthenticator::new(vec![config], ValidationSettings::default()).unwrap();

    let token = provider.token("urn:api", "read kms:encrypt").unwrap();
    let out = auth.authenticate(&mut attempt(&token)).await;
    let s = out.session().unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(s.principal(), "svc");
    assert_eq!(s.scopes(), ["read", "kms:encrypt"]);
    let fetches = auth.key_fetches(&issuer);
    assert_eq!(fetches, 1, "one key download (discovery, then JWKS)");

    // An opaque token is not a JWT.
    let opaque = provider.token("urn:opaque", "read").unwrap();
    assert_eq!(
        auth.authenticate(&mut attempt(&opaque))
            .await
            .failure()
            .unwrap()
            .error,
        Error::Malformed
    );

    // The provider restarts with a new signing key: the new kid is unknown, one refetch.
    tokio::task::block_in_place(|| provider.restart().unwrap());
    let rotated = provider.token("urn:api", "read").unwrap();
    assert!(
        auth.authenticate(&mut attempt(&rotated))
            .await
            .is_authenticated()
    );
    assert_eq!(
        auth.key_fetches(&issuer),
        fetches + 1,
        "exactly one refetch"
    );
    // Old tokens, signed by the retired key, now fail.
    let again = JwtAuthenticator::new(
        vec![IssuerConfig::discovery(issuer.clone(), "urn:api")],
        ValidationSettings::default(),
    )
    .unwrap();
    assert_eq!(
        again
            .authenticate(&mut attempt(&token))
            .await
            .failure()
            .unwrap()
            .error,
        Error::InvalidSignature
    );
}
