//! The gateway's OAuth settings: the issuers whose bearer tokens `oauthbearer` rules accept
//! (`[[oauth_issuer]]`), and the provider `oauth-password` rules exchange passwords at
//! (`[oauth_password]`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use auth_core::clock::system_clock;
use auth_oauth::{
    ClientAuth, ClientSecret, HttpClient, IssuerConfig, JwtAuthenticator,
    PasswordGrantAuthenticator, PasswordGrantConfig, ValidationSettings,
};
use serde::Deserialize;

use super::GatewayError;
use super::config::duration;

/// One `[[oauth_issuer]]`: an issuer whose JWT access tokens `oauthbearer` rules accept,
/// with its keys found by discovery (`<issuer>/.well-known/openid-configuration`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthIssuerConfig {
    /// The issuer exactly as its tokens name it in `iss` (`https://`).
    pub issuer: String,
    /// The audience its tokens must name for this gateway (`aud`).
    pub audience: String,
    /// The CA bundle (PEM) that issued the issuer's HTTPS certificate, relative to the data
    /// directory, when it is not a public one.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The claim naming the user, when not `sub`: only for an issuer you control.
    #[serde(default)]
    pub username_claim: Option<String>,
}

/// `[oauth_password]`: the OAuth server `oauth-password` rules send user names and
/// passwords to (the resource-owner password grant).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthPasswordConfig {
    /// The token endpoint (`https://`).
    pub token_endpoint: String,
    /// The RFC 7009 revocation endpoint: a connection's tokens are revoked when it ends.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// The gateway's client id at the server.
    pub client_id: String,
    /// The environment variable holding the client secret (at least 32 characters)...
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// ...or the wallet key holding it (`authctl secret set KEY`).
    #[serde(default)]
    pub client_secret_wallet: Option<String>,
    /// The CA bundle (PEM) of the server's HTTPS certificate, relative to the data
    /// directory, when it is not a public one.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The scope to ask for.
    #[serde(default)]
    pub scope: Option<String>,
    /// The time limit of one call to the server (default `5s`).
    #[serde(default = "five_seconds", deserialize_with = "duration")]
    pub timeout: Duration,
    /// How long before the access token expires a connection refreshes it (default `30s`).
    #[serde(default = "thirty_seconds", deserialize_with = "duration")]
    pub refresh_before: Duration,
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}
fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}

impl OAuthPasswordConfig {
    /// Exactly one source of the client secret.
    pub(super) fn check(&self) -> Result<(), String> {
        match (&self.client_secret_env, &self.client_secret_wallet) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(
                "[oauth_password]: name the client secret's source, either client_secret_env = \
                 \"VARIABLE\" or client_secret_wallet = \"wallet key\" (not both)"
                    .into(),
            ),
        }
    }
}

/// The OAuth authenticators the rules use, built once at start.
#[derive(Debug, Default)]
pub struct OAuthSetup {
    /// A validator per `[[oauth_issuer]]`, by issuer.
    pub issuers: HashMap<String, Arc<JwtAuthenticator>>,
    /// The password grant of `[oauth_password]`.
    pub password_grant: Option<Arc<PasswordGrantAuthenticator>>,
}

impl OAuthSetup {
    /// The validator of `[[oauth_issuer]]` `issuer`, which is the issuer or its discovery
    /// document's URL.
    pub fn issuer(&self, advertised: &str) -> Option<&Arc<JwtAuthenticator>> {
        self.issuers
            .iter()
            .find_map(|(issuer, jwt)| advertises(advertised, issuer).then_some(jwt))
    }
}

/// Whether a rule's `issuer` names `issuer`: the issuer itself, or a URL under its
/// `/.well-known/`.
pub(super) fn advertises(advertised: &str, issuer: &str) -> bool {
    let issuer = issuer.trim_end_matches('/');
    advertised.trim_end_matches('/') == issuer
        || advertised
            .strip_prefix(issuer)
            .is_some_and(|rest| rest.starts_with("/.well-known/"))
}

/// An HTTP client trusting, besides the usual roots, the CAs in `ca_file` (relative to
/// `data_dir`).
fn http(data_dir: &Path, ca_file: Option<&str>, section: &str) -> Result<HttpClient, GatewayError> {
    let mut builder = HttpClient::builder();
    if let Some(file) = ca_file {
        let path = data_dir.join(file);
        let pem = std::fs::read(&path)
            .map_err(|e| GatewayError(format!("{section} ca_file {}: {e}", path.display())))?;
        builder = builder
            .add_ca_pem(&pem)
            .map_err(|e| GatewayError(format!("{section} ca_file {}: {e}", path.display())))?;
    }
    builder
        .build()
        .map_err(|e| GatewayError(format!("{section}: {e}")))
}

/// Builds the validators and the password grant the configuration names.
pub(super) async fn setup(
    data_dir: &Path,
    issuers: &[OAuthIssuerConfig],
    password: Option<&OAuthPasswordConfig>,
    wallet: &Arc<auth_wallet::Wallet>,
) -> Result<OAuthSetup, GatewayError> {
    let mut setup = OAuthSetup::default();
    for i in issuers {
        let section = format!("[[oauth_issuer]] `{}`", i.issuer);
        let config = IssuerConfig::discovery(i.issuer.clone(), i.audience.clone()).with_http(http(
            data_dir,
            i.ca_file.as_deref(),
            &section,
        )?);
        let settings = ValidationSettings {
            username_claim: i.username_claim.clone(),
            ..ValidationSettings::default()
        };
        let jwt = JwtAuthenticator::new(vec![config], settings)
            .map_err(|e| GatewayError(format!("{section}: {e}")))?;
        setup.issuers.insert(i.issuer.clone(), Arc::new(jwt));
    }
    if let Some(p) = password {
        let section = "[oauth_password]";
        let secret = match (&p.client_secret_env, &p.client_secret_wallet) {
            (Some(var), _) => auth_oauth::client_secret_from_env(var)
                .and_then(ClientSecret::new)
                .map_err(|e| GatewayError(format!("{section} client_secret_env: {e}")))?,
            (None, Some(key)) => ClientSecret::from_store(
                wallet.clone(),
                key,
                Duration::from_secs(3600),
                system_clock(),
            )
            .await
            .map_err(|e| GatewayError(format!("{section} client_secret_wallet: {e}")))?,
            (None, None) => return Err(GatewayError(format!("{section}: no client secret"))),
        };
        let config = PasswordGrantConfig {
            revocation_endpoint: p.revocation_endpoint.clone(),
            http: http(data_dir, p.ca_file.as_deref(), section)?,
            scope: p.scope.clone(),
            timeout: p.timeout,
            refresh_before: p.refresh_before,
            ..PasswordGrantConfig::new(
                p.token_endpoint.clone(),
                p.client_id.clone(),
                ClientAuth::SecretBasic(secret),
            )
        };
        let grant = PasswordGrantAuthenticator::new(config)
            .map_err(|e| GatewayError(format!("{section}: {e}")))?;
        setup.password_grant = Some(Arc::new(grant));
    }
    Ok(setup)
}

#[cfg(test)]
mod tests {
    use super::advertises;

    #[test]
    fn a_rule_names_an_issuer_or_its_discovery_document() {
        let issuer = "https://idp.example:8443";
        assert!(advertises("https://idp.example:8443", issuer));
        assert!(advertises("https://idp.example:8443/", issuer));
        assert!(advertises(
            "https://idp.example:8443/.well-known/openid-configuration",
            issuer
        ));
        assert!(!advertises("https://idp.example:84430", issuer));
        assert!(!advertises("https://idp.example:8443/evil", issuer));
    }
}
